/// Where bottleneck adapters go in each transformer layer.
public enum AdapterPlacement: String, Codable, Sendable, CaseIterable {
    /// One adapter per layer after the FFN sublayer (Pfeiffer et al. 2021, used by AdapterFusion).
    case pfeiffer
    /// Two per layer: after the attention output projection and after the FFN (Houlsby et al. 2019).
    case houlsby

    public var sites: [AdapterSite] { self == .pfeiffer ? [.output] : [.attention, .output] }
}

/// Configuration of an adapter entry — a bottleneck adapter or another parameter-efficient
/// method (`method`) — stored as JSON in the entry's HDF5 attributes. The bottleneck fields
/// apply to bottleneck, parallel and UniPELT entries; each other method has its own part.
public struct AdapterConfig: Codable, Sendable, Equatable {
    /// What the entry is (stores written before methods existed hold bottleneck adapters).
    public var method: PEFTMethod = .bottleneck
    public var placement: AdapterPlacement = .pfeiffer
    /// Hidden size divided by this is the bottleneck size (16 → 24 for hidden 384).
    public var reductionFactor: Int = 16
    public var nonLinearity: Activation = .relu
    /// Layers without an adapter.
    public var leaveOut: [Int] = []
    /// Std of the down projection's initial weights (the up projection starts at zero).
    public var initStd: Float = 1e-2
    /// What the adapter reads: LN(h + x), the layer's own LayerNorm applied to the sublayer
    /// output h plus the residual x (true: AdapterHub's seq_bn / Pfeiffer placement), or h itself
    /// (false: AdapterHub's double_seq_bn / Houlsby placement and its `BnConfig` default). Either
    /// way the up projection is added to h and the layer's LayerNorm follows:
    /// out = LN(h + up(f(down(input))) + x). Stores written before this field read as false.
    public var lnBefore = false
    /// s in out = h + s·up(f(down(·))): 1 for sequential adapters, 4 for parallel ones (He et al.).
    public var scaling: Float = 1
    public var lora: LoRAConfig?
    public var prefix: PrefixConfig?
    public var prompt: PromptConfig?
    public var bitfit: BitFitConfig?
    public var ia3: IA3Config?
    /// The encoder's FFN width, for methods with modules there (LoRA on ffn_in/ffn_out, IA³, BitFit).
    public var intermediateSize: Int?

    public init(
        placement: AdapterPlacement = .pfeiffer, reductionFactor: Int = 16,
        nonLinearity: Activation = .relu, leaveOut: [Int] = [], initStd: Float = 1e-2, lnBefore: Bool = false
    ) {
        self.placement = placement; self.reductionFactor = reductionFactor
        self.nonLinearity = nonLinearity; self.leaveOut = leaveOut; self.initStd = initStd; self.lnBefore = lnBefore
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        placement = try c.decode(AdapterPlacement.self, forKey: .placement)
        reductionFactor = try c.decode(Int.self, forKey: .reductionFactor)
        nonLinearity = try c.decode(Activation.self, forKey: .nonLinearity)
        leaveOut = try c.decode([Int].self, forKey: .leaveOut)
        initStd = try c.decode(Float.self, forKey: .initStd)
        lnBefore = try c.decodeIfPresent(Bool.self, forKey: .lnBefore) ?? false
        method = try c.decodeIfPresent(PEFTMethod.self, forKey: .method) ?? .bottleneck
        scaling = try c.decodeIfPresent(Float.self, forKey: .scaling) ?? 1
        lora = try c.decodeIfPresent(LoRAConfig.self, forKey: .lora)
        prefix = try c.decodeIfPresent(PrefixConfig.self, forKey: .prefix)
        prompt = try c.decodeIfPresent(PromptConfig.self, forKey: .prompt)
        bitfit = try c.decodeIfPresent(BitFitConfig.self, forKey: .bitfit)
        ia3 = try c.decodeIfPresent(IA3Config.self, forKey: .ia3)
        intermediateSize = try c.decodeIfPresent(Int.self, forKey: .intermediateSize)
    }

