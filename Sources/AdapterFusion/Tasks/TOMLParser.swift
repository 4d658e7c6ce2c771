/// A TOML (v1.0) parser for task files: tables, dotted keys, basic and literal strings (single-
/// and multi-line, with escapes), integers (decimal, hex, octal, binary, `_` separators), floats
/// (with `inf`/`nan`), booleans, arrays and inline tables. Dates and arrays of tables, which no
/// task file needs, are refused by name. Every error is a `SourceError` at the line and column
/// of the offending character; nesting is bounded, so no input can exhaust the stack.
public struct TOMLParser {
    let file: String
    let text: String
    let chars: [Character]
    var i = 0
    var line = 1
    var column = 1
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

    func fail(_ message: String, hint: String? = nil) -> SourceError {
        SourceError(file: file, text: text, line: line, column: column, "TOML: " + message, hint: hint)
    }

    var atEnd: Bool { i >= chars.count }
    var peek: Character? { i < chars.count ? chars[i] : nil }

    mutating func advance() {
        if chars[i] == "\n" { line += 1; column = 1 } else { column += 1 }
        i += 1
    }

    mutating func skipSpaces() { while let c = peek, c == " " || c == "\t" { advance() } }

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

    func describe(_ c: Character) -> String {
        c == "\n" ? "the end of the line" : Snippet.describe(c)
    }

    private mutating func document() throws -> TOMLTable {
        var root = TOMLTable()
        var current: [String] = []  // path of the table being filled
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
            let keyLine = line
            let keyColumn = column
            let path = try keyPath()
            skipSpaces()
            guard peek == "=" else {
                throw fail(peek.map { "expected '=' after the key, found \(describe($0))" } ?? "expected '=' after the key")
            }
            advance()
            skipSpaces()
            guard current.count + path.count <= Self.maxDepth else {
                throw SourceError(
                    file: file, text: text, line: keyLine, column: keyColumn,
                    "TOML: the key nests more than \(Self.maxDepth) tables deep under [\(Snippet.cut(current.joined(separator: ".")))]")
            }
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
            // Bounded like nested values: each part is one more table level to build and copy.
            guard parts.count < Self.maxDepth else { throw fail("a key has more than \(Self.maxDepth) dotted parts") }
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
        // Moved out and back, not copied: filling a table key by key stays linear in its size.
        guard var sub = root.takeTable(first) else { throw fail("'\(first)' is already a value, not a table") }
        try ensureTable(&sub, Array(path.dropFirst()))
        root.set(first, .table(sub))
    }

    private mutating func insert(_ table: inout TOMLTable, _ path: [String], _ value: TOMLValue, line: Int, column: Int) throws {
        if path.count == 1 {
            guard table[path[0]] == nil else {
                throw SourceError(file: file, text: text, line: line, column: column, "TOML: key '\(Snippet.cut(path[0]))' is given twice")
            }
            table.set(path[0], value)
            return
        }
        guard var sub = table.takeTable(path[0]) else {
            throw SourceError(file: file, text: text, line: line, column: column, "TOML: '\(Snippet.cut(path[0]))' is already a value, not a table")
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
            if c == " " || c == "\t" || c == "\n" {
                advance()
            } else if c == "#" {
                while let d = peek, d != "\n" { try checkCommentChar(d); advance() }
            } else {
                return
            }
        }
    }

    private mutating func inlineTable(depth: Int) throws -> TOMLValue {
        advance()  // {
        var table = TOMLTable()
        skipSpaces()
        if peek == "}" { advance(); return .table(table) }
        while true {
            skipSpaces()
            let keyLine = line
            let keyColumn = column
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
}
