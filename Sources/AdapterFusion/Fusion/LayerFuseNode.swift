/// What a composition node that weighs members exposes: its fusion layers, temperature and the
/// attention weights of the last pass (`FuseNode` at sublayer outputs, `LayerFuseNode` over layers).
public protocol FusionNode: AnyObject {
    var fusionLayers: [HookSite: FusionLayer] { get }
    var temperature: Float { get set }
    var recordAttention: Bool { get set }
    var members: [LayerHook] { get }
    /// The attention weights of the last forward pass at (layer, site), [n, members] (with `recordAttention`).
    func attentionWeights(layer: Int, site: AdapterSite) -> Tensor?
    var parameters: [Parameter] { get }
}

extension FuseNode: FusionNode {}

/// fuse(…) or average(…) over members that change more than a sublayer's output — LoRA,
/// prefixes, IA³, BitFit, UniPELT, next to bottleneck adapters. A member's output is then its
/// whole layer: at every layer l where some member acts, with x the fused output of layer l − 1,
///
///     y₀ = Layer_l(x)                  the frozen layer
///     yᵢ = Layer_l(x; member i)        the layer with member i's changes (and nothing else)
///     δᵢ = yᵢ − y₀                     member i's delta                          [n, H]
///     fuse:     out = y₀ + V·Σᵢ softmax_i((Q·y₀ + b_q)·K·δᵢ / T)·δᵢ    (`FusionLayer`, query and residual y₀)
///     average:  out = y₀ + Σᵢ wᵢ·δᵢ
///
/// With one member at weight 1 (V = I) this is that member's layer exactly. Cost per token and
/// layer: one frozen layer pass, one more per member that changes the inside of the layer, a
/// bottleneck and a LayerNorm for a member that acts at the FFN output only (it shares the
/// frozen pass up to there: yᵢ = LN(hookᵢ(h, y₀, x) + x)), nothing for a member that does not
/// act at this layer; plus the fusion's three H×H products. The training workspace keeps one
/// set of layer activations per full pass. Fusions of bottleneck adapters alone keep the
/// cheaper `FuseNode` (one layer pass).
public final class LayerFuseNode: LayerReplacingHook, PassHook, FusionNode {
    public let members: [LayerHook]
    let hidden: Int
    public let options: FusionOptions
    /// average(…)'s weights; nil for fuse(…).
    let weights: [Float]?
    /// Fusion layers by layer, stored as `layer_03/` (keyed at the output site).
    public private(set) var fusionLayers: [HookSite: FusionLayer] = [:]
    let active: Set<Int>
    public var temperature: Float
    public var recordAttention = false
    private var attention: [HookSite: Tensor] = [:]
    /// Cache keys of the members that share the frozen pass, per layer (their residual sums
    /// and LayerNorm statistics).
    private let outputSiteKeys: [Int: [OutputSiteKey]]
    private final class OutputSiteKey {}

    init(
        _ members: [LayerHook], options: FusionOptions, weights: [Float]?, average: Bool, prefix: String, hidden: Int, layers: Int,
        rng: inout SeededRNG
    ) {
        self.members = members
        self.options = options
        self.hidden = hidden
        self.weights = average ? (weights ?? Array(repeating: 1 / Float(members.count), count: members.count)) : nil
        temperature = options.anneal ? 50 : options.temperature
        outputSiteKeys = Dictionary(uniqueKeysWithValues: (-1..<layers).map { l in (l, members.map { _ in OutputSiteKey() }) })
        active = Set((0..<layers).filter { l in members.contains { Self.pass($0, l) != .none } })
        if !average {
            for l in active.sorted() {
                let site = HookSite(l, .output)
                fusionLayers[site] = FusionLayer(
                    prefix: prefix + site.fusionPrefix, hidden: hidden, members: members.count, dynamic: options.dynamic,
                    valueBias: options.valueBias, rng: &rng)
            }
        }
    }

    public var parameters: [Parameter] { fusionLayers.keys.sorted().flatMap { fusionLayers[$0]!.parameters } }

