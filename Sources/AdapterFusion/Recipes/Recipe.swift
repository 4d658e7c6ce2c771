import Foundation

/// A checked fusion recipe: what to compose, for which task, with which settings.
public struct Recipe: Sendable {
    public let ast: RecipeAST
    public var file: String { ast.file }
    public var text: String { ast.text }
    public var name: String { ast.name.value }
    public let base: String
    public let store: String
    /// nil only for a `parallel` recipe, which trains nothing.
    public let taskPath: String?
    public let expr: CompositionExpr
    public let options: FusionOptions
    public let training: TrainingConfig

    /// Fusion's learning rate default (Pfeiffer et al. 2021).
    public static let defaultLearningRate: Float = 5e-5

    /// Reads and checks a recipe file: syntax and everything that needs no store.
    public static func load(_ path: String) throws -> Recipe {
        try parse(try TextFile.text(path, what: "cannot read recipe"), file: path)
    }

    public static func parse(_ text: String, file: String) throws -> Recipe {
        let text = text.replacingOccurrences(of: "\r\n", with: "\n")  // CRLF files read as LF
        var parser = try Parser(file: file, text: text)
        let ast = try parser.parse()
        func err(_ line: Int, _ col: Int, _ msg: String, hint: String? = nil) -> SourceError {
            SourceError(file: file, text: text, line: line, column: col, msg, hint: hint)
        }
        guard let compose = ast.compose else {
            throw err(ast.name.line, ast.name.column, "recipe '\(ast.name.value)' has no 'compose' line", hint: "e.g. compose fuse(a, b, c)")
        }
        var seen: [String: Located<String>] = [:]
        let expr = try convert(compose, topLevel: true, seen: &seen, err)
        let isParallel: Bool = {
            if case .parallel = expr { return true }; return false
        }()
        for (key, value) in [("base", ast.base), ("store", ast.store)] where value == nil {
            throw err(
                ast.name.line, ast.name.column, "recipe '\(ast.name.value)' has no '\(key)' line",
                hint: key == "base" ? "e.g. base models/all-MiniLM-L6-v2" : "e.g. store runs/store.h5")
        }
        if ast.task == nil && !isParallel {
            throw err(ast.name.line, ast.name.column, "recipe '\(ast.name.value)' has no 'task' line", hint: "e.g. task tasks/sms_spam.toml")
        }
        if isParallel, let t = ast.task {
            throw err(t.line, t.column, "a parallel recipe runs its members' own heads and has no task", hint: "remove the 'task' line")
        }
        return Recipe(
            ast: ast, base: ast.base!.value, store: ast.store!.value, taskPath: ast.task?.value, expr: expr,
            options: try fusionOptions(ast.options, err), training: try trainingConfig(ast.train, err))
    }

    static func convert(
        _ node: ExprNode, topLevel: Bool, seen: inout [String: Located<String>],
        _ err: (Int, Int, String, String?) -> SourceError
    ) throws -> CompositionExpr {
        switch node {
        case .name(let n):
            if let first = seen[n.value] {
                throw err(
                    n.line, n.column, "adapter '\(Snippet.cut(n.value))' appears twice in the composition",
                    "each adapter may appear once (first at line \(first.line), column \(first.column))")
            }
            seen[n.value] = n
            return .adapter(n.value)
        case let .call(f, args):
            if args.count < 2 {
                throw err(
                    f.line, f.column, "\(f.value)(…) needs at least two members, has \(args.count)",
                    args.count == 1 ? "use the member alone, without \(f.value)(…)" : nil)
            }
            if f.value == "parallel" && !topLevel {
                throw err(
                    f.line, f.column, "parallel(…) can only be the whole composition",
                    "it splits the batch into one copy per member, each ending in its own head")
            }
            if f.value != "average", let w = args.first(where: { $0.weight != nil })?.weight {
                throw err(w.line, w.column, "weights are only for average(…)", "remove '\(w.value) *'")
            }
            let members = try args.map { try convert($0.expr, topLevel: false, seen: &seen, err) }
            if f.value == "parallel",
                let bad = args.first(where: {
                    if case .call = $0.expr { return true }; return false
                })
            {
                throw err(bad.expr.line, bad.expr.column, "the members of parallel(…) must be adapter names", "each runs with its own stored head")
            }
            switch f.value {
            case "fuse": return .fuse(members)
            case "stack": return .stack(members)
            case "parallel": return .parallel(members)
            default:
                let weights = args.compactMap(\.weight)
                if weights.isEmpty { return .average(members, weights: nil) }
                if weights.count != args.count {
                    let missing = args.first { $0.weight == nil }!.expr
                    throw err(missing.line, missing.column, "this member of a weighted average has no weight", "weight all members or none")
                }
                if let bad = weights.first(where: { !($0.value > 0) }) { throw err(bad.line, bad.column, "average weights must be positive", nil) }
                return .average(members, weights: weights.map(\.value))
            }
        }
    }

