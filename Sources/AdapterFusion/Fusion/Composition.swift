/// How adapters combine, as a recipe's `compose` line says (without source positions).
public indirect enum CompositionExpr: Equatable, Sendable, CustomStringConvertible {
    case adapter(String)
    /// Outputs of each feed the next.
    case stack([CompositionExpr])
    /// Weighted (or, with nil, equal) mean of the members' outputs.
    case average([CompositionExpr], weights: [Float]?)
    /// AdapterFusion attention over the members' outputs.
    case fuse([CompositionExpr])
    /// One forward pass, each member on its own copy of the batch, each with its own head.
    case parallel([CompositionExpr])

    /// Adapter names in order of appearance.
    public var adapterNames: [String] {
        switch self {
        case .adapter(let n): return [n]
        case .stack(let m), .average(let m, _), .fuse(let m), .parallel(let m): return m.flatMap(\.adapterNames)
        }
    }

    public var containsFuse: Bool {
        switch self {
        case .adapter: return false
        case .fuse: return true
        case .stack(let m), .average(let m, _), .parallel(let m): return m.contains { $0.containsFuse }
        }
    }

    public var description: String {
        switch self {
        case .adapter(let n): return n
        case .stack(let m): return "stack(" + m.map(\.description).joined(separator: ", ") + ")"
        case .fuse(let m): return "fuse(" + m.map(\.description).joined(separator: ", ") + ")"
        case .parallel(let m): return "parallel(" + m.map(\.description).joined(separator: ", ") + ")"
        case .average(let m, let w):
            guard let w else { return "average(" + m.map(\.description).joined(separator: ", ") + ")" }
            return "average(" + zip(w, m).map { "\($0) * \($1)" }.joined(separator: ", ") + ")"
        }
    }
}

/// Fusion settings of a recipe.
public struct FusionOptions: Codable, Sendable, Equatable {
    /// With the value matrix V ("dynamic"); without it ("static").
    public var dynamic = true
    /// Softmax temperature when not annealed.
    public var temperature: Float = 1
    /// Anneal the temperature linearly from 50 to 1 over training.
    public var anneal = false
    /// Weight λ of the regulariser λ·Σ‖I − V‖².
    public var lambda: Float = 0.01
    /// A bias b_v after the value matrix. AdapterHub's value has none; fusions stored before
    /// this option existed have one (and read as true).
    public var valueBias = false
    /// Dropout on the attention scores before the softmax while training, with the encoder's
    /// attention dropout probability (as AdapterHub's BertFusion). Fusions stored before this
    /// option existed trained without it (and read as false).
    public var scoreDropout = true

    public init() {}

    enum CodingKeys: String, CodingKey {
        case dynamic, temperature, anneal, lambda
        case valueBias = "value_bias"
        case scoreDropout = "score_dropout"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        dynamic = try c.decode(Bool.self, forKey: .dynamic)
        temperature = try c.decode(Float.self, forKey: .temperature)
        anneal = try c.decode(Bool.self, forKey: .anneal)
        lambda = try c.decode(Float.self, forKey: .lambda)
        valueBias = try c.decodeIfPresent(Bool.self, forKey: .valueBias) ?? true
        scoreDropout = try c.decodeIfPresent(Bool.self, forKey: .scoreDropout) ?? false
    }
}

extension LayerHook {
    /// True when the hook changes anything inside a layer besides sublayer outputs: a
    /// projection, an attention prefix, the input tokens, or whole layers.
    func changesInsideLayers(_ layers: Int) -> Bool {
        promptLength > 0 || (0..<layers).contains { changesInside(layer: $0) }
    }
}

/// `out = f(h, z)` when `hook` acts at (layer, site), else `out = h`.
@inline(__always)
func applyHook(
    _ hook: LayerHook, _ l: Int, _ s: AdapterSite, _ input: HookInput, _ out: UnsafeMutablePointer<Float>,
    n: Int, hidden: Int, training: Bool, cache: HookCache
) {
    if hook.acts(layer: l, site: s) {
        hook.forward(layer: l, site: s, input: input, out: out, n: n, training: training, cache: cache)
    } else {
        out.update(from: input.h, count: n * hidden)
    }
}

