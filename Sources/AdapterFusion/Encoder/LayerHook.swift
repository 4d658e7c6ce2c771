/// Where inside a post-LN transformer layer a hook runs: on a sublayer's output projection,
/// after its dropout and before the residual sum and LayerNorm.
public enum AdapterSite: Int, Sendable, CaseIterable, Codable {
    /// After the attention output projection (Houlsby's first adapter).
    case attention
    /// After the FFN output projection (Pfeiffer's single adapter, Houlsby's second).
    case output

    public var storageName: String { self == .attention ? "attention_adapter" : "output_adapter" }
}

/// A place a hook can act: (layer, site). The only place its dense index and its stored path
/// prefix are computed.
public struct HookSite: Hashable, Sendable, Comparable {
    public let layer: Int
    public let site: AdapterSite

    public init(_ layer: Int, _ site: AdapterSite) { self.layer = layer; self.site = site }

    /// Dense index, in encoder order: layer 0 attention, layer 0 output, layer 1 attention, …
    public var index: Int { layer * AdapterSite.allCases.count + site.rawValue }

    /// `layer_03`: the stored group of a layer.
    public var layerName: String { "layer_" + (layer < 10 ? "0" : "") + String(layer) }

    /// An adapter module's stored prefix: `layer_03/output_adapter/`.
    public var adapterPrefix: String { layerName + "/" + site.storageName + "/" }

    /// A fusion layer's stored prefix: `layer_03/` at the output, `layer_03/attention/` at the attention site.
    public var fusionPrefix: String { layerName + "/" + (site == .output ? "" : "attention/") }

    public static func < (a: HookSite, b: HookSite) -> Bool { a.index < b.index }
}

/// Something that replaces a sublayer output x by f(x) inside the encoder: adapters, their
/// compositions, fusion. The encoder calls `forward` during its forward pass and, in the same
/// layer order reversed, `backward`, which must add ∂L/∂x to `dx` and accumulate the hook's own
/// parameter gradients.
public protocol LayerHook: AnyObject {
    /// True when the hook acts at this layer and site.
    func acts(layer: Int, site: AdapterSite) -> Bool
    /// out[n, H] = f(x[n, H]). Keeps what `backward` needs in `cache`.
    func forward(
        layer: Int, site: AdapterSite, x: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, n: Int, training: Bool,
        cache: HookCache)
    /// dx[n, H] += ∂L/∂x given dout = ∂L/∂out, reading what the forward pass kept in `cache`.
    func backward(layer: Int, site: AdapterSite, dout: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, n: Int, cache: HookCache)
}

extension LayerHook {
    /// The lowest (layer, site) the hook acts at, in forward order; nil when it never acts.
    func lowestSite(layers: Int) -> (layer: Int, site: AdapterSite)? {
        for l in 0..<layers { for s in AdapterSite.allCases where acts(layer: l, site: s) { return (l, s) } }
        return nil
    }
}
