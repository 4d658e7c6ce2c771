import Foundation

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
                return AverageNode(children, weights: w, hidden: hidden, layers: layers)
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