/// Backward of `applyHook`: grad += ∂out/∂(h, z) · dout.
@inline(__always)
func applyHookBackward(
    _ hook: LayerHook, _ l: Int, _ s: AdapterSite, _ dout: UnsafePointer<Float>, _ grad: HookGradient,
    n: Int, hidden: Int, cache: HookCache
) {
    if hook.acts(layer: l, site: s) {
        hook.backward(layer: l, site: s, dout: dout, grad: grad, n: n, cache: cache)
    } else {
        VectorMath.add(grad.dh, dout, n * hidden)
    }
}

/// stack(a, b, …): out = … b(a(h)). Every member that reads the normalized input reads the
/// same z = LN(h + x) of the sublayer output (AdapterHub recomputes it from the previous
/// member's output: a stack of seq_bn adapters differs there).
final class StackNode: LayerHook {
    let members: [LayerHook]
    let hidden: Int

    init(_ members: [LayerHook], hidden: Int) { self.members = members; self.hidden = hidden }

    func acts(layer: Int, site: AdapterSite) -> Bool { members.contains { $0.acts(layer: layer, site: site) } }

    func readsNormalized(layer: Int, site: AdapterSite) -> Bool { members.contains { $0.readsNormalized(layer: layer, site: site) } }

    func forward(
        layer l: Int, site s: AdapterSite, input: HookInput, out: UnsafeMutablePointer<Float>, n: Int, training: Bool,
        cache: HookCache
    ) {
        let buffers = (0..<2).map { cache.tensor(self, $0, count: n * hidden) }  // intermediate outputs
        var h = input.h
        for (j, m) in members.enumerated() {
            let target = j == members.count - 1 ? out : buffers[j % 2].data
            applyHook(m, l, s, input.with(h: h), target, n: n, hidden: hidden, training: training, cache: cache)
            h = UnsafePointer(target)
        }
    }

    func backward(layer l: Int, site s: AdapterSite, dout: UnsafePointer<Float>, grad: HookGradient, n: Int, cache: HookCache) {
        let grads = (0..<2).map { cache.tensor(self, 2 + $0, count: n * hidden) }
        var d = dout
        for (j, m) in members.enumerated().reversed() {
            if j == 0 { applyHookBackward(m, l, s, d, grad, n: n, hidden: hidden, cache: cache); break }
            let g = grads[j % 2]
            g.data.update(repeating: 0, count: n * hidden)
            applyHookBackward(m, l, s, d, grad.with(dh: g.data), n: n, hidden: hidden, cache: cache)
            d = UnsafePointer(g.data)
        }
    }

    // Changes inside the layer (LoRA, IA³, BitFit, a prefix) compose in member order.
    func changes(layer: Int, point: LayerPoint) -> Bool { members.contains { $0.changes(layer: layer, point: point) } }

    func forward(
        layer: Int, point: LayerPoint, x: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>, n: Int, training: Bool, cache: HookCache
    ) {
        for m in members where m.changes(layer: layer, point: point) {
            m.forward(layer: layer, point: point, x: x, y: y, n: n, training: training, cache: cache)
        }
    }

    func backward(layer: Int, point: LayerPoint, dy: UnsafeMutablePointer<Float>, dx: UnsafeMutablePointer<Float>?, n: Int, cache: HookCache) {
        for m in members.reversed() where m.changes(layer: layer, point: point) {
            m.backward(layer: layer, point: point, dy: dy, dx: dx, n: n, cache: cache)
        }
    }

    /// At most one member has a prefix (`Composition.problem`).
    func prefixLength(layer: Int) -> Int { members.map { $0.prefixLength(layer: layer) }.max() ?? 0 }

    func prefix(layer: Int, x: UnsafePointer<Float>, batch: TokenBatch, training: Bool, cache: HookCache) -> AttentionPrefix? {
        members.lazy.compactMap { $0.prefix(layer: layer, x: x, batch: batch, training: training, cache: cache) }.first
    }

    func prefixBackward(
        layer: Int, dkeys: UnsafePointer<Float>, dvalues: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, batch: TokenBatch,
        cache: HookCache
    ) {
        for m in members where m.prefixLength(layer: layer) > 0 {
            m.prefixBackward(layer: layer, dkeys: dkeys, dvalues: dvalues, dx: dx, batch: batch, cache: cache)
        }
    }

    func beginPass(batch: TokenBatch, training: Bool, cache: HookCache) {
        for m in members { m.beginPass(batch: batch, training: training, cache: cache) }
    }