    /// The keys of an `options` line; a new key fails to compile until its case is handled.
    enum OptionKey: String, CaseIterable {
        case dynamic, `static`, temperature, lambda
        case valueBias = "value_bias"
        case scoreDropout = "score_dropout"
    }

    /// The keys of a `train` line.
    enum TrainKey: String, CaseIterable {
        case epochs, lr, batch
        case maxLength = "max_length"
        case seed, patience
        case maxTrain = "max_train"
        case maxDev = "max_dev"
        case warmup
        case weightDecay = "weight_decay"
    }

    static let optionKeys = OptionKey.allCases.map(\.rawValue)
    static let trainKeys = TrainKey.allCases.map(\.rawValue)

    static func fusionOptions(_ items: [OptionItem], _ err: (Int, Int, String, String?) -> SourceError) throws -> FusionOptions {
        var o = FusionOptions()
        var seen: [String: OptionItem] = [:]
        var mode: OptionItem?
        for item in items {
            let k = item.key
            guard let key = OptionKey(rawValue: k.value) else {
                throw err(
                    k.line, k.column, "unknown fusion option '\(Snippet.cut(k.value))'",
                    didYouMean(k.value, in: optionKeys) ?? "options: " + optionKeys.joined(separator: ", "))
            }
            if seen[k.value] != nil { throw err(k.line, k.column, "option '\(Snippet.cut(k.value))' is given twice", nil) }
            seen[k.value] = item
            switch key {
            case .dynamic, .static:
                if let v = item.value { throw err(v.line, v.column, "'\(Snippet.cut(k.value))' takes no value", nil) }
                if let m = mode {
                    throw err(
                        k.line, k.column, "'\(Snippet.cut(k.value))' contradicts '\(m.key.value)' (line \(m.key.line))",
                        "a fusion is dynamic (with value matrix) or static")
                }
                mode = item
                o.dynamic = key == .dynamic
            case .temperature:
                guard let v = item.value else { throw err(k.line, k.column, "'temperature' needs a value: a number > 0, or 'anneal'", nil) }
                if v.value == "anneal" {
                    o.anneal = true
                } else {
                    guard let t = Float(v.value), t > 0, t.isFinite else {
                        throw err(v.line, v.column, "temperature must be a number > 0 or 'anneal', not '\(Snippet.cut(v.value))'", nil)
                    }
                    o.temperature = t
                }
            case .lambda:
                guard let v = item.value, let l = Float(v.value), l >= 0, l.isFinite else {
                    let at = item.value ?? k
                    throw err(at.line, at.column, "lambda must be a number ≥ 0", "e.g. lambda 0.01")
                }
                o.lambda = l
            case .valueBias, .scoreDropout:
                var on = true
                if let v = item.value {
                    guard v.value == "on" || v.value == "off" else {
                        throw err(v.line, v.column, "'\(k.value)' takes 'on' or 'off', not '\(Snippet.cut(v.value))'", nil)
                    }
                    on = v.value == "on"
                }
                if key == .valueBias { o.valueBias = on } else { o.scoreDropout = on }
            }
        }
        return o
    }

