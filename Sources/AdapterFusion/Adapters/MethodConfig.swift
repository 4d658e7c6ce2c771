/// The parameter-efficient methods an adapter entry can hold (its stored `kind`).
public enum PEFTMethod: String, Codable, Sendable, CaseIterable {
    /// Bottleneck adapters after sublayer outputs (Houlsby et al. 2019; Pfeiffer et al. 2021).
    case bottleneck
    /// Low-rank updates ΔW = (α/r)·B·A of chosen projections (Hu et al. 2021).
    case lora
    /// Trained key and value vectors prepended to every layer's attention (Li & Liang 2021).
    case prefix
    /// Soft tokens inserted into the input (Lester et al. 2021).
    case prompt
    /// Only bias terms train, stored as deltas (Ben Zaken et al. 2021).
    case bitfit
    /// Learned vectors scaling keys, values and the FFN activation (Liu et al. 2022).
    case ia3
    /// A bottleneck beside the FFN, reading its input, scaled by s (He et al. 2022).
    case parallel
    /// Bottleneck adapter + prefix + LoRA per layer, each behind a learned gate (Mao et al. 2022).
    case unipelt

    /// The stored `kind` attribute.
    public var kind: String {
        switch self {
        case .bottleneck: return "bottleneck_adapter"
        case .parallel: return "parallel_adapter"
        default: return rawValue
        }
    }
}

/// Projections LoRA, IA³ and BitFit can act on, by their names in options and stored paths.
public enum ProjectionTarget: String, Codable, Sendable, CaseIterable {
    case query, key, value
    case attentionOutput = "attention_output"
    case attentionNorm = "attention_norm"
    case ffnIn = "ffn_in"
    case ffn
    case ffnOut = "ffn_out"
    case outputNorm = "output_norm"

    /// Where in a layer the target's tensor lives, and its columns there.
    func location(hidden H: Int, intermediate F: Int) -> (point: LayerPoint, column: Int, width: Int) {
        switch self {
        case .query: return (.qkv, 0, H)
        case .key: return (.qkv, H, H)
        case .value: return (.qkv, 2 * H, H)
        case .attentionOutput: return (.attnProj, 0, H)
        case .attentionNorm: return (.attnNorm, 0, H)
        case .ffnIn: return (.ffnPre, 0, F)
        case .ffn: return (.ffnAct, 0, F)
        case .ffnOut: return (.ffnProj, 0, H)
        case .outputNorm: return (.outNorm, 0, H)
        }
    }

    /// The projection's input width (LoRA's A has this many columns).
    func inputWidth(hidden H: Int, intermediate F: Int) -> Int { self == .ffnOut ? F : H }
}

/// LoRA: y = W·x + (α/r)·B·A·dropout(x) on each target projection; A ~ N(0, 1/r²)… see `LoRAModule`.
public struct LoRAConfig: Codable, Sendable, Equatable {
    public var rank = 8
    public var alpha: Float = 16
    /// query, key, value, attention_output, ffn_in, ffn_out.
    public var targets: [ProjectionTarget] = [.query, .value]
    /// Dropout on the LoRA input while training.
    public var dropout: Float = 0.1

    public init(rank: Int = 8, alpha: Float = 16, targets: [ProjectionTarget] = [.query, .value], dropout: Float = 0.1) {
        self.rank = rank; self.alpha = alpha; self.targets = targets; self.dropout = dropout
    }

    public static let allowedTargets: [ProjectionTarget] = [.query, .key, .value, .attentionOutput, .ffnIn, .ffnOut]
    public var scaling: Float { alpha / Float(rank) }
}

/// Prefix tuning: `length` key and value vectors per layer, trained through an MLP
/// (embedding [length, H] → tanh(Linear H→`mlpHidden`) → Linear → 2·layers·H) and stored flattened.
public struct PrefixConfig: Codable, Sendable, Equatable {
    public var length = 10
    public var mlpHidden = 512
    public init(length: Int = 10, mlpHidden: Int = 512) { self.length = length; self.mlpHidden = mlpHidden }

    enum CodingKeys: String, CodingKey {
        case length
        case mlpHidden = "mlp_hidden"
    }
}

/// Prompt tuning: `length` soft tokens after [CLS], initialised from real words' embeddings.
public struct PromptConfig: Codable, Sendable, Equatable {
    public var length = 10
    /// Where the initial vectors come from: "vocab" (random real words, seeded) or "labels"
    /// (the task's label names' tokens, repeated).
    public var initialization = "vocab"
    public init(length: Int = 10, initialization: String = "vocab") { self.length = length; self.initialization = initialization }

    enum CodingKeys: String, CodingKey {
        case length
        case initialization = "init"
    }
}

/// BitFit: which bias terms train (their deltas are stored). The key bias is allowed but not a
/// default: adding δ to every key adds q·δ to a whole row of scores, which the softmax ignores,
/// so it never receives a gradient.
public struct BitFitConfig: Codable, Sendable, Equatable {
    public var targets: [ProjectionTarget] = BitFitConfig.defaultTargets
    public init(targets: [ProjectionTarget] = BitFitConfig.defaultTargets) { self.targets = targets }
    public static let defaultTargets: [ProjectionTarget] = allowedTargets.filter { $0 != .key }
    public static let allowedTargets: [ProjectionTarget] = [
        .query, .key, .value, .attentionOutput, .attentionNorm, .ffnIn, .ffnOut, .outputNorm,
    ]
}

/// IA³: which tensors get a learned scaling vector (key, value: [H]; ffn: the FFN activation [F]).
public struct IA3Config: Codable, Sendable, Equatable {
    public var targets: [ProjectionTarget] = [.key, .value, .ffn]
    public init(targets: [ProjectionTarget] = [.key, .value, .ffn]) { self.targets = targets }
    public static let allowedTargets: [ProjectionTarget] = [.key, .value, .ffn]
}
