import AdapterFusion
import Foundation
import Testing

/// Interop with AdapterHub `adapters` 1.x on a tiny random BERT: the fixture (written by
/// scripts/make_adapterhub_fixture.py with the peer) holds the model, three saved adapters with
/// heads, and the peer's logits. Imported here, they must give the peer's logits within 1e-5
/// (Float32 against PyTorch's Float32: a few rounding steps per layer at hidden 16).
@Suite struct AdapterHubTests {
    static func fixtureDir() throws -> String {
        try #require(Bundle.module.url(forResource: "Fixtures/adapterhub", withExtension: nil)).path
    }

    static func logits(_ imported: AdapterHubAdapter, encoder: BertEncoder, inputs: [[Int32]]) throws -> [[Float]] {
        let batch = TokenBatch(sequences: inputs)
        let hidden = try encoder.forward(batch, workspace: EncoderWorkspace(config: encoder.config), hook: imported.adapter)
        let out = imported.head.forward(hidden, batch: batch)
        let c = imported.head.config.outputs
        return (0..<inputs.count).map { r in (0..<c).map { out[r * c + $0] } }
    }

    @Test(arguments: ["pfeiffer", "houlsby", "regress"])
    func importedAdapterGivesThePeersLogits(_ name: String) throws {
        let dir = try Self.fixtureDir()
        let encoder = try BertEncoder(directory: dir + "/model")
        let c = encoder.config
        let imported = try AdapterHubAdapter.read(directory: dir + "/" + name, hidden: c.hiddenSize, layers: c.numHiddenLayers)
        let fixture = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/logits.json"))) as? [String: Any])
        let inputs = try #require(fixture["inputs"] as? [[Int]]).map { $0.map(Int32.init) }
        let expected = try #require((fixture["logits"] as? [String: [[Double]]])?[name])
        let got = try Self.logits(imported, encoder: encoder, inputs: inputs)
        #expect(got.count == expected.count && got.allSatisfy { $0.count == expected[0].count } && !expected[0].isEmpty)
        for (g, e) in zip(got, expected) {
            for (a, b) in zip(g, e) { #expect(abs(Double(a) - b) <= 1e-5 * max(1, abs(b)), "\(name): \(g) vs \(e)") }
        }
        if name == "pfeiffer" { #expect(imported.labels == ["neg", "neu", "pos"]) }
        if name == "regress" { #expect(imported.head.config.kind == .regression && imported.adapter.config.leaveOut == [0]) }
        if name == "houlsby" { #expect(imported.adapter.config.placement == .houlsby) }
    }

    /// Export → import reproduces every weight bit for bit, and the export reads as AdapterHub's.
    @Test func exportRoundTrips() throws {
        let dir = try Self.fixtureDir()
        let a = try AdapterHubAdapter.read(directory: dir + "/houlsby", hidden: 16, layers: 2)
        let out = try Support.tempDir(); defer { try? FileManager.default.removeItem(at: out) }
        try a.write(directory: out.path, name: "again")
        let b = try AdapterHubAdapter.read(directory: out.path, hidden: 16, layers: 2)
        #expect(b.adapter.parameters.map(\.value.array) == a.adapter.parameters.map(\.value.array))
        #expect(b.head.parameters.map(\.value.array) == a.head.parameters.map(\.value.array))
        #expect(b.labels == a.labels && b.adapter.config == a.adapter.config)
    }

    /// Configs that compute something else are refused, naming the field.
    @Test func unsupportedConfigsAreRefusedByName() throws {
        let dir = try Self.fixtureDir()
        let cases: [(String, Any, String)] = [
            ("original_ln_before", true, "original_ln_before = true is not supported"),
            ("scaling", 2.0, "scaling = 2"),
            ("use_gating", true, "use_gating = true"),
            ("non_linearity", "gelu_new", "non_linearity 'gelu_new'"),
            ("reduction_factor", ["0": 2], "reduction_factor must be one whole number"),
            ("reduction_factor", 2.5, "reduction_factor must be one whole number"),
        ]
        for (key, value, expected) in cases {
            let tmp = try Support.tempDir(); defer { try? FileManager.default.removeItem(at: tmp) }
            for f in try FileManager.default.contentsOfDirectory(atPath: dir + "/pfeiffer") {
                try FileManager.default.copyItem(atPath: dir + "/pfeiffer/" + f, toPath: tmp.path + "/" + f)
            }
            let file = tmp.path + "/adapter_config.json"
            var meta = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: file))) as? [String: Any])
            var config = try #require(meta["config"] as? [String: Any])
            config[key] = value
            meta["config"] = config
            try JSONSerialization.data(withJSONObject: meta).write(to: URL(fileURLWithPath: file))
            let e: String
            do { _ = try AdapterHubAdapter.read(directory: tmp.path, hidden: 16, layers: 2); e = "no error" } catch { e = "\(error)" }
            #expect(e.contains("adapter_config.json") && e.contains(expected), "\(key): \(e)")
        }
    }
}
