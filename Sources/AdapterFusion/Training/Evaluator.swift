import Foundation

/// Encoded examples of one split.
public struct EncodedSplit: Sendable {
    public let examples: [Example]
    public let encodings: [Encoding]

    public init(_ examples: [Example], tokenizer: WordPieceTokenizer, maxLength: Int) {
        self.examples = examples
        encodings = examples.map { tokenizer.encode($0.text, pair: $0.pair, maxLength: maxLength) }
    }

    public var lengths: [Int] { encodings.map(\.ids.count) }

    /// The examples `idx` as a batch, each sequence keyed by its index here (for its dropout masks).
    func batch(_ idx: [Int]) -> TokenBatch {
        var b = TokenBatch(encodings: idx.map { encodings[$0] })
        b.exampleIDs = idx
        return b
    }

    func targets(_ idx: [Int], regression: Bool) -> Targets {
        regression ? .values(idx.map { examples[$0].value }) : .labels(idx.map { examples[$0].label })
    }
}

/// Predictions and the task metric for a split.
public struct Evaluator {
    public let encoder: BertEncoder
    public let hook: LayerHook?
    public let head: PredictionHead

    public init(encoder: BertEncoder, hook: LayerHook?, head: PredictionHead) {
        self.encoder = encoder; self.hook = hook; self.head = head
    }

    public struct Output: Sendable {
        public var metric: Double
        /// Per example (input order): class probabilities, or the predicted value.
        public var outputs: [[Float]]
        public var predictedLabels: [Int]
    }

    /// Runs the split in deterministic length-sorted batches (so the same weights always give
    /// bit-identical outputs) and scores it with the task's metric.
    public func evaluate(_ split: EncodedSplit, spec: TaskSpec, batchSize: Int = 64) throws -> Output {
        let outputs = try predict(split.encodings, regression: spec.isRegression, batchSize: batchSize)
        let labels = outputs.map { o in o.indices.max { o[$0] < o[$1] } ?? 0 }
        let metric = Metrics.score(
            spec.metric, predictedLabels: labels, predictedValues: outputs.map { $0.first ?? 0 },
            examples: split.examples, classes: max(spec.labels.count, 1))
        return Output(metric: metric, outputs: outputs, predictedLabels: labels)
    }

    /// Class probabilities (classification) or the value (regression) for each encoding.
    public func predict(_ encodings: [Encoding], regression: Bool, batchSize: Int = 64) throws -> [[Float]] {
        let ws = EncoderWorkspace(config: encoder.config)
        var out = [[Float]](repeating: [], count: encodings.count)
        let C = head.config.outputs
        for idx in Batching.sorted(lengths: encodings.map(\.ids.count), batchSize: batchSize) {
            let batch = TokenBatch(encodings: idx.map { encodings[$0] })
            let cls = try encoder.forward(batch, workspace: ws, hook: hook, rows: .firstTokens)
            let logits = head.forward(cls, batch: batch, cache: ws.hookCache)
            if !regression { Softmax.forward(out: logits.data, inp: logits.data, n: idx.count, c: C, ld: C) }
            for (r, i) in idx.enumerated() { out[i] = Array(UnsafeBufferPointer(start: logits.data + r * C, count: C)) }
        }
        return out
    }
}
