import Foundation

/// A layer's two sublayer outputs (attention output and FFN) with their LayerNorms and the
/// adapter sites between them, forward beside backward.
extension BertEncoder {
    /// From the attention context ws.ctx [n, H] (n = the batch's tokens) to the layer output:
    /// attention output projection and sublayer, LayerNorm, FFN and its sublayer, LayerNorm.
    func sublayersForward(
        _ l: Int, residual x: Tensor, output: Tensor, _ batch: TokenBatch, _ ws: EncoderWorkspace, _ hook: LayerHook?,
        _ dropout: DropoutState?, _ a: LayerActivations
    ) {
        let n = batch.tokenCount
        let H = config.hiddenSize
        let F = config.intermediateSize
        let w = weights.layers[l]
        let eps = config.layerNormEps
        let training = dropout != nil
        let cache = ws.hookCache
        // attnProj = dropout(ctx · Woᵀ + bo);  attnSum = hook(attnProj) + x;  attnOut = LN(attnSum)
        Linear.forward(y: ws.attnProj.data, x: ws.ctx.data, w: w.attnOutWeight.data, b: w.attnOutBias.data, n: n, inDim: H, outDim: H)
        point(hook, l, .attnProj, ws.ctx, ws.attnProj, n: n, training: training, cache)
        sublayerOutput(l, .attention, proj: ws.attnProj, mask: a.attnProjMask, sum: a.attnSum, residual: x, n: n, hook, dropout, a, cache)
        LayerNorm.forward(
            out: ws.attnOut.data, mean: a.attnMean.data, rstd: a.attnRstd.data, inp: a.attnSum.data,
            weight: w.attnLNWeight.data, bias: w.attnLNBias.data, n: n, c: H, eps: eps)
        point(hook, l, .attnNorm, nil, ws.attnOut, n: n, training: training, cache)
        // ffnPre[N, F] = attnOut · W1ᵀ + b1;  ffnAct = gelu(ffnPre)  (bias added inside the GELU pass;
        // in place in inference, where nothing reads ffnPre again)
        Linear.forward(y: a.ffnPre.data, x: ws.attnOut.data, w: w.ffnInWeight.data, b: nil, n: n, inDim: H, outDim: F)
        point(hook, l, .ffnPre, ws.attnOut, a.ffnPre, n: n, training: training, cache)
        let act = ws.training ? ws.ffnAct : a.ffnPre
        GELU.forward(out: act.data, pre: a.ffnPre.data, bias: w.ffnInBias.data, n: n, c: F)
        point(hook, l, .ffnAct, nil, act, n: n, training: training, cache)
        // ffnProj = dropout(ffnAct · W2ᵀ + b2);  ffnSum = hook(ffnProj) + attnOut;  output = LN(ffnSum)
        Linear.forward(y: ws.ffnProj.data, x: act.data, w: w.ffnOutWeight.data, b: w.ffnOutBias.data, n: n, inDim: F, outDim: H)
        point(hook, l, .ffnProj, act, ws.ffnProj, n: n, training: training, cache)
        sublayerOutput(l, .output, proj: ws.ffnProj, mask: a.ffnProjMask, sum: a.ffnSum, residual: ws.attnOut, n: n, hook, dropout, a, cache)
        LayerNorm.forward(
            out: output.data, mean: a.ffnMean.data, rstd: a.ffnRstd.data, inp: a.ffnSum.data,
            weight: w.ffnLNWeight.data, bias: w.ffnLNBias.data, n: n, c: H, eps: eps)
        point(hook, l, .outNorm, nil, output, n: n, training: training, cache)
    }

    /// sum = hook(dropout(proj)) + residual, the input of a sublayer's LayerNorm.
    func sublayerOutput(
        _ l: Int, _ site: AdapterSite, proj: Tensor, mask: Mask, sum: Tensor,
        residual: Tensor, n: Int, _ hook: LayerHook?, _ dropout: DropoutState?, _ a: LayerActivations, _ cache: HookCache
    ) {
        let count = n * config.hiddenSize
        if let dropout, dropout.hidden > 0 {
            dropout.apply(
                out: proj.data, mask: mask.data, inp: proj.data, rowCount: n, width: config.hiddenSize, p: dropout.hidden, perSequence: false)
        }
        if let hook, hook.acts(layer: l, site: site) {
            let normed =
                hook.readsNormalized(layer: l, site: site)
                ? normalizedInput(l, site, proj: proj, residual: residual, n: n, a, cache) : nil
            hook.forward(
                layer: l, site: site, input: HookInput(h: proj.data, normed: normed, x: residual.data), out: sum.data, n: n,
                training: dropout != nil, cache: cache)
        } else {
            sum.data.update(from: proj.data, count: count)
        }
        VectorMath.add(sum.data, residual.data, count)
    }

