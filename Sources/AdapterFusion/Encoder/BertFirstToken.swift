import Foundation

/// The top layer computed for the first token of each sequence only (what a head reads): K and
/// V for every token, the rest for the [CLS] rows. Forward beside backward.
extension BertEncoder {
    /// The top layer when only each sequence's first token is wanted from it: keys and values
    /// of every token, then the query, attention and everything after it for the S first rows
    /// (`layerForward`'s values on those rows); output [S, H]. Not for hooks that change the
    /// layer's inside.
    func firstTokenLayerForward(
        _ l: Int, input x: Tensor, output: Tensor, _ batch: TokenBatch, _ ws: EncoderWorkspace, _ hook: LayerHook?,
        _ dropout: DropoutState?
    ) {
        let n = batch.tokenCount
        let S = batch.count
        let H = config.hiddenSize
        let w = weights.layers[l]
        let a = ws.activations(l, run: 0)
        let cache = ws.hookCache
        let xFirst = cache.tensor(self, Slot.firstRowsInput, count: S * H)  // [S, H] first rows of x: the residual
        let q = cache.tensor(self, Slot.firstRowsQuery, count: S * H)
        for s in 0..<S { (xFirst.data + s * H).update(from: x.data + batch.offsets[s] * H, count: H) }
        // [K | V][N, 2H] = x · W[H..<3H]ᵀ + b[H..<3H], into columns H..<3H of qkv
        for r in 0..<n { (a.qkv.data + r * 3 * H + H).update(from: w.qkvBias.data + H, count: 2 * H) }
        BLAS.gemm(
            transB: true, m: n, n: 2 * H, k: H, a: x.data, lda: H, b: w.qkvWeight.data + H * H, ldb: H, beta: 1,
            c: a.qkv.data + H, ldc: 3 * H)
        // Q[S, H] = xFirst · Wqᵀ + bq, into the Q columns of the first rows
        Linear.forward(y: q.data, x: xFirst.data, w: w.qkvWeight.data, b: w.qkvBias.data, n: S, inDim: H, outDim: H)
        for s in 0..<S { (a.qkv.data + batch.offsets[s] * 3 * H).update(from: q.data + s * H, count: H) }
        a.prefix = nil
        attention(a, batch, ws, dropout, prefix: nil, queries: .first)
        // The rest runs on one-token sequences with the same example ids (same dropout masks).
        let full = dropout?.batch
        let first = batch.firstTokens
        dropout?.batch = first
        sublayersForward(l, residual: xFirst, output: output, first, ws, hook, dropout, a)
        dropout?.batch = full
    }

    /// Backward of `firstTokenLayerForward`: d holds ∂L/∂output [S, H] on entry and ∂L/∂input
    /// [tokens, H] on return, unless the pass stops inside this layer.
    func firstTokenLayerBackward(
        _ l: Int, _ d: Tensor, _ batch: TokenBatch, _ ws: EncoderWorkspace, _ hook: LayerHook?, _ dropout: DropoutState,
        stop: BackwardStop?
    ) {
        let n = batch.tokenCount
        let S = batch.count
        let H = config.hiddenSize
        let a = ws.activations(l, run: 0)
        let w = weights.layers[l]
        let cache = ws.hookCache
        guard sublayersBackward(l, d, batch.firstTokens, ws, hook, dropout, a, stop: stop, extra: nil) else { return }
        // d[S, H] = ∂L/∂(first rows of x) through the residual; ws.dCtx[S, H] = ∂L/∂ctx
        let dFirst = cache.tensor(self, Slot.firstRowsGradient, count: S * H)
        let dq = cache.tensor(self, Slot.firstRowsQueryGradient, count: S * H)
        dFirst.data.update(from: d.data, count: S * H)
        attentionBackward(a, batch, ws, dropout, prefix: nil, queries: .first)
        // x feeds K and V at every row:  d[N, H] = [dK | dV] · W[H..<3H]
        BLAS.gemm(
            m: n, n: H, k: 2 * H, a: ws.dQKV.data + H, lda: 3 * H, b: w.qkvWeight.data + H * H, ldb: H, c: d.data, ldc: H)
        // … and Q and the residual at the first rows:  dFirst += dQ · Wq
        for s in 0..<S { (dq.data + s * H).update(from: ws.dQKV.data + batch.offsets[s] * 3 * H, count: H) }
        Linear.backward(dx: dFirst.data, dw: nil, db: nil, dy: dq.data, x: nil, w: w.qkvWeight.data, n: S, inDim: H, outDim: H)
        for s in 0..<S { VectorMath.add(d.data + batch.offsets[s] * H, dFirst.data + s * H, H) }
    }
}
