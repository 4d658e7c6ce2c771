import AdapterFusion
import Foundation
import Testing

/// `BertEncoder.forward(…, rows: .firstTokens)`: the top layer computes keys and values for
/// every token and the rest for the [CLS] rows only. It must give what the full pass gives on
/// those rows — states, loss and every gradient, dropout on (the masks of the first rows are
/// drawn the same in both) — for hooks acting at the top layer's sublayers, for hooks that
/// change its inside (which run the whole layer), with a soft prompt, and when the backward
/// pass stops inside the top layer.
///
/// Tolerance: both passes compute the same float32 sums with products of other shapes, so they
/// differ by rounding only (~1e-6 relative here); 1e-4 relative to the largest value is far
/// above that and far below any real difference (a dropped residual or key gradient changes
/// gradients by O(1) relative).
@Suite struct FirstTokenTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        let config: AdapterConfig?
        var testDescription: String { name }
    }

    static let cases: [Case] = {
        var lora = AdapterConfig.method(.lora)
        lora.lora = LoRAConfig(rank: 2, alpha: 2, targets: [.query, .value], dropout: 0.1)
        var prompt = AdapterConfig.method(.prompt)
        prompt.prompt = PromptConfig(length: 2)
        return [
            Case(name: "no hook", config: nil),
            Case(name: "pfeiffer+ln", config: AdapterConfig(placement: .pfeiffer, reductionFactor: 4, nonLinearity: .gelu, lnBefore: true)),
            Case(name: "houlsby", config: AdapterConfig(placement: .houlsby, reductionFactor: 4, nonLinearity: .gelu)),
            Case(
                name: "top layer only (backward stops in it)",
                config: AdapterConfig(placement: .houlsby, reductionFactor: 4, nonLinearity: .gelu, leaveOut: [0, 1])),
            Case(
                name: "top layer left out",
                config: AdapterConfig(placement: .pfeiffer, reductionFactor: 4, nonLinearity: .gelu, leaveOut: [2])),
            Case(name: "lora (runs the whole top layer)", config: lora),
            Case(name: "prompt", config: prompt),
        ]
    }()

    static let batch = TokenBatch(
        sequences: [[1, 5, 7, 2], [1, 9, 2], [1, 3, 4, 6, 8, 2], [1, 2]],
        typeIds: [[0, 0, 0, 0], [0, 0, 1], [0, 0, 0, 1, 1, 1], [0, 0]])

    /// Runs forward, loss and backward in `rows` mode; returns the loss, the returned [CLS]
    /// states and a copy of every parameter gradient.
    static func pass(
        _ encoder: BertEncoder, hook: LayerHook?, parameters: [Parameter], head: PredictionHead, rows: BertEncoder.OutputRows,
        training: Bool
    ) throws -> (loss: Float, cls: [Float], grads: [[Float]]) {
        let ws = EncoderWorkspace(config: encoder.config, training: training)
        let d = training ? DropoutState(hidden: 0.1, attention: 0.1, seed: 7) : nil
        for p in parameters + head.parameters { p.grad.zero() }
        let h = try encoder.forward(batch, workspace: ws, hook: hook, dropout: d, rows: rows)
        let H = encoder.config.hiddenSize
        let cls = (0..<batch.count).flatMap { s in
            Array(UnsafeBufferPointer(start: h.data + (rows == .all ? batch.offsets[s] : s) * H, count: H))
        }
        head.forward(h, batch: batch, dropout: d, cache: ws.hookCache)
        let targets = Targets.labels([2, 0, 1, 1])
        let loss = head.loss(targets, cache: ws.hookCache)
        if let d, let hook {
            encoder.backward(head.backward(targets, batch: batch, cache: ws.hookCache), workspace: ws, hook: hook, dropout: d)
        }
        return (loss, cls, (parameters + head.parameters).map(\.grad.array))
    }

    static func maxDifference(_ a: [Float], _ b: [Float]) -> (diff: Float, scale: Float) {
        (zip(a, b).map { abs($0 - $1) }.max() ?? 0, max(1, a.map(abs).max() ?? 0))
    }

    static func expectSame(
        _ encoder: BertEncoder, hook: LayerHook?, parameters: [Parameter], head: PredictionHead, _ label: String
    ) throws {
        for training in [false, true] {
            let full = try pass(encoder, hook: hook, parameters: parameters, head: head, rows: .all, training: training)
            let first = try pass(encoder, hook: hook, parameters: parameters, head: head, rows: .firstTokens, training: training)
            #expect(abs(full.loss - first.loss) <= 1e-4 * max(1, abs(full.loss)), "\(label): loss \(full.loss) vs \(first.loss)")
            let (dc, sc) = maxDifference(full.cls, first.cls)
            #expect(dc <= 1e-4 * sc, "\(label): [CLS] states differ by \(dc)")
            guard training, hook != nil else { continue }
            let names = (parameters + head.parameters).map(\.name)
            var checked = 0
            for (i, name) in names.enumerated() {
                let (d, s) = maxDifference(full.grads[i], first.grads[i])
                #expect(d <= 1e-4 * s, "\(label): gradient of \(name) differs by \(d) (scale \(s))")
                if full.grads[i].contains(where: { $0 != 0 }) { checked += 1 }
            }
            #expect(checked > 0, "\(label): no gradient to compare")
        }
    }

    @Test(arguments: cases)
    func sameAsTheFullPass(c: Case) throws {
        let encoder = try Support.tinyEncoder()
        var rng = SeededRNG(seed: 11)
        let head = PredictionHead(config: HeadConfig(kind: .classification, outputs: 3, preDense: true), hidden: 8, seed: 5)
        var adapter: Adapter?
        if let config = c.config {
            let a = Adapter(name: "t", config: config, hidden: 8, layers: 3, seed: 3)
            for p in a.parameters { for i in 0..<p.value.count { p.value[i] += 0.5 * rng.nextNormal() } }
            adapter = a
        }
        for p in head.parameters { for i in 0..<p.value.count { p.value[i] += 0.5 * rng.nextNormal() } }
        try Self.expectSame(encoder, hook: adapter, parameters: adapter?.parameters ?? [], head: head, c.name)
    }

    /// A fusion of three adapters (its layers at both sites of the top layer, score dropout on).
    @Test func fusion() throws {
        let encoder = try Support.tinyEncoder()
        var rng = SeededRNG(seed: 11)
        var adapters: [String: Adapter] = [:]
        for (k, name) in ["a", "b", "c"].enumerated() {
            let a = Adapter(
                name: name,
                config: AdapterConfig(placement: k == 1 ? .houlsby : .pfeiffer, reductionFactor: 4, nonLinearity: .gelu, lnBefore: k == 2),
                hidden: 8, layers: 3, seed: UInt64(k))
            for p in a.parameters { for i in 0..<p.value.count { p.value[i] += 0.5 * rng.nextNormal() } }
            adapters[name] = a
        }
        let expr = CompositionExpr.fuse([.adapter("a"), .adapter("b"), .adapter("c")])
        let comp = Composition(expr, adapters: adapters, options: FusionOptions(), hidden: 8, layers: 3, seed: 3)
        for p in comp.parameters { for i in 0..<p.value.count { p.value[i] += 0.3 * rng.nextNormal() } }
        let head = PredictionHead(config: HeadConfig(kind: .classification, outputs: 3), hidden: 8, seed: 5)
        try Self.expectSame(encoder, hook: comp.root, parameters: comp.parameters, head: head, "fuse(a, b, c)")
    }
}
