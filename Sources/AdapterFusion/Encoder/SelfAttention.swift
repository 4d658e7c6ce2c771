import CKernels

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

    /// One (sequence, head) block of work, in sequence-then-head order.
    struct Block {
        /// First token row of the sequence, and its length L.
        let row: Int
        let length: Int
        /// First column of the head inside an [tokens, H] matrix (h·d).
        let column: Int
        /// Start of the block's [L, L] probabilities in the probability buffer.
        let offset: Int
    }

    static func blocks(_ batch: TokenBatch, heads: Int, headSize d: Int) -> [Block] {
        var out: [Block] = []
        var o = 0
        for s in 0..<batch.count {
            let L = batch.length(s)
            for h in 0..<heads {
                out.append(Block(row: batch.offsets[s], length: L, column: h * d, offset: o))
                o += L * L
            }
        }
        return out
    }

    /// ctx[tokens, H] = concatₕ dropout(softmax(Qₕ Kₕᵀ / √d)) Vₕ, per sequence.
    /// `att` receives the probabilities P, sequence by sequence, head by head, each [L, L].
    /// With `dropout` (p, mask buffer laid out like `att`, scratch of maxLength² floats),
    /// P ⊙ mask is what multiplies V; each (sequence, head) block draws its mask from its own
    /// generator, seeded from one draw of `rng`, the sequence's example id and the head.
    public static func forward(
        ctx: UnsafeMutablePointer<Float>, att: UnsafeMutablePointer<Float>,
        qkv: UnsafePointer<Float>, batch: TokenBatch, heads: Int, headSize d: Int,
        dropout: (p: Float, mask: UnsafeMutablePointer<UInt8>, scratch: UnsafeMutablePointer<Float>, slots: Int)? = nil,
        rng: inout SeededRNG
    ) {
        let H = heads * d
        let ld = 3 * H
        let scale = 1 / Float(d).squareRoot()
        let blocks = blocks(batch, heads: heads, headSize: d)
        let maxL = batch.maxLength
        let seed = dropout == nil ? 0 : rng.next()
        // (sequence, head) blocks are independent: they run on the pool's threads, each thread
        // with its own maxLength² of scratch.
        Profile.measure(.attention) {
            Parallel.run(tasks: blocks.count, slots: dropout?.slots ?? 255) { item, slot in
                let b = blocks[item]
                let L = b.length
                let offset = b.offset
                let q = qkv + b.row * ld + b.column
                let k = q + H
                let v = q + 2 * H
                let p = att + offset
                // scores[L, L] = Q[L, d] · K[L, d]ᵀ (scaled inside the softmax)
                BLAS.gemmSerial(transB: true, m: L, n: L, k: d, a: q, lda: ld, b: k, ldb: ld, c: p, ldc: L)
                afk_softmax(p, L, L, L, scale)
                var used = UnsafePointer(p)
                if let dropout {
                    var blockRNG = DropoutState.generator(seed, example: batch.exampleIDs[item / heads] &* heads &+ item % heads)
                    let scratch = dropout.scratch + slot * maxL * maxL
                    Dropout.forward(out: scratch, mask: dropout.mask + offset, inp: p, count: L * L, p: dropout.p, rng: &blockRNG)
                    used = UnsafePointer(scratch)
                }
                // ctx[L, d] (columns h·d ..< (h+1)·d of [L, H]) = P[L, L] · V[L, d]
                BLAS.gemmSerial(m: L, n: d, k: L, a: used, lda: L, b: v, ldb: ld, c: ctx + b.row * H + b.column, ldc: H)
            }
        }
    }

    /// dqkv[tokens, 3H] = ∂L/∂qkv given dctx (overwritten, not accumulated).
    /// `scratch` holds 3·maxLength² floats per thread; `mask` is the forward's dropout mask, if any.
    public static func backward(
        dqkv: UnsafeMutablePointer<Float>, dctx: UnsafePointer<Float>, att: UnsafePointer<Float>,
        mask: UnsafePointer<UInt8>?, dropoutP: Float = 0, qkv: UnsafePointer<Float>, batch: TokenBatch, heads: Int, headSize d: Int,
        scratch: UnsafeMutablePointer<Float>, scratchSlots: Int
    ) {
        let H = heads * d
        let ld = 3 * H
        let scale = 1 / Float(d).squareRoot()
        let blocks = blocks(batch, heads: heads, headSize: d)
        let maxL = batch.maxLength
        Profile.measure(.attention) {
            Parallel.run(tasks: blocks.count, slots: scratchSlots) { item, slot in
                let pd = scratch + slot * 3 * maxL * maxL
                let ds = pd + maxL * maxL
                let dsm = ds + maxL * maxL  // P′, dP, dS
                let b = blocks[item]
                let L = b.length
                let offset = b.offset
                let q = qkv + b.row * ld + b.column
                let k = q + H
                let v = q + 2 * H
                let dq = dqkv + b.row * ld + b.column
                let dk = dq + H
                let dv = dq + 2 * H
                let dc = dctx + b.row * H + b.column
                let p = att + offset
                var used = p
                if let mask {
                    Dropout.apply(out: pd, inp: p, mask: mask + offset, count: L * L, p: dropoutP)
                    used = UnsafePointer(pd)
                }
                // dV[L, d] = P′ᵀ · dctx
                BLAS.gemmSerial(transA: true, m: L, n: d, k: L, a: used, lda: L, b: dc, ldb: H, c: dv, ldc: ld)
                // dP′[L, L] = dctx · Vᵀ, then through the dropout mask
                BLAS.gemmSerial(transB: true, m: L, n: L, k: d, a: dc, lda: H, b: v, ldb: ld, c: ds, ldc: L)
                if let mask { Dropout.apply(out: ds, inp: ds, mask: mask + offset, count: L * L, p: dropoutP) }
                // dS = scale · P ⊙ (dP − ⟨dP, P⟩): gradient w.r.t. the unscaled QKᵀ
                Softmax.backwardOverwrite(dinp: dsm, dout: ds, out: p, n: L, c: L, ld: L, scale: scale)
                // dQ = dS · K;  dK = dSᵀ · Q
                BLAS.gemmSerial(m: L, n: d, k: L, a: dsm, lda: L, b: k, ldb: ld, c: dq, ldc: ld)
                BLAS.gemmSerial(transA: true, m: L, n: d, k: L, a: dsm, lda: L, b: q, ldb: ld, c: dk, ldc: ld)
            }
        }
    }
}