    /// How member `m` takes part at layer l.
    private enum Pass { case none, outputSite, full }

    private static func pass(_ m: LayerHook, _ l: Int) -> Pass {
        if m.changesInside(layer: l) || m.acts(layer: l, site: .attention) { return .full }
        return m.acts(layer: l, site: .output) ? .outputSite : .none
    }

    /// Per layer in training (the backward pass reads them), shared otherwise (-1).
    private func key(_ l: Int, _ i: Int, _ training: Bool) -> OutputSiteKey { outputSiteKeys[training ? l : -1]![i] }

    public func attentionWeights(layer: Int, site: AdapterSite) -> Tensor? { attention[HookSite(layer, site)] }

    public func acts(layer: Int, site: AdapterSite) -> Bool { false }
    public func readsNormalized(layer: Int, site: AdapterSite) -> Bool { false }
    public func forward(
        layer: Int, site: AdapterSite, input: HookInput, out: UnsafeMutablePointer<Float>, n: Int, training: Bool, cache: HookCache
    ) {}
    public func backward(layer: Int, site: AdapterSite, dout: UnsafePointer<Float>, grad: HookGradient, n: Int, cache: HookCache) {}

    public func replacesLayer(_ layer: Int) -> Bool { active.contains(layer) }
    /// The attention buffers must fit the longest prefix of any member.
    public func prefixCapacity(layer: Int) -> Int { members.map { $0.prefixNeed(layer: layer) }.max() ?? 0 }
    public func beginPass(batch: TokenBatch, training: Bool, cache: HookCache) {
        for case let m as PassHook in members { m.beginPass(batch: batch, training: training, cache: cache) }
    }
    public func endBackward(cache: HookCache) { for case let m as PassHook in members { m.endBackward(cache: cache) } }

    enum Slot: CacheSlot {
        case frozenOutput(layer: Int)  // [n, H] y₀, the layer without any member
        case deltas(layer: Int)  // [N, n, H] each member's whole-layer delta
        case memberOutput  // [n, H] one member's layer output at a time
        case frozenOutputGradient  // [n, H] ∂L/∂y₀
        case deltaGradients  // [N, n, H]
        case memberGradient  // [n, H] one member's share of the gradient
        case sharedH, sharedX, sharedNormed  // [n, H] ∂L/∂h, ∂L/∂x, ∂L/∂z of the frozen pass (FFN-output members)
    }

    /// y₀ and the deltas per layer in training (the backward pass reads them); in inference one
    /// buffer (layer 0's) serves every layer.
    private func kept(_ cache: HookCache, _ slot: (Int) -> Slot, _ l: Int, _ training: Bool, count: Int) -> Tensor {
        cache.tensor(self, slot(training ? l : 0), count: count)
    }

    public func layerForward(_ l: Int, input: Tensor, output: Tensor, run: LayerRunner, training: Bool, cache: HookCache) {
        let n = run.tokenCount
        let H = hidden
        let N = members.count
        let y0 = kept(cache, Slot.frozenOutput, l, training, count: n * H)
        let deltas = kept(cache, Slot.deltas, l, training, count: N * n * H)
        run.forward(l, input: input, output: y0, hook: nil, run: 0)
        let yi = cache.tensor(self, Slot.memberOutput, count: n * H)
        // Members that act at the FFN output only, while the frozen pass's h and x are at hand.
        for (i, m) in members.enumerated() where Self.pass(m, l) == .outputSite {
            run.outputSite(l, hook: m, z: y0, output: yi, key: key(l, i, training), training: training)
            let d = deltas.data + i * n * H
            for j in 0..<(n * H) { d[j] = yi.data[j] - y0.data[j] }
        }
        for (i, m) in members.enumerated() where Self.pass(m, l) != .outputSite {
            let d = deltas.data + i * n * H
            guard Self.pass(m, l) == .full else {
                d.update(repeating: 0, count: n * H)
                continue
            }
            run.forward(l, input: input, output: yi, hook: m, run: i + 1)
            for j in 0..<(n * H) { d[j] = yi.data[j] - y0.data[j] }
        }
        if let weights {
            output.data.update(from: y0.data, count: n * H)
            for (i, w) in weights.enumerated() {
                let d = deltas.data + i * n * H
                for j in 0..<(n * H) { output.data[j] += w * d[j] }
            }
            return
        }
        let fl = fusionLayers[HookSite(l, .output)]!
        fl.forward(
            query: y0.data, residual: y0.data, deltas: deltas.data, out: output.data, n: n, temperature: temperature, training: training,
            scoreDropout: training && options.scoreDropout ? cache.dropout : nil, cache: cache)
        if recordAttention {
            let w = Tensor(zeros: [n, N])
            w.data.update(from: fl.weights(cache, n: n).data, count: n * N)
            attention[HookSite(l, .output)] = w
        }
    }

