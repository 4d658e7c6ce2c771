import AdapterFusion
import Foundation
import Testing

/// Every field of an imported AdapterHub file is type- and range-checked, with a message naming
/// the file, the field and the value; nothing is read silently wrong. Each case was accepted (or
/// got a message that did not say what was wrong) before these checks.
@Suite struct ImportCheckTests {
    /// A copy of the peer-made `pfeiffer` fixture (hidden 16, 2 layers) to damage.
    func copy(_ fixture: String = "pfeiffer") throws -> URL {
        let dir = try AdapterHubTests.fixtureDir() + "/" + fixture
        let tmp = try Support.tempDir()
        for f in try FileManager.default.contentsOfDirectory(atPath: dir) {
            try FileManager.default.copyItem(atPath: dir + "/" + f, toPath: tmp.path + "/" + f)
        }
        return tmp
    }

    func edit(_ file: URL, _ change: (inout [String: Any]) -> Void) throws {
        var meta = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any])
        change(&meta)
        try JSONSerialization.data(withJSONObject: meta).write(to: file)
    }

    func importError(_ dir: URL, modelType: String? = "bert") -> String {
        do {
            _ = try AdapterHubAdapter.read(directory: dir.path, hidden: 16, layers: 2, modelType: modelType)
            return "no error"
        } catch { return "\(error)" }
    }

    /// Adapter config fields of the wrong type or out of range.
    @Test(arguments: [
        ("non_linearity", 3 as Any, "config.non_linearity must be a string, not the number 3"),
        ("architecture", "lora", "config.architecture 'lora' is not supported: afusion imports AdapterHub bottleneck adapters only"),
        ("architecture", "prefix_tuning", "config.architecture 'prefix_tuning' is not supported"),
        ("leave_out", "0,1", "config.leave_out must be a list of whole numbers, not the string \"0,1\""),
        ("leave_out", [0, 1], "config.leave_out [0, 1] leaves out every layer"),
        ("leave_out", [0, 7], "config.leave_out must list whole numbers in 0..<2, not the number 7"),
        ("reduction_factor", 0, "config.reduction_factor must be a whole number from 1 to 16, not the number 0"),
        ("reduction_factor", -2, "config.reduction_factor must be a whole number from 1 to 16, not the number -2"),
        ("reduction_factor", 1e30, "config.reduction_factor must be a whole number from 1 to 16"),
        ("reduction_factor", true, "config.reduction_factor must be a finite number, not true"),
        ("reduction_factor", NSNull(), "config.reduction_factor is missing"),
        ("reduction_factor", ["0": 2], "config.reduction_factor is a per-layer mapping"),
        ("use_gating", "yes", "config.use_gating must be true or false, not the string \"yes\""),
        ("original_ln_before", 1, "config.original_ln_before must be true or false, not the number 1"),
    ])
    func adapterFieldsAreChecked(_ key: String, _ value: Any, _ expected: String) throws {
        let tmp = try copy(); defer { try? FileManager.default.removeItem(at: tmp) }
        try edit(tmp.appendingPathComponent("adapter_config.json")) { meta in
            var config = meta["config"] as! [String: Any]
            config[key] = value
            meta["config"] = config
        }
        let e = importError(tmp)
        #expect(e.contains("adapter_config.json") && e.contains(expected), "\(key): \(e)")
    }

    /// The base model's family is checked, and so is the head's label map.
    @Test func modelTypeAndLabelMapAreChecked() throws {
        let tmp = try copy(); defer { try? FileManager.default.removeItem(at: tmp) }
        try edit(tmp.appendingPathComponent("adapter_config.json")) { $0["model_type"] = "roberta" }
        #expect(importError(tmp).contains("model_type 'roberta' differs from the base model's 'bert'"), "\(importError(tmp))")
        try edit(tmp.appendingPathComponent("adapter_config.json")) { $0["model_type"] = "bert" }
        let cases: [([String: Any], String)] = [
            (["a": 0, "b": 0, "c": 2], "config.label2id gives id 0 to both 'a' and 'b'"),
            (["a": 0, "b": 1, "c": 5], "config.label2id.c must be a whole number from 0 to 2, not the number 5"),
            (["a": 0, "b": 1], "config.label2id names no label for id 2 (num_labels is 3)"),
            (["a": 0, "b": 1, "c": "2"], "config.label2id.c must be a finite number, not the string \"2\""),
        ]
        for (map, expected) in cases {
            try edit(tmp.appendingPathComponent("head_config.json")) { meta in
                var config = meta["config"] as! [String: Any]
                config["label2id"] = map
                meta["config"] = config
            }
            let e = importError(tmp)
            #expect(e.contains("head_config.json") && e.contains(expected), "\(map): \(e)")
        }
    }

    /// Malformed JSON gets a message that says what is wrong, not "not a JSON object" for all.
    @Test func jsonProblemsAreNamed() throws {
        let tmp = try copy(); defer { try? FileManager.default.removeItem(at: tmp) }
        let file = tmp.appendingPathComponent("adapter_config.json")
        let cases: [(Data, String)] = [
            (Data([0x7B, 0xFF, 0xFE, 0x7D]), "not UTF-8 text"),
            (Data((String(repeating: "[", count: 200) + String(repeating: "]", count: 200)).utf8), "nested more than 64 levels deep"),
            (Data("[1, 2]".utf8), "not a JSON object: the file holds a list"),
            (Data("{\"config\": ".utf8), "not valid JSON"),
            (Data("{\"config\": {\"reduction_factor\": 1e400}}".utf8), "not valid JSON: Number 1e400 is not representable"),
        ]
        for (bytes, expected) in cases {
            try bytes.write(to: file)
            let e = importError(tmp)
            #expect(e.contains("adapter_config.json") && e.contains(expected), "\(expected): \(e)")
        }
    }

    /// A weight tensor holding NaN is refused on import, naming the tensor; it used to import and predict.
    @Test func nonFiniteWeightsAreRefused() throws {
        let tmp = try copy(); defer { try? FileManager.default.removeItem(at: tmp) }
        let path = tmp.appendingPathComponent("adapter.safetensors").path
        let file = try SafeTensorsFile(path: path)
        var tensors: [(String, Tensor)] = []
        for name in file.entries.keys.sorted() {
            let t = try file.tensor(name)
            if name.hasSuffix("layer.1.output.adapters.pfeiffer.adapter_up.weight") { t[3] = .nan }
            tensors.append((name, t))
        }
        try SafeTensorsFile.write(tensors, to: path)
        let e = importError(tmp)
        #expect(e.contains("tensor 'bert.encoder.layer.1.output.adapters.pfeiffer.adapter_up.weight' holds nan at element 3"), "\(e)")
    }
}

