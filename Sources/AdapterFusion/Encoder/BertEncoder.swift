import Foundation

/// A frozen BERT-family encoder (embeddings, then post-LayerNorm transformer layers).
///
/// Its weights never receive gradients. With a `LayerHook` (adapters, fusion) the forward pass
/// routes sublayer outputs through the hook, and `backward` carries the loss gradient down
/// through the frozen layers only as far as the lowest place the hook acts.
public final class BertEncoder {
    public let config: BertConfig
    public let weights: BertWeights

    public init(config: BertConfig, weights: BertWeights) {
        self.config = config
        self.weights = weights
    }

    /// Loads `config.json` and `model.safetensors` from a HF model directory.
    public convenience init(directory: String) throws {
        let configPath = (directory as NSString).appendingPathComponent("config.json")
        let weightsPath = (directory as NSString).appendingPathComponent("model.safetensors")
        let config = try BertConfig.load(configPath)
        let file = try SafeTensorsFile(path: weightsPath)
        self.init(config: config, weights: try BertWeights(file: file, config: config))
    }

    /// Checks ids against the vocabulary and position table before any buffer is touched.
    public func validate(_ batch: TokenBatch) throws {
        if let bad = batch.ids.first(where: { $0 < 0 || Int($0) >= config.vocabSize }) {
            throw ModelError("token id \(bad) is outside the vocabulary of \(config.vocabSize)")
        }
        if let bad = batch.typeIds.first(where: { $0 < 0 || Int($0) >= config.typeVocabSize }) {
            throw ModelError("token type id \(bad) is outside 0..<\(config.typeVocabSize)")
        }
        if batch.maxLength > config.maxPositionEmbeddings {
            throw ModelError("a sequence of \(batch.maxLength) tokens exceeds max_position_embeddings \(config.maxPositionEmbeddings)")
        }
    }

    /// Runs the encoder and returns the last hidden states [tokens, H] (packed, see `TokenBatch`).
    /// With `dropout` the pass is a training pass (the workspace must be a training workspace).
    public func forward(
        _ batch: TokenBatch, workspace ws: EncoderWorkspace, hook: LayerHook? = nil,
        dropout: DropoutState? = nil
    ) throws -> Tensor {
        try validate(batch)
        precondition(dropout == nil || ws.training, "a training pass needs EncoderWorkspace(training: true)")
        ws.reserve(for: batch)
        ws.hookCache.dropout = dropout
        dropout?.batch = batch
        embed(batch, ws, into: ws.hidden[0], dropout)
        for l in 0..<config.numHiddenLayers {
            layerForward(l, input: ws.hidden[l % 2], output: ws.hidden[(l + 1) % 2], batch, ws, hook, dropout)
        }
        let out = Tensor(zeros: [batch.tokenCount, config.hiddenSize])
        out.data.update(from: ws.hidden[config.numHiddenLayers % 2].data, count: out.count)
        return out
    }

    /// Embeddings: dropout(LayerNorm(word[id] + position[pos] + type[tt])) → out [N, H].
    func embed(_ batch: TokenBatch, _ ws: EncoderWorkspace, into out: Tensor, _ dropout: DropoutState?) {
        let n = batch.tokenCount
        let H = config.hiddenSize
        let w = weights
        batch.ids.withUnsafeBufferPointer { ids in
            Embedding.forward(out: ws.embSum.data, table: w.wordEmbeddings.data, ids: ids.baseAddress!, n: n, dim: H)
        }
        batch.positions.withUnsafeBufferPointer { pos in
            Embedding.forward(out: ws.embSum.data, table: w.positionEmbeddings.data, ids: pos.baseAddress!, n: n, dim: H, accumulate: true)
        }
        batch.typeIds.withUnsafeBufferPointer { tt in
            Embedding.forward(out: ws.embSum.data, table: w.tokenTypeEmbeddings.data, ids: tt.baseAddress!, n: n, dim: H, accumulate: true)
        }
        LayerNorm.forward(
            out: out.data, mean: nil, rstd: nil, inp: ws.embSum.data,
            weight: w.embLNWeight.data, bias: w.embLNBias.data, n: n, c: H, eps: config.layerNormEps)
        if let dropout, dropout.hidden > 0 {
            dropout.apply(out: out.data, mask: ws.embMask.data, inp: out.data, rowCount: n, width: H, p: dropout.hidden, perSequence: false)
        }
    }