    public func layerBackward(_ l: Int, dOutput: Tensor, dInput: Tensor, run: LayerRunner, cache: HookCache) {
        let n = run.tokenCount
        let H = hidden
        let N = members.count
        let deltas = kept(cache, Slot.deltas, l, true, count: N * n * H)
        let dy0 = cache.tensor(self, Slot.frozenOutputGradient, count: n * H)
        let ddeltas = cache.tensor(self, Slot.deltaGradients, count: N * n * H)
        if let weights {
            dy0.data.update(from: dOutput.data, count: n * H)
            for (i, w) in weights.enumerated() {
                let dd = ddeltas.data + i * n * H
                for j in 0..<(n * H) { dd[j] = w * dOutput.data[j] }
            }
        } else {
            dy0.data.update(repeating: 0, count: n * H)
            ddeltas.data.update(repeating: 0, count: N * n * H)
            fusionLayers[HookSite(l, .output)]!.backward(
                dout: dOutput.data, dquery: dy0.data, dresidual: dy0.data, deltas: deltas.data, ddeltas: ddeltas.data, n: n, cache: cache)
        }
        // δᵢ = yᵢ − y₀: ∂L/∂yᵢ = ∂L/∂δᵢ, ∂L/∂y₀ −= Σᵢ ∂L/∂δᵢ
        for i in 0..<N {
            let dd = ddeltas.data + i * n * H
            for j in 0..<(n * H) { dy0.data[j] -= dd[j] }
        }
        // Every member is frozen: below the lowest layer nothing needs the input's gradient.
        guard run.needsInputGradient(l) else { return }
        let d = cache.tensor(self, Slot.memberGradient, count: n * H)
        let shared = members.indices.filter { Self.pass(members[$0], l) == .outputSite }
        var extra: (dh: Tensor, dx: Tensor)?
        if !shared.isEmpty {
            // yᵢ = LN(hookᵢ(h, y₀, x) + x) on the frozen pass's h and x: their gradients join that
            // pass's backward, and ∂L/∂y₀ gets the part through z = y₀.
            let dh = cache.tensor(self, Slot.sharedH, count: n * H)
            let dx = cache.tensor(self, Slot.sharedX, count: n * H)
            let dz = cache.tensor(self, Slot.sharedNormed, count: n * H)
            for t in [dh, dx, dz] { t.data.update(repeating: 0, count: n * H) }
            for i in shared {
                d.data.update(from: ddeltas.data + i * n * H, count: n * H)
                run.outputSiteBackward(l, hook: members[i], dOutput: d, key: key(l, i, true), dh: dh, dz: dz, dx: dx)
            }
            VectorMath.add(dy0.data, dz.data, n * H)
            extra = (dh, dx)
        }
        for (i, m) in members.enumerated() where Self.pass(m, l) == .full {
            d.data.update(from: ddeltas.data + i * n * H, count: n * H)
            run.backward(l, dOutput: d, dInput: dInput, hook: m, run: i + 1)
        }
        run.backward(l, dOutput: dy0, dInput: dInput, hook: nil, run: 0, extra: extra)
    }
}