extension ImportCheckTests {
    /// Through the executable: an import never replaces what a store holds unless `--replace`
    /// says so, a fusion can never take an adapter's name (they would share /heads/<name>), and
    /// replacing a fusion's member names the fusion. Before, a second import without --name
    /// replaced the trained adapter and said "imported", and a fusion named like an adapter
    /// overwrote its head.
    @Test func importsNeverReplaceUnlessAsked() throws {
        let dir = try AdapterHubTests.fixtureDir()
        let tmp = try Support.tempDir(); defer { try? FileManager.default.removeItem(at: tmp) }
        try FileManager.default.copyItem(atPath: dir + "/model", toPath: tmp.appendingPathComponent("model").path)
        try Data("name = \"z\"\n[data]\nfiles = [\"none.csv\"]\nformat = \"csv\"\n[labels]\nnames = [\"neg\", \"neu\", \"pos\"]\n".utf8)
            .write(to: tmp.appendingPathComponent("z.toml"))
        let store = tmp.appendingPathComponent("s.h5")
        let common = ["--store", "s.h5", "--model", "model"]
        let importA = ["import", "adapterhub", dir + "/seqfusion_a"] + common
        let importFusion =
            ["import", "adapterhub-fusion", dir + "/seqfusion", "--head", dir + "/seqfusion_head", "--task", "z.toml"] + common
        for args in [importA, ["import", "adapterhub", dir + "/seqfusion_b"] + common] {
            let r = try CLITests.run(args, in: tmp)
            #expect(r.status == 0, "\(r.err)")
        }
        let before = try Data(contentsOf: store)
        let again = try CLITests.run(importA, in: tmp)
        #expect(again.status != 0 && again.err.contains("already holds adapter 'seqfusion_a'") && again.err.contains("--replace"), "\(again.err)")
        for extra in [[], ["--replace"]] {
            let r = try CLITests.run(importFusion + ["--name", "seqfusion_a"] + extra, in: tmp)
            #expect(r.status != 0 && r.err.contains("holds an adapter named 'seqfusion_a'"), "\(r.out)\n\(r.err)")
        }
        #expect(try Data(contentsOf: store) == before)
        #expect(try CLITests.run(importFusion + ["--name", "zf"], in: tmp).status == 0)
        let fusionAgain = try CLITests.run(importFusion + ["--name", "zf"], in: tmp)
        #expect(fusionAgain.status != 0 && fusionAgain.err.contains("already holds fusion 'zf'"), "\(fusionAgain.err)")
        #expect(try CLITests.run(importFusion + ["--name", "zf", "--replace"], in: tmp).status == 0)
        let replaced = try CLITests.run(importA + ["--replace"], in: tmp)
        #expect(replaced.status == 0 && replaced.out.contains("note: replaced adapter 'seqfusion_a', a member of fusion zf"), "\(replaced.out)")
    }
}

