/// A task adapter: bottleneck modules at every (layer, site) its configuration names.
/// Parameter names are the dataset paths under `/adapters/<name>/` in a store,
/// e.g. `layer_03/output_adapter/down/weight`.
public final class Adapter: LayerHook {
    public let name: String
    public let config: AdapterConfig
    public let hidden: Int
    public let layers: Int
    /// A frozen adapter (a fusion member) passes gradients through but computes none for itself.
    public var frozen = false
    private var modules: [Int: BottleneckAdapter] = [:]  // key: layer * 2 + site

    public init(name: String, config: AdapterConfig, hidden: Int, layers: Int, seed: UInt64) {
        self.name = name
        self.config = config
        self.hidden = hidden
        self.layers = layers
        var rng = SeededRNG(seed: seed)
        for (l, s) in config.sites(layers: layers) {
            modules[l * 2 + s.rawValue] = BottleneckAdapter(
                prefix: Self.prefix(l, s), hidden: hidden, bottleneck: config.bottleneckSize(hidden: hidden),
                activation: config.nonLinearity, initStd: config.initStd, rng: &rng)
        }
    }

    static func prefix(_ layer: Int, _ site: AdapterSite) -> String {
        "layer_" + (layer < 10 ? "0" : "") + String(layer) + "/" + site.storageName + "/"
    }

    /// The module at (layer, site), if any.
    public func module(layer: Int, site: AdapterSite) -> BottleneckAdapter? { modules[layer * 2 + site.rawValue] }

    /// All trainable tensors, in layer order.
    public var parameters: [Parameter] {
        modules.keys.sorted().flatMap { modules[$0]!.parameters }
    }

    public func acts(layer: Int, site: AdapterSite) -> Bool { modules[layer * 2 + site.rawValue] != nil }

    public func forward(layer: Int, site: AdapterSite, x: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, n: Int, training: Bool) {
        modules[layer * 2 + site.rawValue]!.forward(x: x, out: out, n: n)
    }

    public func backward(layer: Int, site: AdapterSite, dout: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, n: Int) {
        modules[layer * 2 + site.rawValue]!.backward(dout: dout, dx: dx, n: n, frozen: frozen)
    }
}