    /// The sublayer's LayerNorm parameters.
    func norm(_ l: Int, _ site: AdapterSite) -> (weight: Tensor, bias: Tensor) {
        let w = weights.layers[l]
        return site == .attention ? (w.attnLNWeight, w.attnLNBias) : (w.ffnLNWeight, w.ffnLNBias)
    }

    /// LN(h + x) at a site where a hook reads it: its input and statistics, kept beside the
    /// layer's activations of this run (backward reads them).
    enum NormSlot: CacheSlot {
        case sum(AdapterSite)
        case mean(AdapterSite)
        case rstd(AdapterSite)
    }

    /// z = LN(h + x) [n, H] with the sublayer's own LayerNorm, for hooks that read it.
    func normalizedInput(
        _ l: Int, _ site: AdapterSite, proj: Tensor, residual: Tensor, n: Int, _ a: LayerActivations, _ cache: HookCache
    ) -> UnsafePointer<Float> {
        let H = config.hiddenSize
        let sum = cache.tensor(a, NormSlot.sum(site), count: n * H)
        let mean = cache.tensor(a, NormSlot.mean(site), count: n)
        let rstd = cache.tensor(a, NormSlot.rstd(site), count: n)
        let z = cache.tensor(self, Slot.normed, count: n * H)  // read by the hooks' forward only (they keep copies)
        sum.data.update(from: proj.data, count: n * H)
        VectorMath.add(sum.data, residual.data, n * H)
        let (w, b) = norm(l, site)
        LayerNorm.forward(
            out: z.data, mean: mean.data, rstd: rstd.data, inp: sum.data, weight: w.data, bias: b.data, n: n, c: H,
            eps: config.layerNormEps)
        return UnsafePointer(z.data)
    }

    /// Backward of `sublayersForward` on the batch's n rows: d holds ∂L/∂output on entry and
    /// ∂L/∂(the attention sublayer's residual) on return, with ws.dCtx = ∂L/∂ctx. Returns false
    /// when the pass stops at one of the layer's hooks (nothing below is computed).
    func sublayersBackward(
        _ l: Int, _ d: Tensor, _ batch: TokenBatch, _ ws: EncoderWorkspace, _ hook: LayerHook?, _ dropout: DropoutState,
        _ a: LayerActivations, stop: BackwardStop?, extra: (dh: Tensor, dx: Tensor)?
    ) -> Bool {
        let n = batch.tokenCount
        let H = config.hiddenSize
        let F = config.intermediateSize
        let w = weights.layers[l]
        let cache = ws.hookCache
        // out = LN(ffnSum): dA = ∂L/∂ffnSum
        pointBackward(hook, l, .outNorm, d, nil, n: n, cache)
        ws.dA.data.update(repeating: 0, count: n * H)
        LayerNorm.backward(
            dinp: ws.dA.data, dweight: nil, dbias: nil, dout: d.data, inp: a.ffnSum.data,
            weight: w.ffnLNWeight.data, mean: a.ffnMean.data, rstd: a.ffnRstd.data, n: n, c: H)
        // ffnSum = hook(ffnProj) + attnOut: dB = ∂L/∂attnOut (residual), dProj = ∂L/∂ffnProj
        ws.dB.data.update(from: ws.dA.data, count: n * H)
        sublayerBackward(l, .output, dSum: ws.dA, mask: a.ffnProjMask, residualGrad: ws.dB, n: n, ws, hook, dropout, a)
        if let extra {
            // h = dropout(ffnProj): the extra ∂L/∂h goes through the same mask
            if dropout.hidden > 0 {
                Dropout.apply(out: extra.dh.data, inp: extra.dh.data, mask: a.ffnProjMask.data, count: n * H, p: dropout.hidden)
            }
            VectorMath.add(ws.dProj.data, extra.dh.data, n * H)
            VectorMath.add(ws.dB.data, extra.dx.data, n * H)
        }
        if stop == .outputSite(l) { return false }
        // ffnProj = ffnAct · W2ᵀ + b2;  ffnAct = gelu(ffnPre);  ffnPre = attnOut · W1ᵀ + b1
        ws.dF1.data.update(repeating: 0, count: n * F)
        projectionBackward(hook, l, .ffnProj, ws.dProj, ws.dF1, w.ffnOutWeight, inDim: F, outDim: H, n: n, cache)
        pointBackward(hook, l, .ffnAct, ws.dF1, nil, n: n, cache)
        GELU.backward(inPlace: ws.dF1.data, inp: a.ffnPre.data, count: n * F)
        projectionBackward(hook, l, .ffnPre, ws.dF1, ws.dB, w.ffnInWeight, inDim: H, outDim: F, n: n, cache)
        // attnOut = LN(attnSum): dA = ∂L/∂attnSum
        pointBackward(hook, l, .attnNorm, ws.dB, nil, n: n, cache)
        ws.dA.data.update(repeating: 0, count: n * H)
        LayerNorm.backward(
            dinp: ws.dA.data, dweight: nil, dbias: nil, dout: ws.dB.data, inp: a.attnSum.data,
            weight: w.attnLNWeight.data, mean: a.attnMean.data, rstd: a.attnRstd.data, n: n, c: H)
        // attnSum = hook(attnProj) + x: d becomes ∂L/∂x (residual), dProj = ∂L/∂attnProj
        d.data.update(from: ws.dA.data, count: n * H)
        sublayerBackward(l, .attention, dSum: ws.dA, mask: a.attnProjMask, residualGrad: d, n: n, ws, hook, dropout, a)
        if stop == .attentionSite(l) { return false }
        // attnProj = ctx · Woᵀ + bo
        ws.dCtx.data.update(repeating: 0, count: n * H)
        projectionBackward(hook, l, .attnProj, ws.dProj, ws.dCtx, w.attnOutWeight, inDim: H, outDim: H, n: n, cache)
        return true
    }

