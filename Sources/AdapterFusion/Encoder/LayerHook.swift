/// Where inside a post-LN transformer layer a hook runs: on a sublayer's output projection,
/// after its dropout and before the residual sum and LayerNorm.
public enum AdapterSite: Int, Sendable, CaseIterable, Codable {
    /// After the attention output projection (Houlsby's first adapter).
    case attention
    /// After the FFN output projection (Pfeiffer's single adapter, Houlsby's second).
    case output

    public var storageName: String { self == .attention ? "attention_adapter" : "output_adapter" }
}

/// Something that replaces a sublayer output x by f(x) inside the encoder: adapters, their
/// compositions, fusion. The encoder calls `forward` during its forward pass and, in the same
/// layer order reversed, `backward`, which must add ∂L/∂x to `dx` and accumulate the hook's own
/// parameter gradients.
public protocol LayerHook: AnyObject {
    /// True when the hook acts at this layer and site.
    func acts(layer: Int, site: AdapterSite) -> Bool
    /// out[n, H] = f(x[n, H]). Keeps what `backward` needs when `training`.
    func forward(layer: Int, site: AdapterSite, x: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, n: Int, training: Bool)
    /// dx[n, H] += ∂L/∂x given dout = ∂L/∂out.
    func backward(layer: Int, site: AdapterSite, dout: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, n: Int)
}

extension LayerHook {
    /// The lowest (layer, site) the hook acts at, in forward order; nil when it never acts.
    func lowestSite(layers: Int) -> (layer: Int, site: AdapterSite)? {
        for l in 0..<layers { for s in AdapterSite.allCases where acts(layer: l, site: s) { return (l, s) } }
        return nil
    }
}
