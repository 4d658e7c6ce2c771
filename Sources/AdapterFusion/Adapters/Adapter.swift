/// A task adapter: the modules of one parameter-efficient method (`AdapterConfig.method`) at
/// every place of the encoder its configuration names — bottleneck modules after sublayer
/// outputs, LoRA updates and IA³ / BitFit vectors on projections, attention prefixes, a soft
/// prompt, UniPELT's gates. Parameter names are the dataset paths under `/adapters/<name>/` in a
/// store, e.g. `layer_03/output_adapter/down/weight`, `layer_03/lora/query/A`, `prompt/embeddings`.
public final class Adapter: FoldableSublayer, ProjectionHook, PrefixHook, PromptHook, PassHook {
    enum Slot: CacheSlot {
        case adapterGateGradient, loraGateGradient  // [n] ∂L/∂g of UniPELT's gates
    }

    public let name: String
    public let config: AdapterConfig
    public let hidden: Int
    public let layers: Int
    public let intermediate: Int
    /// A frozen adapter (a fusion member) passes gradients through but computes none for itself.
    public var frozen = false
    private var modules: [HookSite: BottleneckAdapter] = [:]
    /// LoRA updates by layer, in target order.
    private var loras: [Int: [(target: ProjectionTarget, module: LoRAModule)]] = [:]
    /// IA³ and BitFit vectors by layer.
    private var vectors: [Int: [ColumnVector]] = [:]
    /// UniPELT's gates by layer: on the bottleneck's input and on the LoRA input.
    private var adapterGates: [Int: TokenGate] = [:]
    private var loraGates: [Int: TokenGate] = [:]
    public private(set) var prefixModule: PrefixModule?
    public private(set) var promptModule: PromptModule?

    /// - Parameters:
    ///   - intermediate: the encoder's FFN width (default: `config.intermediateSize`, else 4·hidden).
    ///   - stored: build the stored form (a prefix without its training MLP), to load weights into.
    public init(name: String, config: AdapterConfig, hidden: Int, layers: Int, seed: UInt64, intermediate: Int? = nil, stored: Bool = false) {
        self.name = name
        self.config = config
        self.hidden = hidden
        self.layers = layers
        let F = intermediate ?? config.intermediateSize ?? 4 * hidden
        self.intermediate = F
        var rng = SeededRNG(seed: seed)
        for (l, s) in config.sites(layers: layers) {
            modules[HookSite(l, s)] = BottleneckAdapter(
                prefix: HookSite(l, s).adapterPrefix, hidden: hidden, bottleneck: config.bottleneckSize(hidden: hidden),
                activation: config.nonLinearity, initStd: config.initStd, rng: &rng)
        }
        let gated = config.method == .unipelt
        for l in config.layers(layers) {
            let layerName = HookSite(l, .output).layerName
            if let lora = config.lora {
                loras[l] = lora.targets.map { t in
                    let (_, _, width) = t.location(hidden: hidden, intermediate: F)
                    return (
                        t,
                        LoRAModule(
                            prefix: layerName + "/lora/\(t.rawValue)/", inDim: t.inputWidth(hidden: hidden, intermediate: F), outDim: width,
                            rank: lora.rank, scaling: lora.scaling, dropout: lora.dropout, rng: &rng)
                    )
                }
            }
            var v: [ColumnVector] = []
            for t in config.ia3?.targets ?? [] { v.append(vector(t, .scale, layerName + "/ia3/" + t.rawValue, F)) }
            for t in config.bitfit?.targets ?? [] { v.append(vector(t, .shift, layerName + "/bitfit/\(t.rawValue)_bias", F)) }
            if !v.isEmpty { vectors[l] = v }
            if gated {
                if modules[HookSite(l, .output)] != nil || modules[HookSite(l, .attention)] != nil {
                    adapterGates[l] = TokenGate(prefix: layerName + "/gates/adapter/", hidden: hidden, rng: &rng)
                }
                if loras[l] != nil { loraGates[l] = TokenGate(prefix: layerName + "/gates/lora/", hidden: hidden, rng: &rng) }
            }
        }
        if let p = config.prefix {
            prefixModule = PrefixModule(
                layers: config.layers(layers), totalLayers: layers, hidden: hidden, length: p.length, mlpHidden: stored ? 0 : p.mlpHidden,
                gated: gated,
                prefix: "", rng: &rng)
        }
        if let p = config.prompt { promptModule = PromptModule(length: p.length, hidden: hidden, rng: &rng) }
    }

