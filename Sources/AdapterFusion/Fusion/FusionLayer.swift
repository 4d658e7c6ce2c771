/// AdapterFusion's attention at one (layer, site) (Pfeiffer et al. 2021, "dynamic" form):
///
///     q = Q·u + b_q                       u: the query input: the sublayer output h, or LN(h + x)
///                                         when the members read that (AdapterHub's seq_bn)  [n, H]
///     score_i = q · (K·a_i)               a_i: member i's output minus h (its delta)  [n, H]
///     w = softmax_i(dropout(score) / T)   per token (score dropout in training only, optional)
///     out = h + V·(Σ_i w_i a_i) + b_v     (static: out = h + Σ_i w_i a_i)
///
/// Two algebraic shortcuts keep the cost at three H×H products per token whatever the number
/// of members: q·(K a_i) = (qK)·a_i, so K multiplies q once instead of every a_i (the key bias
/// adds the same q·b_k to every score, cancels in the softmax, and is omitted); and V has no
/// part in the scores, so Σ_i w_i V a_i = V Σ_i w_i a_i. On more tokens than H a third folds Q
/// into K (`folds`), in training too.
public final class FusionLayer {
    public let hidden: Int
    public let members: Int
    public let query: (weight: Parameter, bias: Parameter)  // [H, H], [H]
    public let key: Parameter  // [H, H]
    public let value: (weight: Parameter, bias: Parameter?)?  // [H, H], [H] (optional); nil for static fusion
    /// What a pass keeps in its `HookCache`, by slot: forward values, then backward scratch.
    enum Slot: Int, CacheSlot {
        case x  // [n, H] query input
        case q  // [n, H]
        case qk  // [n, H] q·K
        case w  // [n, N] attention weights
        case c  // [n, H] Σ w_i a_i
        case temperature  // [1]
        case dropoutP  // [1] score dropout probability of the pass (0: none)
        case folded, foldedBias  // [H, H] QᵀK and [H] b_q·K, for inference on large batches
        case valueUp, valueBias, memberValue  // [H, Σr] V·U_i, [N, H] V·b_i, [n, Σr] w_i·f_i: the value fold
        case valueFolded  // [1] 1 when the last forward pass folded the value
        case dc, dqk, dq  // [n, H]
        case dw, ds  // [n, N]
        case scoreMask  // [n, N] score dropout mask (a mask, kept apart from the tensors)
        case dvalueUp, dmemberValue  // [H, Σr], [n, Σr]: the folded value's backward
    }

    func buffer(_ cache: HookCache, _ slot: Slot, _ count: Int) -> Tensor {
        // Backward scratch is dead once a layer's backward returns (a nested fuse runs its own
        // backward only after the outer layer's), so all fusion layers share it.
        cache.tensor(slot.rawValue >= Slot.dc.rawValue ? Self.sharedScratch : self, slot, count: count)
    }

    /// The owner key of the backward scratch all fusion layers share within a cache.
    private static let sharedScratch = SharedScratch()
    private final class SharedScratch: Sendable {}

    /// Q and K ~ N(0, 0.02²), V = I with 1e-6 off the diagonal (as AdapterHub), biases zero.
    public init(prefix: String, hidden: Int, members: Int, dynamic: Bool, valueBias: Bool = false, rng: inout SeededRNG) {
        self.hidden = hidden
        self.members = members
        query = (
            Parameter(prefix + "query/weight", Tensor(randomNormal: [hidden, hidden], std: 0.02, rng: &rng), decay: true),
            Parameter(prefix + "query/bias", Tensor(zeros: [hidden]), decay: false)
        )
        key = Parameter(prefix + "key/weight", Tensor(randomNormal: [hidden, hidden], std: 0.02, rng: &rng), decay: true)
        if dynamic {
            let v = Tensor(zeros: [hidden, hidden])
            for i in 0..<hidden { for j in 0..<hidden { v[i * hidden + j] = i == j ? 1 : 1e-6 } }
            value = (
                Parameter(prefix + "value/weight", v, decay: false),
                valueBias ? Parameter(prefix + "value/bias", Tensor(zeros: [hidden]), decay: false) : nil
            )
        } else {
            value = nil
        }
    }

    public var parameters: [Parameter] {
        [query.weight, query.bias, key] + (value.map { [$0.weight] + ($0.bias.map { [$0] } ?? []) } ?? [])
    }

    /// The attention weights [n, members] of the last forward pass with `cache`.
    public func weights(_ cache: HookCache, n: Int) -> Tensor { buffer(cache, .w, n * members) }