    /// A method's configuration with its defaults (bottleneck fields for the methods that have
    /// a bottleneck; `placement` pfeiffer, `scaling` 4 for parallel adapters).
    public static func method(_ m: PEFTMethod) -> AdapterConfig {
        var c = AdapterConfig(lnBefore: m == .bottleneck)
        c.method = m
        switch m {
        case .bottleneck: break
        case .lora: c.lora = LoRAConfig()
        case .prefix: c.prefix = PrefixConfig()
        case .prompt: c.prompt = PromptConfig()
        case .bitfit: c.bitfit = BitFitConfig()
        case .ia3: c.ia3 = IA3Config()
        case .parallel: c.scaling = 4; c.reductionFactor = 2
        case .unipelt: c.lora = LoRAConfig(); c.prefix = PrefixConfig()
        }
        return c
    }

    /// True for the methods built on bottleneck modules (bottleneck, parallel, UniPELT).
    public var hasBottleneck: Bool { method == .bottleneck || method == .parallel || method == .unipelt }

    /// Writes the fields of the entry's method only.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(method, forKey: .method)
        // The bottleneck keys always (readers of earlier versions need them); they describe a
        // module only for the methods that have one.
        try c.encode(placement, forKey: .placement)
        try c.encode(reductionFactor, forKey: .reductionFactor)
        try c.encode(nonLinearity, forKey: .nonLinearity)
        try c.encode(initStd, forKey: .initStd)
        if hasBottleneck {
            try c.encode(lnBefore, forKey: .lnBefore)
            try c.encode(scaling, forKey: .scaling)
        }
        try c.encode(leaveOut, forKey: .leaveOut)
        try c.encodeIfPresent(lora, forKey: .lora)
        try c.encodeIfPresent(prefix, forKey: .prefix)
        try c.encodeIfPresent(prompt, forKey: .prompt)
        try c.encodeIfPresent(bitfit, forKey: .bitfit)
        try c.encodeIfPresent(ia3, forKey: .ia3)
        try c.encodeIfPresent(intermediateSize, forKey: .intermediateSize)
    }

    enum CodingKeys: String, CodingKey {
        case method, scaling, lora, prefix, prompt, bitfit, ia3
        case intermediateSize = "intermediate_size"
        case placement
        case reductionFactor = "reduction_factor"
        case nonLinearity = "non_linearity"
        case leaveOut = "leave_out"
        case initStd = "init_std"
        case lnBefore = "original_ln_before"
    }

    /// What `afusion train-adapter` uses unless told: LN(h + x) for pfeiffer (AdapterHub's
    /// seq_bn), h for houlsby (AdapterHub's double_seq_bn).
    public static func defaultLNBefore(_ placement: AdapterPlacement) -> Bool { placement == .pfeiffer }

    /// `pfeiffer`, `houlsby`, with `+ln` when the adapter reads LN(h + x) (AdapterHub's seq_bn
    /// is `pfeiffer+ln`, its double_seq_bn `houlsby`).
    public var architecture: String {
        let bottleneck = placement.rawValue + (lnBefore ? "+ln" : "")
        switch method {
        case .bottleneck: return bottleneck
        case .parallel: return "parallel (\(bottleneck == "pfeiffer" ? "ffn" : "attention+ffn"), s=\(fmtScale(scaling)))"
        case .lora:
            let l = lora ?? LoRAConfig()
            return "lora r\(l.rank) α\(fmtScale(l.alpha)) " + l.targets.map(\.rawValue).joined(separator: ",")
        case .prefix: return "prefix \(prefix?.length ?? 0)"
        case .prompt: return "prompt \(prompt?.length ?? 0)"
        case .bitfit: return "bitfit " + (bitfit?.targets ?? []).map(\.rawValue).joined(separator: ",")
        case .ia3: return "ia3 " + (ia3?.targets ?? []).map(\.rawValue).joined(separator: ",")
        case .unipelt:
            return "unipelt (\(bottleneck) + prefix \(prefix?.length ?? 0) + lora r\(lora?.rank ?? 0)"
                + (prompt.map { " + prompt \($0.length)" } ?? "") + ")"
        }
    }

    private func fmtScale(_ x: Float) -> String { x == x.rounded() ? String(Int(x)) : String(x) }

    /// Layers that get the method's modules.
    public func layers(_ count: Int) -> [Int] { (0..<count).filter { !leaveOut.contains($0) } }

    public func bottleneckSize(hidden: Int) -> Int { max(1, hidden / reductionFactor) }

    /// Every (layer, site) that gets a bottleneck module.
    public func sites(layers: Int) -> [(layer: Int, site: AdapterSite)] {
        guard hasBottleneck else { return [] }
        return (0..<layers).filter { !leaveOut.contains($0) }.flatMap { l in placement.sites.map { (l, $0) } }
    }
}
