import CKernels

/// Multi-head scaled dot-product self-attention over packed sequences.
///
/// Q, K and V are read in place from the fused projection `qkv` [tokens, 3H] through GEMM
/// leading dimensions, so no per-head copies or allocations happen; the probabilities of every
/// (sequence, head) are kept in one preallocated buffer for the backward pass.
public enum SelfAttention {
    /// Floats needed to hold the attention probabilities of `batch`: Σₛ heads · Lₛ · (Lₛ + P)
    /// with P prefix vectors.
    public static func probabilityCount(_ batch: TokenBatch, heads: Int, prefix P: Int = 0) -> Int {
        (0..<batch.count).reduce(0) { $0 + heads * batch.length($1) * (batch.length($1) + P) }
    }

    /// Which tokens ask the queries: every token, or only each sequence's first token (the
    /// [CLS] row a classification head reads), whose context then goes to row s of a compact
    /// [sequences, H] result.
    public enum Queries: Sendable {
        case all, first
    }

    /// One (sequence, head) block of work, in sequence-then-head order.
    struct Block {
        /// The sequence, its first token row and its length L.
        let sequence: Int
        let row: Int
        let length: Int
        /// Query rows (L, or 1 for `.first`) and the context row of the first of them.
        let queries: Int
        let contextRow: Int
        /// First column of the head inside an [tokens, H] matrix (h·d).
        let column: Int
        /// Start of the block's [queries, P + L] probabilities in the probability buffer.
        let offset: Int
    }

    static func blocks(_ batch: TokenBatch, heads: Int, headSize d: Int, prefix P: Int, queries: Queries) -> [Block] {
        var out: [Block] = []
        var o = 0
        for s in 0..<batch.count {
            let L = batch.length(s)
            let first = queries == .first
            for h in 0..<heads {
                out.append(
                    Block(
                        sequence: s, row: batch.offsets[s], length: L, queries: first ? 1 : L, contextRow: first ? s : batch.offsets[s],
                        column: h * d, offset: o))
                o += (first ? 1 : L) * (L + P)
            }
        }
        return out
    }

