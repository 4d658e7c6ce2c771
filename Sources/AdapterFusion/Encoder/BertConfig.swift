import Foundation

/// The fields of a HF BERT-family `config.json` that the encoder needs.
public struct BertConfig: Codable, Sendable, Equatable {
    public var hiddenSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var intermediateSize: Int
    public var maxPositionEmbeddings: Int
    public var vocabSize: Int
    public var typeVocabSize: Int
    public var layerNormEps: Float
    public var hiddenAct: String
    public var hiddenDropoutProb: Float
    public var attentionProbsDropoutProb: Float
    /// config.json's `model_type` ("bert" when absent).
    public var modelType: String = "bert"

    enum CodingKeys: String, CodingKey {
        case hiddenSize = "hidden_size"
        case numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads"
        case intermediateSize = "intermediate_size"
        case maxPositionEmbeddings = "max_position_embeddings"
        case vocabSize = "vocab_size"
        case typeVocabSize = "type_vocab_size"
        case layerNormEps = "layer_norm_eps"
        case hiddenAct = "hidden_act"
        case hiddenDropoutProb = "hidden_dropout_prob"
        case attentionProbsDropoutProb = "attention_probs_dropout_prob"
        case modelType = "model_type"
    }

    public init(
        hiddenSize: Int, numHiddenLayers: Int, numAttentionHeads: Int, intermediateSize: Int,
        maxPositionEmbeddings: Int = 512, vocabSize: Int, typeVocabSize: Int = 2,
        layerNormEps: Float = 1e-12, hiddenAct: String = "gelu",
        hiddenDropoutProb: Float = 0.1, attentionProbsDropoutProb: Float = 0.1
    ) {
        self.hiddenSize = hiddenSize; self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads; self.intermediateSize = intermediateSize
        self.maxPositionEmbeddings = maxPositionEmbeddings; self.vocabSize = vocabSize
        self.typeVocabSize = typeVocabSize; self.layerNormEps = layerNormEps; self.hiddenAct = hiddenAct
        self.hiddenDropoutProb = hiddenDropoutProb; self.attentionProbsDropoutProb = attentionProbsDropoutProb
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        hiddenSize = try c.decode(Int.self, forKey: .hiddenSize)
        numHiddenLayers = try c.decode(Int.self, forKey: .numHiddenLayers)
        numAttentionHeads = try c.decode(Int.self, forKey: .numAttentionHeads)
        intermediateSize = try c.decode(Int.self, forKey: .intermediateSize)
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? 512
        vocabSize = try c.decode(Int.self, forKey: .vocabSize)
        typeVocabSize = try c.decodeIfPresent(Int.self, forKey: .typeVocabSize) ?? 2
        layerNormEps = try c.decodeIfPresent(Float.self, forKey: .layerNormEps) ?? 1e-12
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? "gelu"
        hiddenDropoutProb = try c.decodeIfPresent(Float.self, forKey: .hiddenDropoutProb) ?? 0.1
        attentionProbsDropoutProb = try c.decodeIfPresent(Float.self, forKey: .attentionProbsDropoutProb) ?? 0.1
        modelType = try c.decodeIfPresent(String.self, forKey: .modelType) ?? "bert"
    }

    /// Size of one attention head.
    public var headSize: Int { hiddenSize / numAttentionHeads }

    /// The `model_type`s this encoder computes exactly.
    public static let supportedModelTypes = ["bert"]

    /// Reads and validates a `config.json`.
    public static func load(_ path: String) throws -> BertConfig {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw ModelError("\(path): cannot read config: \(error.localizedDescription)")
        }
        // The family first: a RoBERTa config has every BERT field and would load, silently wrong.
        if let type = (try? JSONSerialization.jsonObject(with: data) as? [String: Any])?["model_type"] as? String,
            !supportedModelTypes.contains(type)
        {
            throw ModelError(
                "\(path): model_type '\(type)' is not supported (supported: \(supportedModelTypes.joined(separator: ", ")))")
        }
        let config: BertConfig
        do { config = try JSONDecoder().decode(BertConfig.self, from: data) } catch let DecodingError.keyNotFound(key, _) {
            throw ModelError("\(path): missing field '\(key.stringValue)'")
        } catch {
            throw ModelError("\(path): not a BERT config.json (\(error))")
        }
        try config.validate(path)
        return config
    }

    func validate(_ path: String) throws {
        guard hiddenSize > 0, numHiddenLayers > 0, numAttentionHeads > 0, intermediateSize > 0, vocabSize > 0 else {
            throw ModelError("\(path): sizes must be positive")
        }
        guard hiddenSize % numAttentionHeads == 0 else {
            throw ModelError("\(path): hidden_size \(hiddenSize) is not divisible by num_attention_heads \(numAttentionHeads)")
        }
        guard hiddenAct == "gelu" else {
            throw ModelError("\(path): hidden_act '\(hiddenAct)' is not supported (only BERT's exact erf 'gelu')")
        }
    }
}
