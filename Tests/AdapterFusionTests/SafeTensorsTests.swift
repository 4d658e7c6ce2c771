import AdapterFusion
import Foundation
import Testing

@Suite struct SafeTensorsTests {
    let a = Tensor(shape: [2, 3], values: [1, -2, 3.5, 0.25, -0.125, 65504])
    let b = Tensor(shape: [4], values: [0, 1, 2, 3])

    @Test(arguments: ["F32", "F16", "BF16"])
    func roundTrip(dtype: String) throws {
        let dir = try Support.tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("t.safetensors").path
        try SafeTensorsFile.write([("layer.a", a), ("b", b)], to: path, dtype: dtype)
        let f = try SafeTensorsFile(path: path)
        #expect(f.entries["layer.a"]?.dtype == dtype)
        // Every value here is exactly representable in F16; BF16 keeps 8 significant bits,
        // which all of them fit except 65504 (→ 65536 after BF16's round-to-nearest... it is
        // truncated by this writer to 65280).
        let got = try f.tensor("layer.a", shape: [2, 3]).array
        let expected: [Float] = dtype == "BF16" ? [1, -2, 3.5, 0.25, -0.125, 65280] : a.array
        #expect(got == expected)
        #expect(try f.tensor("b").array == b.array)
    }

    @Test func errorsNameTheProblem() throws {
        let dir = try Support.tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("t.safetensors").path
        try SafeTensorsFile.write([("a", a)], to: path)
        let f = try SafeTensorsFile(path: path)
        #expect(throws: SafeTensorsError.missingTensor(path: path, name: "nope")) { try f.tensor("nope") }
        #expect(throws: SafeTensorsError.wrongShape(path: path, name: "a", expected: [3, 2], found: [2, 3])) { try f.tensor("a", shape: [3, 2]) }

        // Truncated: drop the last 4 bytes of tensor data.
        let full = try Data(contentsOf: URL(fileURLWithPath: path))
        let cut = dir.appendingPathComponent("cut.safetensors").path
        try full.prefix(full.count - 4).write(to: URL(fileURLWithPath: cut))
        do { _ = try SafeTensorsFile(path: cut); Issue.record("truncated file accepted") } catch let e as SafeTensorsError {
            guard case .truncated(let p, _) = e else { Issue.record("wrong error \(e)"); return }
            #expect(p == cut)
        }
        // Shorter than the length prefix, a length past the end, garbage JSON.
        for (name, bytes) in [
            ("tiny", Data([1, 2, 3])), ("len", Data([255, 255, 0, 0, 0, 0, 0, 0, 123])),
            ("json", Data([4, 0, 0, 0, 0, 0, 0, 0]) + Data("{]x}".utf8)),
        ] {
            let p = dir.appendingPathComponent(name).path
            try bytes.write(to: URL(fileURLWithPath: p))
            #expect(throws: SafeTensorsError.self) { try SafeTensorsFile(path: p) }
        }
        #expect(throws: SafeTensorsError.self) { try SafeTensorsFile(path: dir.appendingPathComponent("absent").path) }
    }

    @Test func errorMessageNamesFile() {
        let e = SafeTensorsError.missingTensor(path: "/m/model.safetensors", name: "encoder.layer.0.x")
        #expect(e.description.contains("/m/model.safetensors") && e.description.contains("encoder.layer.0.x"))
    }

    /// A tiny random BERT saved with the `bert.` prefix and TF-style LayerNorm gamma/beta names
    /// loads through the same key table, and a mismatched config is refused.
    @Test func keyTableAcceptsPrefixAndLegacyNames() throws {
        let dir = try Support.tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let c = BertConfig(
            hiddenSize: 8, numHiddenLayers: 2, numAttentionHeads: 2, intermediateSize: 16,
            maxPositionEmbeddings: 16, vocabSize: 30, typeVocabSize: 2)
        let tensors = Support.tinyBertTensors(c, prefix: "bert.", legacyEmbeddingLN: true)
        let path = dir.appendingPathComponent("model.safetensors").path
        try SafeTensorsFile.write(tensors, to: path, dtype: "F16")
        let file = try SafeTensorsFile(path: path)
        let w = try BertWeights(file: file, config: c)
        #expect(w.layers.count == 2 && w.layers[1].qkvWeight.shape == [24, 8])
        // Key rows come right after the query rows in the fused matrix.
        let key0 = try file.tensor("bert.encoder.layer.0.attention.self.key.weight")
        #expect(Array(UnsafeBufferPointer(start: w.layers[0].qkvWeight.data + 64, count: 64)) == key0.array)
        let encoder = BertEncoder(config: c, weights: w)
        let h = try encoder.forward(TokenBatch(sequences: [[1, 2, 3], [4, 5]]), workspace: EncoderWorkspace(config: c))
        #expect(h.shape == [5, 8] && h.array.allSatisfy { $0.isFinite })
        var wider = c
        wider.hiddenSize = 12
        #expect(throws: SafeTensorsError.self) { try BertWeights(file: file, config: wider) }
    }

    @Test func configValidation() throws {
        let dir = try Support.tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let p = dir.appendingPathComponent("config.json").path
        try Data(#"{"hidden_size": 10, "num_hidden_layers": 1, "num_attention_heads": 3, "intermediate_size": 4, "vocab_size": 5}"#.utf8).write(
            to: URL(fileURLWithPath: p))
        #expect { try BertConfig.load(p) } throws: { "\($0)".contains("not divisible") && "\($0)".contains(p) }
        try Data(#"{"hidden_size": 12}"#.utf8).write(to: URL(fileURLWithPath: p))
        #expect { try BertConfig.load(p) } throws: { "\($0)".contains("num_hidden_layers") }
        try Data(
            #"{"hidden_size": 12, "num_hidden_layers": 1, "num_attention_heads": 3, "intermediate_size": 4, "vocab_size": 5, "hidden_act": "relu"}"#
                .utf8
        ).write(to: URL(fileURLWithPath: p))
        #expect { try BertConfig.load(p) } throws: { "\($0)".contains("relu") }
        // Another family is refused by name, even with every BERT field (RoBERTa's config has
        // them all and would otherwise load, computing other positions silently).
        try Data(
            #"{"model_type": "roberta", "hidden_size": 12, "num_hidden_layers": 1, "num_attention_heads": 3, "intermediate_size": 4, "vocab_size": 5}"#
                .utf8
        ).write(to: URL(fileURLWithPath: p))
        #expect { try BertConfig.load(p) } throws: { "\($0)".contains("model_type 'roberta' is not supported (supported: bert)") }
        try Data(#"{"model_type": "distilbert", "dim": 768}"#.utf8).write(to: URL(fileURLWithPath: p))
        #expect { try BertConfig.load(p) } throws: { "\($0)".contains("model_type 'distilbert' is not supported") }
        let real = try BertConfig.load(Support.modelDirectory + "/config.json")
        #expect(real.hiddenSize == 384 && real.numHiddenLayers == 6 && real.headSize == 32 && real.layerNormEps == 1e-12)
    }
}
