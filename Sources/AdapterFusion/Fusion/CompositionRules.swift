import Foundation

/// What a composition may hold, in one table (as AdapterHub keeps its `ALLOWED_NESTINGS`). The
/// recipe checker (`Composition.problem`, run by `afusion check`, by training and by loading a
/// stored fusion) reads it; the recipe grammar adds only that `parallel(…)` members are adapter
/// names and that weights belong to `average(…)`.
public enum CompositionRules {
    /// What a member changes, which decides where it may stand.
    public enum MemberKind: String, Sendable {
        /// Prompt tuning: soft tokens inserted into the input.
        case prompt
        /// LoRA, IA³, BitFit, UniPELT: projections or vectors inside a layer (a fuse or average over
        /// them runs each member's whole layer: `LayerFuseNode`).
        case inside
        /// Prefix tuning (and UniPELT's prefix): keys and values prepended to the attention.
        case prefixed
    }

    /// A node of the composition language.
    public enum Node: String, Sendable { case fuse, average, stack, parallel }

    /// How many members of a kind a node may hold, and where.
    public enum Allowed: Sendable {
        case never
        /// Only when the node is the recipe's whole composition.
        case onlyAtTheRoot
        case atMostOne
    }

    public struct Rule: Sendable {
        /// nil: any node.
        public let node: Node?
        public let member: MemberKind
        public let allowed: Allowed
        public let reason: String
    }

    /// The table. A pair not listed is allowed.
    public static let rules: [Rule] = [
        Rule(
            node: nil, member: .prompt, allowed: .never,
            reason: "inserts prompt tokens into the input; a composition combines layers, so it cannot hold one"),
        Rule(
            node: .fuse, member: .inside, allowed: .onlyAtTheRoot,
            reason: "over LoRA, prefix, IA³, BitFit or UniPELT members computes whole layers (each member runs the layer)"),
        Rule(
            node: .average, member: .inside, allowed: .onlyAtTheRoot,
            reason: "over LoRA, prefix, IA³, BitFit or UniPELT members computes whole layers (each member runs the layer)"),
        Rule(node: .stack, member: .prefixed, allowed: .atMostOne, reason: "a stack holds at most one adapter with an attention prefix"),
        Rule(
            node: .parallel, member: .prefixed, allowed: .never,
            reason: "parallel(…) runs its members on copies of the batch; an attention prefix is shared by the whole batch"),
    ]

    /// The kinds a member of this configuration is (a UniPELT adapter is both inside and prefixed).
    public static func kinds(_ c: AdapterConfig) -> Set<MemberKind> {
        var k: Set<MemberKind> = []
        if c.prompt != nil { k.insert(.prompt) }
        if !c.hasBottleneck || c.method == .unipelt { k.insert(.inside) }
        if c.prefix != nil { k.insert(.prefixed) }
        return k
    }
}

extension CompositionExpr {
    var node: CompositionRules.Node? {
        switch self {
        case .adapter: return nil
        case .fuse: return .fuse
        case .average: return .average
        case .stack: return .stack
        case .parallel: return .parallel
        }
    }

    var members: [CompositionExpr] {
        switch self {
        case .adapter: return []
        case .fuse(let m), .average(let m, _), .stack(let m), .parallel(let m): return m
        }
    }
}