    /// out[n, H] = residual + V·Σ_i softmax_i(qK·a_i / T)·a_i + b_v, with q from `query` and
    /// `deltas` = a_i laid out [N, n, H].
    /// `deltas` must stay unchanged until `backward` (the caller keeps them, per site).
    ///
    /// On more tokens than H the query and key matrices fold: qK = (u·Qᵀ + b_q)·K = u·(QᵀK) +
    /// b_q·K, one n×H×H product instead of two for H³ to fold them (training: the backward then
    /// takes two n×H×H products instead of four, for 2H³). The choice depends on the shape alone.
    ///
    /// With `bottlenecks` (every member a plain bottleneck adapter: its module and its
    /// activation f(down(u)) [n, r] of this pass, nil where it does not act), the value matrix
    /// folds into the members' up projections: V·a_i = (V·U_i)·f + V·b_i, so the output costs
    /// n·H·Σr instead of n·H², for H²·Σr to fold — only when that saves work (`foldsValue`,
    /// shape alone). In training the backward then returns the value's share of ∂L/∂f_i apart.
    public func forward(
        query xin: UnsafePointer<Float>, residual: UnsafePointer<Float>, deltas: UnsafePointer<Float>,
        out: UnsafeMutablePointer<Float>, n: Int, temperature T: Float, training: Bool = true, scoreDropout: DropoutState? = nil,
        bottlenecks: [(module: BottleneckAdapter, act: UnsafePointer<Float>)?]? = nil, cache: HookCache
    ) {
        let H = hidden
        let N = members
        buffer(cache, .temperature, 1)[0] = T
        let qk = buffer(cache, .qk, n * H)
        let w = buffer(cache, .w, n * N)
        if training { buffer(cache, .x, n * H).data.update(from: xin, count: n * H) }
        if !Self.folds(n: n, hidden: H) {
            // q = u·Qᵀ + b_q;  qk = q·K
            let q = buffer(cache, .q, n * H)
            Linear.forward(y: q.data, x: xin, w: query.weight.value.data, b: query.bias.value.data, n: n, inDim: H, outDim: H)
            BLAS.gemm(m: n, n: H, k: H, a: q.data, lda: H, b: key.value.data, ldb: H, c: qk.data, ldc: H)
        } else {
            // M = QᵀK [H, H] (Q stored [out, in]);  m = b_q·K [H];  qk = u·M + m
            let m = buffer(cache, .folded, H * H)
            let mb = buffer(cache, .foldedBias, H)
            BLAS.gemm(transA: true, m: H, n: H, k: H, a: query.weight.value.data, lda: H, b: key.value.data, ldb: H, c: m.data, ldc: H)
            BLAS.gemm(m: 1, n: H, k: H, a: query.bias.value.data, lda: H, b: key.value.data, ldb: H, c: mb.data, ldc: H)
            for t in 0..<n { (qk.data + t * H).update(from: mb.data, count: H) }
            BLAS.gemm(m: n, n: H, k: H, a: xin, lda: H, b: m.data, ldb: H, beta: 1, c: qk.data, ldc: H)
        }
        // w[t, i] = softmax_i(qk[t]·a_i[t] / T);  c[t] = Σ_i w[t, i] a_i[t]
        for t in 0..<n {
            for i in 0..<N { w[t * N + i] = VectorMath.dot(qk.data + t * H, deltas + (i * n + t) * H, H) }
        }
        let p = scoreDropout?.attention ?? 0
        buffer(cache, .dropoutP, 1)[0] = p
        if let scoreDropout, p > 0 {
            scoreDropout.apply(
                out: w.data, mask: cache.mask(self, Slot.scoreMask, count: n * N).data, inp: w.data, rowCount: n, width: N, p: p, perSequence: false)
        }
        Softmax.forward(out: w.data, inp: w.data, n: n, c: N, ld: N, scale: 1 / T)
        let folded = buffer(cache, .valueFolded, 1)
        folded[0] = 0
        if let value, let bottlenecks, foldsValue(bottlenecks, n: n) {
            folded[0] = 1
            foldedValueOutput(value.weight.value, bias: value.bias?.value, bottlenecks, w: w, residual: residual, out: out, n: n, cache: cache)
            return
        }
        let c = buffer(cache, .c, n * H)
        c.data.update(repeating: 0, count: n * H)
        for t in 0..<n {
            let ct = c.data + t * H
            for i in 0..<N {
                let wi = w[t * N + i]
                let a = deltas + (i * n + t) * H
                for j in 0..<H { ct[j] += wi * a[j] }
            }
        }
        // out = residual + V·c + b_v  (static: residual + c)
        if let value {
            Linear.forward(y: out, x: c.data, w: value.weight.value.data, b: value.bias?.value.data, n: n, inDim: H, outDim: H)
        } else {
            out.update(from: c.data, count: n * H)
        }
        VectorMath.add(out, residual, n * H)
    }

    /// Whether the last forward pass with `cache` folded the value into the members.
    func valueFolded(_ cache: HookCache) -> Bool { buffer(cache, .valueFolded, 1)[0] == 1 }

    /// Whether a pass over n tokens folds the value into these members: when that saves work.
    func foldsValue(_ members: [(module: BottleneckAdapter, act: UnsafePointer<Float>)?], n: Int) -> Bool {
        guard value != nil, members.count == self.members else { return false }
        let r = members.reduce(0) { $0 + ($1?.module.bottleneck ?? 0) }
        return n * (hidden - r) > hidden * r
    }