    private func vector(_ t: ProjectionTarget, _ op: ColumnVector.Operation, _ name: String, _ F: Int) -> ColumnVector {
        let (point, column, width) = t.location(hidden: hidden, intermediate: F)
        return ColumnVector(name: name, operation: op, point: point, column: column, width: width, ld: point.width(hidden: hidden, intermediate: F))
    }

    /// The bottleneck module at (layer, site), if any.
    public func module(layer: Int, site: AdapterSite) -> BottleneckAdapter? { modules[HookSite(layer, site)] }

    /// All trainable tensors, in a fixed order: bottlenecks by site, then per layer LoRA, vectors
    /// and gates, then the prefix and the prompt.
    public var parameters: [Parameter] {
        var out = modules.keys.sorted().flatMap { modules[$0]!.parameters }
        for l in 0..<layers {
            out += (loras[l] ?? []).flatMap(\.module.parameters)
            out += (vectors[l] ?? []).map(\.value)
            out += (adapterGates[l]?.parameters ?? []) + (loraGates[l]?.parameters ?? [])
        }
        return out + (prefixModule?.parameters ?? []) + (promptModule.map { [$0.embeddings] } ?? [])
    }

    /// Puts the adapter in its stored form after training (a prefix's MLP becomes its output).
    public func finishTraining() { prefixModule?.flatten() }

    /// Plain bottleneck adapters (out = h + up(f(down(·))), no scale, no gate) let a fusion fold
    /// its value matrix into their up projections (`FoldableSublayer`).
    public func foldable(layer: Int, site: AdapterSite, n: Int, cache: HookCache) -> (module: BottleneckAdapter, activation: UnsafePointer<Float>)? {
        guard config.method == .bottleneck, config.scaling == 1, let m = modules[HookSite(layer, site)] else { return nil }
        return (m, m.activation(cache, n: n))
    }

    // MARK: sublayer outputs (bottleneck modules)

    public func acts(layer: Int, site: AdapterSite) -> Bool { modules[HookSite(layer, site)] != nil }

    public func readsNormalized(layer: Int, site: AdapterSite) -> Bool {
        config.lnBefore && config.method != .parallel && acts(layer: layer, site: site)
    }

    public func forward(
        layer: Int, site: AdapterSite, input: HookInput, out: UnsafeMutablePointer<Float>, n: Int, training: Bool, cache: HookCache
    ) {
        let x = config.method == .parallel ? input.x! : (readsNormalized(layer: layer, site: site) ? input.normed! : input.h)
        let gate = adapterGates[layer]?.forward(x: x, n: n, keep: training && !frozen, cache: cache)
        modules[HookSite(layer, site)]!.forward(
            x: x, residual: input.h, out: out, n: n, cache: cache, keepInput: training && !frozen, scale: config.scaling, gate: gate)
    }

    public func backward(layer: Int, site: AdapterSite, dout: UnsafePointer<Float>, grad: HookGradient, n: Int, cache: HookCache) {
        backward(layer: layer, site: site, dout: dout, grad: grad, n: n, cache: cache, dactivation: nil)
    }

    /// `backward`, with ∂L/∂(the bottleneck activation) from a fusion that folded its value
    /// matrix into this adapter (see `BottleneckAdapter.backward`).
    public func backward(
        layer: Int, site: AdapterSite, dout: UnsafePointer<Float>, grad: HookGradient, n: Int, cache: HookCache,
        dactivation: UnsafePointer<Float>?
    ) {
        let dx = config.method == .parallel ? grad.dx! : (readsNormalized(layer: layer, site: site) ? grad.dnormed! : grad.dh)
        var dgate: Tensor?
        if adapterGates[layer] != nil {
            dgate = cache.tensor(self, Slot.adapterGateGradient, count: n)
            dgate!.data.update(repeating: 0, count: n)
        }
        let gate = adapterGates[layer].map { $0.values(cache, n: n) }
        modules[HookSite(layer, site)]!.backward(
            dout: dout, dx: dx, dresidual: grad.dh, n: n, cache: cache, frozen: frozen, scale: config.scaling, gate: gate, dgate: dgate?.data,
            dactivation: dactivation)
        if let g = adapterGates[layer], let dgate { g.backward(dg: dgate.data, dx: dx, n: n, frozen: frozen, cache: cache) }
    }

    // MARK: projections (LoRA, IA³, BitFit)

    public func changes(layer: Int, point: LayerPoint) -> Bool {
        (loras[layer]?.contains { $0.target.location(hidden: hidden, intermediate: intermediate).point == point } ?? false)
            || (vectors[layer]?.contains { $0.point == point } ?? false)
    }

