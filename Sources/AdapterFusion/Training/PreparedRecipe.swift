import Foundation

/// A recipe checked against its store and base model, with everything loaded to train or run
/// it: the encoder, the task, and every member adapter (weights shape- and fingerprint-checked).
/// Every error names the recipe file, line and column.
public struct PreparedRecipe {
    public let recipe: Recipe
    public let storePath: String
    public let encoder: BertEncoder
    public let tokenizer: WordPieceTokenizer
    /// sha256 of the base model's weights.
    public let fingerprint: String
    public let records: [String: AdapterRecord]
    /// Member adapters, loaded (a composition freezes them).
    public let adapters: [String: Adapter]
    /// The target task (nil for a parallel recipe).
    public let spec: TaskSpec?

    /// Parses and checks the recipe at `path`, using `store` instead of the recipe's when given.
    public init(_ path: String, store: String? = nil) throws {
        let r = try Recipe.load(path)
        let storePath = store ?? r.store
        guard FileManager.default.fileExists(atPath: (r.base as NSString).appendingPathComponent("config.json")) else {
            let b = r.ast.base!
            throw r.error(b.line, b.column, "no model at '\(r.base)' (config.json missing)", hint: "run `make setup`, or fix the path")
        }
        guard FileManager.default.fileExists(atPath: storePath) else {
            let s = r.ast.store!
            throw r.error(
                s.line, s.column, "no store at '\(storePath)'", hint: "train adapters into it first: afusion train-adapter --store \(storePath)")
        }
        if let t = r.ast.task {
            guard FileManager.default.fileExists(atPath: t.value) else {
                let folder = (t.value as NSString).deletingLastPathComponent
                let near = (try? FileManager.default.contentsOfDirectory(atPath: folder.isEmpty ? "." : folder)) ?? []
                throw r.error(
                    t.line, t.column, "no task file '\(t.value)'",
                    hint: closestMatch((t.value as NSString).lastPathComponent, in: near)
                        .map { "did you mean '\((folder as NSString).appendingPathComponent($0))'?" })
            }
            spec = try TaskSpec.load(t.value)
        } else {
            spec = nil
        }
        let config = try BertConfig.load((r.base as NSString).appendingPathComponent("config.json"))
        fingerprint = try ModelDirectory.fingerprint(r.base)
        records = try r.check(baseFingerprint: fingerprint, hiddenSize: config.hiddenSize, records: AdapterStore.list(storePath))
        // Names are not enough: every member's weights must load with the right shapes and
        // match their fingerprint, or training would fail (or worse) later.
        var adapters: [String: Adapter] = [:]
        for n in r.adapterPositions {
            do { adapters[n.value] = try AdapterStore.loadMember(storePath, name: n.value, baseFingerprint: fingerprint).0 } catch {
                throw r.error(n.line, n.column, "adapter '\(n.value)' cannot be used: \(error)")
            }
        }
        self.adapters = adapters
        if let p = Composition.problem(r.expr, configs: records.mapValues(\.adapterConfig)) {
            let at = p.adapter.flatMap { a in r.adapterPositions.first { $0.value == a } }
            let compose = r.ast.compose!
            throw r.error(at?.line ?? compose.line, at?.column ?? compose.column, p.message)
        }
        (encoder, tokenizer) = try ModelDirectory.load(r.base)
        recipe = r
        self.storePath = storePath
    }

    /// A fresh composition of the recipe over the loaded members, fusion layers seeded by `seed`.
    public func composition(seed: UInt64) -> Composition {
        Composition(
            recipe.expr, adapters: adapters, options: recipe.options, hidden: encoder.config.hiddenSize,
            layers: encoder.config.numHiddenLayers, seed: seed)
    }

    /// Each member's weights fingerprint, as a fusion records them.
    public var memberFingerprints: [String: String] {
        Dictionary(uniqueKeysWithValues: recipe.expr.adapterNames.map { ($0, records[$0]!.weightsFingerprint) })
    }
}
