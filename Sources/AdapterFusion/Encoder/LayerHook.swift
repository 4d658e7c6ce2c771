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

/// What a hook reads at one (layer, site), all [n, H]: the sublayer's output h (after its
/// dropout, before the residual sum) and, when the hook asks for it, z = LN(h + x), the layer's
/// own LayerNorm applied to the residual sum (AdapterHub's `original_ln_before`, the input of a
/// seq_bn / Pfeiffer adapter and of its fusion query).
public struct HookInput {
    public let h: UnsafePointer<Float>
    public let normed: UnsafePointer<Float>?

    public init(h: UnsafePointer<Float>, normed: UnsafePointer<Float>? = nil) { self.h = h; self.normed = normed }

    /// The rows from `offset` on (a slice of the batch).
    func advanced(by offset: Int) -> HookInput { HookInput(h: h + offset, normed: normed.map { $0 + offset }) }
}

/// Where a hook's backward pass adds its input gradients: ∂L/∂h and, when the hook read z,
/// ∂L/∂z (the encoder carries it through the LayerNorm to h and the residual).
public struct HookGradient {
    public let dh: UnsafeMutablePointer<Float>
    public let dnormed: UnsafeMutablePointer<Float>?

    public init(dh: UnsafeMutablePointer<Float>, dnormed: UnsafeMutablePointer<Float>? = nil) { self.dh = dh; self.dnormed = dnormed }

    func advanced(by offset: Int) -> HookGradient { HookGradient(dh: dh + offset, dnormed: dnormed.map { $0 + offset }) }
}

/// Something that replaces a sublayer output h by f(h, z) inside the encoder: adapters, their
/// compositions, fusion. The encoder calls `forward` during its forward pass and, in the same
/// layer order reversed, `backward`, which must add ∂L/∂h (and ∂L/∂z) to `grad` and accumulate
/// the hook's own parameter gradients.
public protocol LayerHook: AnyObject {
    /// True when the hook acts at this layer and site.
    func acts(layer: Int, site: AdapterSite) -> Bool
    /// True when the hook reads z = LN(h + x) at this layer and site (the encoder computes it only then).
    func readsNormalized(layer: Int, site: AdapterSite) -> Bool
    /// out[n, H] = f(h, z). Keeps what `backward` needs in `cache`.
    func forward(layer: Int, site: AdapterSite, input: HookInput, out: UnsafeMutablePointer<Float>, n: Int, training: Bool, cache: HookCache)
    /// grad.dh[n, H] += ∂L/∂h (and grad.dnormed += ∂L/∂z) given dout = ∂L/∂out, reading what the
    /// forward pass kept in `cache`.
    func backward(layer: Int, site: AdapterSite, dout: UnsafePointer<Float>, grad: HookGradient, n: Int, cache: HookCache)
}

extension LayerHook {
    /// The lowest (layer, site) the hook acts at, in forward order; nil when it never acts.
    func lowestSite(layers: Int) -> (layer: Int, site: AdapterSite)? {
        for l in 0..<layers { for s in AdapterSite.allCases where acts(layer: l, site: s) { return (l, s) } }
        return nil
    }
}
