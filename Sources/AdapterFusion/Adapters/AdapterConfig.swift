/// Where bottleneck adapters go in each transformer layer.
public enum AdapterPlacement: String, Codable, Sendable, CaseIterable {
    /// One adapter per layer after the FFN sublayer (Pfeiffer et al. 2021, used by AdapterFusion).
    case pfeiffer
    /// Two per layer: after the attention output projection and after the FFN (Houlsby et al. 2019).
    case houlsby

    public var sites: [AdapterSite] { self == .pfeiffer ? [.output] : [.attention, .output] }
}

/// Configuration of a bottleneck adapter; stored as JSON in the adapter's HDF5 attributes.
public struct AdapterConfig: Codable, Sendable, Equatable {
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
    }

    enum CodingKeys: String, CodingKey {
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
    public var architecture: String { placement.rawValue + (lnBefore ? "+ln" : "") }

    public func bottleneckSize(hidden: Int) -> Int { max(1, hidden / reductionFactor) }

    /// Every (layer, site) that gets an adapter.
    public func sites(layers: Int) -> [(layer: Int, site: AdapterSite)] {
        (0..<layers).filter { !leaveOut.contains($0) }.flatMap { l in placement.sites.map { (l, $0) } }
    }
}
