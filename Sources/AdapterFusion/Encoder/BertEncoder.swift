import Foundation

/// A frozen BERT-family encoder (embeddings, then post-LayerNorm transformer layers).
///
/// Its weights never receive gradients. With a `LayerHook` (adapters, LoRA, prefixes, fusion,
/// …) the forward pass lets the hook change what it names — sublayer outputs, projections,
/// the attention's keys and values, the input tokens, whole layers — and `backward` carries the
/// loss gradient down through the frozen layers only as far as the lowest place the hook acts.
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

    /// Checks a batch that a hook's soft prompt lengthens by `prompt` tokens per sequence.
    func validate(_ batch: TokenBatch, prompt: Int) throws {
        try validate(batch)
        if prompt > 0, batch.maxLength + prompt > config.maxPositionEmbeddings {
            throw ModelError(
                "a sequence of \(batch.maxLength) tokens plus \(prompt) prompt tokens exceeds max_position_embeddings \(config.maxPositionEmbeddings)"
            )
        }
    }

    /// Which rows of the last hidden states a pass returns.
    public enum OutputRows: Sendable {
        /// Every token: [tokens, H] (packed, see `TokenBatch`).
        case all
        /// Each sequence's first token ([CLS], what a prediction head reads): [sequences, H].
        /// The last layer then computes keys and values for every token and the rest (query,
        /// attention, projections, FFN, hooks) for those rows only: the same values for a sixth
        /// of the layer's work — unless the hook changes the inside of that layer
        /// (`LayerHook.changesInside`), which then runs whole.
        case firstTokens
    }

    /// Runs the encoder and returns the last hidden states: [tokens, H] (packed, see
    /// `TokenBatch`), or [sequences, H] for `rows: .firstTokens`.
    /// With `dropout` the pass is a training pass (the workspace must be a training workspace).
    /// A hook's soft prompt tokens are inserted after each first token and left out of the result.
    public func forward(
        _ batch: TokenBatch, workspace ws: EncoderWorkspace, hook: LayerHook? = nil,
        dropout: DropoutState? = nil, rows: OutputRows = .all
    ) throws -> Tensor {
        let prompt = hook?.promptLength ?? 0
        try validate(batch, prompt: prompt)
        precondition(dropout == nil || ws.training, "a training pass needs EncoderWorkspace(training: true)")
        let inner = prompt > 0 ? batch.insertingPrompt(prompt) : batch
        ws.reserve(for: inner, prefix: hook?.maxPrefixLength(layers: config.numHiddenLayers) ?? 0)
        ws.hookCache.dropout = dropout
        dropout?.batch = inner
        hook?.beginPass(batch: inner, training: dropout != nil, cache: ws.hookCache)
        embed(inner, ws, into: ws.hidden[0], dropout, prompt: prompt > 0 ? hook?.promptEmbeddings(cache: ws.hookCache) : nil)
        let top = config.numHiddenLayers - 1
        ws.outputRows = rows
        ws.firstTokenLayer = rows == .firstTokens && !(hook?.changesInside(layer: top) ?? false)
        let runner = LayerRunner(encoder: self, batch: inner, workspace: ws, dropout: dropout, stop: nil)
        for l in 0..<config.numHiddenLayers {
            let x = ws.hidden[l % 2]
            let y = ws.hidden[(l + 1) % 2]
            if let hook, hook.replacesLayer(l) {
                hook.layerForward(l, input: x, output: y, run: runner, training: dropout != nil, cache: ws.hookCache)
            } else if l == top && ws.firstTokenLayer {
                firstTokenLayerForward(l, input: x, output: y, inner, ws, hook, dropout)
            } else {
                layerForward(l, input: x, output: y, inner, ws, hook, dropout, run: 0)
            }
        }
        let H = config.hiddenSize
        let last = ws.hidden[config.numHiddenLayers % 2]
        if rows == .firstTokens {
            let out = Tensor(zeros: [batch.count, H])
            for s in 0..<batch.count {
                (out.data + s * H).update(from: last.data + (ws.firstTokenLayer ? s : inner.offsets[s]) * H, count: H)
            }
            return out
        }
        let out = Tensor(zeros: [batch.tokenCount, H])
        if prompt > 0 {
            for s in 0..<batch.count {
                let src = inner.offsets[s]
                out.data.advanced(by: batch.offsets[s] * H).update(from: last.data + src * H, count: H)
                (out.data + (batch.offsets[s] + 1) * H).update(from: last.data + (src + 1 + prompt) * H, count: (batch.length(s) - 1) * H)
            }
        } else {
            out.data.update(from: last.data, count: out.count)
        }
        return out
    }

    /// Embeddings: dropout(LayerNorm(word[id] + position[pos] + type[tt])) → out [N, H], where a
    /// soft prompt's rows (after each first token) take `prompt`'s vectors in place of words.
    func embed(_ batch: TokenBatch, _ ws: EncoderWorkspace, into out: Tensor, _ dropout: DropoutState?, prompt: UnsafePointer<Float>?) {
        let n = batch.tokenCount
        let H = config.hiddenSize
        let w = weights
        batch.ids.withUnsafeBufferPointer { ids in
            Embedding.forward(out: ws.embSum.data, table: w.wordEmbeddings.data, ids: ids.baseAddress!, n: n, dim: H)
        }
        if let prompt, let P = batch.promptLength {
            for s in 0..<batch.count { (ws.embSum.data + (batch.offsets[s] + 1) * H).update(from: prompt, count: P * H) }
        }
        batch.positions.withUnsafeBufferPointer { pos in
            Embedding.forward(out: ws.embSum.data, table: w.positionEmbeddings.data, ids: pos.baseAddress!, n: n, dim: H, accumulate: true)
        }
        batch.typeIds.withUnsafeBufferPointer { tt in
            Embedding.forward(out: ws.embSum.data, table: w.tokenTypeEmbeddings.data, ids: tt.baseAddress!, n: n, dim: H, accumulate: true)
        }
        let keep = dropout != nil && prompt != nil
        LayerNorm.forward(
            out: out.data, mean: keep ? ws.embMean.data : nil, rstd: keep ? ws.embRstd.data : nil, inp: ws.embSum.data,
            weight: w.embLNWeight.data, bias: w.embLNBias.data, n: n, c: H, eps: config.layerNormEps)
        if let dropout, dropout.hidden > 0 {
            dropout.apply(out: out.data, mask: ws.embMask.data, inp: out.data, rowCount: n, width: H, p: dropout.hidden, perSequence: false)
        }
    }

    /// Backward of `embed` for a soft prompt: d[P, H] = Σₛ ∂L/∂(prompt rows of sequence s),
    /// given dOut = ∂L/∂(embedding output) [N, H] (overwritten).
    private func embedBackward(_ dOut: Tensor, _ batch: TokenBatch, _ ws: EncoderWorkspace, _ dropout: DropoutState, into d: Tensor) {
        let n = batch.tokenCount
        let H = config.hiddenSize
        let P = batch.promptLength ?? 0
        if dropout.hidden > 0 { Dropout.apply(out: dOut.data, inp: dOut.data, mask: ws.embMask.data, count: n * H, p: dropout.hidden) }
        ws.dA.data.update(repeating: 0, count: n * H)
        LayerNorm.backward(
            dinp: ws.dA.data, dweight: nil, dbias: nil, dout: dOut.data, inp: ws.embSum.data, weight: weights.embLNWeight.data,
            mean: ws.embMean.data, rstd: ws.embRstd.data, n: n, c: H)
        d.data.update(repeating: 0, count: P * H)
        for s in 0..<batch.count { VectorMath.add(d.data, ws.dA.data + (batch.offsets[s] + 1) * H, P * H) }
    }

    /// Lets the hook change point `p` of layer `l` (y in place, x its input), if it does.
    private func point(
        _ hook: LayerHook?, _ l: Int, _ p: LayerPoint, _ x: Tensor?, _ y: Tensor, n: Int, training: Bool, _ cache: HookCache
    ) {
        if let hook, hook.changes(layer: l, point: p) {
            hook.forward(layer: l, point: p, x: x.map { UnsafePointer($0.data) }, y: y.data, n: n, training: training, cache: cache)
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
        let prefix = hook?.prefix(layer: l, x: x.data, batch: batch, training: training, cache: cache)
        a.prefix = prefix
        attention(a, batch, ws, dropout, prefix: prefix, queries: .all)
        sublayersForward(l, residual: x, output: output, batch, ws, hook, dropout, a)
    }

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
        let xFirst = cache.tensor(self, -3, count: S * H)  // [S, H] first rows of x: the residual
        let q = cache.tensor(self, -4, count: S * H)
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

    /// ws.ctx = attention over a.qkv (with dropout in training); a training workspace keeps the
    /// probabilities in `a` for the backward pass.
    private func attention(
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

    /// From the attention context ws.ctx [n, H] (n = the batch's tokens) to the layer output:
    /// attention output projection and sublayer, LayerNorm, FFN and its sublayer, LayerNorm.
    private func sublayersForward(
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
    private func sublayerOutput(
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
    private func norm(_ l: Int, _ site: AdapterSite) -> (weight: Tensor, bias: Tensor) {
        let w = weights.layers[l]
        return site == .attention ? (w.attnLNWeight, w.attnLNBias) : (w.ffnLNWeight, w.ffnLNBias)
    }

    /// Where `normalizedInput` keeps the residual sum s = h + x and its LayerNorm statistics:
    /// beside the layer's activations of this run (backward reads them), three slots per site.
    private func normSlot(_ site: AdapterSite) -> Int { 3 * site.rawValue }

    /// z = LN(h + x) [n, H] with the sublayer's own LayerNorm, for hooks that read it.
    private func normalizedInput(
        _ l: Int, _ site: AdapterSite, proj: Tensor, residual: Tensor, n: Int, _ a: LayerActivations, _ cache: HookCache
    ) -> UnsafePointer<Float> {
        let H = config.hiddenSize
        let slot = normSlot(site)
        let sum = cache.tensor(a, slot, count: n * H)
        let mean = cache.tensor(a, slot + 1, count: n)
        let rstd = cache.tensor(a, slot + 2, count: n)
        let z = cache.tensor(self, 0, count: n * H)  // read by the hooks' forward only (they keep copies)
        sum.data.update(from: proj.data, count: n * H)
        VectorMath.add(sum.data, residual.data, n * H)
        let (w, b) = norm(l, site)
        LayerNorm.forward(
            out: z.data, mean: mean.data, rstd: rstd.data, inp: sum.data, weight: w.data, bias: b.data, n: n, c: H,
            eps: config.layerNormEps)
        return UnsafePointer(z.data)
    }

    /// Backpropagates dHidden = ∂L/∂(last hidden states) of the last training forward pass
    /// (shaped as it returned them: [tokens, H], or [sequences, H] for `.firstTokens`) through
    /// the layers, calling the hook's backward at each place it acts, and stops below the lowest
    /// such place: frozen weights get no gradients and nothing beneath the lowest adapter is
    /// computed.
    public func backward(_ dHidden: Tensor, workspace ws: EncoderWorkspace, hook: LayerHook, dropout: DropoutState) {
        guard let batch = ws.batch, let stop = hook.backwardStop(layers: config.numHiddenLayers) else { return }
        precondition(ws.training, "backward needs the training workspace of the forward pass")
        let n = batch.tokenCount
        let H = config.hiddenSize
        let d = ws.dX
        let top = config.numHiddenLayers - 1
        if ws.outputRows == .firstTokens {
            precondition(dHidden.count == batch.count * H, "the gradient must have the forward's rows: [sequences, H]")
            if ws.firstTokenLayer {
                d.data.update(from: dHidden.data, count: batch.count * H)
            } else {
                d.data.update(repeating: 0, count: n * H)
                for s in 0..<batch.count { (d.data + batch.offsets[s] * H).update(from: dHidden.data + s * H, count: H) }
            }
        } else if let P = batch.promptLength {
            // The result left the prompt rows out: they get no gradient from above.
            d.data.update(repeating: 0, count: n * H)
            var row = 0
            for s in 0..<batch.count {
                let L = batch.length(s) - P
                (d.data + batch.offsets[s] * H).update(from: dHidden.data + row * H, count: H)
                (d.data + (batch.offsets[s] + 1 + P) * H).update(from: dHidden.data + (row + 1) * H, count: (L - 1) * H)
                row += L
            }
        } else {
            d.data.update(from: dHidden.data, count: n * H)
        }
        let lowest: Int
        switch stop {
        case .outputSite(let l), .attentionSite(let l), .layerInput(let l): lowest = l
        case .embeddings: lowest = 0
        }
        let runner = LayerRunner(encoder: self, batch: batch, workspace: ws, dropout: dropout, stop: stop)
        for l in stride(from: config.numHiddenLayers - 1, through: lowest, by: -1) {
            if hook.replacesLayer(l) {
                ws.dIn.data.update(repeating: 0, count: n * H)
                hook.layerBackward(l, dOutput: d, dInput: ws.dIn, run: runner, cache: ws.hookCache)
                d.data.update(from: ws.dIn.data, count: n * H)
            } else if l == top && ws.firstTokenLayer {
                firstTokenLayerBackward(l, d, batch, ws, hook, dropout, stop: stop)
            } else {
                layerBackward(l, d, batch, ws, hook, dropout, run: 0, stop: stop)
            }
        }
        if stop == .embeddings {
            let dPrompt = ws.hookCache.tensor(self, -2, count: (batch.promptLength ?? 0) * H)
            embedBackward(d, batch, ws, dropout, into: dPrompt)
            hook.promptBackward(dPrompt.data, cache: ws.hookCache)
        }
        hook.endBackward(cache: ws.hookCache)
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
        if let hook, let g = prefixGrad {
            hook.prefixBackward(layer: l, dkeys: g.dkeys, dvalues: g.dvalues, dx: d.data, batch: batch, cache: cache)
        }
        projectionBackward(hook, l, .qkv, ws.dQKV, d, w.qkvWeight, inDim: H, outDim: 3 * H, n: n, cache)
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
        let dFirst = cache.tensor(self, -5, count: S * H)
        let dq = cache.tensor(self, -6, count: S * H)
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

    /// Turns dy into ∂L/∂(point before the change) and adds ∂L/∂x to dx, if the hook changes `p`.
    private func pointBackward(_ hook: LayerHook?, _ l: Int, _ p: LayerPoint, _ dy: Tensor, _ dx: Tensor?, n: Int, _ cache: HookCache) {
        if let hook, hook.changes(layer: l, point: p) {
            hook.backward(layer: l, point: p, dy: dy.data, dx: dx?.data, n: n, cache: cache)
        }
    }

    /// y = x·Wᵀ (+ b), changed by the hook at `p`: dx += ∂L/∂x through the change and W.
    private func projectionBackward(
        _ hook: LayerHook?, _ l: Int, _ p: LayerPoint, _ dy: Tensor, _ dx: Tensor, _ weight: Tensor, inDim: Int, outDim: Int, n: Int,
        _ cache: HookCache
    ) {
        pointBackward(hook, l, p, dy, dx, n: n, cache)
        Linear.backward(dx: dx.data, dw: nil, db: nil, dy: dy.data, x: nil, w: weight.data, n: n, inDim: inDim, outDim: outDim)
    }

    /// ws.dQKV = ∂L/∂qkv given ws.dCtx (and the prefix's gradient into `prefix`).
    private func attentionBackward(
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

    /// Backward of `sublayersForward` on the batch's n rows: d holds ∂L/∂output on entry and
    /// ∂L/∂(the attention sublayer's residual) on return, with ws.dCtx = ∂L/∂ctx. Returns false
    /// when the pass stops at one of the layer's hooks (nothing below is computed).
    private func sublayersBackward(
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
    private func sublayerBackward(
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
                let slot = normSlot(site)
                let dz = cache.tensor(self, 0, count: count)
                let ds = cache.tensor(self, -1, count: count)
                dz.data.update(repeating: 0, count: count)
                hook.backward(
                    layer: l, site: site, dout: dSum.data, grad: HookGradient(dh: dProj.data, dnormed: dz.data, dx: residualGrad.data), n: n,
                    cache: cache)
                ds.data.update(repeating: 0, count: count)
                LayerNorm.backward(
                    dinp: ds.data, dweight: nil, dbias: nil, dout: dz.data, inp: cache.tensor(a, slot, count: count).data,
                    weight: norm(l, site).weight.data, mean: cache.tensor(a, slot + 1, count: n).data,
                    rstd: cache.tensor(a, slot + 2, count: n).data, n: n, c: H)
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

/// What a hook that computes whole layers (`LayerHook.replacesLayer`) gets to run the encoder's
/// own layer with other hooks: each run keeps its activations apart (run 0 is the encoder's).
public struct LayerRunner {
    let encoder: BertEncoder
    let batch: TokenBatch
    let workspace: EncoderWorkspace
    let dropout: DropoutState?
    let stop: BackwardStop?

    /// Tokens of the pass.
    public var tokenCount: Int { batch.tokenCount }

    /// output = layer `l` of `input` with `hook`, keeping its activations in run `run`.
    public func forward(_ l: Int, input: Tensor, output: Tensor, hook: LayerHook?, run: Int) {
        encoder.layerForward(l, input: input, output: output, batch, workspace, hook, dropout, run: run)
    }

    /// True when the pass needs ∂L/∂(input of layer l): not at the lowest layer of the pass.
    public func needsInputGradient(_ l: Int) -> Bool {
        switch stop {
        case .layerInput(let s), .outputSite(let s), .attentionSite(let s): return l > s
        case .embeddings: return true
        case nil: return false
        }
    }

    /// dInput += ∂L/∂input of run `run`'s layer `l`, given dOutput = ∂L/∂output (overwritten);
    /// `extra` as `BertEncoder.layerBackward` (overwritten).
    public func backward(_ l: Int, dOutput: Tensor, dInput: Tensor, hook: LayerHook?, run: Int, extra: (dh: Tensor, dx: Tensor)? = nil) {
        encoder.layerBackward(l, dOutput, batch, workspace, hook, dropout!, run: run, stop: nil, extra: extra)
        VectorMath.add(dInput.data, dOutput.data, batch.tokenCount * encoder.config.hiddenSize)
    }

    /// Right after `forward` of a run without a hook: y = LN(hook(h, z, x) + x) for a hook that
    /// acts at layer l's FFN output only, reusing that run's h = dropout(FFN output), x = the FFN
    /// input and z = LN(h + x) (the hookless run's output, `z`). Keeps what `outputSiteBackward`
    /// needs under `key` (one per member and layer).
    public func outputSite(_ l: Int, hook: LayerHook, z: Tensor, output: Tensor, key: AnyObject, training: Bool) {
        let ws = workspace
        let n = batch.tokenCount
        let H = encoder.config.hiddenSize
        let w = encoder.weights.layers[l]
        let cache = ws.hookCache
        let sum = cache.tensor(key, 0, count: n * H)
        hook.forward(
            layer: l, site: .output, input: HookInput(h: ws.ffnProj.data, normed: z.data, x: ws.attnOut.data), out: sum.data, n: n,
            training: training, cache: cache)
        VectorMath.add(sum.data, ws.attnOut.data, n * H)
        LayerNorm.forward(
            out: output.data, mean: cache.tensor(key, 1, count: n).data, rstd: cache.tensor(key, 2, count: n).data, inp: sum.data,
            weight: w.ffnLNWeight.data, bias: w.ffnLNBias.data, n: n, c: H, eps: encoder.config.layerNormEps)
    }

    /// Backward of `outputSite`: adds ∂L/∂h, ∂L/∂z and ∂L/∂x to `dh`, `dz`, `dx`, given dOutput.
    public func outputSiteBackward(_ l: Int, hook: LayerHook, dOutput: Tensor, key: AnyObject, dh: Tensor, dz: Tensor, dx: Tensor) {
        let cache = workspace.hookCache
        let n = batch.tokenCount
        let H = encoder.config.hiddenSize
        let dsum = cache.tensor(key, 3, count: n * H)
        dsum.data.update(repeating: 0, count: n * H)
        LayerNorm.backward(
            dinp: dsum.data, dweight: nil, dbias: nil, dout: dOutput.data, inp: cache.tensor(key, 0, count: n * H).data,
            weight: encoder.weights.layers[l].ffnLNWeight.data, mean: cache.tensor(key, 1, count: n).data,
            rstd: cache.tensor(key, 2, count: n).data, n: n, c: H)
        // sum = hook(h, z, x) + x
        VectorMath.add(dx.data, dsum.data, n * H)
        hook.backward(layer: l, site: .output, dout: dsum.data, grad: HookGradient(dh: dh.data, dnormed: dz.data, dx: dx.data), n: n, cache: cache)
    }
}
