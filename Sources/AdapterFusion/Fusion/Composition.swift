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
        func having(_ e: CompositionExpr, _ kind: CompositionRules.MemberKind) -> [String] {
            e.adapterNames.filter { n in configs[n].map { CompositionRules.kinds($0).contains(kind) } ?? false }
        }
        // Rules for any node: checked once over every member.
        for rule in CompositionRules.rules where rule.node == nil {
            if let n = having(expr, rule.member).first { return (n, "adapter '\(n)' (\(configs[n]!.architecture)) \(rule.reason)") }
        }
        func walk(_ e: CompositionExpr, root: Bool) -> (String?, String)? {
            for rule in CompositionRules.rules where rule.node != nil && rule.node == e.node {
                let found = having(e, rule.member)
                switch rule.allowed {
                case .never:
                    if let n = found.first { return (n, "\(rule.reason) ('\(n)' has one)") }
                case .onlyAtTheRoot:
                    if !root && !found.isEmpty {
                        return (nil, "\(rule.node!.rawValue)(…) \(rule.reason); it must be the recipe's whole composition, not part of \(expr)")
                    }
                case .atMostOne:
                    if found.count > 1 { return (found[1], "\(rule.reason) ('\(found[0])' has one)") }
                }
            }
            for m in e.members { if let p = walk(m, root: false) { return p } }
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