    /// ctx[tokens, H] = concatₕ dropout(softmax(Qₕ [PKₕ; Kₕ]ᵀ / √d)) [PVₕ; Vₕ], per sequence,
    /// where the optional `prefix` prepends P key and value vectors (prefix tuning) that every
    /// token attends to. `att` receives the probabilities, sequence by sequence, head by head,
    /// each [L, P + L] (nil: they are not kept — inference — and each block uses `scratch`).
    /// `scratch` holds 2·maxLength·(maxLength + P) floats per slot, `slots` of them. With
    /// `dropout` (p, mask buffer laid out like `att`) the masked probabilities multiply the values;
    /// each (sequence, head) block draws its mask from its own generator, seeded from one draw
    /// of `rng`, the sequence's example id and the head. With `queries: .first` only each
    /// sequence's first token queries (Q is read from its row alone) and ctx is [sequences, H].
    public static func forward(
        ctx: UnsafeMutablePointer<Float>, att: UnsafeMutablePointer<Float>?,
        qkv: UnsafePointer<Float>, batch: TokenBatch, heads: Int, headSize d: Int, queries: Queries = .all, prefix: AttentionPrefix? = nil,
        dropout: (p: Float, mask: UnsafeMutablePointer<UInt8>)? = nil, scratch: UnsafeMutablePointer<Float>, slots: Int,
        rng: inout SeededRNG
    ) {
        let H = heads * d
        let ld = 3 * H
        let P = prefix?.count ?? 0
        let scale = 1 / Float(d).squareRoot()
        let blocks = blocks(batch, heads: heads, headSize: d, prefix: P, queries: queries)
        let maxL = batch.maxLength
        let stride = maxL * (maxL + P)
        let seed = dropout == nil ? 0 : rng.next()
        // (sequence, head) blocks are independent: they run on the pool's threads, each thread
        // with its own scratch.
        Profile.measure(.attention) {
            Parallel.run(tasks: blocks.count, slots: slots) { item, slot in
                let b = blocks[item]
                let L = b.length
                let M = b.queries
                let W = P + L
                let offset = b.offset
                let q = qkv + b.row * ld + b.column
                let k = q + H
                let v = q + 2 * H
                let p = att.map { $0 + offset } ?? scratch + slot * 2 * stride
                // scores[M, P + L] = Q[M, d] · [PK; K]ᵀ (scaled inside the softmax)
                if let prefix {
                    BLAS.gemmSerial(transB: true, m: M, n: P, k: d, a: q, lda: ld, b: prefix.keys + b.column, ldb: H, c: p, ldc: W)
                }
                BLAS.gemmSerial(transB: true, m: M, n: L, k: d, a: q, lda: ld, b: k, ldb: ld, c: p + P, ldc: W)
                afk_softmax(p, M, W, W, scale)
                var used = UnsafePointer(p)
                if let dropout {
                    // The first query row draws what it draws when every token queries.
                    var blockRNG = DropoutState.generator(seed, example: batch.exampleIDs[b.sequence] &* heads &+ item % heads)
                    let dropped = scratch + slot * 2 * stride + stride
                    Dropout.forward(out: dropped, mask: dropout.mask + offset, inp: p, count: M * W, p: dropout.p, rng: &blockRNG)
                    used = UnsafePointer(dropped)
                }
                // ctx[M, d] (columns h·d ..< (h+1)·d of [M, H]) = P[M, P + L] · [PV; V][P + L, d]
                let c = ctx + b.contextRow * H + b.column
                if let prefix {
                    let pv = prefix.values + (prefix.valuesPerSequence ? b.sequence * P * H : 0) + b.column
                    BLAS.gemmSerial(m: M, n: d, k: P, a: used, lda: W, b: pv, ldb: H, c: c, ldc: H)
                }
                BLAS.gemmSerial(m: M, n: d, k: L, a: used + P, lda: W, b: v, ldb: ld, beta: P > 0 ? 1 : 0, c: c, ldc: H)
            }
        }
    }

    /// Where the gradient of a prefix goes: dkeys [P, H] and dvalues ([P, H], or [sequences, P, H]
    /// when the prefix's values are per sequence) receive ∂L/∂(prefix) (overwritten), using
    /// `scratch` of 2·P·d floats per (sequence, head) block.
    public struct PrefixGradient {
        public let prefix: AttentionPrefix
        public let dkeys: UnsafeMutablePointer<Float>
        public let dvalues: UnsafeMutablePointer<Float>
        public let scratch: UnsafeMutablePointer<Float>
    }

    /// Floats of scratch a prefix gradient needs for `batch`.
    public static func prefixScratchCount(_ batch: TokenBatch, heads: Int, headSize d: Int, prefix P: Int) -> Int {
        batch.count * heads * 2 * P * d
    }