extension ImportCheckTests {
    /// zip64: torch.save writes a zip64 end record; the classic end record may defer to it
    /// (count 0xFFFF, offset 0xFFFFFFFF), as a large checkpoint's must. Such a file reads exactly
    /// like the original; a locator pointing nowhere is refused as damaged. (The README used to
    /// say zip64 is refused, while the reader accepted torch's zip64 files by luck.)
    @Test func zip64CheckpointsRead() throws {
        let dir = try AdapterHubTests.fixtureDir() + "/seq_bn_bin"
        let original = try [UInt8](Data(contentsOf: URL(fileURLWithPath: dir + "/pytorch_adapter.bin")))
        func find(_ sig: [UInt8]) throws -> Int {
            try #require((0...(original.count - 4)).last { Array(original[$0..<($0 + 4)]) == sig })
        }
        let eocd = try find([0x50, 0x4B, 0x05, 0x06])
        #expect(try find([0x50, 0x4B, 0x06, 0x07]) == eocd - 20)  // the peer's file has a zip64 locator
        var deferred = original
        for k in 0..<2 { deferred[eocd + 8 + k] = 0xFF; deferred[eocd + 10 + k] = 0xFF }
        for k in 0..<4 { deferred[eocd + 16 + k] = 0xFF }
        var broken = original
        for k in 0..<8 { broken[eocd - 12 + k] = 0x7F }
        let tmp = try Support.tempDir(); defer { try? FileManager.default.removeItem(at: tmp) }
        func read(_ bytes: [UInt8]) throws -> [Float] {
            let f = tmp.appendingPathComponent("x.bin").path
            try Data(bytes).write(to: URL(fileURLWithPath: f))
            return try TorchCheckpoint(path: f).tensor("bert.encoder.layer.0.output.adapters.seq_bn.adapter_up.weight", shape: nil).array
        }
        #expect(try read(deferred) == read(original))
        #expect { try read(broken) } throws: { "\($0)".contains("damaged zip64 end record") }
    }
}

