/// One LoRA update of a frozen projection y = W·x (Hu et al. 2021):
///
///     y += s · g ⊙ (dropout(x) · Aᵀ) · Bᵀ        A [r, in], B [out, r], s = α/r
///
/// with B = 0 at the start (the model begins unchanged) and A ~ U(±1/√in) (PEFT's
/// `kaiming_uniform_(a=√5)` bound). g [n] is an optional per-token gate (UniPELT), else 1.
/// `y` may be a column block of a wider tensor (q, k or v inside the fused qkv) with row stride `ld`.
public final class LoRAModule {
    public let inDim: Int
    public let outDim: Int
    public let rank: Int
    public let scaling: Float
    public let dropout: Float
    public let a: Parameter  // [r, in]
    public let b: Parameter  // [out, r]

    enum Slot: Int, CacheSlot {
        case u  // [n, in] dropout(x), kept for A's gradient
        case t  // [n, r] u·Aᵀ
        case tg  // [n, r] g ⊙ t (gated only)
        case dt, du  // backward scratch
    }

    public init(prefix: String, inDim: Int, outDim: Int, rank: Int, scaling: Float, dropout: Float, rng: inout SeededRNG) {
        self.inDim = inDim
        self.outDim = outDim
        self.rank = rank
        self.scaling = scaling
        self.dropout = dropout
        a = Parameter(prefix + "A", Tensor(randomUniform: [rank, inDim], bound: 1 / Float(inDim).squareRoot(), rng: &rng), decay: true)
        b = Parameter(prefix + "B", Tensor(zeros: [outDim, rank]), decay: true)
    }

    public var parameters: [Parameter] { [a, b] }

    private func buffer(_ cache: HookCache, _ s: Slot, _ count: Int) -> Tensor { cache.tensor(self, s, count: count) }

    /// y[n, out] (row stride ld) += s·g ⊙ (dropout(x)·Aᵀ)·Bᵀ.
    func forward(
        x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, ld: Int, n: Int, training: Bool, frozen: Bool,
        gate: UnsafePointer<Float>?, cache: HookCache
    ) {
        var u = x
        if training, let d = cache.dropout, dropout > 0 {
            let buf = buffer(cache, .u, n * inDim)
            d.apply(
                out: buf.data, mask: cache.mask(self, Slot.u, count: n * inDim).data, inp: x, rowCount: n, width: inDim, p: dropout,
                perSequence: false)
            u = UnsafePointer(buf.data)
        } else if training && !frozen {
            buffer(cache, .u, n * inDim).data.update(from: x, count: n * inDim)
        }
        let t = buffer(cache, .t, n * rank)
        Linear.forward(y: t.data, x: u, w: a.value.data, b: nil, n: n, inDim: inDim, outDim: rank)
        var tg = UnsafePointer(t.data)
        if let gate {
            let g = buffer(cache, .tg, n * rank)
            for i in 0..<n { for j in 0..<rank { g.data[i * rank + j] = gate[i] * t.data[i * rank + j] } }
            tg = UnsafePointer(g.data)
        }
        BLAS.gemm(transB: true, m: n, n: outDim, k: rank, alpha: scaling, a: tg, lda: rank, b: b.value.data, ldb: rank, beta: 1, c: y, ldc: ld)
    }

    /// dx += ∂L/∂x, dgate += ∂L/∂g given dy [n, out] (row stride ld); A's and B's gradients
    /// accumulate unless `frozen`.
    func backward(
        dy: UnsafePointer<Float>, ld: Int, dx: UnsafeMutablePointer<Float>?, n: Int, frozen: Bool,
        gate: UnsafePointer<Float>?, dgate: UnsafeMutablePointer<Float>?, cache: HookCache
    ) {
        let t = buffer(cache, .t, n * rank)
        let tg = gate == nil ? t : buffer(cache, .tg, n * rank)
        let dt = buffer(cache, .dt, n * rank)
        let training = cache.dropout != nil
        if !frozen {
            // dB[out, r] += s · dyᵀ · (g ⊙ t)
            BLAS.gemm(
                transA: true, m: outDim, n: rank, k: n, alpha: scaling, a: dy, lda: ld, b: tg.data, ldb: rank, beta: 1, c: b.grad.data,
                ldc: rank)
        }
        // d(g ⊙ t)[n, r] = s · dy · B
        BLAS.gemm(m: n, n: rank, k: outDim, alpha: scaling, a: dy, lda: ld, b: b.value.data, ldb: rank, c: dt.data, ldc: rank)
        if let gate {
            for i in 0..<n {
                dgate?[i] += VectorMath.dot(dt.data + i * rank, t.data + i * rank, rank)
                for j in 0..<rank { dt.data[i * rank + j] *= gate[i] }
            }
        }
        if !frozen {
            // dA[r, in] += dtᵀ · u
            let u = buffer(cache, .u, n * inDim)
            BLAS.gemm(transA: true, m: rank, n: inDim, k: n, a: dt.data, lda: rank, b: u.data, ldb: inDim, beta: 1, c: a.grad.data, ldc: inDim)
        }
        guard let dx else { return }
        if training && dropout > 0 {
            let du = buffer(cache, .du, n * inDim)
            BLAS.gemm(m: n, n: inDim, k: rank, a: dt.data, lda: rank, b: a.value.data, ldb: inDim, c: du.data, ldc: inDim)
            Dropout.apply(out: du.data, inp: du.data, mask: cache.mask(self, Slot.u, count: n * inDim).data, count: n * inDim, p: dropout)
            VectorMath.add(dx, du.data, n * inDim)
        } else {
            BLAS.gemm(m: n, n: inDim, k: rank, a: dt.data, lda: rank, b: a.value.data, ldb: inDim, beta: 1, c: dx, ldc: inDim)
        }
    }

    /// W[out, in] += s·B·A: the update folded into a copy of the frozen weight (`--merge`).
    func merge(into w: UnsafeMutablePointer<Float>, ld: Int) {
        BLAS.gemm(m: outDim, n: inDim, k: rank, alpha: scaling, a: b.value.data, lda: rank, b: a.value.data, ldb: inDim, beta: 1, c: w, ldc: ld)
    }
}
