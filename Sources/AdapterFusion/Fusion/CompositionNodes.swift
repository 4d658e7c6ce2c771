import Foundation

extension LayerHook {
    /// True when the hook changes anything inside a layer besides sublayer outputs: a
    /// projection, an attention prefix, the input tokens, or whole layers.
    func changesInsideLayers(_ layers: Int) -> Bool {
        promptCount > 0 || (0..<layers).contains { changesInside(layer: $0) }
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
final class StackNode: ProjectionHook, PrefixHook, PassHook {
    enum Slot: CacheSlot {
        case output(Int)
        case gradient(Int)  // [n, H] two alternating intermediate outputs and their gradients
    }

    let members: [LayerHook]
    let hidden: Int

    init(_ members: [LayerHook], hidden: Int) { self.members = members; self.hidden = hidden }

    func acts(layer: Int, site: AdapterSite) -> Bool { members.contains { $0.acts(layer: layer, site: site) } }

    func readsNormalized(layer: Int, site: AdapterSite) -> Bool { members.contains { $0.readsNormalized(layer: layer, site: site) } }

    func forward(
        layer l: Int, site s: AdapterSite, input: HookInput, out: UnsafeMutablePointer<Float>, n: Int, training: Bool,
        cache: HookCache
    ) {
        let buffers = (0..<2).map { cache.tensor(self, Slot.output($0), count: n * hidden) }
        var h = input.h
        for (j, m) in members.enumerated() {
            let target = j == members.count - 1 ? out : buffers[j % 2].data
            applyHook(m, l, s, input.with(h: h), target, n: n, hidden: hidden, training: training, cache: cache)
            h = UnsafePointer(target)
        }
    }

    func backward(layer l: Int, site s: AdapterSite, dout: UnsafePointer<Float>, grad: HookGradient, n: Int, cache: HookCache) {
        let grads = (0..<2).map { cache.tensor(self, Slot.gradient($0), count: n * hidden) }
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
    func changes(layer: Int, point: LayerPoint) -> Bool { members.contains { $0.changesPoint(layer: layer, point: point) } }

    func forward(
        layer: Int, point: LayerPoint, x: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>, n: Int, training: Bool, cache: HookCache
    ) {
        for case let m as ProjectionHook in members where m.changes(layer: layer, point: point) {
            m.forward(layer: layer, point: point, x: x, y: y, n: n, training: training, cache: cache)
        }
    }

    func backward(layer: Int, point: LayerPoint, dy: UnsafeMutablePointer<Float>, dx: UnsafeMutablePointer<Float>?, n: Int, cache: HookCache) {
        for case let m as ProjectionHook in members.reversed() where m.changes(layer: layer, point: point) {
            m.backward(layer: layer, point: point, dy: dy, dx: dx, n: n, cache: cache)
        }
    }

    /// At most one member has a prefix (`Composition.problem`).
    func prefixLength(layer: Int) -> Int { members.map { $0.prefixCount(layer: layer) }.max() ?? 0 }

    func prefix(layer: Int, x: UnsafePointer<Float>, batch: TokenBatch, training: Bool, cache: HookCache) -> AttentionPrefix? {
        members.lazy.compactMap { ($0 as? PrefixHook)?.prefix(layer: layer, x: x, batch: batch, training: training, cache: cache) }.first
    }

    func prefixBackward(
        layer: Int, dkeys: UnsafePointer<Float>, dvalues: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, batch: TokenBatch,
        cache: HookCache
    ) {
        for case let m as PrefixHook in members where m.prefixLength(layer: layer) > 0 {
            m.prefixBackward(layer: layer, dkeys: dkeys, dvalues: dvalues, dx: dx, batch: batch, cache: cache)
        }
    }

    func beginPass(batch: TokenBatch, training: Bool, cache: HookCache) {
        for case let m as PassHook in members { m.beginPass(batch: batch, training: training, cache: cache) }
    }

    func endBackward(cache: HookCache) { for case let m as PassHook in members { m.endBackward(cache: cache) } }
}

/// average(a, b, …): out = Σ wᵢ mᵢ(x), equal weights unless given.
final class AverageNode: LayerHook {
    enum Slot: CacheSlot {
        case memberOutput  // [n, H] one member's output at a time
        case scaledGradient  // [n, H] w_i · ∂L/∂out
    }

    let members: [LayerHook]
    let weights: [Float]
    let hidden: Int

    init(_ members: [LayerHook], weights: [Float]?, hidden: Int, layers: Int) {
        // Averages sublayer outputs only (see FuseNode.init).
        precondition(!members.contains { $0.changesInsideLayers(layers) }, "AverageNode over a member that changes more than sublayer outputs")
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
        let buffer = cache.tensor(self, Slot.memberOutput, count: n * hidden)
        out.update(repeating: 0, count: n * hidden)
        for (m, w) in zip(members, weights) {
            applyHook(m, l, s, input, buffer.data, n: n, hidden: hidden, training: training, cache: cache)
            for i in 0..<(n * hidden) { out[i] += w * buffer.data[i] }
        }
    }

    func backward(layer l: Int, site s: AdapterSite, dout: UnsafePointer<Float>, grad: HookGradient, n: Int, cache: HookCache) {
        let scaled = cache.tensor(self, Slot.scaledGradient, count: n * hidden)
        for (m, w) in zip(members, weights) {
            for i in 0..<(n * hidden) { scaled.data[i] = w * dout[i] }
            applyHookBackward(m, l, s, scaled.data, grad, n: n, hidden: hidden, cache: cache)
        }
    }
}

/// parallel(a, b, …): the batch holds one copy of the input per member, one after another;
/// member i acts on copy i only. Each copy then reaches its own head.
final class ParallelNode: ProjectionHook {
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
    func changes(layer: Int, point: LayerPoint) -> Bool { members.contains { $0.changesPoint(layer: layer, point: point) } }

    private func widths(_ point: LayerPoint) -> (input: Int, output: Int) {
        (point.inputWidth(hidden: hidden, intermediate: intermediate), point.width(hidden: hidden, intermediate: intermediate))
    }

    func forward(
        layer: Int, point: LayerPoint, x: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>, n: Int, training: Bool, cache: HookCache
    ) {
        let per = n / members.count
        let (wi, wo) = widths(point)
        for (i, m) in members.enumerated() {
            guard let m = m as? ProjectionHook, m.changes(layer: layer, point: point) else { continue }
            m.forward(layer: layer, point: point, x: x.map { $0 + i * per * wi }, y: y + i * per * wo, n: per, training: training, cache: cache)
        }
    }

    func backward(layer: Int, point: LayerPoint, dy: UnsafeMutablePointer<Float>, dx: UnsafeMutablePointer<Float>?, n: Int, cache: HookCache) {
        let per = n / members.count
        let (wi, wo) = widths(point)
        for (i, m) in members.enumerated() {
            guard let m = m as? ProjectionHook, m.changes(layer: layer, point: point) else { continue }
            m.backward(layer: layer, point: point, dy: dy + i * per * wo, dx: dx.map { $0 + i * per * wi }, n: per, cache: cache)
        }
    }
}