    func endBackward(cache: HookCache) { for m in members { m.endBackward(cache: cache) } }
}

/// average(a, b, …): out = Σ wᵢ mᵢ(x), equal weights unless given.
final class AverageNode: LayerHook {
    let members: [LayerHook]
    let weights: [Float]
    let hidden: Int

    init(_ members: [LayerHook], weights: [Float]?, hidden: Int) {
        self.members = members
        self.weights = weights ?? Array(repeating: 1 / Float(members.count), count: members.count)
        self.hidden = hidden
    }

    func acts(layer: Int, site: AdapterSite) -> Bool { members.contains { $0.acts(layer: layer, site: site) } }

    func readsNormalized(layer: Int, site: AdapterSite) -> Bool { members.contains { $0.readsNormalized(layer: layer, site: site) } }

    func forward(
        layer l: Int, site s: AdapterSite, input: HookInput, out: UnsafeMutablePointer<Float>, n: Int, training: Bool,
        cache: HookCache
    ) {
        let buffer = cache.tensor(self, 0, count: n * hidden)
        out.update(repeating: 0, count: n * hidden)
        for (m, w) in zip(members, weights) {
            applyHook(m, l, s, input, buffer.data, n: n, hidden: hidden, training: training, cache: cache)
            for i in 0..<(n * hidden) { out[i] += w * buffer.data[i] }
        }
    }

    func backward(layer l: Int, site s: AdapterSite, dout: UnsafePointer<Float>, grad: HookGradient, n: Int, cache: HookCache) {
        let scaled = cache.tensor(self, 1, count: n * hidden)
        for (m, w) in zip(members, weights) {
            for i in 0..<(n * hidden) { scaled.data[i] = w * dout[i] }
            applyHookBackward(m, l, s, scaled.data, grad, n: n, hidden: hidden, cache: cache)
        }
    }
}

/// parallel(a, b, …): the batch holds one copy of the input per member, one after another;
/// member i acts on copy i only. Each copy then reaches its own head.
final class ParallelNode: LayerHook {
    let members: [LayerHook]
    let hidden: Int
    let intermediate: Int

    init(_ members: [LayerHook], hidden: Int, intermediate: Int) {
        self.members = members; self.hidden = hidden; self.intermediate = intermediate
    }

    func acts(layer: Int, site: AdapterSite) -> Bool { members.contains { $0.acts(layer: layer, site: site) } }

    func readsNormalized(layer: Int, site: AdapterSite) -> Bool { members.contains { $0.readsNormalized(layer: layer, site: site) } }

    func forward(
        layer l: Int, site s: AdapterSite, input: HookInput, out: UnsafeMutablePointer<Float>, n: Int, training: Bool,
        cache: HookCache
    ) {
        let per = n / members.count
        let H = hidden
        for (i, m) in members.enumerated() {
            applyHook(m, l, s, input.advanced(by: i * per * H), out + i * per * H, n: per, hidden: H, training: training, cache: cache)
        }
    }

    func backward(layer l: Int, site s: AdapterSite, dout: UnsafePointer<Float>, grad: HookGradient, n: Int, cache: HookCache) {
        let per = n / members.count
        let H = hidden
        for (i, m) in members.enumerated() {
            applyHookBackward(m, l, s, dout + i * per * H, grad.advanced(by: i * per * H), n: per, hidden: H, cache: cache)
        }
    }

    // Changes inside the layer act on each member's own rows. A point's tensor is [n, width]
    // and its input [n, inputWidth]: row slices of both.
    func changes(layer: Int, point: LayerPoint) -> Bool { members.contains { $0.changes(layer: layer, point: point) } }

    private func widths(_ point: LayerPoint) -> (input: Int, output: Int) {
        (point.inputWidth(hidden: hidden, intermediate: intermediate), point.width(hidden: hidden, intermediate: intermediate))
    }

    func forward(
        layer: Int, point: LayerPoint, x: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>, n: Int, training: Bool, cache: HookCache
    ) {
        let per = n / members.count
        let (wi, wo) = widths(point)
        for (i, m) in members.enumerated() where m.changes(layer: layer, point: point) {
            m.forward(layer: layer, point: point, x: x.map { $0 + i * per * wi }, y: y + i * per * wo, n: per, training: training, cache: cache)
        }
    }

