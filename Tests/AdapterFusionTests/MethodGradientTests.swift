import AdapterFusion
import Foundation
import Testing

/// Finite-difference checks of every parameter-efficient method on a tiny random BERT, through
/// the whole model (head → layers → the method's modules), dropout on (re-seeded per loss
/// evaluation, so the function is fixed). Tolerances: see `checkGradient`.
@Suite struct MethodGradientTests {
    static func config(_ m: PEFTMethod) -> AdapterConfig {
        var c = AdapterConfig.method(m)
        c.nonLinearity = .gelu  // smooth: finite differences across ReLU's kink are meaningless
        c.reductionFactor = 4
        c.intermediateSize = 16
        switch m {
        case .lora:
            // α = r (scale 1): with all six projections changed at scale 2 the tiny model gets so
            // curved at layer 0 that ±1e-2 finite differences stop tracking the slope (checked: at
            // ±1e-3 they agree there too).
            c.lora = LoRAConfig(rank: 2, alpha: 2, targets: LoRAConfig.allowedTargets, dropout: 0.1)
        case .prefix: c.prefix = PrefixConfig(length: 3, mlpHidden: 5)
        case .prompt: c.prompt = PromptConfig(length: 2)
        case .ia3: c.ia3 = IA3Config(targets: IA3Config.allowedTargets)
        case .parallel: c.placement = .houlsby
        case .unipelt:
            c.lora = LoRAConfig(rank: 2, alpha: 2, targets: [.query, .value], dropout: 0.1)
            c.prefix = PrefixConfig(length: 3, mlpHidden: 0)
            c.prompt = PromptConfig(length: 2)
        default: break
        }
        return c
    }

    static func model(_ config: AdapterConfig, leaveOut: [Int] = []) throws -> ModelGradientTests.Model {
        var config = config
        config.leaveOut = leaveOut
        let encoder = try Support.tinyEncoder()
        let adapter = Adapter(name: "t", config: config, hidden: 8, layers: 3, seed: 3)
        var rng = SeededRNG(seed: 11)
        let head = PredictionHead(config: HeadConfig(kind: .classification, outputs: 3), hidden: 8, seed: 5)
        for p in adapter.parameters + head.parameters { for i in 0..<p.value.count { p.value[i] += 0.5 * rng.nextNormal() } }
        let batch = TokenBatch(
            sequences: [[1, 5, 7, 2], [1, 9, 2], [1, 3, 4, 6, 8, 2]],
            typeIds: [[0, 0, 0, 0], [0, 0, 1], [0, 0, 0, 1, 1, 1]])
        return ModelGradientTests.Model(
            encoder: encoder, adapter: adapter, head: head, batch: batch, targets: .labels([2, 0, 1]),
            ws: EncoderWorkspace(config: encoder.config, training: true))
    }

    @Test(arguments: [PEFTMethod.lora, .prefix, .prompt, .bitfit, .ia3, .parallel, .unipelt])
    func methodGradients(method: PEFTMethod) throws {
        let m = try Self.model(Self.config(method))
        try m.gradients()
        #expect(!m.adapter.parameters.isEmpty)
        // A gate's bias is one number whose gradient can be too small to check here; it is
        // Σ of the same per-token terms that make the gate weight's (checked) gradient.
        for p in m.adapter.parameters + m.head.parameters where !(p.name.contains("gates/") && p.name.hasSuffix("bias")) {
            checkGradient(p.value, analytic: p.grad, sample: 16) { (try? m.loss()) ?? .nan }
        }
    }

    /// BitFit's key bias cannot change anything (softmax ignores a score shift shared by a
    /// row: q·(k_j + δ) = q·k_j + q·δ): its gradient is zero up to rounding, so it is not a default target.
    @Test func keyBiasHasNoGradient() throws {
        var c = Self.config(.bitfit)
        c.bitfit = BitFitConfig(targets: [.key, .query])
        let m = try Self.model(c)
        try m.gradients()
        let key = m.adapter.parameters.filter { $0.name.hasSuffix("key_bias") }
        let query = m.adapter.parameters.filter { $0.name.hasSuffix("query_bias") }
        #expect(key.count == 3)
        #expect(key.allSatisfy { $0.grad.array.allSatisfy { abs($0) < 1e-6 } })
        #expect(query.allSatisfy { $0.grad.array.contains { abs($0) > 1e-3 } })
    }