    /// dProj = ∂L/∂proj from dSum = ∂L/∂sum, through the hook (if it acts here) and the dropout.
    /// A hook that read z = LN(h + x) or x itself also adds ∂L/∂x to `residualGrad`.
    func sublayerBackward(
        _ l: Int, _ site: AdapterSite, dSum: Tensor, mask: Mask, residualGrad: Tensor, n: Int,
        _ ws: EncoderWorkspace, _ hook: LayerHook?, _ dropout: DropoutState, _ a: LayerActivations
    ) {
        let H = config.hiddenSize
        let count = n * H
        let dProj = ws.dProj
        if let hook, hook.acts(layer: l, site: site) {
            dProj.data.update(repeating: 0, count: count)
            let cache = ws.hookCache
            if hook.readsNormalized(layer: l, site: site) {
                // z = LN(s), s = h + x: ∂L/∂s goes to both h and the residual x
                let dz = cache.tensor(self, Slot.normed, count: count)
                let ds = cache.tensor(self, Slot.normedSumGradient, count: count)
                dz.data.update(repeating: 0, count: count)
                hook.backward(
                    layer: l, site: site, dout: dSum.data, grad: HookGradient(dh: dProj.data, dnormed: dz.data, dx: residualGrad.data), n: n,
                    cache: cache)
                ds.data.update(repeating: 0, count: count)
                LayerNorm.backward(
                    dinp: ds.data, dweight: nil, dbias: nil, dout: dz.data, inp: cache.tensor(a, NormSlot.sum(site), count: count).data,
                    weight: norm(l, site).weight.data, mean: cache.tensor(a, NormSlot.mean(site), count: n).data,
                    rstd: cache.tensor(a, NormSlot.rstd(site), count: n).data, n: n, c: H)
                VectorMath.add(dProj.data, ds.data, count)
                VectorMath.add(residualGrad.data, ds.data, count)
            } else {
                hook.backward(
                    layer: l, site: site, dout: dSum.data, grad: HookGradient(dh: dProj.data, dx: residualGrad.data), n: n, cache: cache)
            }
        } else {
            dProj.data.update(from: dSum.data, count: count)
        }
        if dropout.hidden > 0 { Dropout.apply(out: dProj.data, inp: dProj.data, mask: mask.data, count: count, p: dropout.hidden) }
    }
}
