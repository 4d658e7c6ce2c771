import Foundation

/// fuse(a, b, …): a `FusionLayer` at every (layer, site) where a member acts, over the members'
/// deltas mᵢ(x) − x (a member that does not act there contributes a zero delta).
public final class FuseNode: LayerHook {
    enum Slot: CacheSlot {
        case deltas(HookSite)  // [N, n, H] the members' deltas mᵢ − h at a site, kept for its backward
        case deltaGradients  // [N, n, H] their gradients
        case activationGradient(member: Int)  // [n, r] a folded member's ∂L/∂f (the value's share)
    }

    public let members: [LayerHook]
    let hidden: Int
    public let options: FusionOptions
    /// Fusion layers by site.
    public private(set) var fusionLayers: [HookSite: FusionLayer] = [:]
    /// Current softmax temperature (annealed during training when the options say so).
    public var temperature: Float
    /// When set, each forward pass keeps the attention weights [n, members] per (layer, site).
    public var recordAttention = false
    public private(set) var attention: [HookSite: Tensor] = [:]

    init(_ members: [LayerHook], options: FusionOptions, prefix: String, hidden: Int, layers: Int, rng: inout SeededRNG) {
        // It fuses sublayer outputs only: a member that changes more (a projection, a prefix, the
        // input tokens, whole layers) belongs in a LayerFuseNode, as `Composition` routes it.
        precondition(!members.contains { $0.changesInsideLayers(layers) }, "FuseNode over a member that changes more than sublayer outputs")
        self.members = members
        self.options = options
        self.hidden = hidden
        temperature = options.anneal ? 50 : options.temperature
        for l in 0..<layers {
            for s in AdapterSite.allCases where members.contains(where: { $0.acts(layer: l, site: s) }) {
                let name = prefix + HookSite(l, s).fusionPrefix
                fusionLayers[HookSite(l, s)] = FusionLayer(
                    prefix: name, hidden: hidden, members: members.count,
                    dynamic: options.dynamic, valueBias: options.valueBias, rng: &rng)
            }
        }
    }

    public func acts(layer: Int, site: AdapterSite) -> Bool { fusionLayers[HookSite(layer, site)] != nil }

    public func readsNormalized(layer: Int, site: AdapterSite) -> Bool {
        acts(layer: layer, site: site) && members.contains { $0.readsNormalized(layer: layer, site: site) }
    }

    /// The query reads z = LN(h + x) when the last member does (AdapterHub's rule: the last
    /// fused adapter's config decides), else h.
    private func queryReadsNormalized(_ l: Int, _ s: AdapterSite) -> Bool { members.last!.readsNormalized(layer: l, site: s) }

    public func forward(
        layer l: Int, site s: AdapterSite, input: HookInput, out: UnsafeMutablePointer<Float>, n: Int, training: Bool,
        cache: HookCache
    ) {
        let N = members.count
        let H = hidden
        let h = input.h
        let deltas = cache.tensor(self, Slot.deltas(HookSite(l, s)), count: N * n * H)
        for (i, m) in members.enumerated() {
            let a = deltas.data + i * n * H
            applyHook(m, l, s, input, a, n: n, hidden: H, training: training, cache: cache)
            for j in 0..<(n * H) { a[j] -= h[j] }
        }
        let fl = fusionLayers[HookSite(l, s)]!
        let query = queryReadsNormalized(l, s) ? input.normed! : h
        let dropout = training && options.scoreDropout ? cache.dropout : nil
        fl.forward(
            query: query, residual: h, deltas: deltas.data, out: out, n: n, temperature: temperature, training: training,
            scoreDropout: dropout, bottlenecks: bottlenecks(l, s, n: n, cache: cache), cache: cache)
        if recordAttention {
            let w = Tensor(zeros: [n, N])
            w.data.update(from: fl.weights(cache, n: n).data, count: n * N)
            attention[HookSite(l, s)] = w
        }
    }

    /// Plain bottleneck members (or members that do not act here) and their activations of
    /// this pass: what lets the fusion layer fold its value matrix into them; else nil.
    private func bottlenecks(_ l: Int, _ s: AdapterSite, n: Int, cache: HookCache) -> [(module: BottleneckAdapter, act: UnsafePointer<Float>)?]? {
        let folds = members.map { ($0 as? FoldableSublayer)?.foldable(layer: l, site: s, n: n, cache: cache) }
        guard zip(members, folds).allSatisfy({ $1 != nil || !$0.acts(layer: l, site: s) }) else { return nil }
        return folds.map { $0.map { (module: $0.module, act: $0.activation) } }
    }

    public func backward(layer l: Int, site s: AdapterSite, dout: UnsafePointer<Float>, grad: HookGradient, n: Int, cache: HookCache) {
        let N = members.count
        let H = hidden
        let ddeltas = cache.tensor(self, Slot.deltaGradients, count: N * n * H)
        ddeltas.data.update(repeating: 0, count: N * n * H)
        let deltas = cache.tensor(self, Slot.deltas(HookSite(l, s)), count: N * n * H)
        let dquery = queryReadsNormalized(l, s) ? grad.dnormed! : grad.dh
        // A folded value's share of each member's gradient enters below its up projection.
        let plain = bottlenecks(l, s, n: n, cache: cache)
        let dactivations = (plain ?? []).enumerated().map { i, m in
            m.map { cache.tensor(self, Slot.activationGradient(member: i), count: n * $0.module.bottleneck).data }
        }
        fusionLayers[HookSite(l, s)]!.backward(
            dout: dout, dquery: dquery, dresidual: grad.dh, deltas: deltas.data, ddeltas: ddeltas.data, n: n, bottlenecks: plain,
            dactivations: dactivations, cache: cache)
        let folded = fusionLayers[HookSite(l, s)]!.valueFolded(cache)
        for (i, m) in members.enumerated() {
            // aᵢ = mᵢ(h, z) − h: grad += mᵢ′ᵀ·daᵢ, dh −= daᵢ
            let da = ddeltas.data + i * n * H
            if folded, let a = m as? FoldableSublayer, a.acts(layer: l, site: s) {
                a.backward(layer: l, site: s, dout: da, grad: grad, n: n, cache: cache, dactivation: dactivations[i])
            } else {
                applyHookBackward(m, l, s, da, grad, n: n, hidden: H, cache: cache)
            }
            for j in 0..<(n * H) { grad.dh[j] -= da[j] }
        }
    }

    /// The attention weights of the last forward pass at (layer, site), [n, members] (with `recordAttention`).
    public func attentionWeights(layer: Int, site: AdapterSite) -> Tensor? { attention[HookSite(layer, site)] }

    public var parameters: [Parameter] { fusionLayers.keys.sorted().flatMap { fusionLayers[$0]!.parameters } }
}
