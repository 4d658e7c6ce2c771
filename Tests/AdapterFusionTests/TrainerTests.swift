import AdapterFusion
import Foundation
import Testing

/// Training end to end on a tiny random BERT and a synthetic task, then save → reload → eval.
@Suite struct TrainerTests {
    /// Text "w1 w2 …" whose label is whether "zebra" occurs; a 26-word vocabulary.
    static func synthetic(_ n: Int, seed: UInt64) -> [Example] {
        var rng = SeededRNG(seed: seed)
        let words = ["apple", "bird", "cat", "dog", "egg", "fish", "goat", "hat", "ink", "jam"]
        return (0..<n).map { i in
            let len = 3 + Int(rng.next() % 6)
            var w = (0..<len).map { _ in words[Int(rng.next() % UInt64(words.count))] }
            let positive = rng.next() % 2 == 0
            if positive { w[Int(rng.next() % UInt64(len))] = "zebra" }
            return Example(text: w.joined(separator: " "), pair: nil, label: positive ? 1 : 0, value: 0, origin: "#\(i)")
        }
    }

    static func tinyTokenizer() throws -> WordPieceTokenizer {
        try WordPieceTokenizer(vocabulary: [
            "[PAD]", "[UNK]", "[CLS]", "[SEP]", "apple", "bird", "cat", "dog", "egg",
            "fish", "goat", "hat", "ink", "jam", "zebra",
        ])
    }

    @Test func trainsSavesAndReloadsExactly() throws {
        let encoder = try Support.tinyEncoder(hidden: 32)
        let tok = try Self.tinyTokenizer()
        let dir = try Support.tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let taskPath = dir.appendingPathComponent("z.toml").path
        try Data(
            """
            name = "zebra"
            [data]
            files = ["unused.csv"]
            format = "csv"
            [labels]
            names = ["no", "yes"]
            """.utf8
        ).write(to: URL(fileURLWithPath: taskPath))
        let spec = try TaskSpec.load(taskPath)
        let train = EncodedSplit(Self.synthetic(256, seed: 1), tokenizer: tok, maxLength: 16)
        let dev = EncodedSplit(Self.synthetic(64, seed: 2), tokenizer: tok, maxLength: 16)
        let adapter = Adapter(name: "zebra", config: AdapterConfig(reductionFactor: 2), hidden: 32, layers: 3, seed: 3)
        let head = PredictionHead(config: HeadConfig(kind: .classification, outputs: 2), hidden: 32, seed: 4)
        var tc = TrainingConfig()
        tc.epochs = 10; tc.learningRate = 1e-2; tc.hiddenDropout = 0; tc.attentionDropout = 0; tc.batchSize = 16; tc.patience = 10; tc.maxLength = 16
        var losses: [Float] = []
        let result = try Trainer(encoder: encoder, model: adapter, head: head)
            .train(train: train, dev: dev, spec: spec, config: tc) { if case let .epochEnded(_, loss, _, _, _) = $0 { losses.append(loss) } }
        #expect(losses.count == 10)
        #expect(losses.last! < 0.7 * losses.first!, "train loss \(losses)")
        #expect(result.bestDevMetric > 0.75, "dev accuracy \(result.devMetrics)")
        #expect(result.devMetrics.max() == result.bestDevMetric)

        // The kept parameters are the best epoch's: re-evaluating gives its metric exactly.
        let again = try Evaluator(encoder: encoder, hook: adapter, head: head).evaluate(dev, spec: spec, batchSize: tc.batchSize)
        #expect(again.metric == result.bestDevMetric)

        let store = dir.appendingPathComponent("s.h5").path
        let rec = AdapterRecord(
            name: "zebra", task: "zebra", taskFile: taskPath, labels: spec.labels, metric: "accuracy",
            adapterConfig: adapter.config, headConfig: head.config, baseModel: "tiny", baseFingerprint: "x",
            hiddenSize: 32, numLayers: 3, devMetrics: result.devMetrics, bestEpoch: result.bestEpoch,
            settings: TrainingConfig(), seed: 3, created: "")
        try AdapterStore.save(adapter: adapter, head: head, record: rec, to: store)
        let (la, lh, lrec) = try AdapterStore.load(store, name: "zebra", baseFingerprint: "x")
        let reloaded = try Evaluator(encoder: encoder, hook: la, head: lh).evaluate(dev, spec: spec, batchSize: tc.batchSize)
        #expect(reloaded.metric == lrec.bestDevMetric!)
        #expect(reloaded.outputs == again.outputs)
    }
}
