/// Multi-head scaled dot-product self-attention over packed sequences.
///
/// Q, K and V are read in place from the fused projection `qkv` [tokens, 3H] through GEMM
/// leading dimensions, so no per-head copies or allocations happen; the probabilities of every
/// (sequence, head) are kept in one preallocated buffer for the backward pass.
public enum SelfAttention {
    /// Floats needed to hold the attention probabilities of `batch`: Σₛ heads · Lₛ².
    public static func probabilityCount(_ batch: TokenBatch, heads: Int) -> Int {
        (0..<batch.count).reduce(0) { $0 + heads * batch.length($1) * batch.length($1) }
    }

    /// ctx[tokens, H] = concatₕ softmax(Qₕ Kₕᵀ / √d) Vₕ, per sequence. `att` receives the
    /// probabilities, sequence by sequence, head by head, each [L, L] row-major.
    public static func forward(
        ctx: UnsafeMutablePointer<Float>, att: UnsafeMutablePointer<Float>,
        qkv: UnsafePointer<Float>, batch: TokenBatch, heads: Int, headSize d: Int
    ) {
        let H = heads * d, ld = 3 * H
        let scale = 1 / Float(d).squareRoot()
        var p = att
        for s in 0..<batch.count {
            let o = batch.offsets[s], L = batch.length(s)
            for h in 0..<heads {
                let q = qkv + o * ld + h * d, k = q + H, v = q + 2 * H
                // scores[L, L] = Q[L, d] · K[L, d]ᵀ (scaled in the softmax)
                BLAS.gemm(transB: true, m: L, n: L, k: d, a: q, lda: ld, b: k, ldb: ld, c: p, ldc: L)
                Softmax.forward(out: p, inp: p, n: L, c: L, ld: L, scale: scale)
                // ctx[L, d] (columns h·d ..< (h+1)·d of [L, H]) = P[L, L] · V[L, d]
                BLAS.gemm(m: L, n: d, k: L, a: p, lda: L, b: v, ldb: ld, c: ctx + o * H + h * d, ldc: H)
                p += L * L
            }
        }
    }
}
