/// A `parallel(a, b, …)` recipe: each member adapter with its own head, all run in one encoder
/// pass over k copies of the batch (member i on copy i).
public final class ParallelPredictor {
    /// Member adapters, in the recipe's order.
    public let names: [String]
    public let records: [AdapterRecord]
    public let encoder: BertEncoder
    public let tokenizer: WordPieceTokenizer
    let heads: [PredictionHead]
    let composition: Composition

    /// One member's prediction for one text.
    public struct Output: Sendable {
        public let member: String
        /// The label with the highest probability (classification), else nil.
        public let label: String?
        /// Class probabilities in label order, or the value (regression).
        public let outputs: [Float]
    }

    /// Loads the members of parallel recipe `path` from its store (or `store`) on its base model
    /// (or `model`), checking each against the base model.
    public init(recipe path: String, store: String? = nil, model: String? = nil) throws {
        let recipe = try Recipe.load(path)
        guard case .parallel = recipe.expr else { throw ModelError("\(path) is not a parallel recipe: load its fusion with Predictor.recipe") }
        let storePath = store ?? recipe.store
        let base = model ?? recipe.base
        let fingerprint = try ModelDirectory.fingerprint(base)
        (encoder, tokenizer) = try ModelDirectory.load(base)
        let checked = try recipe.check(baseFingerprint: fingerprint, hiddenSize: encoder.config.hiddenSize, records: AdapterStore.list(storePath))
        names = recipe.expr.adapterNames
        var adapters: [String: Adapter] = [:]
        var heads: [PredictionHead] = []
        for n in names {
            let (a, h, _) = try AdapterStore.load(storePath, name: n, baseFingerprint: fingerprint)
            adapters[n] = a
            heads.append(h)
        }
        records = names.map { checked[$0]! }
        self.heads = heads
        if let p = Composition.problem(recipe.expr, configs: adapters.mapValues(\.config)) {
            let at = p.adapter.flatMap { a in recipe.adapterPositions.first { $0.value == a } }
            let compose = recipe.ast.compose!
            throw recipe.error(at?.line ?? compose.line, at?.column ?? compose.column, p.message)
        }
        composition = Composition(
            recipe.expr, adapters: adapters, options: recipe.options, hidden: encoder.config.hiddenSize,
            layers: encoder.config.numHiddenLayers, seed: 0)
    }

    /// Per input, every member's prediction (in member order). Inputs run in batches of 32,
    /// each at most `maxLength` tokens.
    public func predict(_ inputs: [(text: String, pair: String?)], maxLength: Int = 128) throws -> [[Output]] {
        let k = names.count
        let H = encoder.config.hiddenSize
        var results = [[Output]](repeating: [], count: inputs.count)
        let ws = EncoderWorkspace(config: encoder.config)
        for start in stride(from: 0, to: inputs.count, by: 32) {
            let chunk = inputs[start..<min(start + 32, inputs.count)]
            let encs = chunk.map { tokenizer.encode($0.text, pair: $0.pair, maxLength: maxLength) }
            let batch = TokenBatch(encodings: Array(repeating: encs, count: k).flatMap { $0 })
            let cls = try encoder.forward(batch, workspace: ws, hook: composition.root, rows: .firstTokens)
            for (i, name) in names.enumerated() {
                let copy = TokenBatch(encodings: encs)  // copy i of the batch
                let part = Tensor(zeros: [copy.count, H])
                part.data.update(from: cls.data + i * chunk.count * H, count: part.count)
                let logits = heads[i].forward(part, batch: copy, cache: ws.hookCache)
                let c = heads[i].config.outputs
                let classify = heads[i].config.kind == .classification
                if classify { Softmax.forward(out: logits.data, inp: logits.data, n: chunk.count, c: c, ld: c) }
                for r in 0..<chunk.count {
                    let o = Array(UnsafeBufferPointer(start: logits.data + r * c, count: c))
                    let label = classify ? records[i].labels[o.indices.max { o[$0] < o[$1] }!] : nil
                    results[start + r].append(Output(member: name, label: label, outputs: o))
                }
            }
        }
        return results
    }
}
