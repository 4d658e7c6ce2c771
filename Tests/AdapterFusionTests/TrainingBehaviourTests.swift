import AdapterFusion
import Foundation
import Testing

/// The training loop's rules, each against a hand-computed or forced outcome: AdamW's step,
/// clipping, the temperature schedule, early stopping and the NaN guard.
@Suite struct TrainingBehaviourTests {
    /// One AdamW step against the formula evaluated in Double: after one step m̂ = g and
    /// v̂ = g², so w ← w − lr·g/(|g| + ε) − lr·λ·w (decay only where `decay`). Float32
    /// arithmetic of a handful of operations: 1e-6 relative.
    @Test func adamWStepMatchesHandComputation() {
        let w = Parameter("w", Tensor(shape: [3], values: [2, -1, 0.5]), decay: true)
        let b = Parameter("b", Tensor(shape: [2], values: [0.25, 4]), decay: false)
        let g: [Float] = [0.5, -1, 3]
        let gb: [Float] = [-0.125, 2]
        for i in 0..<3 { w.grad[i] = g[i] }
        for i in 0..<2 { b.grad[i] = gb[i] }
        let opt = AdamW([w, b], weightDecay: 0.01)
        let lr: Float = 0.1
        opt.update(lr: lr)
        func expected(_ w0: Float, _ g: Float, decay: Bool) -> Double {
            let (w0, g, lr) = (Double(w0), Double(g), Double(lr))
            return w0 - lr * g / (abs(g) + 1e-8) - (decay ? lr * 0.01 * w0 : 0)
        }
        for (i, w0) in [Float(2), -1, 0.5].enumerated() {
            #expect(abs(Double(w.value[i]) - expected(w0, g[i], decay: true)) <= 1e-6 * max(1, abs(expected(w0, g[i], decay: true))))
        }
        for (i, b0) in [Float(0.25), 4].enumerated() {
            #expect(abs(Double(b.value[i]) - expected(b0, gb[i], decay: false)) <= 1e-6 * max(1, abs(expected(b0, gb[i], decay: false))))
        }
        #expect((0..<3).allSatisfy { w.grad[$0] == 0 }, "gradients are zeroed after the update")
        #expect(opt.step == 1)
    }

    /// Global-norm clipping: ‖(3, 4)‖ = 5 scaled to norm 1; a norm under the limit is untouched.
    @Test func clippingScalesToTheMaximumNorm() {
        let p = Parameter("p", Tensor(zeros: [2]), decay: true)
        p.grad[0] = 3; p.grad[1] = 4
        let opt = AdamW([p])
        #expect(opt.clipGradients(maxNorm: 1) == 5)
        #expect(abs(p.grad[0] - 0.6) < 1e-6 && abs(p.grad[1] - 0.8) < 1e-6)
        #expect(abs(opt.gradientNorm() - 1) < 1e-6)
        #expect(opt.clipGradients(maxNorm: 2) < 1.0001)
        #expect(abs(p.grad[0] - 0.6) < 1e-6, "a norm below the limit is left as it is")
    }

    /// Annealing runs the temperature from 50 down to 1 over training, and evaluation uses 1;
    /// without annealing the fixed temperature holds throughout.
    @Test func temperatureAnnealing() {
        func composition(_ options: FusionOptions) -> Composition {
            let a = Adapter(name: "a", config: AdapterConfig(reductionFactor: 2), hidden: 8, layers: 2, seed: 1)
            let b = Adapter(name: "b", config: AdapterConfig(reductionFactor: 2), hidden: 8, layers: 2, seed: 2)
            return Composition(.fuse([.adapter("a"), .adapter("b")]), adapters: ["a": a, "b": b], options: options, hidden: 8, layers: 2, seed: 3)
        }
        var annealed = FusionOptions()
        annealed.anneal = true
        let c = composition(annealed)
        c.setProgress(0)
        #expect(c.fuseNodes[0].node.temperature == 50)
        c.setProgress(0.5)
        #expect(c.fuseNodes[0].node.temperature == 25.5)
        c.setProgress(0.999)
        #expect(c.fuseNodes[0].node.temperature >= 1 && c.fuseNodes[0].node.temperature < 1.1)
        c.prepareForEvaluation()
        #expect(c.fuseNodes[0].node.temperature == 1)
        var fixed = FusionOptions()
        fixed.temperature = 2
        let f = composition(fixed)
        f.prepareForEvaluation()
        f.setProgress(0.5)
        #expect(f.fuseNodes[0].node.temperature == 2)
    }