    /// dquery += ∂L/∂(query input), dresidual += ∂L/∂residual (the two may be one buffer); not
    /// through the deltas: the caller routes `ddeltas` [N, n, H] (+=) back through the members.
    /// When the forward pass folded the value into `bottlenecks`, the value's share of the
    /// members' gradient is not in `ddeltas` but in `dactivations` (∂L/∂f_i [n, r_i],
    /// overwritten), to enter each member below its up projection. Parameter gradients accumulate.
    public func backward(
        dout: UnsafePointer<Float>, dquery: UnsafeMutablePointer<Float>, dresidual: UnsafeMutablePointer<Float>,
        deltas: UnsafePointer<Float>, ddeltas: UnsafeMutablePointer<Float>, n: Int,
        bottlenecks: [(module: BottleneckAdapter, act: UnsafePointer<Float>)?]? = nil, dactivations: [UnsafeMutablePointer<Float>?] = [],
        cache: HookCache
    ) {
        let H = hidden
        let N = members
        let temperature = buffer(cache, .temperature, 1)[0]
        let x = buffer(cache, .x, n * H)
        let qk = buffer(cache, .qk, n * H)
        let w = buffer(cache, .w, n * N)
        let dc = buffer(cache, .dc, n * H)
        let dqk = buffer(cache, .dqk, n * H)
        let dw = buffer(cache, .dw, n * N)
        let ds = buffer(cache, .ds, n * N)
        VectorMath.add(dresidual, dout, n * H)
        // dc = dout·V (dynamic) or dout (static), or the folded value's backward
        if buffer(cache, .valueFolded, 1)[0] == 1, let bottlenecks {
            foldedValueBackward(dout: dout, bottlenecks, dactivations: dactivations, dw: dw, n: n, cache: cache)
        } else if let value {
            dc.data.update(repeating: 0, count: n * H)
            Linear.backward(
                dx: dc.data, dw: value.weight.grad.data, db: value.bias?.grad.data, dy: dout, x: buffer(cache, .c, n * H).data,
                w: value.weight.value.data, n: n, inDim: H, outDim: H)
            valueBackward(dc: dc, deltas: deltas, ddeltas: ddeltas, w: w, dw: dw, n: n)
        } else {
            dc.data.update(from: dout, count: n * H)
            valueBackward(dc: dc, deltas: deltas, ddeltas: ddeltas, w: w, dw: dw, n: n)
        }
        // scores → softmax(score / T):  ds = ∂L/∂(qk·a_i)
        ds.data.update(repeating: 0, count: n * N)
        Softmax.backward(dinp: ds.data, dout: dw.data, out: w.data, n: n, c: N, ld: N, scale: 1 / temperature)
        let p = buffer(cache, .dropoutP, 1)[0]
        if p > 0 { Dropout.apply(out: ds.data, inp: ds.data, mask: cache.mask(self, Slot.scoreMask, count: n * N).data, count: n * N, p: p) }
        // score_i = qk·a_i:  dqk[t] = Σ_i ds[t, i] a_i[t];  da_i[t] += ds[t, i] qk[t]
        dqk.data.update(repeating: 0, count: n * H)
        for t in 0..<n {
            let g = dqk.data + t * H
            let qkt = qk.data + t * H
            for i in 0..<N {
                let s = ds[t * N + i]
                let a = deltas + (i * n + t) * H
                let da = ddeltas + (i * n + t) * H
                for j in 0..<H { g[j] += s * a[j]; da[j] += s * qkt[j] }
            }
        }
        if Self.folds(n: n, hidden: H) {
            foldedQueryBackward(dqk: dqk, x: x, dquery: dquery, n: n, cache: cache)
            return
        }
        // qk = q·K:  dq = dqk·Kᵀ;  dK += qᵀ·dqk
        let q = buffer(cache, .q, n * H)
        let dq = buffer(cache, .dq, n * H)
        BLAS.gemm(transB: true, m: n, n: H, k: H, a: dqk.data, lda: H, b: key.value.data, ldb: H, c: dq.data, ldc: H)
        BLAS.gemm(transA: true, m: H, n: H, k: n, a: q.data, lda: H, b: dqk.data, ldb: H, beta: 1, c: key.grad.data, ldc: H)
        // q = u·Qᵀ + b_q
        Linear.backward(
            dx: dquery, dw: query.weight.grad.data, db: query.bias.grad.data, dy: dq.data, x: x.data,
            w: query.weight.value.data, n: n, inDim: H, outDim: H)
    }

    /// λ·‖I − V‖²_F; adds its gradient 2λ(V − I) to V's. Zero for static fusion.
    public func regularize(lambda: Float) -> Float {
        guard let value, lambda > 0 else { return 0 }
        let H = hidden
        let v = value.weight.value.data
        let g = value.weight.grad.data
        var s: Double = 0
        for i in 0..<H {
            for j in 0..<H {
                let d = v[i * H + j] - (i == j ? 1 : 0)
                s += Double(d * d)
                g[i * H + j] += 2 * lambda * d
            }
        }
        return lambda * Float(s)
    }
}
