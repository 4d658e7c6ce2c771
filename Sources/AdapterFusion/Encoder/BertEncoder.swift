import Foundation

/// A frozen BERT-family encoder (embeddings, then post-LayerNorm transformer layers).
///
/// Its weights never receive gradients. With a `LayerHook` (adapters, LoRA, prefixes, fusion,
/// …) the forward pass lets the hook change what it names — sublayer outputs, projections,
/// the attention's keys and values, the input tokens, whole layers — and `backward` carries the
/// loss gradient down through the frozen layers only as far as the lowest place the hook acts.
public final class BertEncoder {
    /// The encoder's own scratch in a pass's `HookCache` (kept there so it goes with the workspace).
    enum Slot: CacheSlot {
        case normed  // [n, H] z = LN(h + x) for the hooks' forward; ∂L/∂z in the backward
        case normedSumGradient  // [n, H] ∂L/∂(h + x) through that LayerNorm
        case promptGradient  // [P, H] ∂L/∂(prompt embeddings), summed over the batch
        case firstRowsInput, firstRowsQuery  // [S, H] the top layer's [CLS] rows of x and their queries
        case firstRowsGradient, firstRowsQueryGradient  // [S, H] their gradients
    }

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
        let prompt = hook?.promptCount ?? 0
        try validate(batch, prompt: prompt)
        precondition(dropout == nil || ws.training, "a training pass needs EncoderWorkspace(training: true)")
        let inner = prompt > 0 ? batch.insertingPrompt(prompt) : batch
        ws.reserve(for: inner, prefix: hook?.maxPrefixLength(layers: config.numHiddenLayers) ?? 0)
        ws.hookCache.dropout = dropout
        dropout?.batch = inner
        (hook as? PassHook)?.beginPass(batch: inner, training: dropout != nil, cache: ws.hookCache)
        embed(inner, ws, into: ws.hidden[0], dropout, prompt: prompt > 0 ? (hook as? PromptHook)?.promptEmbeddings(cache: ws.hookCache) : nil)
        let top = config.numHiddenLayers - 1
        ws.outputRows = rows
        ws.firstTokenLayer = rows == .firstTokens && !(hook?.changesInside(layer: top) ?? false)
        let runner = LayerRunner(encoder: self, batch: inner, workspace: ws, dropout: dropout, stop: nil)
        for l in 0..<config.numHiddenLayers {
            let x = ws.hidden[l % 2]
            let y = ws.hidden[(l + 1) % 2]
            if let whole = hook as? LayerReplacingHook, whole.replacesLayer(l) {
                whole.layerForward(l, input: x, output: y, run: runner, training: dropout != nil, cache: ws.hookCache)
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
            if let whole = hook as? LayerReplacingHook, whole.replacesLayer(l) {
                ws.dIn.data.update(repeating: 0, count: n * H)
                whole.layerBackward(l, dOutput: d, dInput: ws.dIn, run: runner, cache: ws.hookCache)
                d.data.update(from: ws.dIn.data, count: n * H)
            } else if l == top && ws.firstTokenLayer {
                firstTokenLayerBackward(l, d, batch, ws, hook, dropout, stop: stop)
            } else {
                layerBackward(l, d, batch, ws, hook, dropout, run: 0, stop: stop)
            }
        }
        if stop == .embeddings {
            let dPrompt = ws.hookCache.tensor(self, Slot.promptGradient, count: (batch.promptLength ?? 0) * H)
            embedBackward(d, batch, ws, dropout, into: dPrompt)
            (hook as? PromptHook)?.promptBackward(dPrompt.data, cache: ws.hookCache)
        }
        (hook as? PassHook)?.endBackward(cache: ws.hookCache)
    }
}
