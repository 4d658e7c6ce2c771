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
        let head = try #require(imported.head)
        let out = head.forward(hidden, batch: batch)
        let c = head.config.outputs
        return (0..<inputs.count).map { r in (0..<c).map { out[r * c + $0] } }
    }

    @Test(arguments: ["pfeiffer", "houlsby", "regress", "seq_bn", "seq_bn_bin"])
    func importedAdapterGivesThePeersLogits(_ name: String) throws {
        let dir = try Self.fixtureDir()
        let encoder = try BertEncoder(directory: dir + "/model")
        let c = encoder.config
        let imported = try AdapterHubAdapter.read(directory: dir + "/" + name, hidden: c.hiddenSize, layers: c.numHiddenLayers)
        let fixture = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/logits.json"))) as? [String: Any])
        let inputs = try #require(fixture["inputs"] as? [[Int]]).map { $0.map(Int32.init) }
        let expected = try #require((fixture["logits"] as? [String: [[Double]]])?[name == "seq_bn_bin" ? "seq_bn" : name])
        let got = try Self.logits(imported, encoder: encoder, inputs: inputs)
        #expect(got.count == expected.count && got.allSatisfy { $0.count == expected[0].count } && !expected[0].isEmpty)
        for (g, e) in zip(got, expected) {
            for (a, b) in zip(g, e) { #expect(abs(Double(a) - b) <= 1e-5 * max(1, abs(b)), "\(name): \(g) vs \(e)") }
        }
        if name == "pfeiffer" { #expect(imported.labels == ["neg", "neu", "pos"]) }
        if name == "regress" { #expect(imported.head?.config.kind == .regression && imported.adapter.config.leaveOut == [0]) }
        if name == "houlsby" { #expect(imported.adapter.config.placement == .houlsby) }
        #expect(imported.adapter.config.lnBefore == name.hasPrefix("seq_bn"))
    }

    /// Export → import reproduces every weight bit for bit, and the export reads as AdapterHub's.
    @Test func exportRoundTrips() throws {
        let dir = try Self.fixtureDir()
        let a = try AdapterHubAdapter.read(directory: dir + "/houlsby", hidden: 16, layers: 2)
        let out = try Support.tempDir(); defer { try? FileManager.default.removeItem(at: out) }
        try a.write(directory: out.path, name: "again")
        let b = try AdapterHubAdapter.read(directory: out.path, hidden: 16, layers: 2)
        #expect(b.adapter.parameters.map(\.value.array) == a.adapter.parameters.map(\.value.array))
        #expect(b.head?.parameters.map(\.value.array) == a.head?.parameters.map(\.value.array) && b.head != nil)
        #expect(b.labels == a.labels && b.adapter.config == a.adapter.config)
    }

    /// PyTorch `.bin` export (the default) → import reproduces every weight bit for bit; the
    /// reader refuses what is not a plain state dict of Float32 tensors, saying why.
    @Test func torchCheckpointsRoundTripAndRefuseOtherContent() throws {
        let dir = try Self.fixtureDir()
        let a = try AdapterHubAdapter.read(directory: dir + "/seq_bn_bin", hidden: 16, layers: 2)
        let out = try Support.tempDir(); defer { try? FileManager.default.removeItem(at: out) }
        try a.write(directory: out.path, name: "again")
        #expect(FileManager.default.fileExists(atPath: out.path + "/pytorch_adapter.bin"))
        let b = try AdapterHubAdapter.read(directory: out.path, hidden: 16, layers: 2)
        #expect(b.adapter.parameters.map(\.value.array) == a.adapter.parameters.map(\.value.array))
        #expect(b.head?.parameters.map(\.value.array) == a.head?.parameters.map(\.value.array) && b.head != nil)
        let good = try Data(contentsOf: URL(fileURLWithPath: out.path + "/pytorch_adapter.bin"))
        func error(_ bytes: Data) -> String {
            let f = out.path + "/bad.bin"
            try? bytes.write(to: URL(fileURLWithPath: f))
            do { _ = try TorchCheckpoint(path: f); return "no error" } catch { return "\(error)" }
        }
        #expect(error(good.prefix(good.count / 2)).contains("bad.bin"))  // truncated: no zip directory
        #expect(error(Data("hello".utf8)).contains("no zip end record"))
        // A pickle that calls something other than the tensor rebuild: refused, never run.
        var evil = [UInt8](good)
        let needle = Array("_rebuild_tensor_v2".utf8)
        let at = try #require((0...(evil.count - needle.count)).first { Array(evil[$0..<($0 + needle.count)]) == needle })
        evil.replaceSubrange(at..<(at + needle.count), with: Array("system\n\n\n\n\n\n\n\n\n\n\n\n".utf8))
        let e = error(Data(evil))
        #expect(e.contains("not allowed") || e.contains("not supported"), "\(e)")
    }

    /// A zip of stored entries `a/data.pkl` (holding `pickle`) and `a/data/0` (16 bytes); the
    /// reader does not check CRCs, so they are left 0.
    static func checkpoint(pickle: [UInt8]) -> Data {
        func le(_ v: Int, _ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
        var z: [UInt8] = []
        var central: [UInt8] = []
        for (entry, data) in [("a/data.pkl", pickle), ("a/data/0", [UInt8](repeating: 0, count: 16))] {
            let name = Array(entry.utf8)
            let offset = z.count
            z += le(0x0403_4B50, 4) + le(20, 2) + le(0, 2) + le(0, 2) + le(0, 4) + le(0, 4)
            z += le(data.count, 4) + le(data.count, 4) + le(name.count, 2) + le(0, 2) + name + data
            central += le(0x0201_4B50, 4) + le(20, 2) + le(20, 2) + le(0, 2) + le(0, 2) + le(0, 4) + le(0, 4)
            central += le(data.count, 4) + le(data.count, 4) + le(name.count, 2) + le(0, 2) + le(0, 2) + le(0, 2) + le(0, 2)
            central += le(0, 4) + le(offset, 4) + name
        }
        let start = z.count
        z += central + le(0x0605_4B50, 4) + le(0, 2) + le(0, 2) + le(2, 2) + le(2, 2) + le(central.count, 4) + le(start, 4) + le(0, 2)
        return Data(z)
    }

    /// Hostile pickles are refused before they can hurt: 100,000 nested tuples (freeing them
    /// would recurse that deep), a tensor whose size overflows, and a global other than the
    /// tensor rebuild.
    @Test func hostilePicklesAreRefused() throws {
        let dir = try Support.tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        func error(_ pickle: [UInt8]) -> String {
            let f = dir.appendingPathComponent("x.bin").path
            try? Self.checkpoint(pickle: pickle).write(to: URL(fileURLWithPath: f))
            do { _ = try TorchCheckpoint(path: f); return "no error" } catch { return "\(error)" }
        }
        let deep: [UInt8] = [0x80, 2, 0x7D, 0x28] + Array(repeating: 0x28, count: 100_000) + Array(repeating: 0x74, count: 100_000)
        #expect(error(deep).contains("nest deeper"))
        // {'w': _rebuild_tensor_v2(('storage', FloatStorage, '0', 'cpu', 4), 0, (2^31, 2^31), (2^31, 1), False, OrderedDict())}
        func str(_ s: String) -> [UInt8] { [0x58] + withUnsafeBytes(of: UInt32(s.utf8.count).littleEndian, Array.init) + Array(s.utf8) }
        func int(_ v: Int32) -> [UInt8] { [0x4A] + withUnsafeBytes(of: v.littleEndian, Array.init) }
        func global(_ m: String, _ n: String) -> [UInt8] { [0x63] + Array("\(m)\n\(n)\n".utf8) }
        var huge: [UInt8] = [0x80, 2, 0x7D, 0x28] + str("w") + global("torch._utils", "_rebuild_tensor_v2") + [0x28, 0x28]
        huge += str("storage") + global("torch", "FloatStorage") + str("0") + str("cpu") + int(4) + [0x74, 0x51]
        huge += int(0) + [0x28] + int(Int32.max) + int(Int32.max) + [0x74] + [0x28] + int(Int32.max) + int(1) + [0x74]
        huge += [0x89] + global("collections", "OrderedDict") + [0x29, 0x52, 0x74, 0x52, 0x75, 0x2E]
        #expect(error(huge).contains("exceeds its storage"), "\(error(huge))")
        let evil: [UInt8] = [0x80, 2] + global("os", "system") + [0x28] + str("true") + [0x74, 0x52, 0x2E]
        #expect(error(evil).contains("'os.system' is not allowed"), "\(error(evil))")
    }

    /// Configs that compute something else are refused, naming the field.
    @Test func unsupportedConfigsAreRefusedByName() throws {
        let dir = try Self.fixtureDir()
        let cases: [(String, Any, String)] = [
            ("original_ln_after", false, "original_ln_after = false is not supported"),
            ("scaling", 2.0, "scaling = 2"),
            ("use_gating", true, "use_gating = true"),
            ("non_linearity", "gelu_new", "non_linearity 'gelu_new'"),
            ("reduction_factor", ["0": 2], "reduction_factor is a per-layer mapping"),
            ("reduction_factor", 2.5, "reduction_factor must be a whole number from 1 to 16"),
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

extension AdapterHubTests {
    /// A peer-made dynamic Fuse of two adapters with its head gives the peer's logits: over
    /// `BnConfig` adapters (query reads h) and over seq_bn adapters (query reads LN(h + x)).
    @Test(arguments: ["fusion", "seqfusion"])
    func importedFusionGivesThePeersLogits(_ prefix: String) throws {
        let dir = try Self.fixtureDir()
        let encoder = try BertEncoder(directory: dir + "/model")
        let c = encoder.config
        var adapters: [String: Adapter] = [:]
        for sub in [prefix + "_a", prefix + "_b"] {
            adapters[sub] = try AdapterHubAdapter.read(directory: dir + "/" + sub, hidden: c.hiddenSize, layers: c.numHiddenLayers).adapter
        }
        #expect(try AdapterHubFusion.members(directory: dir + "/" + prefix) == [prefix + "_a", prefix + "_b"])
        let comp = try AdapterHubFusion.read(directory: dir + "/" + prefix, adapters: adapters, hidden: c.hiddenSize, layers: c.numHiddenLayers)
        let (head, labels) = try AdapterHubAdapter.readHead(directory: dir + "/" + prefix + "_head", hidden: c.hiddenSize)
        #expect(labels == ["neg", "neu", "pos"])
        let fixture = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/logits.json"))) as? [String: Any])
        let inputs = try #require(fixture["inputs"] as? [[Int]]).map { $0.map(Int32.init) }
        let expected = try #require((fixture["logits"] as? [String: [[Double]]])?[prefix])
        let batch = TokenBatch(sequences: inputs)
        let out = head.forward(try encoder.forward(batch, workspace: EncoderWorkspace(config: c), hook: comp.root), batch: batch)
        #expect(expected.count == inputs.count && expected[0].count == 3)
        for (r, e) in expected.enumerated() {
            for (j, b) in e.enumerated() {
                let a = Double(out[r * 3 + j])
                #expect(abs(a - b) <= 1e-5 * max(1, abs(b)), "row \(r): \(a) vs \(b)")
            }
        }
    }
}

extension AdapterHubTests {
    /// Through the executable: import both seq_bn members and the fusion with its head into a store;
    /// the stored fusion, loaded back, still gives the peer's logits.
    @Test func importCommandsStoreAFusionThatReloads() throws {
        let dir = try Self.fixtureDir()
        let tmp = try Support.tempDir(); defer { try? FileManager.default.removeItem(at: tmp) }
        let model = tmp.appendingPathComponent("model").path
        try FileManager.default.copyItem(atPath: dir + "/model", toPath: model)
        try Data("name = \"z\"\n[data]\nfiles = [\"none.csv\"]\nformat = \"csv\"\n[labels]\nnames = [\"neg\", \"neu\", \"pos\"]\n".utf8)
            .write(to: tmp.appendingPathComponent("z.toml"))
        for args in [
            ["import", "adapterhub", dir + "/seqfusion_a", "--store", "s.h5", "--model", "model"],
            ["import", "adapterhub", dir + "/seqfusion_b", "--store", "s.h5", "--model", "model"],
            [
                "import", "adapterhub-fusion", dir + "/seqfusion", "--head", dir + "/seqfusion_head", "--task", "z.toml", "--name", "zf",
                "--store", "s.h5", "--model", "model",
            ],
        ] {
            let r = try CLITests.run(args, in: tmp)
            #expect(r.status == 0, "\(args): \(r.out)\n\(r.err)")
        }
        let store = tmp.appendingPathComponent("s.h5").path
        let f = try FusionStore.load(store, name: "zf", baseFingerprint: nil)
        let encoder = try BertEncoder(directory: model)
        let (batch, out) = try Self.expectSeqFusionLogits(f, encoder: encoder)

        // Export the stored fusion again: read back as AdapterHub directories, it computes the
        // same outputs bit for bit (a peer check of the same export: scripts/check_adapterhub_parity.py).
        let exported = try CLITests.run(["export", "adapterhub", "out", "--fusion", "zf", "--store", "s.h5"], in: tmp)
        #expect(exported.status == 0 && exported.out.contains("load_adapter_fusion"), "\(exported.out)\n\(exported.err)")
        let outDir = tmp.appendingPathComponent("out").path
        var again: [String: Adapter] = [:]
        for m in ["seqfusion_a", "seqfusion_b"] {
            again[m] = try AdapterHubAdapter.read(directory: outDir + "/" + m, hidden: 16, layers: 2).adapter
            #expect(again[m]!.config.lnBefore)
        }
        let comp = try AdapterHubFusion.read(directory: outDir + "/fusion", adapters: again, hidden: 16, layers: 2)
        let (head2, labels2) = try AdapterHubAdapter.readHead(directory: outDir + "/head", hidden: 16)
        #expect(labels2 == ["neg", "neu", "pos"])
        let out2 = head2.forward(try encoder.forward(batch, workspace: EncoderWorkspace(config: encoder.config), hook: comp.root), batch: batch)
        #expect(out2.array == out.array)
        // A fusion AdapterHub cannot compute is refused, and nothing is written.
        let refused = try CLITests.run(["export", "adapterhub", "out2", "--store", "s.h5"], in: tmp)
        #expect(refused.status != 0 && refused.err.contains("--adapter NAME or --fusion NAME"))

    }
}

extension AdapterHubTests {
    /// The stored seq_bn fusion `f` gives the peer's logits on the fixture's inputs (1e-5 relative);
    /// returns the batch and the outputs.
    @discardableResult
    static func expectSeqFusionLogits(_ f: FusionStore.Loaded, encoder: BertEncoder) throws -> (TokenBatch, Tensor) {
        let fixture = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: try fixtureDir() + "/logits.json"))) as? [String: Any])
        let inputs = try #require(fixture["inputs"] as? [[Int]]).map { $0.map(Int32.init) }
        let expected = try #require((fixture["logits"] as? [String: [[Double]]])?["seqfusion"])
        let batch = TokenBatch(sequences: inputs)
        let out = f.head.forward(
            try encoder.forward(batch, workspace: EncoderWorkspace(config: encoder.config), hook: f.composition.root), batch: batch)
        for (r, e) in expected.enumerated() {
            for (j, b) in e.enumerated() {
                let a = Double(out[r * 3 + j])
                #expect(abs(a - b) <= 1e-5 * max(1, abs(b)), "row \(r): \(a) vs \(b)")
            }
        }
        return (batch, out)
    }
}