    static func trainingConfig(_ items: [OptionItem], _ err: (Int, Int, String, String?) -> SourceError) throws -> TrainingConfig {
        var c = TrainingConfig()
        c.learningRate = defaultLearningRate
        c.epochs = 5
        var seen = Set<String>()
        for item in items {
            let k = item.key
            guard let key = TrainKey(rawValue: k.value) else {
                throw err(
                    k.line, k.column, "unknown training setting '\(Snippet.cut(k.value))'",
                    didYouMean(k.value, in: trainKeys) ?? "settings: " + trainKeys.joined(separator: ", "))
            }
            guard seen.insert(k.value).inserted else { throw err(k.line, k.column, "training setting '\(Snippet.cut(k.value))' is given twice", nil) }
            guard let v = item.value else { throw err(k.line, k.column, "'\(Snippet.cut(k.value))' needs a value", nil) }
            func int(_ range: ClosedRange<Int>) throws -> Int {
                guard let i = Int(v.value), range.contains(i) else {
                    throw err(
                        v.line, v.column,
                        "\(k.value) must be an integer in \(range.lowerBound)...\(range.upperBound == Int.max ? "" : String(range.upperBound)), not '\(Snippet.cut(v.value))'",
                        nil)
                }
                return i
            }
            func float(_ ok: (Float) -> Bool, _ what: String) throws -> Float {
                guard let f = Float(v.value), f.isFinite, ok(f) else {
                    throw err(v.line, v.column, "\(k.value) must be \(what), not '\(Snippet.cut(v.value))'", nil)
                }
                return f
            }
            switch key {
            case .epochs: c.epochs = try int(1...1000)
            case .lr: c.learningRate = try float({ $0 > 0 && $0 < 1 }, "a number in (0, 1)")
            case .batch: c.batchSize = try int(1...4096)
            case .maxLength: c.maxLength = try int(8...512)
            case .seed: c.seed = UInt64(try int(0...Int.max))
            case .patience: c.patience = try int(1...1000)
            case .maxTrain: c.maxTrain = try int(1...Int.max)
            case .maxDev: c.maxDev = try int(1...Int.max)
            case .warmup: c.warmupFraction = try float({ $0 >= 0 && $0 < 1 }, "a fraction in [0, 1)")
            case .weightDecay: c.weightDecay = try float({ $0 >= 0 }, "a number ≥ 0")
            }
        }
        return c
    }

    /// An error at a position of this recipe.
    public func error(_ line: Int, _ column: Int, _ message: String, hint: String? = nil) -> SourceError {
        SourceError(file: file, text: text, line: line, column: column, message, hint: hint)
    }

    /// Positions of the adapter names in the composition, in order.
    public var adapterPositions: [Located<String>] {
        func walk(_ n: ExprNode) -> [Located<String>] {
            switch n {
            case .name(let l): return [l]
            case .call(_, let args): return args.flatMap { walk($0.expr) }
            }
        }
        return ast.compose.map(walk) ?? []
    }

    /// Checks the recipe against its store and base model: every adapter exists, was trained on
    /// this base model and hidden size, and the recipe's name is free. Returns the records.
    public func check<Member: RecipeMember>(baseFingerprint: String, hiddenSize: Int, records: [Member]) throws -> [String: Member] {
        let byName = Dictionary(records.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var out: [String: Member] = [:]
        for n in adapterPositions {
            guard let r = byName[n.value] else {
                throw error(
                    n.line, n.column, "unknown adapter '\(Snippet.cut(n.value))'",
                    hint: didYouMean(n.value, in: Array(byName.keys))
                        ?? (byName.isEmpty
                            ? "the store \(store) has no adapters yet: train some with afusion train-adapter"
                            : "the store has: " + byName.keys.sorted().joined(separator: ", ")))
            }
            guard r.baseFingerprint == baseFingerprint else {
                throw error(
                    n.line, n.column,
                    "adapter '\(Snippet.cut(n.value))' was trained on another base model (\(r.baseModel), sha256 \(r.baseFingerprint.prefix(12))…)",
                    hint: "the recipe's base \(base) has sha256 \(baseFingerprint.prefix(12))…; retrain the adapter on it")
            }
            guard r.hiddenSize == hiddenSize else {
                throw error(n.line, n.column, "adapter '\(Snippet.cut(n.value))' has hidden size \(r.hiddenSize); the base model's is \(hiddenSize)")
            }
            out[n.value] = r
        }
        if byName[name] != nil {
            throw error(ast.name.line, ast.name.column, "the store already has an adapter named '\(name)'", hint: "give the fusion another name")
        }
        return out
    }
}

/// What checking a recipe needs to know of a stored adapter (`AdapterRecord` provides it), so
/// the recipe language does not depend on the store.
public protocol RecipeMember {
    var name: String { get }
    var baseModel: String { get }
    var baseFingerprint: String { get }
    var hiddenSize: Int { get }
}
