/// One bottleneck module: out = r + s·g ⊙ (W_up·f(W_down·x + b_down) + b_up), where the residual
/// r is the sublayer output h, the input x is h itself, LN(h + residual) (see
/// `AdapterConfig.lnBefore`) or the sublayer's input (a parallel adapter), s a fixed scale (1,
/// or 4 for parallel adapters) and g an optional per-token gate (UniPELT), else 1.
public final class BottleneckAdapter {
    public let hidden: Int
    public let bottleneck: Int
    public let activation: Activation
    public let downWeight: Parameter  // [r, H]
    public let downBias: Parameter  // [r]
    public let upWeight: Parameter  // [H, r]
    public let upBias: Parameter  // [H]
    /// What a pass keeps in its `HookCache`, by slot.
    enum Slot: Int, CacheSlot {
        case x  // [N, H] input (kept only when the down projection's gradient will be needed)
        case pre  // [N, r] W_down·x + b_down
        case act  // [N, r] f(pre)
        case dact, dpre  // [N, r] backward scratch
        case delta  // [N, H] the ungated output (gated only)
        case dscaled  // [N, H] backward scratch
    }

    func buffer(_ cache: HookCache, _ slot: Slot, _ count: Int) -> Tensor { cache.tensor(self, slot, count: count) }

    /// f(pre) [n, r] of the last forward pass in `cache` (what a fusion folding its value reads).
    public func activation(_ cache: HookCache, n: Int) -> UnsafePointer<Float> { UnsafePointer(buffer(cache, .act, n * bottleneck).data) }

    /// Near-identity start: down ~ N(0, std²), up = 0, so the adapter begins as the identity.
    public init(prefix: String, hidden: Int, bottleneck: Int, activation: Activation, initStd: Float, rng: inout SeededRNG) {
        self.hidden = hidden
        self.bottleneck = bottleneck
        self.activation = activation
        downWeight = Parameter(prefix + "down/weight", Tensor(randomNormal: [bottleneck, hidden], std: initStd, rng: &rng), decay: true)
        downBias = Parameter(prefix + "down/bias", Tensor(zeros: [bottleneck]), decay: false)
        upWeight = Parameter(prefix + "up/weight", Tensor(zeros: [hidden, bottleneck]), decay: true)
        upBias = Parameter(prefix + "up/bias", Tensor(zeros: [hidden]), decay: false)
    }

    public var parameters: [Parameter] { [downWeight, downBias, upWeight, upBias] }

    /// out[n, H] = residual + s·g ⊙ up(f(down(x))). `keepInput`: copy x into the cache for the
    /// down projection's weight gradient (a frozen module, or inference, does not need it).
    public func forward(
        x xin: UnsafePointer<Float>, residual: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, n: Int, cache: HookCache,
        keepInput: Bool = true, scale: Float = 1, gate: UnsafePointer<Float>? = nil
    ) {
        let H = hidden
        let r = bottleneck
        let pre = buffer(cache, .pre, n * r)
        let act = buffer(cache, .act, n * r)
        if keepInput { buffer(cache, .x, n * H).data.update(from: xin, count: n * H) }
        Linear.forward(y: pre.data, x: xin, w: downWeight.value.data, b: downBias.value.data, n: n, inDim: H, outDim: r)
        activation.forward(out: act.data, inp: pre.data, count: n * r)
        Linear.forward(y: out, x: act.data, w: upWeight.value.data, b: upBias.value.data, n: n, inDim: r, outDim: H)
        if scale != 1 || gate != nil {
            if gate != nil { buffer(cache, .delta, n * H).data.update(from: out, count: n * H) }
            for i in 0..<n {
                let c = scale * (gate?[i] ?? 1)
                for j in 0..<H { out[i * H + j] *= c }
            }
        }
        VectorMath.add(out, residual, n * H)
    }

    /// dx += ∂L/∂x, dresidual += ∂L/∂residual (the two may be the same buffer), dgate += ∂L/∂g
    /// (gated); parameter gradients accumulate unless `frozen` (then only the input gradients
    /// are computed). `dactivation`: ∂L/∂f(down(x)) [n, r] from another use of the activation
    /// (a fusion that folded its value matrix into this module), added to what comes through up.
    public func backward(
        dout: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, dresidual: UnsafeMutablePointer<Float>, n: Int, cache: HookCache,
        frozen: Bool = false, scale: Float = 1, gate: UnsafePointer<Float>? = nil, dgate: UnsafeMutablePointer<Float>? = nil,
        dactivation: UnsafePointer<Float>? = nil
    ) {
        let H = hidden
        let r = bottleneck
        let pre = buffer(cache, .pre, n * r)
        let act = buffer(cache, .act, n * r)
        let dact = buffer(cache, .dact, n * r)
        let dpre = buffer(cache, .dpre, n * r)
        let x: UnsafePointer<Float>? = frozen ? nil : UnsafePointer(buffer(cache, .x, n * H).data)  // only for the down weight's gradient
        if let dactivation {
            dact.data.update(from: dactivation, count: n * r)
        } else {
            dact.data.update(repeating: 0, count: n * r)
        }
        dpre.data.update(repeating: 0, count: n * r)
        VectorMath.add(dresidual, dout, n * H)
        var dy = dout
        if scale != 1 || gate != nil {
            // ∂L/∂up-output = s·g ⊙ dout;  ∂L/∂g = s·⟨dout, up-output⟩ per token
            let scaled = buffer(cache, .dscaled, n * H).data
            let delta = gate == nil ? nil : buffer(cache, .delta, n * H).data
            for i in 0..<n {
                let c = scale * (gate?[i] ?? 1)
                for j in 0..<H { scaled[i * H + j] = c * dout[i * H + j] }
                if let delta { dgate?[i] += scale * VectorMath.dot(dout + i * H, delta + i * H, H) }
            }
            dy = UnsafePointer(scaled)
        }
        Linear.backward(
            dx: dact.data, dw: frozen ? nil : upWeight.grad.data, db: frozen ? nil : upBias.grad.data, dy: dy, x: act.data,
            w: upWeight.value.data, n: n, inDim: r, outDim: H)
        activation.backward(dinp: dpre.data, dout: dact.data, inp: pre.data, count: n * r)
        Linear.backward(
            dx: dx, dw: frozen ? nil : downWeight.grad.data, db: frozen ? nil : downBias.grad.data, dy: dpre.data, x: x,
            w: downWeight.value.data, n: n, inDim: H, outDim: r)
    }
}
