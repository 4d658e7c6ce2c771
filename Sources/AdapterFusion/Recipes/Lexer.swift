/// A token of the recipe language, with its 1-based source position.
public struct Token: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// A bare word: keyword, name, number or path (letters, digits and `_ . / - + : ~`).
        case word(String)
        /// A double-quoted string (for paths with spaces); `\"` and `\\` escape.
        case string(String)
        case lparen, rparen, comma, star, newline, end
    }
    public let kind: Kind
    public let line: Int
    public let column: Int

    /// At most 40 characters of a (possibly huge) token, for messages.

    /// How the token reads in an error message.
    public var display: String {
        switch kind {
        case .word(let w): return "'\(Snippet.cut(w))'"
        case .string(let s): return "\"\(Snippet.cut(s))\""
        case .lparen: return "'('"
        case .rparen: return "')'"
        case .comma: return "','"
        case .star: return "'*'"
        case .newline: return "end of line"
        case .end: return "end of file"
        }
    }
}

/// Splits recipe text into tokens. Comments run from `#` to the end of the line.
public struct Lexer {
    public let file: String
    public let text: String

    /// CRLF line ends (Windows editors) read as LF; positions count in the normalised text.
    public init(file: String, text: String) {
        self.file = file
        self.text = text.replacingOccurrences(of: "\r\n", with: "\n")
    }

    static func isWordChar(_ c: Character) -> Bool {
        c.isLetter || c.isNumber || "_./-+:~".contains(c)
    }

    public func tokens() throws -> [Token] {
        var out: [Token] = []
        var line = 1
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let chars = Array(raw)
            var i = 0
            while i < chars.count {
                let c = chars[i]
                let col = i + 1
                if c == " " || c == "\t" { i += 1; continue }
                if c == "#" { break }
                switch c {
                case "(": out.append(Token(kind: .lparen, line: line, column: col)); i += 1
                case ")": out.append(Token(kind: .rparen, line: line, column: col)); i += 1
                case ",": out.append(Token(kind: .comma, line: line, column: col)); i += 1
                case "*": out.append(Token(kind: .star, line: line, column: col)); i += 1
                case "\"":
                    var s = ""
                    var j = i + 1
                    var closed = false
                    while j < chars.count {
                        if chars[j] == "\\", j + 1 < chars.count { s.append(chars[j + 1]); j += 2; continue }
                        if chars[j] == "\"" { closed = true; break }
                        s.append(chars[j]); j += 1
                    }
                    guard closed else {
                        throw SourceError(
                            file: file, text: text, line: line, column: col, "unterminated string",
                            hint: "close it with \" on the same line")
                    }
                    out.append(Token(kind: .string(s), line: line, column: col))
                    i = j + 1
                default:
                    guard Self.isWordChar(c) else {
                        throw SourceError(
                            file: file, text: text, line: line, column: col, "unexpected character \(Snippet.describe(c))",
                            hint: c == "="
                                ? "settings are written 'key value', without '='"
                                : c == "[" || c == "{" ? "compositions use parentheses: fuse(a, b)" : nil)
                    }
                    var j = i
                    while j < chars.count && Self.isWordChar(chars[j]) { j += 1 }
                    out.append(Token(kind: .word(String(chars[i..<j])), line: line, column: col))
                    i = j
                }
            }
            out.append(Token(kind: .newline, line: line, column: chars.count + 1))
            line += 1
        }
        out.append(Token(kind: .end, line: max(1, line - 1), column: 1))
        return out
    }
}
