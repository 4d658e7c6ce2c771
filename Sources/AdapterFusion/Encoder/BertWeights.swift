import Foundation

/// The frozen weights of one transformer layer. Q, K and V are concatenated into one [3H, H]
/// matrix so the projection is a single GEMM.
public struct BertLayerWeights {
    public let qkvWeight: Tensor  // [3H, H]  rows: query, key, value
    public let qkvBias: Tensor  // [3H]
    public let attnOutWeight: Tensor  // [H, H]
    public let attnOutBias: Tensor  // [H]
    public let attnLNWeight: Tensor  // [H]
    public let attnLNBias: Tensor  // [H]
    public let ffnInWeight: Tensor  // [F, H]
    public let ffnInBias: Tensor  // [F]
    public let ffnOutWeight: Tensor  // [H, F]
    public let ffnOutBias: Tensor  // [H]
    public let ffnLNWeight: Tensor  // [H]
    public let ffnLNBias: Tensor  // [H]
}

extension BertLayerWeights {
    /// A deep copy (for weights that are about to change: merged LoRA updates).
    func copy() -> BertLayerWeights {
        func c(_ t: Tensor) -> Tensor {
            let o = Tensor(zeros: t.shape)
            o.copy(from: t)
            return o
        }
        return BertLayerWeights(
            qkvWeight: c(qkvWeight), qkvBias: c(qkvBias), attnOutWeight: c(attnOutWeight), attnOutBias: c(attnOutBias),
            attnLNWeight: c(attnLNWeight), attnLNBias: c(attnLNBias), ffnInWeight: c(ffnInWeight), ffnInBias: c(ffnInBias),
            ffnOutWeight: c(ffnOutWeight), ffnOutBias: c(ffnOutBias), ffnLNWeight: c(ffnLNWeight), ffnLNBias: c(ffnLNBias))
    }
}

/// All weights of a BERT encoder, loaded through a key table from HF checkpoint names.
public struct BertWeights {
    public let wordEmbeddings: Tensor  // [V, H]
    public let positionEmbeddings: Tensor  // [P, H]
    public let tokenTypeEmbeddings: Tensor  // [TV, H]
    public let embLNWeight: Tensor  // [H]
    public let embLNBias: Tensor  // [H]
    public let layers: [BertLayerWeights]

    /// Number of weights, embeddings included (all-MiniLM-L6-v2: 22,565,376; it has no pooler here).
    public var parameterCount: Int {
        let emb = [wordEmbeddings, positionEmbeddings, tokenTypeEmbeddings, embLNWeight, embLNBias].reduce(0) { $0 + $1.count }
        return emb
            + layers.reduce(0) { acc, l in
                acc
                    + [
                        l.qkvWeight, l.qkvBias, l.attnOutWeight, l.attnOutBias, l.attnLNWeight, l.attnLNBias, l.ffnInWeight, l.ffnInBias,
                        l.ffnOutWeight, l.ffnOutBias, l.ffnLNWeight, l.ffnLNBias,
                    ].reduce(0) { $0 + $1.count }
            }
    }

    /// These weights with each layer replaced by `transform(index, layer)` (the embeddings shared).
    public func replacingLayers(_ transform: (Int, BertLayerWeights) -> BertLayerWeights) -> BertWeights {
        BertWeights(
            wordEmbeddings: wordEmbeddings, positionEmbeddings: positionEmbeddings, tokenTypeEmbeddings: tokenTypeEmbeddings,
            embLNWeight: embLNWeight, embLNBias: embLNBias, layers: layers.enumerated().map { transform($0, $1) })
    }

    init(
        wordEmbeddings: Tensor, positionEmbeddings: Tensor, tokenTypeEmbeddings: Tensor, embLNWeight: Tensor, embLNBias: Tensor,
        layers: [BertLayerWeights]
    ) {
        self.wordEmbeddings = wordEmbeddings; self.positionEmbeddings = positionEmbeddings
        self.tokenTypeEmbeddings = tokenTypeEmbeddings; self.embLNWeight = embLNWeight; self.embLNBias = embLNBias
        self.layers = layers
    }

    /// Loads and shape-checks every tensor the encoder needs from `file`.
    public init(file: SafeTensorsFile, config c: BertConfig) throws {
        let H = c.hiddenSize
        let F = c.intermediateSize
        // Accept checkpoints saved from BertModel (no prefix) and from task models (`bert.` prefix).
        let prefix =
            file.entries["embeddings.word_embeddings.weight"] != nil
            ? "" : (file.entries["bert.embeddings.word_embeddings.weight"] != nil ? "bert." : "")
        func load(_ name: String, _ shape: [Int]) throws -> Tensor {
            let full = prefix + name
            if file.entries[full] == nil, name.hasSuffix("LayerNorm.weight") || name.hasSuffix("LayerNorm.bias") {
                let legacy = full.replacingOccurrences(of: "LayerNorm.weight", with: "LayerNorm.gamma")
                    .replacingOccurrences(of: "LayerNorm.bias", with: "LayerNorm.beta")
                if file.entries[legacy] != nil { return try file.tensor(legacy, shape: shape) }
            }
            return try file.tensor(full, shape: shape)
        }
        wordEmbeddings = try load("embeddings.word_embeddings.weight", [c.vocabSize, H])
        positionEmbeddings = try load("embeddings.position_embeddings.weight", [c.maxPositionEmbeddings, H])
        tokenTypeEmbeddings = try load("embeddings.token_type_embeddings.weight", [c.typeVocabSize, H])
        embLNWeight = try load("embeddings.LayerNorm.weight", [H])
        embLNBias = try load("embeddings.LayerNorm.bias", [H])
        layers = try (0..<c.numHiddenLayers).map { l in
            let p = "encoder.layer.\(l)."
            let qkvW = Tensor(zeros: [3 * H, H])
            let qkvB = Tensor(zeros: [3 * H])
            for (i, part) in ["query", "key", "value"].enumerated() {
                let w = try load(p + "attention.self.\(part).weight", [H, H])
                let b = try load(p + "attention.self.\(part).bias", [H])
                (qkvW.data + i * H * H).update(from: w.data, count: H * H)
                (qkvB.data + i * H).update(from: b.data, count: H)
            }
            return BertLayerWeights(
                qkvWeight: qkvW, qkvBias: qkvB,
                attnOutWeight: try load(p + "attention.output.dense.weight", [H, H]),
                attnOutBias: try load(p + "attention.output.dense.bias", [H]),
                attnLNWeight: try load(p + "attention.output.LayerNorm.weight", [H]),
                attnLNBias: try load(p + "attention.output.LayerNorm.bias", [H]),
                ffnInWeight: try load(p + "intermediate.dense.weight", [F, H]),
                ffnInBias: try load(p + "intermediate.dense.bias", [F]),
                ffnOutWeight: try load(p + "output.dense.weight", [H, F]),
                ffnOutBias: try load(p + "output.dense.bias", [H]),
                ffnLNWeight: try load(p + "output.LayerNorm.weight", [H]),
                ffnLNBias: try load(p + "output.LayerNorm.bias", [H]))
        }
    }
}