    /// dqkv[tokens, 3H] = ∂L/∂qkv given dctx (overwritten, not accumulated).
    /// `scratch` holds 3·maxLength·(maxLength + P) floats per thread; `mask` is the forward's
    /// dropout mask, if any. With `queries: .first` (as the forward) dctx is [sequences, H] and
    /// only the first token rows of dqkv's Q columns are written.
    public static func backward(
        dqkv: UnsafeMutablePointer<Float>, dctx: UnsafePointer<Float>, att: UnsafePointer<Float>,
        mask: UnsafePointer<UInt8>?, dropoutP: Float = 0, qkv: UnsafePointer<Float>, batch: TokenBatch, heads: Int, headSize d: Int,
        queries: Queries = .all, prefix: PrefixGradient? = nil, scratch: UnsafeMutablePointer<Float>, scratchSlots: Int
    ) {
        let H = heads * d
        let ld = 3 * H
        let P = prefix?.prefix.count ?? 0
        let scale = 1 / Float(d).squareRoot()
        let blocks = blocks(batch, heads: heads, headSize: d, prefix: P, queries: queries)
        let maxL = batch.maxLength
        let stride = maxL * (maxL + P)
        Profile.measure(.attention) {
            Parallel.run(tasks: blocks.count, slots: scratchSlots) { item, slot in
                let pd = scratch + slot * 3 * stride
                let ds = pd + stride
                let dsm = ds + stride  // P′, dP, dS
                let b = blocks[item]
                let L = b.length
                let M = b.queries
                let W = P + L
                let offset = b.offset
                let q = qkv + b.row * ld + b.column
                let k = q + H
                let v = q + 2 * H
                let dq = dqkv + b.row * ld + b.column
                let dk = dq + H
                let dv = dq + 2 * H
                let dc = dctx + b.contextRow * H + b.column
                let p = att + offset
                var used = p
                if let mask {
                    Dropout.apply(out: pd, inp: p, mask: mask + offset, count: M * W, p: dropoutP)
                    used = UnsafePointer(pd)
                }
                // dV[L, d] = P′[:, P:]ᵀ · dctx;  dPV[P, d] = P′[:, :P]ᵀ · dctx
                BLAS.gemmSerial(transA: true, m: L, n: d, k: M, a: used + P, lda: W, b: dc, ldb: H, c: dv, ldc: ld)
                // dP′[M, P + L] = dctx · [PV; V]ᵀ, then through the dropout mask
                BLAS.gemmSerial(transB: true, m: M, n: L, k: d, a: dc, lda: H, b: v, ldb: ld, c: ds + P, ldc: W)
                if let g = prefix {
                    let blockGrad = g.scratch + item * 2 * P * d
                    let pv = g.prefix.values + (g.prefix.valuesPerSequence ? b.sequence * P * H : 0) + b.column
                    BLAS.gemmSerial(transA: true, m: P, n: d, k: M, a: used, lda: W, b: dc, ldb: H, c: blockGrad + P * d, ldc: d)
                    BLAS.gemmSerial(transB: true, m: M, n: P, k: d, a: dc, lda: H, b: pv, ldb: H, c: ds, ldc: W)
                }
                if let mask { Dropout.apply(out: ds, inp: ds, mask: mask + offset, count: M * W, p: dropoutP) }
                // dS = scale · P ⊙ (dP − ⟨dP, P⟩): gradient w.r.t. the unscaled scores
                Softmax.backwardOverwrite(dinp: dsm, dout: ds, out: p, n: M, c: W, ld: W, scale: scale)
                // dQ = dS[:, P:] · K (+ dS[:, :P] · PK);  dK = dS[:, P:]ᵀ · Q;  dPK = dS[:, :P]ᵀ · Q
                BLAS.gemmSerial(m: M, n: d, k: L, a: dsm + P, lda: W, b: k, ldb: ld, c: dq, ldc: ld)
                BLAS.gemmSerial(transA: true, m: L, n: d, k: M, a: dsm + P, lda: W, b: q, ldb: ld, c: dk, ldc: ld)
                if let g = prefix {
                    let blockGrad = g.scratch + item * 2 * P * d
                    BLAS.gemmSerial(m: M, n: d, k: P, a: dsm, lda: W, b: g.prefix.keys + b.column, ldb: H, beta: 1, c: dq, ldc: ld)
                    BLAS.gemmSerial(transA: true, m: P, n: d, k: M, a: dsm, lda: W, b: q, ldb: ld, c: blockGrad, ldc: d)
                }
            }
            // The blocks' prefix gradients, summed in block order (the same at any thread count).
            if let g = prefix {
                let S = batch.count
                g.dkeys.update(repeating: 0, count: P * H)
                g.dvalues.update(repeating: 0, count: (g.prefix.valuesPerSequence ? S : 1) * P * H)
                for (item, b) in blocks.enumerated() {
                    let blockGrad = g.scratch + item * 2 * P * d
                    let dvBase = g.dvalues + (g.prefix.valuesPerSequence ? b.sequence * P * H : 0)
                    for j in 0..<P {
                        VectorMath.add(g.dkeys + j * H + b.column, blockGrad + j * d, d)
                        VectorMath.add(dvBase + j * H + b.column, blockGrad + (P + j) * d, d)
                    }
                }
            }
        }
    }
}