    /// One post-LN transformer layer: x → LN(x + hook(Attn(x))) → LN(· + hook(FFN(·))), where a hook
    /// may also read LN(h + x) of its sublayer output h (see `HookInput`).
    func layerForward(
        _ l: Int, input x: Tensor, output: Tensor, _ batch: TokenBatch,
        _ ws: EncoderWorkspace, _ hook: LayerHook?, _ dropout: DropoutState?
    ) {
        let n = batch.tokenCount
        let H = config.hiddenSize
        let F = config.intermediateSize
        let w = weights.layers[l]
        let a = ws.activations(l)
        let eps = config.layerNormEps
        // qkv[N, 3H] = x · Wqkvᵀ + b;  ctx = attention(qkv)
        Linear.forward(y: a.qkv.data, x: x.data, w: w.qkvWeight.data, b: w.qkvBias.data, n: n, inDim: H, outDim: 3 * H)
        var noRNG = SeededRNG(seed: 0)
        if let dropout, dropout.attention > 0 {
            SelfAttention.forward(
                ctx: ws.ctx.data, att: a.att.data, qkv: a.qkv.data, batch: batch,
                heads: config.numAttentionHeads, headSize: config.headSize,
                dropout: (dropout.attention, a.attMask.data, ws.scratch.data, ws.scratchSlots), rng: &dropout.rng)
        } else {
            SelfAttention.forward(
                ctx: ws.ctx.data, att: a.att.data, qkv: a.qkv.data, batch: batch,
                heads: config.numAttentionHeads, headSize: config.headSize, rng: &noRNG)
        }
        // attnProj = dropout(ctx · Woᵀ + bo);  attnSum = hook(attnProj) + x;  attnOut = LN(attnSum)
        Linear.forward(y: ws.attnProj.data, x: ws.ctx.data, w: w.attnOutWeight.data, b: w.attnOutBias.data, n: n, inDim: H, outDim: H)
        sublayerOutput(l, .attention, proj: ws.attnProj, mask: a.attnProjMask, sum: a.attnSum, residual: x, n: n, hook, dropout, cache: ws.hookCache)
        LayerNorm.forward(
            out: ws.attnOut.data, mean: a.attnMean.data, rstd: a.attnRstd.data, inp: a.attnSum.data,
            weight: w.attnLNWeight.data, bias: w.attnLNBias.data, n: n, c: H, eps: eps)
        // ffnPre[N, F] = attnOut · W1ᵀ + b1;  ffnAct = gelu(ffnPre)  (bias added inside the GELU pass)
        Linear.forward(y: a.ffnPre.data, x: ws.attnOut.data, w: w.ffnInWeight.data, b: nil, n: n, inDim: H, outDim: F)
        GELU.forward(out: ws.ffnAct.data, pre: a.ffnPre.data, bias: w.ffnInBias.data, n: n, c: F)
        // ffnProj = dropout(ffnAct · W2ᵀ + b2);  ffnSum = hook(ffnProj) + attnOut;  output = LN(ffnSum)
        Linear.forward(y: ws.ffnProj.data, x: ws.ffnAct.data, w: w.ffnOutWeight.data, b: w.ffnOutBias.data, n: n, inDim: F, outDim: H)
        sublayerOutput(
            l, .output, proj: ws.ffnProj, mask: a.ffnProjMask, sum: a.ffnSum, residual: ws.attnOut, n: n, hook, dropout, cache: ws.hookCache)
        LayerNorm.forward(
            out: output.data, mean: a.ffnMean.data, rstd: a.ffnRstd.data, inp: a.ffnSum.data,
            weight: w.ffnLNWeight.data, bias: w.ffnLNBias.data, n: n, c: H, eps: eps)
    }

    /// sum = hook(dropout(proj)) + residual, the input of a sublayer's LayerNorm.
    private func sublayerOutput(
        _ l: Int, _ site: AdapterSite, proj: Tensor, mask: Mask, sum: Tensor,
        residual: Tensor, n: Int, _ hook: LayerHook?, _ dropout: DropoutState?, cache: HookCache
    ) {
        let count = n * config.hiddenSize
        if let dropout, dropout.hidden > 0 {
            dropout.apply(
                out: proj.data, mask: mask.data, inp: proj.data, rowCount: n, width: config.hiddenSize, p: dropout.hidden, perSequence: false)
        }
        if let hook, hook.acts(layer: l, site: site) {
            let normed =
                hook.readsNormalized(layer: l, site: site)
                ? normalizedInput(l, site, proj: proj, residual: residual, n: n, training: dropout != nil, cache: cache) : nil
            hook.forward(
                layer: l, site: site, input: HookInput(h: proj.data, normed: normed), out: sum.data, n: n, training: dropout != nil,
                cache: cache)
        } else {
            sum.data.update(from: proj.data, count: count)
        }
        VectorMath.add(sum.data, residual.data, count)
    }

