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
    private var modules: [HookSite: BottleneckAdapter] = [:]

    public init(name: String, config: AdapterConfig, hidden: Int, layers: Int, seed: UInt64) {
        self.name = name
        self.config = config
        self.hidden = hidden
        self.layers = layers
        var rng = SeededRNG(seed: seed)
        for (l, s) in config.sites(layers: layers) {
            modules[HookSite(l, s)] = BottleneckAdapter(
                prefix: HookSite(l, s).adapterPrefix, hidden: hidden, bottleneck: config.bottleneckSize(hidden: hidden),
                activation: config.nonLinearity, initStd: config.initStd, rng: &rng)
        }
    }

    /// The module at (layer, site), if any.
    public func module(layer: Int, site: AdapterSite) -> BottleneckAdapter? { modules[HookSite(layer, site)] }

    /// All trainable tensors, in layer order.
    public var parameters: [Parameter] {
        modules.keys.sorted().flatMap { modules[$0]!.parameters }
    }

    public func acts(layer: Int, site: AdapterSite) -> Bool { modules[HookSite(layer, site)] != nil }

    public func readsNormalized(layer: Int, site: AdapterSite) -> Bool { config.lnBefore && acts(layer: layer, site: site) }

    public func forward(
        layer: Int, site: AdapterSite, input: HookInput, out: UnsafeMutablePointer<Float>, n: Int, training: Bool, cache: HookCache
    ) {
        let x = config.lnBefore ? input.normed! : input.h
        modules[HookSite(layer, site)]!.forward(x: x, residual: input.h, out: out, n: n, cache: cache, keepInput: training && !frozen)
    }

    public func backward(layer: Int, site: AdapterSite, dout: UnsafePointer<Float>, grad: HookGradient, n: Int, cache: HookCache) {
        let dx = config.lnBefore ? grad.dnormed! : grad.dh
        modules[HookSite(layer, site)]!.backward(dout: dout, dx: dx, dresidual: grad.dh, n: n, cache: cache, frozen: frozen)
    }
}
