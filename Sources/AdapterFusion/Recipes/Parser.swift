/// A value with the position it was written at.
public struct Located<T: Sendable>: Sendable {
    public let value: T
    public let line: Int
    public let column: Int
}

/// The `compose` expression as written, with positions for error messages.
public indirect enum ExprNode: Sendable {
    case name(Located<String>)
    /// `function(args)`; each argument may carry a weight (`0.3 * trec`).
    case call(function: Located<String>, args: [(weight: Located<Float>?, expr: ExprNode)])

    public var line: Int {
        switch self {
        case .name(let n): return n.line;
        case .call(let f, _): return f.line
        }
    }
    public var column: Int {
        switch self {
        case .name(let n): return n.column;
        case .call(let f, _): return f.column
        }
    }
}

/// One `key value` item of an `options` or `train` line.
public struct OptionItem: Sendable {
    public let key: Located<String>
    public let value: Located<String>?
}

/// A parsed recipe, before any check against the store.
public struct RecipeAST: Sendable {
    public let file: String
    public let text: String
    public var name: Located<String>
    public var base: Located<String>?
    public var store: Located<String>?
    public var task: Located<String>?
    public var compose: ExprNode?
    public var options: [OptionItem] = []
    public var train: [OptionItem] = []
}

/// Recursive-descent parser for the recipe language (grammar in the README, "Fusion recipes").
public struct Parser {
    public static let settings = ["base", "store", "task", "compose", "options", "train"]
    public static let functions = ["fuse", "stack", "average", "parallel"]

    let file: String
    let text: String
    var tokens: [Token]
    var pos = 0
    var depth = 0

    public init(file: String, text: String) throws {
        self.file = file
        self.text = text
        tokens = try Lexer(file: file, text: text).tokens()
    }

    func error(_ t: Token, _ message: String, hint: String? = nil) -> SourceError {
        SourceError(file: file, text: text, line: t.line, column: t.column, message, hint: hint)
    }

    var current: Token { tokens[pos] }

    /// The next token; inside parentheses, line breaks are skipped (an expression may span lines).
    mutating func next() -> Token {
        while depth > 0, case .newline = tokens[pos].kind { pos += 1 }
        let t = tokens[pos]
        if pos < tokens.count - 1 { pos += 1 }
        return t
    }

    mutating func peek() -> Token {
        var p = pos
        while depth > 0, case .newline = tokens[p].kind { p += 1 }
        return tokens[p]
    }

    mutating func skipBlankLines() { while case .newline = current.kind { pos += 1 } }

    mutating func word(_ what: String, hint: String? = nil) throws -> Located<String> {
        let t = next()
        switch t.kind {
        case .word(let w), .string(let w): return Located(value: w, line: t.line, column: t.column)
        default: throw error(t, "expected \(what), found \(t.display)", hint: hint)
        }
    }

    mutating func endOfLine(after what: String) throws {
        let t = next()
        switch t.kind {
        case .newline, .end: return
        default: throw error(t, "unexpected \(t.display) after \(what)", hint: "one setting per line")
        }
    }