extension ImportCheckTests {
    /// Exports never mix with what a folder holds: a non-empty folder is refused unless
    /// `--force`, a file path is refused, OS refusals read as the OS says them (not a raw
    /// NSCocoaErrorDomain dump), and a refused export leaves no folder behind.
    @Test func exportsRefuseOccupiedOrBadFolders() throws {
        let dir = try AdapterHubTests.fixtureDir()
        let tmp = try Support.tempDir(); defer { try? FileManager.default.removeItem(at: tmp) }
        try FileManager.default.copyItem(atPath: dir + "/model", toPath: tmp.appendingPathComponent("model").path)
        #expect(try CLITests.run(["import", "adapterhub", dir + "/pfeiffer", "--store", "s.h5", "--model", "model"], in: tmp).status == 0)
        func export(_ target: String, _ extra: [String] = []) throws -> CLITests.Run {
            try CLITests.run(["export", "adapterhub", target, "--adapter", "pfeiffer", "--store", "s.h5"] + extra, in: tmp)
        }
        #expect(try export("out").status == 0)
        let again = try export("out")
        #expect(
            again.status != 0 && again.err.contains("out is not empty (it holds adapter_config.json") && again.err.contains("--force"), "\(again.err)"
        )
        #expect(try export("out", ["--force"]).status == 0)
        try Data("x".utf8).write(to: tmp.appendingPathComponent("file.txt"))
        let onFile = try export("file.txt")
        #expect(onFile.status != 0 && onFile.err.contains("file.txt is a file, not a folder"), "\(onFile.err)")
        let under = try export("file.txt/sub")
        #expect(
            under.status != 0 && under.err.contains("cannot create folder file.txt/sub") && !under.err.contains("NSCocoaErrorDomain"), "\(under.err)")
        let peft = try CLITests.run(["export", "peft", "lora_out", "--adapter", "pfeiffer", "--store", "s.h5"], in: tmp)
        #expect(peft.status != 0 && peft.err.contains("LoRA"), "\(peft.err)")
        #expect(!FileManager.default.fileExists(atPath: tmp.appendingPathComponent("lora_out").path))
    }
}

extension ImportCheckTests {
    /// A headless AdapterHub adapter (saved without head_config.json, as fusion members usually
    /// are) imports as a member: a fusion over two such members imports and gives the peer's
    /// logits; using one alone where a head is needed says why. It used to fail with "cannot
    /// read AdapterHub file: No such file or directory".
    @Test func headlessAdaptersImportAsMembers() throws {
        let dir = try AdapterHubTests.fixtureDir()
        let tmp = try Support.tempDir(); defer { try? FileManager.default.removeItem(at: tmp) }
        try FileManager.default.copyItem(atPath: dir + "/model", toPath: tmp.appendingPathComponent("model").path)
        try Data("name = \"z\"\n[data]\nfiles = [\"none.csv\"]\nformat = \"csv\"\n[labels]\nnames = [\"neg\", \"neu\", \"pos\"]\n".utf8)
            .write(to: tmp.appendingPathComponent("z.toml"))
        for member in ["seqfusion_a", "seqfusion_b"] {
            let to = tmp.appendingPathComponent(member).path
            try FileManager.default.createDirectory(atPath: to, withIntermediateDirectories: true)
            for f in try FileManager.default.contentsOfDirectory(atPath: dir + "/" + member) where !f.contains("head") {
                try FileManager.default.copyItem(atPath: dir + "/\(member)/" + f, toPath: to + "/" + f)
            }
            let r = try CLITests.run(["import", "adapterhub", member, "--store", "s.h5", "--model", "model"], in: tmp)
            #expect(r.status == 0 && r.out.contains("without a head"), "\(r.out)\n\(r.err)")
        }
        try Data("[PAD]\n[UNK]\n[CLS]\n[SEP]\nx\n".utf8).write(to: tmp.appendingPathComponent("model/vocab.txt"))
        let alone = try CLITests.run(["predict", "--store", "s.h5", "--adapter", "seqfusion_a", "--model", "model"], stdin: "x\n", in: tmp)
        #expect(alone.status != 0 && alone.err.contains("adapter 'seqfusion_a' has no task head"), "\(alone.err)")
        let fusion = try CLITests.run(
            [
                "import", "adapterhub-fusion", dir + "/seqfusion", "--head", dir + "/seqfusion_head", "--task", "z.toml", "--name", "zf",
                "--store", "s.h5", "--model", "model",
            ], in: tmp)
        #expect(fusion.status == 0, "\(fusion.err)")
        let inspect = try CLITests.run(["inspect", "s.h5"], in: tmp)
        #expect(inspect.status == 0 && !inspect.out.contains("DAMAGED"), "\(inspect.out)\n\(inspect.err)")
        let f = try FusionStore.load(tmp.appendingPathComponent("s.h5").path, name: "zf", baseFingerprint: nil)
        try AdapterHubTests.expectSeqFusionLogits(f, encoder: try BertEncoder(directory: tmp.appendingPathComponent("model").path))
    }
}
