/// A TOML value, as task files use them.
public indirect enum TOMLValue: Equatable, Sendable {
    case string(String)
    case int(Int)
    case double(Double)
    case bool(Bool)
    case array([TOMLValue])
    case table(TOMLTable)

    public var string: String? { if case .string(let s) = self { return s }; return nil }
    public var int: Int? { if case .int(let i) = self { return i }; return nil }
    public var double: Double? { if case .double(let d) = self { return d }; return nil }
    public var bool: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var array: [TOMLValue]? { if case .array(let a) = self { return a }; return nil }
    public var table: TOMLTable? { if case .table(let t) = self { return t }; return nil }
}

/// A TOML table: keys in file order.
public struct TOMLTable: Equatable, Sendable {
    public private(set) var keys: [String] = []
    private var values: [String: TOMLValue] = [:]

    public init() {}
    public subscript(key: String) -> TOMLValue? { values[key] }

    mutating func set(_ key: String, _ value: TOMLValue) {
        if values[key] == nil { keys.append(key) }
        values[key] = value
    }
}

/// A TOML (v1.0) parser for task files: tables, dotted keys, basic and literal strings (single-
/// and multi-line, with escapes), integers (decimal, hex, octal, binary, `_` separators), floats
/// (with `inf`/`nan`), booleans, arrays and inline tables. Dates and arrays of tables, which no
/// task file needs, are refused by name. Every error is a `SourceError` at the line and column
/// of the offending character; nesting is bounded, so no input can exhaust the stack.
public struct TOMLParser {
    let file: String
    let text: String
    private let chars: [Character]
    private var i = 0
    private var line = 1
    private var column = 1
    static let maxDepth = 64

    public init(file: String, text: String) {
        self.file = file
        self.text = text
        chars = Array(text)
    }

    /// Parses the whole document.
    public static func parse(_ text: String, file: String) throws -> TOMLTable {
        var p = TOMLParser(file: file, text: text)
        return try p.document()
    }

    private func fail(_ message: String, hint: String? = nil) -> SourceError {
        SourceError(file: file, text: text, line: line, column: column, "TOML: " + message, hint: hint)
    }

    private var atEnd: Bool { i >= chars.count }
    private var peek: Character? { i < chars.count ? chars[i] : nil }

    private mutating func advance() {
        if chars[i] == "\n" { line += 1; column = 1 } else { column += 1 }
        i += 1
    }

    private mutating func skipSpaces() { while let c = peek, c == " " || c == "\t" { advance() } }

    /// Spaces and a comment, then a line end or the end of the file.
    private mutating func endOfLine() throws {
        skipSpaces()
        if peek == "#" { while let c = peek, c != "\n" { try checkCommentChar(c); advance() } }
        guard let c = peek else { return }
        guard c == "\n" else { throw fail("expected the end of the line, found \(describe(c))") }
        advance()
    }

    private func checkCommentChar(_ c: Character) throws {
        if let u = c.unicodeScalars.first, u.value < 0x20 && u != "\t" || u.value == 0x7F {
            throw fail("control character \(describe(c)) in a comment")
        }
    }

    private func describe(_ c: Character) -> String {
        c == "\n" ? "the end of the line" : Lexer.describe(c)
    }

    private mutating func document() throws -> TOMLTable {
        var root = TOMLTable()
        var current: [String] = []     // path of the table being filled
        var defined = Set<[String]>()  // tables opened by a header
        while !atEnd {
            skipSpaces()
            guard let c = peek else { break }
            if c == "\n" { advance(); continue }
            if c == "#" { try endOfLine(); continue }
            if c == "[" {
                advance()
                if peek == "[" { throw fail("arrays of tables ([[…]]) are not used in task files") }
                skipSpaces()
                let path = try keyPath()
                skipSpaces()
                guard peek == "]" else { throw fail(peek.map { "expected ']' after the table name, found \(describe($0))" } ?? "expected ']'") }
                advance()
                guard defined.insert(path).inserted else { throw fail("table [\(path.joined(separator: "."))] is defined twice") }
                try ensureTable(&root, path)
                current = path
                try endOfLine()
                continue
            }
            let keyLine = line, keyColumn = column
            let path = try keyPath()
            skipSpaces()
            guard peek == "=" else {
                throw fail(peek.map { "expected '=' after the key, found \(describe($0))" } ?? "expected '=' after the key")
            }
            advance()
            skipSpaces()
            let value = try value(depth: 0)
            try insert(&root, current + path, value, line: keyLine, column: keyColumn)
            try endOfLine()
        }
        return root
    }

