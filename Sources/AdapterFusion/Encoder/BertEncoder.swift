import Foundation

/// Buffers of one transformer layer's forward pass, sized for a number of tokens. A training
/// workspace keeps one per layer so the backward pass can read them; inference shares one.
public final class LayerActivations {
    public let capacity: Int
    public let qkv: Tensor         // [N, 3H] fused Q, K, V projections
    public var att: Tensor         // [Σ heads·L²] attention probabilities
    public let ctx: Tensor         // [N, H] attention context (heads concatenated)
    public let attnSum: Tensor     // [N, H] attention output projection + residual (LayerNorm input)
    public let attnMean: Tensor    // [N]
    public let attnRstd: Tensor    // [N]
    public let attnOut: Tensor     // [N, H] after LayerNorm: the FFN input
    public let ffnPre: Tensor      // [N, F] intermediate before GELU
    public let ffnAct: Tensor      // [N, F] after GELU
    public let ffnSum: Tensor      // [N, H] FFN output projection + residual (LayerNorm input)
    public let ffnMean: Tensor     // [N]
    public let ffnRstd: Tensor     // [N]
    public let out: Tensor         // [N, H] layer output

    public init(capacity n: Int, attCapacity: Int, config c: BertConfig) {
        let H = c.hiddenSize, F = c.intermediateSize
        capacity = n
        qkv = Tensor(zeros: [n, 3 * H]); att = Tensor(zeros: [attCapacity]); ctx = Tensor(zeros: [n, H])
        attnSum = Tensor(zeros: [n, H]); attnMean = Tensor(zeros: [n]); attnRstd = Tensor(zeros: [n])
        attnOut = Tensor(zeros: [n, H]); ffnPre = Tensor(zeros: [n, F]); ffnAct = Tensor(zeros: [n, F])
        ffnSum = Tensor(zeros: [n, H]); ffnMean = Tensor(zeros: [n]); ffnRstd = Tensor(zeros: [n])
        out = Tensor(zeros: [n, H])
    }
}

/// Reusable buffers for encoder forward passes; grows when a larger batch arrives.
public final class EncoderWorkspace {
    public let config: BertConfig
    /// One buffer set per layer when `keepAllLayers`, else a single set shared by all layers.
    public let keepAllLayers: Bool
    public private(set) var capacity = 0
    public private(set) var embSum = Tensor(zeros: [0])   // [N, H] word + position + type
    public private(set) var embMean = Tensor(zeros: [0])  // [N]
    public private(set) var embRstd = Tensor(zeros: [0])  // [N]
    public private(set) var embOut = Tensor(zeros: [0])   // [N, H]
    public private(set) var layers: [LayerActivations] = []

    public init(config: BertConfig, keepAllLayers: Bool = false) {
        self.config = config
        self.keepAllLayers = keepAllLayers
    }

    /// Makes sure the buffers fit `batch`; allocates only when it is larger than any before.
    public func reserve(for batch: TokenBatch) {
        let n = batch.tokenCount, H = config.hiddenSize
        let attCount = SelfAttention.probabilityCount(batch, heads: config.numAttentionHeads)
        if n > capacity {
            capacity = n
            embSum = Tensor(zeros: [n, H]); embMean = Tensor(zeros: [n]); embRstd = Tensor(zeros: [n])
            embOut = Tensor(zeros: [n, H])
            layers = (0..<(keepAllLayers ? config.numHiddenLayers : 1)).map { _ in
                LayerActivations(capacity: n, attCapacity: attCount, config: config)
            }
        }
        for l in layers where l.att.count < attCount { l.att = Tensor(zeros: [attCount]) }
    }

    /// Buffers of layer `l`.
    public func activations(_ l: Int) -> LayerActivations { layers[keepAllLayers ? l : 0] }
}