    /// Layer 0 left out: the backward pass stops inside layer 1 and the gradients stay right.
    @Test(arguments: [PEFTMethod.lora, .prefix, .ia3, .bitfit])
    func leaveOutLowestLayer(method: PEFTMethod) throws {
        let m = try Self.model(Self.config(method), leaveOut: [0])
        try m.gradients()
        #expect(!m.adapter.parameters.contains { $0.name.hasPrefix("layer_00") })
        for p in m.adapter.parameters { checkGradient(p.value, analytic: p.grad, sample: 16) { (try? m.loss()) ?? .nan } }
    }

    /// Fresh LoRA, IA³, BitFit and parallel adapters leave the encoder unchanged (B = 0, l = 1,
    /// δ = 0, up = 0).
    @Test(arguments: [PEFTMethod.lora, .ia3, .bitfit, .parallel])
    func freshMethodIsIdentity(method: PEFTMethod) throws {
        let encoder = try Support.tinyEncoder()
        let adapter = Adapter(name: "t", config: Self.config(method), hidden: 8, layers: 3, seed: 1)
        let batch = TokenBatch(sequences: [[1, 5, 7, 2], [1, 9, 2]])
        let ws = EncoderWorkspace(config: encoder.config)
        #expect(try encoder.forward(batch, workspace: ws, hook: adapter).array == encoder.forward(batch, workspace: ws).array)
    }

    /// `merged(into:)` folds LoRA into the weights: the bare encoder on the merged weights
    /// computes what the hook computes, within 1e-5 (float rounding of two summation orders).
    @Test func mergedLoRAEqualsUnmerged() throws {
        let m = try Self.model(Self.config(.lora))
        let ws = EncoderWorkspace(config: m.encoder.config)
        let unmerged = try m.encoder.forward(m.batch, workspace: ws, hook: m.adapter).array
        let merged = BertEncoder(config: m.encoder.config, weights: m.adapter.merged(into: m.encoder.weights))
        let out = try merged.forward(m.batch, workspace: ws).array
        let diff = zip(unmerged, out).map { abs($0 - $1) }.max()!
        #expect(diff <= 1e-5)
        #expect(zip(unmerged, try m.encoder.forward(m.batch, workspace: ws).array).map { abs($0 - $1) }.max()! > 1e-2)
    }

    /// A prompt's rows are left out of the result, and the rows kept are the real tokens' own:
    /// a prompt started from the embeddings of words W computes exactly what the bare encoder
    /// computes with W written after each [CLS], less those rows (1e-5: float summation order).
    /// Fails if the wrong rows are dropped or the prompt sits elsewhere.
    @Test func promptRowsLeftOut() throws {
        let m = try Self.model(Self.config(.prompt))
        let words: [Int32] = [6, 9]
        m.adapter.promptModule!.initialize(from: m.encoder.weights.wordEmbeddings, ids: words)
        let out = try m.encoder.forward(m.batch, workspace: EncoderWorkspace(config: m.encoder.config), hook: m.adapter)
        #expect(out.shape == [m.batch.tokenCount, 8])
        let seqs: [[Int32]] = [[1, 5, 7, 2], [1, 9, 2], [1, 3, 4, 6, 8, 2]]
        let types: [[Int32]] = [[0, 0, 0, 0], [0, 0, 1], [0, 0, 0, 1, 1, 1]]
        let written = TokenBatch(
            sequences: seqs.map { [$0[0]] + words + $0.dropFirst() }, typeIds: types.map { [$0[0]] + [0, 0] + $0.dropFirst() })
        let reference = try m.encoder.forward(written, workspace: EncoderWorkspace(config: m.encoder.config))
        var expected: [Float] = []
        for s in 0..<written.count {
            for t in 0..<written.length(s) where !(1...words.count).contains(t) {
                let row = written.offsets[s] + t
                expected += (0..<8).map { reference[row * 8 + $0] }
            }
        }
        #expect(expected.count == out.count)
        #expect(zip(out.array, expected).map { abs($0 - $1) }.max()! <= 1e-5)
        #expect(out.array != (try m.encoder.forward(m.batch, workspace: EncoderWorkspace(config: m.encoder.config))).array)
    }