    /// key ('.' key)*
    private mutating func keyPath() throws -> [String] {
        var parts = [try key()]
        skipSpaces()
        while peek == "." {
            advance()
            skipSpaces()
            parts.append(try key())
            skipSpaces()
        }
        return parts
    }

    private mutating func key() throws -> String {
        guard let c = peek else { throw fail("expected a key") }
        if c == "\"" || c == "'" {
            if i + 2 < chars.count && chars[i + 1] == c && chars[i + 2] == c { throw fail("a key cannot be a multi-line string") }
            return try c == "\"" ? basicString() : literalString()
        }
        var k = ""
        while let c = peek, c.isASCII && (c.isLetter || c.isNumber) || c == "_" || c == "-" { k.append(c); advance() }
        guard !k.isEmpty else { throw fail("expected a key (letters, digits, '_', '-', or a quoted name), found \(describe(c))") }
        return k
    }

    private mutating func ensureTable(_ root: inout TOMLTable, _ path: [String]) throws {
        guard let first = path.first else { return }
        var sub: TOMLTable
        switch root[first] {
        case nil: sub = TOMLTable()
        case .table(let t)?: sub = t
        default: throw fail("'\(first)' is already a value, not a table")
        }
        try ensureTable(&sub, Array(path.dropFirst()))
        root.set(first, .table(sub))
    }

    private mutating func insert(_ table: inout TOMLTable, _ path: [String], _ value: TOMLValue, line: Int, column: Int) throws {
        if path.count == 1 {
            guard table[path[0]] == nil else {
                throw SourceError(file: file, text: text, line: line, column: column, "TOML: key '\(Token.cut(path[0]))' is given twice")
            }
            table.set(path[0], value)
            return
        }
        var sub: TOMLTable
        switch table[path[0]] {
        case nil: sub = TOMLTable()
        case .table(let t)?: sub = t
        default: throw SourceError(file: file, text: text, line: line, column: column, "TOML: '\(Token.cut(path[0]))' is already a value, not a table")
        }
        try insert(&sub, Array(path.dropFirst()), value, line: line, column: column)
        table.set(path[0], .table(sub))
    }

    private mutating func value(depth: Int) throws -> TOMLValue {
        guard depth < Self.maxDepth else { throw fail("values nest more than \(Self.maxDepth) levels deep") }
        guard let c = peek else { throw fail("expected a value after '='") }
        switch c {
        case "\"":
            if i + 2 < chars.count && chars[i + 1] == "\"" && chars[i + 2] == "\"" { return .string(try multilineString(literal: false)) }
            return .string(try basicString())
        case "'":
            if i + 2 < chars.count && chars[i + 1] == "'" && chars[i + 2] == "'" { return .string(try multilineString(literal: true)) }
            return .string(try literalString())
        case "[": return try array(depth: depth)
        case "{": return try inlineTable(depth: depth)
        default: return try scalar()
        }
    }

    private mutating func array(depth: Int) throws -> TOMLValue {
        advance()  // [
        var items: [TOMLValue] = []
        while true {
            try skipBlank()
            guard let c = peek else { throw fail("the array is never closed", hint: "add ']'") }
            if c == "]" { advance(); return .array(items) }
            items.append(try value(depth: depth + 1))
            try skipBlank()
            guard let d = peek else { throw fail("the array is never closed", hint: "add ']'") }
            if d == "," { advance(); continue }
            guard d == "]" else { throw fail("expected ',' or ']' in the array, found \(describe(d))") }
            advance()
            return .array(items)
        }
    }

