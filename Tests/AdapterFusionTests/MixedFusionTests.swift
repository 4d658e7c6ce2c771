import AdapterFusion
import Foundation
import Testing

/// Compositions whose members are of different methods: finite-difference checks through
/// layer-level fusion (`LayerFuseNode`), stacks and parallels of LoRA / prefix / IA³ / BitFit /
/// UniPELT next to bottleneck adapters; the rules that refuse what cannot be built; store round trips.
@Suite struct MixedFusionTests {
    static func adapters(_ methods: [String: PEFTMethod]) -> [String: Adapter] {
        var rng = SeededRNG(seed: 11)
        var out: [String: Adapter] = [:]
        for (k, (name, m)) in methods.sorted(by: { $0.key < $1.key }).enumerated() {
            var c = MethodGradientTests.config(m)
            c.prompt = nil
            if name.hasSuffix("f") { c.placement = .pfeiffer }  // "qf": a parallel adapter after the FFN only
            let a = Adapter(name: name, config: c, hidden: 8, layers: 3, seed: UInt64(k + 1))
            for p in a.parameters { for i in 0..<p.value.count { p.value[i] += 0.3 * rng.nextNormal() } }
            out[name] = a
        }
        return out
    }

    static func model(_ expr: CompositionExpr, _ methods: [String: PEFTMethod], options: FusionOptions = FusionOptions()) throws
        -> FusionGradientTests.Model
    {
        let encoder = try Support.tinyEncoder()
        let adapters = Self.adapters(methods)
        let comp = Composition(expr, adapters: adapters, options: options, hidden: 8, layers: 3, seed: 3)
        var rng = SeededRNG(seed: 12)
        for p in comp.parameters { for i in 0..<p.value.count { p.value[i] += 0.3 * rng.nextNormal() } }
        let head = PredictionHead(config: HeadConfig(kind: .classification, outputs: 3), hidden: 8, seed: 5)
        for p in head.parameters { for i in 0..<p.value.count { p.value[i] += 0.5 * rng.nextNormal() } }
        return FusionGradientTests.Model(
            encoder: encoder, composition: comp, adapters: adapters, head: head,
            batch: TokenBatch(sequences: [[1, 5, 7, 2], [1, 9, 2], [1, 3, 4, 6, 8, 2]]),
            ws: EncoderWorkspace(config: encoder.config, training: true))
    }

    static let methods: [String: PEFTMethod] = [
        "a": .bottleneck, "l": .lora, "p": .prefix, "i": .ia3, "b": .bitfit, "u": .unipelt, "q": .parallel, "l2": .lora,
        "qf": .parallel,
    ]

    static let expressions: [CompositionExpr] = [
        .fuse([.adapter("l"), .adapter("p"), .adapter("a")]),
        // Members that act at the FFN output only share the frozen pass (h, x, z = y₀).
        .fuse([.adapter("i"), .adapter("qf"), .adapter("a")]),
        .fuse([.adapter("i"), .stack([.adapter("b"), .adapter("q")]), .adapter("u")]),
        .average([.adapter("l"), .adapter("p"), .adapter("a")], weights: [0.5, 0.3, 0.2]),
        .stack([.adapter("l"), .adapter("p"), .adapter("a")]),
        .fuse([.adapter("a"), .fuse([.adapter("q"), .adapter("a2")])]),
    ]

    /// Score dropout off and the value bias on (as `FusionGradientTests.compositionGradients`):
    /// with them some query gradients are too small to check on 13 tokens.
    @Test(arguments: expressions)
    func mixedCompositionGradients(expr: CompositionExpr) throws {
        var options = FusionOptions()
        options.scoreDropout = false
        options.valueBias = true
        var methods = Self.methods
        methods["a2"] = .bottleneck
        let used = methods.filter { expr.adapterNames.contains($0.key) }
        // Only what a user can write: the recipe parser and checker accept this expression.
        let recipe = try Recipe.parse("fusion t\nbase b\nstore s\ntask t.toml\ncompose \(expr)\n", file: "t.fuse")
        #expect(recipe.expr == expr)
        #expect(Composition.problem(recipe.expr, configs: Self.adapters(used).mapValues(\.config)) == nil)
        let m = try Self.model(expr, used, options: options)
        try m.gradients()
        if case .fuse = expr { #expect(!m.composition.parameters.isEmpty) }
        for p in m.composition.parameters + m.head.parameters {
            checkGradient(p.value, analytic: p.grad, sample: 12) { (try? m.loss()) ?? .nan }
        }
    }

    /// One member at weight 1: the layer-level average is that member's model exactly.
    @Test func singleMemberAverageIsTheMember() throws {
        let adapters = Self.adapters(["l": .lora, "p": .prefix])
        let encoder = try Support.tinyEncoder()
        let comp = Composition(
            .average([.adapter("l"), .adapter("p")], weights: [1, 0]), adapters: adapters, options: FusionOptions(), hidden: 8, layers: 3,
            seed: 1)
        let batch = TokenBatch(sequences: [[1, 5, 7, 2], [1, 9, 2]])
        let ws = EncoderWorkspace(config: encoder.config)
        let fused = try encoder.forward(batch, workspace: ws, hook: comp.root).array
        let alone = try encoder.forward(batch, workspace: ws, hook: adapters["l"]!).array
        #expect(zip(fused, alone).map { abs($0 - $1) }.max()! <= 1e-5)
    }

    /// parallel(l, i) over two copies of a batch: each copy gets exactly its member's model.
    @Test func parallelRunsEachMemberOnItsCopy() throws {
        let adapters = Self.adapters(["l": .lora, "i": .ia3])
        let encoder = try Support.tinyEncoder()
        let comp = Composition(
            .parallel([.adapter("l"), .adapter("i")]), adapters: adapters, options: FusionOptions(), hidden: 8, layers: 3, seed: 1)
        let seqs: [[Int32]] = [[1, 5, 7, 2], [1, 9, 2]]
        let ws = EncoderWorkspace(config: encoder.config)
        let both = try encoder.forward(TokenBatch(sequences: seqs + seqs), workspace: ws, hook: comp.root).array
        let l = try encoder.forward(TokenBatch(sequences: seqs), workspace: ws, hook: adapters["l"]!).array
        let i = try encoder.forward(TokenBatch(sequences: seqs), workspace: ws, hook: adapters["i"]!).array
        #expect(zip(both, l + i).map { abs($0 - $1) }.max()! <= 1e-5)
        #expect(zip(l, i).map { abs($0 - $1) }.max()! > 1e-2)
    }

    @Test func refusals() {
        let configs = Self.adapters(["l": .lora, "p": .prefix, "a": .bottleneck, "p2": .prefix]).mapValues(\.config)
        var withPrompt = configs
        withPrompt["t"] = MethodGradientTests.config(.prompt)
        #expect(Composition.problem(.fuse([.adapter("t"), .adapter("a")]), configs: withPrompt)?.adapter == "t")
        #expect(
            Composition.problem(.stack([.adapter("a"), .fuse([.adapter("l"), .adapter("a")])]), configs: configs)?.message.contains(
                "whole composition") == true)
        #expect(Composition.problem(.stack([.adapter("p"), .adapter("p2")]), configs: configs)?.adapter == "p2")
        #expect(Composition.problem(.parallel([.adapter("p"), .adapter("a")]), configs: configs)?.adapter == "p")
        #expect(Composition.problem(.fuse([.adapter("a"), .fuse([.adapter("a"), .adapter("a")])]), configs: configs) == nil)
    }
}
