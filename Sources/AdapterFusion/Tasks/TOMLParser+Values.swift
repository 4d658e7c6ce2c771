/// Strings and bare values of `TOMLParser`.
extension TOMLParser {
    mutating func basicString() throws -> String {
        advance()  // "
        var s = ""
        while true {
            guard let c = peek, c != "\n" else { throw fail("the string is never closed on its line", hint: "close it with \"") }
            advance()
            if c == "\"" { return s }
            if c == "\\" { s.append(try escape()) } else { try checkStringChar(c); s.append(c) }
        }
    }

    mutating func literalString() throws -> String {
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

    mutating func multilineString(literal: Bool) throws -> String {
        let quote: Character = literal ? "'" : "\""
        advance(); advance(); advance()
        if peek == "\n" { advance() }  // a newline right after the opening quotes is trimmed
        var s = ""
        while true {
            guard let c = peek else {
                throw fail("the multi-line string is never closed", hint: literal ? "close it with '''" : "close it with \"\"\"")
            }
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

    func checkStringChar(_ c: Character) throws {
        if let u = c.unicodeScalars.first, (u.value < 0x20 && u != "\t") || u.value == 0x7F {
            throw fail("control character \(describe(c)) in a string", hint: "write it as an escape, e.g. \\n or \\u0001")
        }
    }

    mutating func escape() throws -> String {
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
    mutating func scalar() throws -> TOMLValue {
        let startLine = line
        let startColumn = column
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
            throw bad("dates and times are not used in task files: '\(Snippet.cut(word))'")
        }
        let sign = word.first == "-" ? -1 : 1
        let unsigned = word.first == "-" || word.first == "+" ? String(word.dropFirst()) : word
        for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] where unsigned.hasPrefix(prefix) {
            guard word.first != "-" && word.first != "+", let v = Int(try digits(String(unsigned.dropFirst(2)), word, bad), radix: radix) else {
                throw bad("'\(Snippet.cut(word))' is not a valid number")
            }
            return .int(v)
        }
        let body = try digits(unsigned, word, bad)
        if body.count > 1 && body.hasPrefix("0") && body.allSatisfy(\.isNumber) { throw bad("'\(Snippet.cut(word))': leading zeros are not allowed") }
        if body.allSatisfy(\.isNumber), !body.isEmpty {
            guard let v = Int(body) else { throw bad("'\(Snippet.cut(word))' does not fit a 64-bit integer") }
            return .int(sign * v)
        }
        // A float needs digits on both sides of '.', and an exponent with digits.
        let shape = body.split(separator: "e", maxSplits: 1, omittingEmptySubsequences: false)
        let mantissa = shape[0].split(separator: ".", omittingEmptySubsequences: false)
        let mantissaOK = mantissa.count <= 2 && mantissa.allSatisfy { !$0.isEmpty && $0.allSatisfy(\.isNumber) }
        let exponentOK =
            shape.count == 1
            || {
                let e = shape[1].hasPrefix("+") || shape[1].hasPrefix("-") ? shape[1].dropFirst() : shape[1][...]
                return !e.isEmpty && e.allSatisfy(\.isNumber)
            }()
        guard mantissaOK, exponentOK, let d = Double(body) else {
            throw bad(
                "'\(Snippet.cut(word))' is not a value",
                hint: "strings are quoted (\"text\"); numbers look like 3, 0.5 or 1e-3; booleans are true or false")
        }
        return .double(Double(sign) * d)
    }

    /// Removes `_` separators, each of which must stand between two digits.
    func digits(_ s: String, _ word: String, _ bad: (String, String?) -> SourceError) throws -> String {
        let c = Array(s.lowercased())
        var out = ""
        for (k, ch) in c.enumerated() {
            if ch == "_" {
                guard k > 0, k + 1 < c.count, c[k - 1].isHexDigit, c[k + 1].isHexDigit else {
                    throw bad("'\(Snippet.cut(word))': '_' must stand between two digits", nil)
                }
                continue
            }
            out.append(ch)
        }
        return out
    }
}