    /// Spaces, line ends and comments (inside arrays).
    private mutating func skipBlank() throws {
        while let c = peek {
            if c == " " || c == "\t" || c == "\n" { advance() }
            else if c == "#" { while let d = peek, d != "\n" { try checkCommentChar(d); advance() } }
            else { return }
        }
    }

    private mutating func inlineTable(depth: Int) throws -> TOMLValue {
        advance()  // {
        var table = TOMLTable()
        skipSpaces()
        if peek == "}" { advance(); return .table(table) }
        while true {
            skipSpaces()
            let keyLine = line, keyColumn = column
            let path = try keyPath()
            skipSpaces()
            guard peek == "=" else { throw fail("expected '=' in the inline table") }
            advance()
            skipSpaces()
            try insert(&table, path, try value(depth: depth + 1), line: keyLine, column: keyColumn)
            skipSpaces()
            guard let c = peek else { throw fail("the inline table is never closed", hint: "add '}'") }
            if c == "," { advance(); continue }
            guard c == "}" else { throw fail("expected ',' or '}' in the inline table, found \(describe(c))") }
            advance()
            return .table(table)
        }
    }

    private mutating func basicString() throws -> String {
        advance()  // "
        var s = ""
        while true {
            guard let c = peek, c != "\n" else { throw fail("the string is never closed on its line", hint: "close it with \"") }
            advance()
            if c == "\"" { return s }
            if c == "\\" { s.append(try escape()) } else { try checkStringChar(c); s.append(c) }
        }
    }

    private mutating func literalString() throws -> String {
        advance()  // '
        var s = ""
        while true {
            guard let c = peek, c != "\n" else { throw fail("the string is never closed on its line", hint: "close it with '") }
            advance()
            if c == "'" { return s }
            try checkStringChar(c)
            s.append(c)
        }
    }

    private mutating func multilineString(literal: Bool) throws -> String {
        let quote: Character = literal ? "'" : "\""
        advance(); advance(); advance()
        if peek == "\n" { advance() }  // a newline right after the opening quotes is trimmed
        var s = ""
        while true {
            guard let c = peek else { throw fail("the multi-line string is never closed", hint: literal ? "close it with '''" : "close it with \"\"\"") }
            if c == quote && i + 2 < chars.count && chars[i + 1] == quote && chars[i + 2] == quote {
                advance(); advance(); advance()
                // Up to two more quotes belong to the string ("""a"""" is `a"`).
                var extra = 0
                while peek == quote && extra < 2 { s.append(quote); advance(); extra += 1 }
                return s
            }
            advance()
            if !literal && c == "\\" {
                // A backslash at the end of a line joins it to the next, dropping the whitespace.
                var j = i
                while j < chars.count && (chars[j] == " " || chars[j] == "\t") { j += 1 }
                if j < chars.count && chars[j] == "\n" {
                    while let d = peek, d == " " || d == "\t" || d == "\n" { advance() }
                    continue
                }
                s.append(try escape())
            } else {
                if c != "\n" { try checkStringChar(c) }
                s.append(c)
            }
        }
    }

    private func checkStringChar(_ c: Character) throws {
        if let u = c.unicodeScalars.first, (u.value < 0x20 && u != "\t") || u.value == 0x7F {
            throw fail("control character \(describe(c)) in a string", hint: "write it as an escape, e.g. \\n or \\u0001")
        }
    }

    private mutating func escape() throws -> String {
        guard let c = peek else { throw fail("a backslash ends the file") }
        advance()
        switch c {
        case "b": return "\u{08}"
        case "t": return "\t"
        case "n": return "\n"
        case "f": return "\u{0C}"
        case "r": return "\r"
        case "\"": return "\""
        case "\\": return "\\"
        case "u", "U":
            let n = c == "u" ? 4 : 8
            var hex = ""
            for _ in 0..<n {
                guard let h = peek, h.isHexDigit else { throw fail("\\\(c) needs \(n) hex digits") }
                hex.append(h); advance()
            }
            guard let v = UInt32(hex, radix: 16), let u = Unicode.Scalar(v) else { throw fail("\\\(c)\(hex) is not a Unicode scalar") }
            return String(Character(u))
        default:
            throw fail("unknown escape \\\(c)", hint: "escapes are \\b \\t \\n \\f \\r \\\" \\\\ \\uXXXX \\UXXXXXXXX")
        }
    }