    func zebraTask(_ dir: URL) throws -> TaskSpec {
        let path = dir.appendingPathComponent("z.toml").path
        try Data("name = \"zebra\"\n[data]\nfiles = [\"unused.csv\"]\nformat = \"csv\"\n[labels]\nnames = [\"no\", \"yes\"]\n".utf8)
            .write(to: URL(fileURLWithPath: path))
        return try TaskSpec.load(path)
    }

    /// With a learning rate of 0 the dev metric never improves: training stops after the first
    /// epoch plus `patience` epochs, says so, and keeps epoch 1.
    @Test func earlyStoppingAfterPatience() throws {
        let dir = try Support.tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let spec = try zebraTask(dir)
        let encoder = try Support.tinyEncoder(hidden: 16)
        let tok = try TrainerTests.tinyTokenizer()
        let train = EncodedSplit(TrainerTests.synthetic(64, seed: 1), tokenizer: tok, maxLength: 16)
        let dev = EncodedSplit(TrainerTests.synthetic(32, seed: 2), tokenizer: tok, maxLength: 16)
        let adapter = Adapter(name: "z", config: AdapterConfig(reductionFactor: 2), hidden: 16, layers: 3, seed: 3)
        let head = PredictionHead(config: HeadConfig(kind: .classification, outputs: 2), hidden: 16, seed: 4)
        var tc = TrainingConfig()
        tc.epochs = 6; tc.learningRate = 0; tc.patience = 2; tc.batchSize = 16; tc.maxLength = 16
        var stoppedAt: Int?
        let result = try Trainer(encoder: encoder, model: adapter, head: head).train(train: train, dev: dev, spec: spec, config: tc) {
            if case .stoppedEarly(let e) = $0 { stoppedAt = e }
        }
        #expect(result.devMetrics.count == 3 && stoppedAt == 3, "\(result.devMetrics), stopped at \(stoppedAt ?? -1)")
        #expect(result.bestEpoch == 1)
    }

    /// A NaN weight stops training with a clear error and applies no update (the loss can stay
    /// finite while the gradients are NaN: the step checks both).
    @Test func nanLossIsRefusedWithoutAnUpdate() throws {
        let dir = try Support.tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let spec = try zebraTask(dir)
        let encoder = try Support.tinyEncoder(hidden: 16)
        let tok = try TrainerTests.tinyTokenizer()
        let train = EncodedSplit(TrainerTests.synthetic(32, seed: 1), tokenizer: tok, maxLength: 16)
        let adapter = Adapter(name: "z", config: AdapterConfig(reductionFactor: 2), hidden: 16, layers: 3, seed: 3)
        let head = PredictionHead(config: HeadConfig(kind: .classification, outputs: 2), hidden: 16, seed: 4)
        head.parameters[0].value[0] = .nan
        let before = adapter.parameters.map(\.value.array)
        var tc = TrainingConfig()
        tc.epochs = 1; tc.batchSize = 16; tc.maxLength = 16
        do {
            _ = try Trainer(encoder: encoder, model: adapter, head: head).train(train: train, dev: train, spec: spec, config: tc)
            Issue.record("training with a NaN loss did not stop")
        } catch let e as TrainingError {
            #expect(e.description.contains("became nan at epoch 1, step 1"), "\(e)")
        }
        #expect(adapter.parameters.map(\.value.array) == before, "an update was applied after a NaN loss")
    }
}
