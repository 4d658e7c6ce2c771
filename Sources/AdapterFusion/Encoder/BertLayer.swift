import Foundation

/// One encoder layer, forward beside backward: the points a hook may change, the attention
/// sublayer's projections and their gradients. The sublayer outputs (FFN, LayerNorms, adapter
/// sites) are in `BertSublayers.swift`; the [CLS]-only top layer in `BertFirstToken.swift`.
extension BertEncoder {
    /// Lets the hook change point `p` of layer `l` (y in place, x its input), if it does.
    func point(
        _ hook: LayerHook?, _ l: Int, _ p: LayerPoint, _ x: Tensor?, _ y: Tensor, n: Int, training: Bool, _ cache: HookCache
    ) {
        if let changer = hook as? ProjectionHook, changer.changes(layer: l, point: p) {
            changer.forward(layer: l, point: p, x: x.map { UnsafePointer($0.data) }, y: y.data, n: n, training: training, cache: cache)
        }
    }

    /// One post-LN transformer layer: x → LN(x + hook(Attn(x))) → LN(· + hook(FFN(·))), where a
    /// hook may also read LN(h + x) of its sublayer output h (see `HookInput`), change the
    /// projections and LayerNorm outputs it names (`LayerPoint`) and prepend attention prefixes.
    /// Its activations go to run `run` of the workspace.
    func layerForward(
        _ l: Int, input x: Tensor, output: Tensor, _ batch: TokenBatch,
        _ ws: EncoderWorkspace, _ hook: LayerHook?, _ dropout: DropoutState?, run: Int
    ) {
        let n = batch.tokenCount
        let H = config.hiddenSize
        let w = weights.layers[l]
        let a = ws.activations(l, run: run)
        let training = dropout != nil
        let cache = ws.hookCache
        // qkv[N, 3H] = x · Wqkvᵀ + b;  ctx = attention(qkv, prefix)
        Linear.forward(y: a.qkv.data, x: x.data, w: w.qkvWeight.data, b: w.qkvBias.data, n: n, inDim: H, outDim: 3 * H)
        point(hook, l, .qkv, x, a.qkv, n: n, training: training, cache)
        let prefix = (hook as? PrefixHook)?.prefix(layer: l, x: x.data, batch: batch, training: training, cache: cache)
        a.prefix = prefix
        attention(a, batch, ws, dropout, prefix: prefix, queries: .all)
        sublayersForward(l, residual: x, output: output, batch, ws, hook, dropout, a)
    }

    /// ws.ctx = attention over a.qkv (with dropout in training); a training workspace keeps the
    /// probabilities in `a` for the backward pass.
    func attention(
        _ a: LayerActivations, _ batch: TokenBatch, _ ws: EncoderWorkspace, _ dropout: DropoutState?, prefix: AttentionPrefix?,
        queries: SelfAttention.Queries
    ) {
        var noRNG = SeededRNG(seed: 0)
        // Inference keeps no probabilities: each block's live in its thread's scratch.
        let att = ws.training ? a.att.data : nil
        if let dropout, dropout.attention > 0 {
            SelfAttention.forward(
                ctx: ws.ctx.data, att: att, qkv: a.qkv.data, batch: batch,
                heads: config.numAttentionHeads, headSize: config.headSize, queries: queries, prefix: prefix,
                dropout: (dropout.attention, a.attMask.data), scratch: ws.scratch.data, slots: ws.scratchSlots, rng: &dropout.rng)
        } else {
            SelfAttention.forward(
                ctx: ws.ctx.data, att: att, qkv: a.qkv.data, batch: batch,
                heads: config.numAttentionHeads, headSize: config.headSize, queries: queries, prefix: prefix,
                scratch: ws.scratch.data, slots: ws.scratchSlots, rng: &noRNG)
        }
    }