    public func forward(
        layer l: Int, point: LayerPoint, x: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>, n: Int, training: Bool, cache: HookCache
    ) {
        let ld = point.width(hidden: hidden, intermediate: intermediate)
        var gate: UnsafePointer<Float>?
        for (t, m) in loras[l] ?? [] {
            let (p, column, _) = t.location(hidden: hidden, intermediate: intermediate)
            guard p == point, let x else { continue }
            if let g = loraGates[l], gate == nil { gate = g.forward(x: x, n: n, keep: training && !frozen, cache: cache) }
            m.forward(x: x, y: y + column, ld: ld, n: n, training: training, frozen: frozen, gate: gate, cache: cache)
        }
        for v in vectors[l] ?? [] where v.point == point { v.forward(y: y, n: n, keep: training && !frozen, cache: cache) }
    }

    public func backward(
        layer l: Int, point: LayerPoint, dy: UnsafeMutablePointer<Float>, dx: UnsafeMutablePointer<Float>?, n: Int, cache: HookCache
    ) {
        for v in (vectors[l] ?? []).reversed() where v.point == point { v.backward(dy: dy, n: n, frozen: frozen, cache: cache) }
        let ld = point.width(hidden: hidden, intermediate: intermediate)
        let gate = loraGates[l]
        let dgate = gate.map { _ in cache.tensor(self, Slot.loraGateGradient, count: n) }
        dgate?.data.update(repeating: 0, count: n)
        var used = false
        for (t, m) in (loras[l] ?? []).reversed() {
            let (p, column, _) = t.location(hidden: hidden, intermediate: intermediate)
            guard p == point else { continue }
            used = true
            m.backward(
                dy: dy + column, ld: ld, dx: dx, n: n, frozen: frozen, gate: gate.map { $0.values(cache, n: n) }, dgate: dgate?.data,
                cache: cache)
        }
        if used, let gate, let dgate { gate.backward(dg: dgate.data, dx: dx, n: n, frozen: frozen, cache: cache) }
    }

    // MARK: prefix and prompt

    public func prefixLength(layer: Int) -> Int { prefixModule.map { $0.layers.contains(layer) ? $0.length : 0 } ?? 0 }

    public func prefix(layer: Int, x: UnsafePointer<Float>, batch: TokenBatch, training: Bool, cache: HookCache) -> AttentionPrefix? {
        guard let p = prefixModule, p.layers.contains(layer) else { return nil }
        return p.prefix(layer: layer, x: x, batch: batch, training: training, frozen: frozen, cache: cache)
    }

    public func prefixBackward(
        layer: Int, dkeys: UnsafePointer<Float>, dvalues: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, batch: TokenBatch,
        cache: HookCache
    ) {
        prefixModule?.backward(layer: layer, dkeys: dkeys, dvalues: dvalues, dx: dx, batch: batch, frozen: frozen, cache: cache)
    }

    public var promptLength: Int { promptModule?.length ?? 0 }

    public func promptEmbeddings(cache: HookCache) -> UnsafePointer<Float>? { promptModule.map { UnsafePointer($0.embeddings.value.data) } }

    public func promptBackward(_ d: UnsafePointer<Float>, cache: HookCache) {
        guard let p = promptModule, !frozen else { return }
        VectorMath.add(p.embeddings.grad.data, d, p.embeddings.value.count)
    }

    public func beginPass(batch: TokenBatch, training: Bool, cache: HookCache) { prefixModule?.beginPass(cache: cache) }

    public func endBackward(cache: HookCache) { prefixModule?.endBackward(frozen: frozen, cache: cache) }

    // MARK: merging

    /// True when every module folds into the frozen weights (LoRA alone): `merged(into:)`.
    public var mergeable: Bool { config.method == .lora }

    /// A copy of `weights` with every LoRA update folded in: W + s·B·A (`--merge`); the encoder
    /// then runs without a hook and computes the same outputs (within float rounding).
    public func merged(into weights: BertWeights) -> BertWeights {
        precondition(mergeable, "only LoRA adapters merge into the weights")
        return weights.replacingLayers { l, frozen in
            guard let updates = loras[l] else { return frozen }
            let w = frozen.copy()
            for (t, m) in updates {
                let H = hidden
                switch t {
                case .query, .key, .value:
                    let (_, column, _) = t.location(hidden: H, intermediate: intermediate)
                    m.merge(into: w.qkvWeight.data + column * H, ld: H)
                case .attentionOutput: m.merge(into: w.attnOutWeight.data, ld: H)
                case .ffnIn: m.merge(into: w.ffnInWeight.data, ld: H)
                case .ffnOut: m.merge(into: w.ffnOutWeight.data, ld: intermediate)
                default: break
                }
            }
            return w
        }
    }
}
