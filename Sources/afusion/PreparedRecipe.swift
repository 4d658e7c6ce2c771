import AdapterFusion
import ArgumentParser
import Foundation

/// A recipe checked against its store and base model, with everything loaded to train or run it.
struct PreparedRecipe {
    let recipe: Recipe
    let encoder: BertEncoder
    let tokenizer: WordPieceTokenizer
    let fingerprint: String
    let records: [String: AdapterRecord]
    let spec: TaskSpec?

    /// Parses and checks `path`; every error names the recipe file, line and column.
    init(_ path: String, store: String?) throws {
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
        var spec: TaskSpec?
        if let t = r.ast.task {
            guard FileManager.default.fileExists(atPath: t.value) else {
                throw r.error(
                    t.line, t.column, "no task file '\(t.value)'",
                    hint: closestMatch(
                        (t.value as NSString).lastPathComponent, in: (try? FileManager.default.contentsOfDirectory(atPath: "tasks")) ?? []
                    )
                    .map { "did you mean 'tasks/\($0)'?" })
            }
            spec = try TaskSpec.load(t.value)
        }
        let config = try BertConfig.load((r.base as NSString).appendingPathComponent("config.json"))
        fingerprint = try ModelDirectory.fingerprint(r.base)
        records = try r.check(baseFingerprint: fingerprint, hiddenSize: config.hiddenSize, records: AdapterStore.list(storePath))
        // Names are not enough: every member's weights must load with the right shapes and
        // match their fingerprint, or training would fail (or worse) later.
        for n in r.adapterPositions {
            do { _ = try AdapterStore.load(storePath, name: n.value, baseFingerprint: fingerprint) } catch {
                throw r.error(n.line, n.column, "adapter '\(n.value)' cannot be used: \(error)")
            }
        }
        (encoder, tokenizer) = try ModelDirectory.load(r.base)
        recipe = r
        self.spec = spec
    }
}