    /// The sublayer's LayerNorm parameters.
    private func norm(_ l: Int, _ site: AdapterSite) -> (weight: Tensor, bias: Tensor) {
        let w = weights.layers[l]
        return site == .attention ? (w.attnLNWeight, w.attnLNBias) : (w.ffnLNWeight, w.ffnLNBias)
    }

    /// Where the residual sum s = h + x of `normalizedInput` and its LayerNorm statistics live
    /// in the cache: per (layer, site) in training (backward reads them), shared otherwise.
    private func normSlots(_ l: Int, _ site: AdapterSite, training: Bool) -> Int { 1 + 3 * (training ? HookSite(l, site).index : 0) }

    /// z = LN(h + x) [n, H] with the sublayer's own LayerNorm, for hooks that read it.
    private func normalizedInput(
        _ l: Int, _ site: AdapterSite, proj: Tensor, residual: Tensor, n: Int, training: Bool, cache: HookCache
    ) -> UnsafePointer<Float> {
        let H = config.hiddenSize
        let slot = normSlots(l, site, training: training)
        let sum = cache.tensor(self, slot, count: n * H)
        let mean = cache.tensor(self, slot + 1, count: n)
        let rstd = cache.tensor(self, slot + 2, count: n)
        let z = cache.tensor(self, 0, count: n * H)  // read by the hooks' forward only (they keep copies)
        sum.data.update(from: proj.data, count: n * H)
        VectorMath.add(sum.data, residual.data, n * H)
        let (w, b) = norm(l, site)
        LayerNorm.forward(
            out: z.data, mean: mean.data, rstd: rstd.data, inp: sum.data, weight: w.data, bias: b.data, n: n, c: H,
            eps: config.layerNormEps)
        return UnsafePointer(z.data)
    }