/// A frozen BERT-family encoder (embeddings, then post-LayerNorm transformer layers).
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
    public func forward(_ batch: TokenBatch, workspace ws: EncoderWorkspace) throws -> Tensor {
        try validate(batch)
        ws.reserve(for: batch)
        var x = embed(batch, ws)
        for l in 0..<config.numHiddenLayers {
            let a = ws.activations(l)
            layerForward(l, input: x, a, batch)
            x = a.out.data
        }
        let out = Tensor(zeros: [batch.tokenCount, config.hiddenSize])
        out.data.update(from: x, count: out.count)
        return out
    }

    /// Embeddings: LayerNorm(word[id] + position[pos] + type[tt]) → embOut [N, H].
    func embed(_ batch: TokenBatch, _ ws: EncoderWorkspace) -> UnsafeMutablePointer<Float> {
        let n = batch.tokenCount, H = config.hiddenSize, w = weights
        batch.ids.withUnsafeBufferPointer { ids in
            Embedding.forward(out: ws.embSum.data, table: w.wordEmbeddings.data, ids: ids.baseAddress!, n: n, dim: H)
        }
        batch.positions.withUnsafeBufferPointer { pos in
            Embedding.forward(out: ws.embSum.data, table: w.positionEmbeddings.data, ids: pos.baseAddress!, n: n, dim: H, accumulate: true)
        }
        batch.typeIds.withUnsafeBufferPointer { tt in
            Embedding.forward(out: ws.embSum.data, table: w.tokenTypeEmbeddings.data, ids: tt.baseAddress!, n: n, dim: H, accumulate: true)
        }
        LayerNorm.forward(out: ws.embOut.data, mean: ws.embMean.data, rstd: ws.embRstd.data, inp: ws.embSum.data,
                          weight: w.embLNWeight.data, bias: w.embLNBias.data, n: n, c: H, eps: config.layerNormEps)
        return ws.embOut.data
    }

    /// One post-LN transformer layer: x → LN(x + Attn(x)) → LN(· + FFN(·)).
    func layerForward(_ l: Int, input x: UnsafePointer<Float>, _ a: LayerActivations, _ batch: TokenBatch) {
        let n = batch.tokenCount, H = config.hiddenSize, F = config.intermediateSize
        let w = weights.layers[l], eps = config.layerNormEps
        // qkv[N, 3H] = x · Wqkvᵀ + b
        Linear.forward(y: a.qkv.data, x: x, w: w.qkvWeight.data, b: w.qkvBias.data, n: n, inDim: H, outDim: 3 * H)
        SelfAttention.forward(ctx: a.ctx.data, att: a.att.data, qkv: a.qkv.data, batch: batch,
                              heads: config.numAttentionHeads, headSize: config.headSize)
        // attnSum[N, H] = ctx · Woᵀ + bo + x;  attnOut = LN(attnSum)
        Linear.forward(y: a.attnSum.data, x: a.ctx.data, w: w.attnOutWeight.data, b: w.attnOutBias.data, n: n, inDim: H, outDim: H)
        VectorMath.add(a.attnSum.data, x, n * H)
        LayerNorm.forward(out: a.attnOut.data, mean: a.attnMean.data, rstd: a.attnRstd.data, inp: a.attnSum.data,
                          weight: w.attnLNWeight.data, bias: w.attnLNBias.data, n: n, c: H, eps: eps)
        // ffnAct[N, F] = gelu(attnOut · W1ᵀ + b1)
        Linear.forward(y: a.ffnPre.data, x: a.attnOut.data, w: w.ffnInWeight.data, b: w.ffnInBias.data, n: n, inDim: H, outDim: F)
        GELU.forward(out: a.ffnAct.data, inp: a.ffnPre.data, count: n * F)
        // ffnSum[N, H] = ffnAct · W2ᵀ + b2 + attnOut;  out = LN(ffnSum)
        Linear.forward(y: a.ffnSum.data, x: a.ffnAct.data, w: w.ffnOutWeight.data, b: w.ffnOutBias.data, n: n, inDim: F, outDim: H)
        VectorMath.add(a.ffnSum.data, a.attnOut.data, n * H)
        LayerNorm.forward(out: a.out.data, mean: a.ffnMean.data, rstd: a.ffnRstd.data, inp: a.ffnSum.data,
                          weight: w.ffnLNWeight.data, bias: w.ffnLNBias.data, n: n, c: H, eps: eps)
    }
}

/// Sentence embeddings from packed hidden states.
public enum Pooling {
    /// Mean over each sequence's tokens, then L2-normalised (sentence-transformers' recipe).
    public static func meanNormalized(_ hidden: Tensor, batch: TokenBatch) -> [[Float]] {
        let H = hidden.cols
        return (0..<batch.count).map { s in
            var v = [Float](repeating: 0, count: H)
            for t in batch.offsets[s]..<batch.offsets[s + 1] {
                for j in 0..<H { v[j] += hidden.data[t * H + j] }
            }
            let L = Float(max(batch.length(s), 1))
            for j in 0..<H { v[j] /= L }
            let norm = max(v.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-12)
            return v.map { $0 / norm }
        }
    }

    /// The hidden state of each sequence's first token ([CLS]).
    public static func cls(_ hidden: Tensor, batch: TokenBatch) -> [[Float]] {
        let H = hidden.cols
        return (0..<batch.count).map { s in Array(UnsafeBufferPointer(start: hidden.data + batch.offsets[s] * H, count: H)) }
    }
}
