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
    func inputWidth(hidden H: Int, intermediate F: Int) -> Int {
        location(hidden: H, intermediate: F).point.inputWidth(hidden: H, intermediate: F)
    }
}

/// LoRA: y = W·x + (α/r)·B·A·dropout(x) on each target projection (B = 0, A ~ U(±1/√in); `LoRAModule`).
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

extension AdapterConfig {
    /// Why this configuration cannot build an adapter for an encoder of `hidden` width and
    /// `layers` layers (nil when it can): the message names the field and its allowed range.
    public func problem(hidden: Int, layers: Int, maxPositions: Int = 512) -> String? {
        if hasBottleneck {
            guard (1...hidden).contains(reductionFactor) else { return "reduction_factor = \(reductionFactor) (expected 1…\(hidden))" }
            guard initStd.isFinite, initStd >= 0 else { return "init_std = \(initStd)" }
            guard scaling.isFinite else { return "scaling = \(scaling)" }
        }
        guard leaveOut.allSatisfy({ (0..<layers).contains($0) }) else { return "leave_out \(leaveOut) outside 0..<\(layers)" }
        if let F = intermediateSize, !(1...1_000_000).contains(F) { return "intermediate_size = \(F)" }
        func targets(_ t: [ProjectionTarget], _ allowed: [ProjectionTarget], _ what: String) -> String? {
            if t.isEmpty { return "\(what) has no targets" }
            if let bad = t.first(where: { !allowed.contains($0) }) {
                return "\(what) target '\(bad.rawValue)' (allowed: \(allowed.map(\.rawValue).joined(separator: ", ")))"
            }
            return Set(t).count == t.count ? nil : "\(what) names a target twice"
        }
        let needs: [PEFTMethod: Bool] = [
            .lora: lora != nil, .prefix: prefix != nil, .prompt: prompt != nil, .bitfit: bitfit != nil, .ia3: ia3 != nil,
            .unipelt: lora != nil && prefix != nil,
        ]
        if needs[method] == false {
            return "method \(method.rawValue) without its \(method == .unipelt ? "lora and prefix" : method.rawValue) settings"
        }
        if let l = lora {
            guard (1...hidden).contains(l.rank) else { return "lora rank = \(l.rank) (expected 1…\(hidden))" }
            guard l.alpha.isFinite, l.alpha > 0 else { return "lora alpha = \(l.alpha) (expected > 0)" }
            guard l.dropout >= 0, l.dropout < 1 else { return "lora dropout = \(l.dropout) (expected [0, 1))" }
            let allowed = method == .unipelt ? [ProjectionTarget.query, .key, .value] : LoRAConfig.allowedTargets
            if let p = targets(l.targets, allowed, method == .unipelt ? "UniPELT's lora (its gate reads the layer input)" : "lora") { return p }
        }
        if let p = prefix {
            guard (1...maxPositions).contains(p.length) else { return "prefix length = \(p.length) (expected 1…\(maxPositions))" }
            guard (0...65_536).contains(p.mlpHidden) else { return "prefix mlp_hidden = \(p.mlpHidden) (expected 0…65536)" }
        }
        if let p = prompt {
            guard (1...(maxPositions - 2)).contains(p.length) else { return "prompt length = \(p.length) (expected 1…\(maxPositions - 2))" }
            guard ["vocab", "labels"].contains(p.initialization) else { return "prompt init '\(p.initialization)' (expected vocab or labels)" }
        }
        if let b = bitfit, let p = targets(b.targets, BitFitConfig.allowedTargets, "bitfit") { return p }
        if let i = ia3, let p = targets(i.targets, IA3Config.allowedTargets, "ia3") { return p }
        return nil
    }
}