    /// Backpropagates dHidden = ∂L/∂(last hidden states) [tokens, H] of the last training
    /// forward pass through the layers, calling the hook's backward at each place it acts, and
    /// stops below the lowest such place: frozen weights get no gradients and nothing beneath
    /// the lowest adapter is computed.
    public func backward(_ dHidden: Tensor, workspace ws: EncoderWorkspace, hook: LayerHook, dropout: DropoutState) {
        guard let batch = ws.batch, let lowest = hook.lowestSite(layers: config.numHiddenLayers) else { return }
        precondition(ws.training, "backward needs the training workspace of the forward pass")
        let n = batch.tokenCount
        let H = config.hiddenSize
        let F = config.intermediateSize
        let dOut = ws.dX
        dOut.data.update(from: dHidden.data, count: n * H)
        for l in stride(from: config.numHiddenLayers - 1, through: lowest.layer, by: -1) {
            let a = ws.activations(l)
            let w = weights.layers[l]
            // out = LN(ffnSum): dA = ∂L/∂ffnSum
            ws.dA.data.update(repeating: 0, count: n * H)
            LayerNorm.backward(
                dinp: ws.dA.data, dweight: nil, dbias: nil, dout: dOut.data, inp: a.ffnSum.data,
                weight: w.ffnLNWeight.data, mean: a.ffnMean.data, rstd: a.ffnRstd.data, n: n, c: H)
            // ffnSum = hook(ffnProj) + attnOut: dB = ∂L/∂attnOut (residual), dProj = ∂L/∂ffnProj
            ws.dB.data.update(from: ws.dA.data, count: n * H)
            sublayerBackward(l, .output, dSum: ws.dA, mask: a.ffnProjMask, residualGrad: ws.dB, n: n, ws, hook, dropout)
            if l == lowest.layer && lowest.site == .output { break }
            // ffnProj = ffnAct · W2ᵀ + b2;  ffnAct = gelu(ffnPre);  ffnPre = attnOut · W1ᵀ + b1
            ws.dF1.data.update(repeating: 0, count: n * F)
            Linear.backward(
                dx: ws.dF1.data, dw: nil, db: nil, dy: ws.dProj.data, x: nil,
                w: w.ffnOutWeight.data, n: n, inDim: F, outDim: H)
            ws.dF2.data.update(repeating: 0, count: n * F)
            GELU.backward(dinp: ws.dF2.data, dout: ws.dF1.data, inp: a.ffnPre.data, count: n * F)
            Linear.backward(
                dx: ws.dB.data, dw: nil, db: nil, dy: ws.dF2.data, x: nil,
                w: w.ffnInWeight.data, n: n, inDim: H, outDim: F)
            // attnOut = LN(attnSum): dA = ∂L/∂attnSum
            ws.dA.data.update(repeating: 0, count: n * H)
            LayerNorm.backward(
                dinp: ws.dA.data, dweight: nil, dbias: nil, dout: ws.dB.data, inp: a.attnSum.data,
                weight: w.attnLNWeight.data, mean: a.attnMean.data, rstd: a.attnRstd.data, n: n, c: H)
            // attnSum = hook(attnProj) + x: dOut becomes ∂L/∂x (residual), dProj = ∂L/∂attnProj
            dOut.data.update(from: ws.dA.data, count: n * H)
            sublayerBackward(l, .attention, dSum: ws.dA, mask: a.attnProjMask, residualGrad: dOut, n: n, ws, hook, dropout)
            if l == lowest.layer { break }
            // attnProj = ctx · Woᵀ + bo
            ws.dCtx.data.update(repeating: 0, count: n * H)
            Linear.backward(
                dx: ws.dCtx.data, dw: nil, db: nil, dy: ws.dProj.data, x: nil,
                w: w.attnOutWeight.data, n: n, inDim: H, outDim: H)
            SelfAttention.backward(
                dqkv: ws.dQKV.data, dctx: ws.dCtx.data, att: a.att.data,
                mask: dropout.attention > 0 ? UnsafePointer(a.attMask.data) : nil,
                dropoutP: dropout.attention, qkv: a.qkv.data,
                batch: batch, heads: config.numAttentionHeads, headSize: config.headSize,
                scratch: ws.scratch.data, scratchSlots: ws.scratchSlots)
            Linear.backward(
                dx: dOut.data, dw: nil, db: nil, dy: ws.dQKV.data, x: nil,
                w: w.qkvWeight.data, n: n, inDim: H, outDim: 3 * H)
        }
    }

    /// dProj = ∂L/∂proj from dSum = ∂L/∂sum, through the hook (if it acts here) and the dropout.
    /// A hook that read z = LN(h + x) also adds ∂L/∂x to `residualGrad`.
    private func sublayerBackward(
        _ l: Int, _ site: AdapterSite, dSum: Tensor, mask: Mask, residualGrad: Tensor, n: Int,
        _ ws: EncoderWorkspace, _ hook: LayerHook, _ dropout: DropoutState
    ) {
        let H = config.hiddenSize
        let count = n * H
        let dProj = ws.dProj
        if hook.acts(layer: l, site: site) {
            dProj.data.update(repeating: 0, count: count)
            if hook.readsNormalized(layer: l, site: site) {
                // z = LN(s), s = h + x: ∂L/∂s goes to both h and the residual x
                let cache = ws.hookCache
                let slot = normSlots(l, site, training: true)
                let dz = cache.tensor(self, 0, count: count)
                let ds = cache.tensor(self, -1, count: count)
                dz.data.update(repeating: 0, count: count)
                hook.backward(layer: l, site: site, dout: dSum.data, grad: HookGradient(dh: dProj.data, dnormed: dz.data), n: n, cache: cache)
                ds.data.update(repeating: 0, count: count)
                LayerNorm.backward(
                    dinp: ds.data, dweight: nil, dbias: nil, dout: dz.data, inp: cache.tensor(self, slot, count: count).data,
                    weight: norm(l, site).weight.data, mean: cache.tensor(self, slot + 1, count: n).data,
                    rstd: cache.tensor(self, slot + 2, count: n).data, n: n, c: H)
                VectorMath.add(dProj.data, ds.data, count)
                VectorMath.add(residualGrad.data, ds.data, count)
            } else {
                hook.backward(layer: l, site: site, dout: dSum.data, grad: HookGradient(dh: dProj.data), n: n, cache: ws.hookCache)
            }
        } else {
            dProj.data.update(from: dSum.data, count: count)
        }
        if dropout.hidden > 0 { Dropout.apply(out: dProj.data, inp: dProj.data, mask: mask.data, count: count, p: dropout.hidden) }
    }
}
