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

    public init(
        placement: AdapterPlacement = .pfeiffer, reductionFactor: Int = 16,
        nonLinearity: Activation = .relu, leaveOut: [Int] = [], initStd: Float = 1e-2
    ) {
        self.placement = placement; self.reductionFactor = reductionFactor
        self.nonLinearity = nonLinearity; self.leaveOut = leaveOut; self.initStd = initStd
    }

    enum CodingKeys: String, CodingKey {
        case placement
        case reductionFactor = "reduction_factor"
        case nonLinearity = "non_linearity"
        case leaveOut = "leave_out"
        case initStd = "init_std"
    }

    public func bottleneckSize(hidden: Int) -> Int { max(1, hidden / reductionFactor) }

    /// Every (layer, site) that gets an adapter.
    public func sites(layers: Int) -> [(layer: Int, site: AdapterSite)] {
        (0..<layers).filter { !leaveOut.contains($0) }.flatMap { l in placement.sites.map { (l, $0) } }
    }
}