    /// Training through the prefix MLP, then flattening it, computes the same prefix.
    @Test func flattenedPrefixEqualsMLP() throws {
        let m = try Self.model(Self.config(.prefix))
        let ws = EncoderWorkspace(config: m.encoder.config)
        let before = try m.encoder.forward(m.batch, workspace: ws, hook: m.adapter).array
        m.adapter.finishTraining()
        #expect(m.adapter.parameters.map(\.name).contains("layer_02/prefix/values"))
        #expect(!m.adapter.parameters.contains { $0.name.contains("prefix_mlp") })
        let after = try m.encoder.forward(m.batch, workspace: ws, hook: m.adapter).array
        #expect(zip(before, after).map { abs($0 - $1) }.max()! <= 1e-6)
    }

    /// Each method's configuration survives its JSON (the stored `config` attribute); a config
    /// written before methods existed reads as a bottleneck adapter.
    @Test func configJSONRoundTrip() throws {
        for m in PEFTMethod.allCases {
            let c = Self.config(m)
            let json = try JSONEncoder().encode(c)
            #expect(try JSONDecoder().decode(AdapterConfig.self, from: json) == c, "\(m)")
            #expect(String(decoding: json, as: UTF8.self).contains("\"method\":\"\(m.rawValue)\""))
            #expect(c.problem(hidden: 8, layers: 3) == nil, "\(m)")
        }
        let old = #"{"placement":"houlsby","reduction_factor":4,"non_linearity":"relu","leave_out":[],"init_std":0.01}"#
        let c = try JSONDecoder().decode(AdapterConfig.self, from: Data(old.utf8))
        #expect(c.method == .bottleneck && c.placement == .houlsby && c.scaling == 1 && c.lora == nil)
        var bad = Self.config(.unipelt)
        bad.lora?.targets = [.ffnOut]
        #expect(bad.problem(hidden: 8, layers: 3)?.contains("UniPELT") == true)
        var noLora = Self.config(.lora)
        noLora.lora = nil
        #expect(noLora.problem(hidden: 8, layers: 3) != nil)
    }

    /// `PEFTLoRA.write`: PEFT's tensor names and shapes, the weights as stored, a target pattern
    /// that names only the adapter's layers and projections; other methods refused. (Parity with
    /// PEFT itself on the real model: scripts/check_peft_parity.py, 5.9e-7.)
    @Test func peftExport() throws {
        var c = Self.config(.lora)
        c.leaveOut = [1]
        let a = Adapter(name: "t", config: c, hidden: 8, layers: 3, seed: 2)
        let dir = try Support.tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        try PEFTLoRA.write(a, directory: dir.path, baseModel: "tiny")
        let file = try SafeTensorsFile(path: dir.appendingPathComponent("adapter_model.safetensors").path)
        #expect(file.entries.count == a.parameters.count)
        let qa = try file.tensor("base_model.model.encoder.layer.2.attention.self.query.lora_A.weight", shape: [2, 8])
        #expect(qa.array == a.parameters.first { $0.name == "layer_02/lora/query/A" }!.value.array)
        _ = try file.tensor("base_model.model.encoder.layer.0.output.dense.lora_A.weight", shape: [2, 16])
        _ = try file.tensor("base_model.model.encoder.layer.0.intermediate.dense.lora_B.weight", shape: [16, 2])
        let config = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("adapter_config.json"))) as? [String: Any])
        #expect(config["peft_type"] as? String == "LORA" && config["r"] as? Int == 2 && config["lora_alpha"] as? Double == 2)
        let pattern = try NSRegularExpression(pattern: "^" + (config["target_modules"] as! String) + "$")
        func matches(_ s: String) -> Bool { pattern.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil }
        #expect(matches("encoder.layer.0.attention.output.dense") && matches("encoder.layer.2.output.dense"))
        #expect(!matches("encoder.layer.1.attention.self.query"))  // left out
        #expect {
            try PEFTLoRA.write(Adapter(name: "b", config: Self.config(.bitfit), hidden: 8, layers: 3, seed: 1), directory: dir.path, baseModel: "x")
        } throws: {
            "\($0)".contains("only LoRA")
        }
    }
}
