import AdapterFusion
import Foundation
import Testing

/// Finite-difference checks of AdapterFusion: the fusion layer alone, then whole models whose
/// hook is a composition (fuse, nested fuse, stack and average inside fuse), members frozen.
@Suite struct FusionGradientTests {
    /// Dynamic (with and without a value bias) and static; with score dropout (p = 0.3, the
    /// generator re-seeded for every evaluation so the masks stay fixed) and without.
    /// On 5 tokens the scores take q = u·Qᵀ + b_q, then q·K; on 9 (more than H = 6) Q folds into K.
    @Test(arguments: [(true, false), (true, true), (false, false)], [false, true])
    func fusionLayerAlone(kind: (dynamic: Bool, valueBias: Bool), scoreDropout: Bool) throws {
        for n in [5, 9] { try fusionLayerAlone(kind: kind, scoreDropout: scoreDropout, n: n) }
    }

    func fusionLayerAlone(kind: (dynamic: Bool, valueBias: Bool), scoreDropout: Bool, n: Int) throws {
        let (H, N) = (6, 3)
        var rng = SeededRNG(seed: 1)
        let layer = FusionLayer(prefix: "", hidden: H, members: N, dynamic: kind.dynamic, valueBias: kind.valueBias, rng: &rng)
        #expect(layer.parameters.count == (kind.dynamic ? (kind.valueBias ? 5 : 4) : 3))
        // Move every parameter away from its initialisation so all paths carry gradient.
        for p in layer.parameters { for i in 0..<p.value.count { p.value[i] += 0.5 * rng.nextNormal() } }
        let x = Support.random([n, H], seed: 2)  // query input
        let residual = Support.random([n, H], seed: 5)
        let deltas = Support.random([N, n, H], seed: 3)
        let r = Support.random([n, H], seed: 4)
        let out = Tensor(zeros: [n, H])
        let cache = HookCache()
        func loss() -> Double {
            let d = scoreDropout ? DropoutState(hidden: 0, attention: 0.3, seed: 9) : nil
            layer.forward(
                query: x.data, residual: residual.data, deltas: deltas.data, out: out.data, n: n, temperature: 1.7, scoreDropout: d,
                cache: cache)
            return weightedSum(out, r)
        }
        _ = loss()
        let dx = Tensor(zeros: [n, H])
        let dres = Tensor(zeros: [n, H])
        let dd = Tensor(zeros: [N, n, H])
        layer.backward(dout: r.data, dquery: dx.data, dresidual: dres.data, deltas: deltas.data, ddeltas: dd.data, n: n, cache: cache)
        checkGradient(x, analytic: dx, loss)
        checkGradient(residual, analytic: dres, loss)
        checkGradient(deltas, analytic: dd, sample: 90, loss)
        for p in layer.parameters { checkGradient(p.value, analytic: p.grad, loss) }
        // Attention weights are a distribution per token.
        for t in 0..<n { #expect(abs((0..<N).reduce(Float(0)) { $0 + layer.weights(cache, n: n)[t * N + $1] } - 1) < 1e-6) }
    }

    @Test func regulariserGradient() {
        var rng = SeededRNG(seed: 5)
        let layer = FusionLayer(prefix: "", hidden: 4, members: 2, dynamic: true, rng: &rng)
        let v = layer.value!.weight
        #expect(layer.regularize(lambda: 0.5) < 1e-9)  // V starts at I (off-diagonal 1e-6)
        for i in 0..<v.value.count { v.value[i] += rng.nextNormal() }
        v.grad.zero()
        _ = layer.regularize(lambda: 0.5)
        let analytic = Tensor(zeros: v.value.shape)
        analytic.copy(from: v.grad)
        checkGradient(v.value, analytic: analytic) {
            v.grad.zero(); return Double(layer.regularize(lambda: 0.5))
        }
    }

    struct Model {
        let encoder: BertEncoder
        let composition: Composition
        let adapters: [String: Adapter]
        let head: PredictionHead
        let batch: TokenBatch
        let ws: EncoderWorkspace

        /// Labels 1, 0, 2, 1, 0, 2, … for the batch's sequences.
        var targets: Targets { .labels((0..<batch.count).map { [1, 0, 2][$0 % 3] }) }

        func loss() throws -> Double {
            let d = DropoutState(hidden: 0.1, attention: 0.1, seed: 7)
            let h = try encoder.forward(batch, workspace: ws, hook: composition.root, dropout: d)
            head.forward(h, batch: batch, dropout: d)
            return Double(head.loss(targets))
        }

        func gradients() throws {
            for p in composition.parameters + head.parameters { p.grad.zero() }
            let d = DropoutState(hidden: 0.1, attention: 0.1, seed: 7)
            let h = try encoder.forward(batch, workspace: ws, hook: composition.root, dropout: d)
            head.forward(h, batch: batch, dropout: d)
            _ = head.loss(targets)
            encoder.backward(head.backward(targets, batch: batch), workspace: ws, hook: composition.root, dropout: d)
        }
    }

    /// Members alternate pfeiffer / houlsby; `lnBefore` k: member k reads LN(h + x) when k % 3 is
    /// in the set (so fusions mix both inputs and their query reads either).
    func model(
        _ expr: CompositionExpr, options: FusionOptions = FusionOptions(), allHoulsby: Bool = false, lnBefore: Set<Int> = [],
        batch: TokenBatch = TokenBatch(sequences: [[1, 5, 7, 2], [1, 9, 2], [1, 3, 4, 6, 8, 2]])
    ) throws -> Model {
        let encoder = try Support.tinyEncoder()
        var rng = SeededRNG(seed: 11)
        var adapters: [String: Adapter] = [:]
        for (k, name) in expr.adapterNames.enumerated() {
            let placement: AdapterPlacement = allHoulsby || k % 2 == 1 ? .houlsby : .pfeiffer
            let a = Adapter(
                name: name,
                config: AdapterConfig(
                    placement: placement, reductionFactor: 4, nonLinearity: .gelu,
                    leaveOut: k == 1 ? [0] : [], lnBefore: lnBefore.contains(k % 3)), hidden: 8, layers: 3, seed: UInt64(k))
            for p in a.parameters { for i in 0..<p.value.count { p.value[i] += 0.5 * rng.nextNormal() } }
            adapters[name] = a
        }
        let comp = Composition(expr, adapters: adapters, options: options, hidden: 8, layers: 3, seed: 3)
        for p in comp.parameters { for i in 0..<p.value.count { p.value[i] += 0.3 * rng.nextNormal() } }
        let head = PredictionHead(config: HeadConfig(kind: .classification, outputs: 3), hidden: 8, seed: 5)
        for p in head.parameters { for i in 0..<p.value.count { p.value[i] += 0.5 * rng.nextNormal() } }
        return Model(
            encoder: encoder, composition: comp, adapters: adapters, head: head, batch: batch,
            ws: EncoderWorkspace(config: encoder.config, training: true))
    }

    static let expressions: [CompositionExpr] = [
        .fuse([.adapter("a"), .adapter("b"), .adapter("c")]),
        .fuse([.adapter("a"), .fuse([.adapter("b"), .adapter("c")]), .stack([.adapter("d"), .adapter("e")])]),
        .fuse([.average([.adapter("a"), .adapter("b")], weights: [0.3, 0.7]), .adapter("c")]),
    ]

    /// Score dropout off and the value bias on here: otherwise, on 13 tokens, some attention-site
    /// query gradients are too small to check; `fusionLayerAlone` checks both variants.
    @Test(arguments: expressions, [[], [0, 1, 2], [1]] as [Set<Int>])
    func compositionGradients(expr: CompositionExpr, lnBefore: Set<Int>) throws {
        var o = FusionOptions()
        o.scoreDropout = false
        o.valueBias = true
        let m = try model(expr, options: o, lnBefore: lnBefore)
        try m.gradients()
        for p in m.composition.parameters + m.head.parameters {
            checkGradient(p.value, analytic: p.grad, sample: 12) { (try? m.loss()) ?? .nan }
        }
    }

    @Test func staticFusionHasNoValueMatrix() throws {
        var o = FusionOptions()
        o.dynamic = false
        // Both members Houlsby: every fusion layer mixes two acting members (with one, the
        // attention-site layers' gradients are too small to check against finite differences).
        let m = try model(.fuse([.adapter("a"), .adapter("b")]), options: o, allHoulsby: true)
        #expect(!m.composition.parameters.contains { $0.name.contains("value") })
        try m.gradients()
        for p in m.composition.parameters { checkGradient(p.value, analytic: p.grad, sample: 12) { (try? m.loss()) ?? .nan } }
    }

    /// Frozen members receive no gradient (while the fusion layers do); the names follow the
    /// store layout. Removing the line that freezes members makes this fail.
    @Test func membersFrozenAndNames() throws {
        let m = try model(.fuse([.adapter("a"), .fuse([.adapter("b"), .adapter("c")])]))
        for a in m.adapters.values { for p in a.parameters { p.grad.zero() } }
        try m.gradients()
        for (name, a) in m.adapters {
            #expect(a.frozen, "member \(name) is not frozen")
            let largest = a.parameters.map { p in (0..<p.grad.count).reduce(Float(0)) { max($0, abs(p.grad[$1])) } }.max() ?? 0
            #expect(largest == 0, "member \(name) received gradient \(largest)")
        }
        #expect(m.composition.parameters.contains { p in (0..<p.grad.count).contains { p.grad[$0] != 0 } })
        let names = m.composition.parameters.map(\.name)
        #expect(names.contains("layer_00/query/weight") && names.contains("layer_02/value/weight") && !names.contains("layer_02/value/bias"))
        #expect(names.contains("member_1/layer_01/attention/key/weight"))  // nested fuse over a Houlsby member
        #expect(!names.contains("layer_00/attention/query/weight"))  // no member acts there
    }

    /// parallel(a, b): one pass over two copies of the batch equals running each adapter alone.
    @Test func parallelEqualsSeparatePasses() throws {
        let encoder = try Support.tinyEncoder()
        var rng = SeededRNG(seed: 4)
        var adapters: [String: Adapter] = [:]
        for (i, n) in ["a", "b"].enumerated() {
            let a = Adapter(
                name: n, config: AdapterConfig(placement: i == 0 ? .pfeiffer : .houlsby, reductionFactor: 4), hidden: 8, layers: 3, seed: UInt64(i))
            for p in a.parameters { for k in 0..<p.value.count { p.value[k] += 0.5 * rng.nextNormal() } }
            adapters[n] = a
        }
        let comp = Composition(
            .parallel([.adapter("a"), .adapter("b")]), adapters: adapters, options: FusionOptions(), hidden: 8, layers: 3, seed: 1)
        let seqs: [[Int32]] = [[1, 5, 7, 2], [1, 9, 2]]
        let ws = EncoderWorkspace(config: encoder.config)
        let both = try encoder.forward(TokenBatch(sequences: seqs + seqs), workspace: ws, hook: comp.root).array
        let a = try encoder.forward(TokenBatch(sequences: seqs), workspace: ws, hook: adapters["a"]!).array
        let b = try encoder.forward(TokenBatch(sequences: seqs), workspace: ws, hook: adapters["b"]!).array
        #expect(zip(both, a + b).allSatisfy { abs($0 - $1) <= 1e-6 })
        #expect(a != b)
    }

    /// A fresh dynamic fusion (V = I, near-uniform attention) of one adapter equals the adapter.
    @Test func singleMemberFusionStartsAsTheAdapter() throws {
        let encoder = try Support.tinyEncoder()
        let a = Adapter(name: "a", config: AdapterConfig(reductionFactor: 4), hidden: 8, layers: 3, seed: 1)
        var rng = SeededRNG(seed: 2)
        for p in a.parameters { for i in 0..<p.value.count { p.value[i] += 0.5 * rng.nextNormal() } }
        let comp = Composition(.fuse([.adapter("a")]), adapters: ["a": a], options: FusionOptions(), hidden: 8, layers: 3, seed: 3)
        let batch = TokenBatch(sequences: [[1, 5, 7, 2], [1, 9, 2]])
        let ws = EncoderWorkspace(config: encoder.config)
        let fused = try encoder.forward(batch, workspace: ws, hook: comp.root).array
        let plain = try encoder.forward(batch, workspace: ws, hook: a).array
        // V = I + 1e-6 off-diagonal: differences of order 1e-6·H·|a|.
        for (x, y) in zip(fused, plain) { #expect(abs(x - y) < 1e-4) }
    }
}

extension FusionGradientTests {
    /// 8 sequences of 8 tokens: 64 tokens in one pass, above H = 8 (Q folds into K) and above
    /// H·Σr / (H − Σr) = 24 (V folds into the members' up projections, Σr = 6).
    static let foldingBatch: TokenBatch = {
        var sequences: [[Int32]] = []
        for s in 0..<8 { sequences.append((0..<8).map { (t: Int) -> Int32 in Int32(1 + (t * 7 + s * 3) % 29) }) }
        return TokenBatch(sequences: sequences)
    }()

    /// A pass over 64 tokens folds Q into K and V into the members; each sequence alone (8
    /// tokens) folds neither. Packed sequences never mix, so both ways compute the same function:
    /// they agree within 1e-5 of the output scale (Float32 reassociation of H-term sums).
    @Test(arguments: [false, true], [false, true])
    func foldedFusionEqualsUnfolded(valueBias: Bool, training: Bool) throws {
        var o = FusionOptions()
        o.valueBias = valueBias
        let m = try model(.fuse([.adapter("a"), .adapter("b"), .adapter("c")]), options: o, lnBefore: [1])
        let batch = Self.foldingBatch
        let ws = EncoderWorkspace(config: m.encoder.config, training: training)
        let noDropout = training ? DropoutState(hidden: 0, attention: 0, seed: 1) : nil
        let folded = try m.encoder.forward(batch, workspace: ws, hook: m.composition.root, dropout: noDropout).array
        var plain: [Float] = []
        for s in 0..<batch.count {
            let one = TokenBatch(sequences: [Array(batch.ids[batch.offsets[s]..<batch.offsets[s + 1]])])
            plain += try m.encoder.forward(one, workspace: ws, hook: m.composition.root, dropout: noDropout).array
        }
        let scale = plain.map { abs($0) }.max()!
        let worst = zip(plain, folded).map { abs($0 - $1) }.max()!
        #expect(worst <= 1e-5 * scale, "largest difference \(worst) at scale \(scale)")
        #expect(worst > 0, "the folded paths ran (their rounding differs)")
    }

    /// Finite differences through training passes that fold Q into K and V into the members.
    @Test func foldedFusionGradients() throws {
        var o = FusionOptions()
        o.valueBias = true
        let m = try model(.fuse([.adapter("a"), .adapter("b"), .adapter("c")]), options: o, lnBefore: [1], batch: Self.foldingBatch)
        try m.gradients()
        for p in m.composition.parameters + m.head.parameters {
            checkGradient(p.value, analytic: p.grad, sample: 12) { (try? m.loss()) ?? .nan }
        }
    }

    @Test func foldedQueryKeyEqualsTwoProducts() {
        let (n, H, N) = (40, 8, 3)
        var rng = SeededRNG(seed: 21)
        let layer = FusionLayer(prefix: "", hidden: H, members: N, dynamic: true, rng: &rng)
        for p in layer.parameters { for i in 0..<p.value.count { p.value[i] += 0.5 * rng.nextNormal() } }
        let x = Support.random([n, H], seed: 22)
        let deltas = Support.random([N, n, H], seed: 23)
        let two = Tensor(zeros: [n, H])
        let folded = Tensor(zeros: [n, H])
        // The two products: H tokens at a time (no fold at n ≤ H).
        for r0 in stride(from: 0, to: n, by: H) {
            let part = Tensor(zeros: [N, H, H])
            for i in 0..<N { (part.data + i * H * H).update(from: deltas.data + (i * n + r0) * H, count: H * H) }
            layer.forward(
                query: x.data + r0 * H, residual: x.data + r0 * H, deltas: part.data, out: two.data + r0 * H, n: H, temperature: 1.3,
                training: true, cache: HookCache())
        }
        layer.forward(
            query: x.data, residual: x.data, deltas: deltas.data, out: folded.data, n: n, temperature: 1.3, training: false, cache: HookCache())
        let scale = (0..<two.count).reduce(Float(0)) { max($0, abs(two[$1])) }
        let worst = (0..<two.count).reduce(Float(0)) { max($0, abs(two[$1] - folded[$1])) }
        #expect(worst <= 1e-5 * scale, "largest difference \(worst) at scale \(scale)")
        #expect(worst > 0, "the folded path ran (its rounding differs from the two products')")
    }
}