    /// Backward of layer `l` (run `run`): d holds ∂L/∂(layer output) on entry and ∂L/∂(layer
    /// input) on return, unless the pass stops inside this layer (`stop`).
    /// `extra`: gradients of other uses of this run's FFN output h (after its dropout) and FFN
    /// input x (see `LayerRunner.outputSite`), added where h and x get theirs.
    func layerBackward(
        _ l: Int, _ d: Tensor, _ batch: TokenBatch, _ ws: EncoderWorkspace, _ hook: LayerHook?, _ dropout: DropoutState, run: Int,
        stop: BackwardStop?, extra: (dh: Tensor, dx: Tensor)? = nil
    ) {
        let n = batch.tokenCount
        let H = config.hiddenSize
        let a = ws.activations(l, run: run)
        let w = weights.layers[l]
        let cache = ws.hookCache
        guard sublayersBackward(l, d, batch, ws, hook, dropout, a, stop: stop, extra: extra) else { return }
        var prefixGrad: SelfAttention.PrefixGradient?
        if hook != nil, let prefix = a.prefix {
            let P = prefix.count
            Tensor.ensure(&ws.dPrefixKeys, P * H)
            Tensor.ensure(&ws.dPrefixValues, batch.count * P * H)
            Tensor.ensure(
                &ws.prefixScratch, SelfAttention.prefixScratchCount(batch, heads: config.numAttentionHeads, headSize: config.headSize, prefix: P))
            prefixGrad = .init(prefix: prefix, dkeys: ws.dPrefixKeys.data, dvalues: ws.dPrefixValues.data, scratch: ws.prefixScratch.data)
        }
        attentionBackward(a, batch, ws, dropout, prefix: prefixGrad, queries: .all)
        if let prefixed = hook as? PrefixHook, let g = prefixGrad {
            prefixed.prefixBackward(layer: l, dkeys: g.dkeys, dvalues: g.dvalues, dx: d.data, batch: batch, cache: cache)
        }
        projectionBackward(hook, l, .qkv, ws.dQKV, d, w.qkvWeight, inDim: H, outDim: 3 * H, n: n, cache)
    }

    /// Turns dy into ∂L/∂(point before the change) and adds ∂L/∂x to dx, if the hook changes `p`.
    func pointBackward(_ hook: LayerHook?, _ l: Int, _ p: LayerPoint, _ dy: Tensor, _ dx: Tensor?, n: Int, _ cache: HookCache) {
        if let changer = hook as? ProjectionHook, changer.changes(layer: l, point: p) {
            changer.backward(layer: l, point: p, dy: dy.data, dx: dx?.data, n: n, cache: cache)
        }
    }

    /// y = x·Wᵀ (+ b), changed by the hook at `p`: dx += ∂L/∂x through the change and W.
    func projectionBackward(
        _ hook: LayerHook?, _ l: Int, _ p: LayerPoint, _ dy: Tensor, _ dx: Tensor, _ weight: Tensor, inDim: Int, outDim: Int, n: Int,
        _ cache: HookCache
    ) {
        pointBackward(hook, l, p, dy, dx, n: n, cache)
        Linear.backward(dx: dx.data, dw: nil, db: nil, dy: dy.data, x: nil, w: weight.data, n: n, inDim: inDim, outDim: outDim)
    }

    /// ws.dQKV = ∂L/∂qkv given ws.dCtx (and the prefix's gradient into `prefix`).
    func attentionBackward(
        _ a: LayerActivations, _ batch: TokenBatch, _ ws: EncoderWorkspace, _ dropout: DropoutState,
        prefix: SelfAttention.PrefixGradient?, queries: SelfAttention.Queries
    ) {
        SelfAttention.backward(
            dqkv: ws.dQKV.data, dctx: ws.dCtx.data, att: a.att.data,
            mask: dropout.attention > 0 ? UnsafePointer(a.attMask.data) : nil,
            dropoutP: dropout.attention, qkv: a.qkv.data,
            batch: batch, heads: config.numAttentionHeads, headSize: config.headSize, queries: queries, prefix: prefix,
            scratch: ws.scratch.data, scratchSlots: ws.scratchSlots)
    }
}
