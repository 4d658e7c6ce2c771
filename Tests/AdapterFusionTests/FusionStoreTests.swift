import AdapterFusion
import Foundation
import Testing

/// Stage two end to end on the tiny encoder: train a fusion of two stored adapters, save,
/// reload, evaluate bit-identically; refuse when a member is retrained or removed.
@Suite struct FusionStoreTests {
    /// The tiny encoder (hidden 32) and tokenizer, a store path and a two-label task file in `dir`.
    static func setUp(_ dir: URL) throws -> (BertEncoder, WordPieceTokenizer, String, String, TaskSpec) {
        let store = dir.appendingPathComponent("s.h5").path
        let taskPath = dir.appendingPathComponent("z.toml").path
        try Data("name = \"zebra\"\n[data]\nfiles = [\"unused.csv\"]\nformat = \"csv\"\n[labels]\nnames = [\"no\", \"yes\"]\n".utf8)
            .write(to: URL(fileURLWithPath: taskPath))
        return (try Support.tinyEncoder(hidden: 32), try TrainerTests.tinyTokenizer(), store, taskPath, try TaskSpec.load(taskPath))
    }

    @Test func trainSaveReloadAndRefuseChangedMembers() throws {
        let dir = try Support.tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let (encoder, tok, store, taskPath, spec) = try Self.setUp(dir)

        // Two stored "source" adapters with random, non-trivial weights.
        var rng = SeededRNG(seed: 1)
        func storeAdapter(_ name: String, seed: UInt64, replace: Bool = false) throws -> AdapterRecord {
            let a = Adapter(name: name, config: AdapterConfig(reductionFactor: 4), hidden: 32, layers: 3, seed: seed)
            for p in a.parameters { for i in 0..<p.value.count { p.value[i] += 0.1 * rng.nextNormal() } }
            let h = PredictionHead(config: HeadConfig(kind: .classification, outputs: 2), hidden: 32, seed: seed)
            let rec = AdapterRecord(
                name: name, task: name, taskFile: taskPath, labels: ["no", "yes"], metric: "accuracy",
                adapterConfig: a.config, headConfig: h.config, baseModel: "tiny", baseFingerprint: "B",
                hiddenSize: 32, numLayers: 3, devMetrics: [0.5], bestEpoch: 1, settings: TrainingConfig(), seed: 0, created: "")
            try AdapterStore.save(adapter: a, head: h, record: rec, to: store, replace: replace)
            return try AdapterStore.list(store).first { $0.name == name }!
        }
        let recA = try storeAdapter("alpha", seed: 2)
        let recB = try storeAdapter("beta", seed: 3)

        let text =
            "fusion zf\nbase tiny\nstore \(store)\ntask \(taskPath)\ncompose fuse(alpha, beta)\noptions temperature anneal\ntrain epochs 2, lr 1e-2, batch 16\n"
        let recipe = try Recipe.parse(text, file: "zf.fuse")
        _ = try recipe.check(baseFingerprint: "B", hiddenSize: 32, records: AdapterStore.list(store))
        var adapters: [String: Adapter] = [:]
        for n in ["alpha", "beta"] { adapters[n] = try AdapterStore.load(store, name: n, baseFingerprint: "B").0 }
        let comp = Composition(recipe.expr, adapters: adapters, options: recipe.options, hidden: 32, layers: 3, seed: 4)
        let head = PredictionHead(config: HeadConfig(kind: .classification, outputs: 2), hidden: 32, seed: 5)
        let frozenBefore = adapters.mapValues { $0.parameters.map(\.value.array) }
        let trainer = Trainer(encoder: encoder, model: comp, head: head)
        var tc = recipe.training
        tc.maxLength = 16
        let train = EncodedSplit(TrainerTests.synthetic(128, seed: 1), tokenizer: tok, maxLength: 16)
        let dev = EncodedSplit(TrainerTests.synthetic(48, seed: 2), tokenizer: tok, maxLength: 16)
        let result = try trainer.train(train: train, dev: dev, spec: spec, config: tc)
        // Members stay as stored, and (frozen) accumulate no gradient over the whole run: without
        // freezing, their gradients would grow here even though the optimizer never holds them.
        #expect(adapters.mapValues { $0.parameters.map(\.value.array) } == frozenBefore, "a fusion member changed during training")
        for (name, a) in adapters {
            #expect(a.parameters.allSatisfy { p in (0..<p.grad.count).allSatisfy { p.grad[$0] == 0 } }, "member \(name) computed gradients")
        }
        let rec = FusionRecord(
            name: "zf", recipe: text, recipeFile: "zf.fuse", task: "zebra", taskFile: taskPath, labels: spec.labels,
            metric: "accuracy", composition: recipe.expr.description,
            memberFingerprints: ["alpha": recA.weightsFingerprint, "beta": recB.weightsFingerprint],
            options: recipe.options, headConfig: head.config, baseModel: "tiny", baseFingerprint: "B", hiddenSize: 32,
            numLayers: 3, devMetrics: result.devMetrics, bestEpoch: result.bestEpoch, settings: TrainingConfig(), seed: 4, created: "")
        try FusionStore.save(composition: comp, head: head, record: rec, to: store)

        let loaded = try FusionStore.load(store, name: "zf", baseFingerprint: "B")
        #expect(loaded.record.composition == "fuse(alpha, beta)")
        let before = try Evaluator(encoder: encoder, hook: comp.root, head: head).evaluate(dev, spec: spec, batchSize: 16)
        let after = try Evaluator(encoder: encoder, hook: loaded.composition.root, head: loaded.head).evaluate(dev, spec: spec, batchSize: 16)
        #expect(after.outputs == before.outputs)
        #expect(after.metric == loaded.record.bestDevMetric!)
        #expect(try AdapterStore.list(store).map(\.name) == ["alpha", "beta"])  // saving the fusion kept the adapters
        #expect { try FusionStore.load(store, name: "zf", baseFingerprint: "OTHER") } throws: { "\($0)".contains("refusing") }

        // Retrain (change) a member: the fusion refuses to load and names it.
        #expect(try AdapterStore.fusionsUsing(store, adapter: "beta") == ["zf"])
        _ = try storeAdapter("beta", seed: 9, replace: true)
        #expect { try FusionStore.load(store, name: "zf", baseFingerprint: "B") } throws: {
            "\($0)".contains("adapter 'beta' was retrained or changed after fusion 'zf'")
        }
        // Remove a member.
        try AdapterStore.rewrite(store, replacing: [("adapters", "alpha"), ("heads", "alpha")]) { _ in }
        #expect { try FusionStore.load(store, name: "zf", baseFingerprint: "B") } throws: {
            "\($0)".contains("needs adapter 'alpha', which the store no longer has")
        }
        #expect(try FusionStore.list(store).map(\.name) == ["zf"])
    }

    /// A fusion over LoRA, prefix (trained through its MLP, stored flattened) and bottleneck
    /// members: stored members reload as they were, and the trained fusion reloads to identical outputs.
    @Test func mixedMembersSaveReloadIdentical() throws {
        let dir = try Support.tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let (encoder, tok, store, taskPath, spec) = try Self.setUp(dir)
        let dev = EncodedSplit(TrainerTests.synthetic(48, seed: 2), tokenizer: tok, maxLength: 16)
        var rng = SeededRNG(seed: 1)
        var records: [String: AdapterRecord] = [:]
        for (name, method) in [("alpha", PEFTMethod.lora), ("beta", .prefix), ("gamma", .bottleneck)] {
            var c = AdapterConfig.method(method)
            c.intermediateSize = 64
            c.prefix = c.prefix.map { _ in PrefixConfig(length: 4, mlpHidden: 16) }
            let a = Adapter(name: name, config: c, hidden: 32, layers: 3, seed: 7)
            for p in a.parameters { for i in 0..<p.value.count { p.value[i] += 0.1 * rng.nextNormal() } }
            let h = PredictionHead(config: HeadConfig(kind: .classification, outputs: 2), hidden: 32, seed: 7)
            let before = try Evaluator(encoder: encoder, hook: a, head: h).evaluate(dev, spec: spec, batchSize: 16)
            let rec = AdapterRecord(
                name: name, task: name, taskFile: taskPath, labels: ["no", "yes"], metric: "accuracy",
                adapterConfig: a.config, headConfig: h.config, baseModel: "tiny", baseFingerprint: "B",
                hiddenSize: 32, numLayers: 3, devMetrics: [0.5], bestEpoch: 1, settings: TrainingConfig(), seed: 0, created: "")
            try AdapterStore.save(adapter: a, head: h, record: rec, to: store)
            let (b, hb, r) = try AdapterStore.load(store, name: name, baseFingerprint: "B")
            #expect(r.adapterConfig.method == method)
            let after = try Evaluator(encoder: encoder, hook: b, head: hb).evaluate(dev, spec: spec, batchSize: 16)
            // The prefix's MLP output, stored flattened, reproduces its outputs within float rounding.
            let diff = zip(before.outputs.flatMap { $0 }, after.outputs.flatMap { $0 }).map { abs($0 - $1) }.max()!
            #expect(diff <= (method == .prefix ? 1e-5 : 0), "\(name)")
            records[name] = r
        }
        let text = "fusion zm\nbase tiny\nstore \(store)\ntask \(taskPath)\ncompose fuse(alpha, beta, gamma)\ntrain epochs 1, lr 1e-2, batch 16\n"
        let recipe = try Recipe.parse(text, file: "zm.fuse")
        var adapters: [String: Adapter] = [:]
        for n in ["alpha", "beta", "gamma"] { adapters[n] = try AdapterStore.load(store, name: n, baseFingerprint: "B").0 }
        #expect(Composition.problem(recipe.expr, configs: adapters.mapValues(\.config)) == nil)
        let comp = Composition(recipe.expr, adapters: adapters, options: recipe.options, hidden: 32, layers: 3, seed: 4)
        #expect(comp.fuseNodes.first?.node is LayerFuseNode)
        let head = PredictionHead(config: HeadConfig(kind: .classification, outputs: 2), hidden: 32, seed: 5)
        var tc = recipe.training
        tc.maxLength = 16
        let result = try Trainer(encoder: encoder, model: comp, head: head).train(
            train: EncodedSplit(TrainerTests.synthetic(64, seed: 1), tokenizer: tok, maxLength: 16), dev: dev, spec: spec, config: tc)
        let rec = FusionRecord(
            name: "zm", recipe: text, recipeFile: "zm.fuse", task: "zebra", taskFile: taskPath, labels: spec.labels,
            metric: "accuracy", composition: recipe.expr.description,
            memberFingerprints: records.mapValues(\.weightsFingerprint),
            options: recipe.options, headConfig: head.config, baseModel: "tiny", baseFingerprint: "B", hiddenSize: 32,
            numLayers: 3, devMetrics: result.devMetrics, bestEpoch: result.bestEpoch, settings: TrainingConfig(), seed: 4, created: "")
        try FusionStore.save(composition: comp, head: head, record: rec, to: store)
        let loaded = try FusionStore.load(store, name: "zm", baseFingerprint: "B")
        let before = try Evaluator(encoder: encoder, hook: comp.root, head: head).evaluate(dev, spec: spec, batchSize: 16)
        let after = try Evaluator(encoder: encoder, hook: loaded.composition.root, head: loaded.head).evaluate(dev, spec: spec, batchSize: 16)
        #expect(after.outputs == before.outputs)
        #expect(loaded.composition.parameters.map(\.name).contains("layer_02/query/weight"))
    }
}