    /// A bare value: boolean, integer or float (dates are refused).
    private mutating func scalar() throws -> TOMLValue {
        let startLine = line, startColumn = column
        var word = ""
        while let c = peek, c.isASCII && (c.isLetter || c.isNumber) || "+-._:".contains(c) { word.append(c); advance() }
        func bad(_ m: String, hint: String? = nil) -> SourceError {
            SourceError(file: file, text: text, line: startLine, column: startColumn, "TOML: " + m, hint: hint)
        }
        guard !word.isEmpty else {
            throw bad("expected a value, found \(peek.map(describe) ?? "the end of the file")", hint: "strings are quoted: \"text\"")
        }
        switch word {
        case "true": return .bool(true)
        case "false": return .bool(false)
        case "inf", "+inf": return .double(.infinity)
        case "-inf": return .double(-.infinity)
        case "nan", "+nan", "-nan": return .double(.nan)
        default: break
        }
        if word.contains(":") || (word.count >= 10 && word.dropFirst(4).first == "-" && word.prefix(4).allSatisfy(\.isNumber)) {
            throw bad("dates and times are not used in task files: '\(Token.cut(word))'")
        }
        let sign = word.first == "-" ? -1 : 1
        let unsigned = word.first == "-" || word.first == "+" ? String(word.dropFirst()) : word
        for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] where unsigned.hasPrefix(prefix) {
            guard word.first != "-" && word.first != "+", let v = Int(try digits(String(unsigned.dropFirst(2)), word, bad), radix: radix) else {
                throw bad("'\(Token.cut(word))' is not a valid number")
            }
            return .int(v)
        }
        let body = try digits(unsigned, word, bad)
        if body.count > 1 && body.hasPrefix("0") && body.allSatisfy(\.isNumber) { throw bad("'\(Token.cut(word))': leading zeros are not allowed") }
        if body.allSatisfy(\.isNumber), !body.isEmpty {
            guard let v = Int(body) else { throw bad("'\(Token.cut(word))' does not fit a 64-bit integer") }
            return .int(sign * v)
        }
        // A float needs digits on both sides of '.', and an exponent with digits.
        let shape = body.split(separator: "e", maxSplits: 1, omittingEmptySubsequences: false)
        let mantissa = shape[0].split(separator: ".", omittingEmptySubsequences: false)
        let mantissaOK = mantissa.count <= 2 && mantissa.allSatisfy { !$0.isEmpty && $0.allSatisfy(\.isNumber) }
        let exponentOK = shape.count == 1 || {
            let e = shape[1].hasPrefix("+") || shape[1].hasPrefix("-") ? shape[1].dropFirst() : shape[1][...]
            return !e.isEmpty && e.allSatisfy(\.isNumber)
        }()
        guard mantissaOK, exponentOK, let d = Double(body) else {
            throw bad("'\(Token.cut(word))' is not a value", hint: "strings are quoted (\"text\"); numbers look like 3, 0.5 or 1e-3; booleans are true or false")
        }
        return .double(Double(sign) * d)
    }

    /// Removes `_` separators, each of which must stand between two digits.
    private func digits(_ s: String, _ word: String, _ bad: (String, String?) -> SourceError) throws -> String {
        let c = Array(s.lowercased())
        var out = ""
        for (k, ch) in c.enumerated() {
            if ch == "_" {
                guard k > 0, k + 1 < c.count, c[k - 1].isHexDigit, c[k + 1].isHexDigit else {
                    throw bad("'\(Token.cut(word))': '_' must stand between two digits", nil)
                }
                continue
            }
            out.append(ch)
        }
        return out
    }
}