    public mutating func parse() throws -> RecipeAST {
        skipBlankLines()
        let head = current
        guard case .word("fusion") = head.kind else {
            if case .end = head.kind { throw error(head, "empty recipe", hint: "a recipe starts with 'fusion NAME'") }
            var hint = "a recipe starts with 'fusion NAME'"
            if case .word(let w) = head.kind, let m = closestMatch(w, in: ["fusion"]) { hint = "did you mean '\(m)'?" }
            throw error(head, "expected 'fusion NAME' as the first line, found \(head.display)", hint: hint)
        }
        _ = next()
        let name = try word("the recipe's name after 'fusion'")
        guard name.value.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }) else {
            throw SourceError(
                file: file, text: text, line: name.line, column: name.column,
                "name '\(Snippet.cut(name.value))' must be letters, digits, '_' or '-'")
        }
        try endOfLine(after: "the recipe's name")
        var ast = RecipeAST(file: file, text: text, name: name)
        var seen: [String: Token] = [:]
        while true {
            skipBlankLines()
            let t = current
            if case .end = t.kind { break }
            guard case .word(let key) = t.kind else {
                throw error(t, "expected a setting, found \(t.display)", hint: "settings: " + Self.settings.joined(separator: ", "))
            }
            guard Self.settings.contains(key) else {
                if key == "fusion" { throw error(t, "a second 'fusion' header", hint: "one recipe per file") }
                throw error(
                    t, "unknown setting '\(key)'",
                    hint: didYouMean(key, in: Self.settings)
                        ?? "settings: " + Self.settings.joined(separator: ", "))
            }
            if let first = seen[key] { throw error(t, "'\(key)' is set twice", hint: "first set on line \(first.line)") }
            seen[key] = t
            _ = next()
            switch key {
            case "base": ast.base = try word("a model directory after 'base'"); try endOfLine(after: "the model directory")
            case "store": ast.store = try word("an HDF5 file after 'store'"); try endOfLine(after: "the store path")
            case "task": ast.task = try word("a task file after 'task'"); try endOfLine(after: "the task file")
            case "compose":
                ast.compose = try expression()
                try endOfLine(after: "the composition")
            case "options": ast.options = try optionList("options")
            default: ast.train = try optionList("train")
            }
        }
        return ast
    }

    /// `key [value] (, key [value])*` up to the end of the line.
    mutating func optionList(_ setting: String) throws -> [OptionItem] {
        var items: [OptionItem] = []
        while true {
            let key = try word(
                "an option name", hint: setting == "train" ? "e.g. 'train epochs 5, lr 5e-5'" : "e.g. 'options dynamic, temperature 1'")
            var value: Located<String>?
            if case .word(let v) = current.kind {
                value = Located(value: v, line: current.line, column: current.column); _ = next()
            } else if case .string(let v) = current.kind {
                value = Located(value: v, line: current.line, column: current.column); _ = next()
            }
            items.append(OptionItem(key: key, value: value))
            let t = next()
            switch t.kind {
            case .comma:
                if case .newline = current.kind { throw error(current, "expected an option after ','", hint: "remove the trailing comma") }
                continue
            case .newline, .end: return items
            default:
                if let v = value?.value, v == "-" || v == "+", case .word(let n) = t.kind, Float(n) != nil {
                    throw error(t, "a space splits the number '\(v) \(Snippet.cut(n))'", hint: "write it as \(v)\(Snippet.cut(n))")
                }
                throw error(t, "expected ',' or the end of the line, found \(t.display)", hint: "options are separated by commas")
            }
        }
    }

    /// Deepest nesting of compositions accepted (the parser recurses once per level).
    static let maxDepth = 64
    /// Largest weight magnitude in `average`/`stack` (larger ones only overflow in training).
    static let maxWeight: Float = 100

    /// expr := NAME | FUNCTION '(' arg (',' arg)* ')' ;  arg := [NUMBER '*'] expr
    mutating func expression() throws -> ExprNode {
        let t = next()
        guard case .word(let w) = t.kind else {
            throw error(t, "expected an adapter name or fuse/stack/average/parallel(…), found \(t.display)")
        }
        let located = Located(value: w, line: t.line, column: t.column)
        guard case .lparen = peek().kind else {
            if Self.functions.contains(w) { throw error(peek(), "expected '(' after '\(w)'", hint: "\(w)(a, b)") }
            return .name(located)
        }
        guard Self.functions.contains(w) else {
            throw error(
                t, "unknown composition '\(w)'",
                hint: didYouMean(w, in: Self.functions)
                    ?? "compositions: " + Self.functions.joined(separator: ", "))
        }
        let open = next()
        depth += 1
        guard depth <= Self.maxDepth else {
            throw error(
                t, "compositions nest more than \(Self.maxDepth) levels deep",
                hint: "flatten the recipe; fusions of fusions rarely need more than 3 levels")
        }
        var args: [(Located<Float>?, ExprNode)] = []
        if case .rparen = peek().kind { throw error(peek(), "'\(w)()' has no members", hint: "\(w)(a, b)") }
        while true {
            var weight: Located<Float>?
            let first = peek()
            // A weight is whatever stands before '*', or a word that starts like a number.
            let save = pos
            _ = next()
            let starFollows: Bool = {
                if case .star = peek().kind { return true }; return false
            }()
            pos = save
            if case .word(let num) = first.kind,
                starFollows || num.first.map({ $0.isNumber || $0 == "." || $0 == "-" || $0 == "+" }) == true
            {
                guard let value = Float(num), value.isFinite else {
                    throw error(first, "weight \(first.display) is not a finite number", hint: "weights are written '0.3 * name'")
                }
                guard abs(value) <= Self.maxWeight else {
                    throw error(first, "weight \(first.display) is too large (at most \(Int(Self.maxWeight)) in magnitude)")
                }
                _ = next()
                let star = next()
                guard case .star = star.kind else {
                    throw error(star, "expected '*' after the weight \(Snippet.cut(num))", hint: "weights are written '0.3 * name'")
                }
                weight = Located(value: value, line: first.line, column: first.column)
            } else if case .star = first.kind {
                throw error(first, "expected a weight before '*'", hint: "weights are written '0.3 * name'")
            }
            args.append((weight, try expression()))
            let sep = next()
            switch sep.kind {
            case .comma:
                if case .rparen = peek().kind { throw error(peek(), "expected a member after ','", hint: "remove the trailing comma") }
            case .rparen:
                depth -= 1
                return .call(function: located, args: args)
            case .end:
                throw error(open, "'(' is never closed", hint: "add ')'")
            default:
                throw error(sep, "expected ',' or ')', found \(sep.display)")
            }
        }
    }
}