    func backward(layer: Int, point: LayerPoint, dy: UnsafeMutablePointer<Float>, dx: UnsafeMutablePointer<Float>?, n: Int, cache: HookCache) {
        let per = n / members.count
        let (wi, wo) = widths(point)
        for (i, m) in members.enumerated() where m.changes(layer: layer, point: point) {
            m.backward(layer: layer, point: point, dy: dy + i * per * wo, dx: dx.map { $0 + i * per * wi }, n: per, cache: cache)
        }
    }
}

/// fuse(a, b, …): a `FusionLayer` at every (layer, site) where a member acts, over the members'
/// deltas mᵢ(x) − x (a member that does not act there contributes a zero delta).
public final class FuseNode: LayerHook {
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
        let deltas = cache.tensor(self, 2 + HookSite(l, s).index, count: N * n * H)  // member deltas, kept per site for backward
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
        guard members.allSatisfy({ ($0 as? Adapter)?.foldable == true || !$0.acts(layer: l, site: s) }) else { return nil }
        return members.map { m in
            (m as? Adapter)?.module(layer: l, site: s).map { ($0, UnsafePointer($0.buffer(cache, .act, n * $0.bottleneck).data)) }
        }
    }

    public func backward(layer l: Int, site s: AdapterSite, dout: UnsafePointer<Float>, grad: HookGradient, n: Int, cache: HookCache) {
        let N = members.count
        let H = hidden
        let ddeltas = cache.tensor(self, 1, count: N * n * H)
        ddeltas.data.update(repeating: 0, count: N * n * H)
        let deltas = cache.tensor(self, 2 + HookSite(l, s).index, count: N * n * H)
        let dquery = queryReadsNormalized(l, s) ? grad.dnormed! : grad.dh
        // A folded value's share of each member's gradient enters below its up projection.
        let plain = bottlenecks(l, s, n: n, cache: cache)
        let dactivations = (plain ?? []).enumerated().map { i, m in m.map { cache.tensor(self, -1 - i, count: n * $0.module.bottleneck).data } }
        fusionLayers[HookSite(l, s)]!.backward(
            dout: dout, dquery: dquery, dresidual: grad.dh, deltas: deltas.data, ddeltas: ddeltas.data, n: n, bottlenecks: plain,
            dactivations: dactivations, cache: cache)
        let folded = fusionLayers[HookSite(l, s)]!.valueFolded(cache)
        for (i, m) in members.enumerated() {
            // aᵢ = mᵢ(h, z) − h: grad += mᵢ′ᵀ·daᵢ, dh −= daᵢ
            let da = ddeltas.data + i * n * H
            if folded, let a = m as? Adapter, a.acts(layer: l, site: s) {
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

/// A composition built from an expression over loaded adapters: the hook to run the encoder
/// with, and the trainable fusion parameters. Every adapter it uses is frozen.
public final class Composition {
    public let expr: CompositionExpr
    public let root: LayerHook
    /// Fuse nodes with their storage prefix ("" for a root fuse, "member_2/" …) and member
    /// expressions, sorted by prefix.
    public let fuseNodes: [(prefix: String, node: FusionNode, members: [CompositionExpr])]
    public let options: FusionOptions

    /// - Parameter adapters: every adapter the expression names (each used at most once).
    public init(_ expr: CompositionExpr, adapters: [String: Adapter], options: FusionOptions, hidden: Int, layers: Int, seed: UInt64) {
        self.expr = expr
        self.options = options
        var rng = SeededRNG(seed: seed)
        var fuses: [(String, FusionNode, [CompositionExpr])] = []
        let intermediate = adapters.values.first?.intermediate ?? 4 * hidden
        func build(_ e: CompositionExpr, _ prefix: String) -> LayerHook {
            switch e {
            case .adapter(let name):
                let a = adapters[name]!
                a.frozen = true
                return a
            case .stack(let m): return StackNode(m.enumerated().map { build($1, Self.memberPrefix(prefix, $0)) }, hidden: hidden)
            case .average(let m, let w):
                let children = m.enumerated().map { build($1, Self.memberPrefix(prefix, $0)) }
                if children.contains(where: { $0.changesInsideLayers(layers) }) {
                    return LayerFuseNode(
                        children, options: options, weights: w, average: true, prefix: prefix, hidden: hidden, layers: layers, rng: &rng)
                }
                return AverageNode(children, weights: w, hidden: hidden)
            case .parallel(let m):
                return ParallelNode(m.enumerated().map { build($1, Self.memberPrefix(prefix, $0)) }, hidden: hidden, intermediate: intermediate)
            case .fuse(let m):
                let children = m.enumerated().map { build($1, Self.memberPrefix(prefix, $0)) }
                if children.contains(where: { $0.changesInsideLayers(layers) }) {
                    let node = LayerFuseNode(
                        children, options: options, weights: nil, average: false, prefix: prefix, hidden: hidden, layers: layers, rng: &rng)
                    fuses.append((prefix, node, m))
                    return node
                }
                let node = FuseNode(children, options: options, prefix: prefix, hidden: hidden, layers: layers, rng: &rng)
                fuses.append((prefix, node, m))
                return node
            }
        }
        root = build(expr, "")
        fuseNodes = fuses.sorted { $0.0 < $1.0 }
    }

    /// Why `expr` cannot be built over adapters of these configurations (nil when it can): the
    /// adapter it concerns (if one) and the reason.
    public static func problem(_ expr: CompositionExpr, configs: [String: AdapterConfig]) -> (adapter: String?, message: String)? {
        func inside(_ c: AdapterConfig) -> Bool { !c.hasBottleneck || c.method == .unipelt }
        func internalMembers(_ e: CompositionExpr) -> Bool { e.adapterNames.contains { configs[$0].map(inside) ?? false } }
        for n in expr.adapterNames {
            if let c = configs[n], c.prompt != nil {
                return (
                    n, "adapter '\(n)' (\(c.architecture)) inserts prompt tokens into the input; a composition combines layers, so it cannot hold one"
                )
            }
        }
        func walk(_ e: CompositionExpr, root: Bool) -> (String?, String)? {
            switch e {
            case .adapter: return nil
            case .fuse(let m), .average(let m, _):
                if !root && m.contains(where: internalMembers) {
                    let kind = if case .fuse = e { "fuse" } else { "average" }
                    return (
                        nil,
                        "\(kind)(…) over LoRA, prefix, IA³, BitFit or UniPELT members computes whole layers (each member runs the layer); it must be the recipe's whole composition, not part of \(expr)"
                    )
                }
                for x in m { if let p = walk(x, root: false) { return p } }
            case .stack(let m):
                let prefixed = m.flatMap(\.adapterNames).filter { configs[$0]?.prefix != nil }
                if prefixed.count > 1 {
                    return (prefixed[1], "a stack holds at most one adapter with an attention prefix ('\(prefixed[0])' has one)")
                }
                for x in m { if let p = walk(x, root: false) { return p } }
            case .parallel(let m):
                if let n = m.flatMap(\.adapterNames).first(where: { configs[$0]?.prefix != nil }) {
                    return (n, "parallel(…) runs its members on copies of the batch; an attention prefix ('\(n)') is shared by the whole batch")
                }
                for x in m { if let p = walk(x, root: false) { return p } }
            }
            return nil
        }
        return walk(expr, root: true).map { (adapter: $0.0, message: $0.1) }
    }

    /// Where member `i` of the node at `prefix` is stored: `member_<i>/` below it.
    public static func memberPrefix(_ prefix: String, _ i: Int) -> String { prefix + "member_\(i)/" }

    /// Trainable parameters: every fusion layer's, named by their dataset path.
    public var parameters: [Parameter] { fuseNodes.flatMap(\.node.parameters) }

    /// λ·Σ‖I − V‖² over all fusion layers, adding its gradient.
    public func regularize() -> Float {
        fuseNodes.reduce(0) { acc, f in acc + f.node.fusionLayers.values.reduce(0) { $0 + $1.regularize(lambda: options.lambda) } }
    }

    /// Sets the annealed temperature for training progress in [0, 1] (50 → 1), when annealing.
    public func setProgress(_ fraction: Float) {
        guard options.anneal else { return }
        for f in fuseNodes { f.node.temperature = max(1, 50 - 49 * fraction) }
    }

    /// Temperature for evaluation: 1 when annealed (its end point), else the fixed one.
    public func finishTraining() {
        for f in fuseNodes { f.node.temperature = options.anneal ? 1 : options.temperature }
    }
}
