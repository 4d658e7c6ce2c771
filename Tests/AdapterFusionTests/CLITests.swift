import AdapterFusion
import Foundation
import Testing

/// The CLI end to end through the built executable, on a tiny random BERT written to a model
/// directory and a synthetic task: train two adapters, eval, predict --json, inspect, check a
/// recipe, train the fusion and evaluate it.
@Suite(.serialized) struct CLITests {
    struct Run {
        let status: Int32
        let out: String
        let err: String
    }

    /// `afusion ARGS` in `dir`, or `LAUNCHER… afusion ARGS` (e.g. mpirun and its options).
    static func run(_ args: [String], stdin: String? = nil, in dir: URL, launcher: [String] = []) throws -> Run {
        let p = Process()
        let afusion = try FaultInjectionTests.afusionBinary()
        p.executableURL = launcher.first.map { URL(fileURLWithPath: $0) } ?? afusion
        p.arguments = launcher.isEmpty ? args : Array(launcher.dropFirst()) + [afusion.path] + args
        p.currentDirectoryURL = dir
        var env = ProcessInfo.processInfo.environment
        env["AFUSION_MODEL"] = nil
        p.environment = env
        let out = Pipe()
        let err = Pipe()
        let input = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = input
        try p.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Run(status: p.terminationStatus, out: String(decoding: o, as: UTF8.self), err: String(decoding: e, as: UTF8.self))
    }

    /// The first capture group of `pattern` in `text`.
    /// `check` passes on `recipe`, `train-fusion` trains it, and `eval --recipe` reproduces the
    /// dev accuracy recorded at training to the printed digit.
    static func checkTrainEvaluate(_ recipe: String, in dir: URL) throws {
        let c = try run(["check", recipe], in: dir)
        #expect(c.status == 0 && c.out.contains("\(recipe): ok"), "\(c.out)\n\(c.err)")
        let f = try run(["train-fusion", recipe, "--threads", "1"], in: dir)
        #expect(f.status == 0, "\(f.out)\n\(f.err)")
        let fe = try run(["eval", "--recipe", recipe, "--threads", "1"], in: dir)
        let fm = capture(#"accuracy (\d\.\d{4})"#, fe.out)
        let fr = capture(#"recorded at training: (\d\.\d{4})"#, fe.out)
        #expect(fe.status == 0 && fm != nil && fm == fr, "\(fe.out)\n\(fe.err)")
    }

    static func capture(_ pattern: String, _ text: String) -> String? {
        let re = try! NSRegularExpression(pattern: pattern)
        guard let m = re.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)), let r = Range(m.range(at: 1), in: text) else {
            return nil
        }
        return String(text[r])
    }

    /// A model directory with a 2-layer, hidden-16 BERT over the synthetic task's words.
    static func tinyModel(_ dir: URL) throws {
        let vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "apple", "bird", "cat", "dog", "egg", "fish", "goat", "hat", "ink", "jam", "zebra"]
        let c = BertConfig(
            hiddenSize: 16, numHiddenLayers: 2, numAttentionHeads: 2, intermediateSize: 32,
            maxPositionEmbeddings: 64, vocabSize: vocab.count, typeVocabSize: 2)
        let m = dir.appendingPathComponent("model")
        try FileManager.default.createDirectory(at: m, withIntermediateDirectories: true)
        try JSONEncoder().encode(c).write(to: m.appendingPathComponent("config.json"))
        try SafeTensorsFile.write(Support.tinyBertTensors(c), to: m.appendingPathComponent("model.safetensors").path)
        try Data((vocab.joined(separator: "\n") + "\n").utf8).write(to: m.appendingPathComponent("vocab.txt"))
    }

    /// `z.csv` (synthetic yes/no examples) and the task file `z.toml` over it, in `dir`.
    static func syntheticTask(_ dir: URL, examples: Int, seed: UInt64) throws {
        var csv = "label,text\n"
        for e in TrainerTests.synthetic(examples, seed: seed) { csv += "\(e.label == 1 ? "yes" : "no"),\(e.text)\n" }
        try Data(csv.utf8).write(to: dir.appendingPathComponent("z.csv"))
        try Data("name = \"zebra\"\nmax_length = 16\n[data]\nfiles = [\"z.csv\"]\nformat = \"csv\"\n[labels]\nnames = [\"no\", \"yes\"]\n".utf8)
            .write(to: dir.appendingPathComponent("z.toml"))
    }

    @Test func trainEvalPredictInspectCheckFuse() throws {
        let dir = try Support.tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        try Self.tinyModel(dir)
        try Self.syntheticTask(dir, examples: 400, seed: 5)
        let common = ["--model", "model", "--threads", "1"]

        for (name, seed) in [("zebra", "1"), ("zebra2", "2")] {
            let t = try Self.run(
                [
                    "train-adapter", "--task", "z.toml", "--store", "runs/new/s.h5", "--name", name, "--seed", seed,
                    "--epochs", "2", "--lr", "1e-2", "--reduction", "2",
                ] + common, in: dir)
            #expect(t.status == 0 && t.out.contains("saved adapter '\(name)'"), "\(t.out)\n\(t.err)")
        }
        // The store went into folders that did not exist yet (a relative path).
        try FileManager.default.moveItem(at: dir.appendingPathComponent("runs/new/s.h5"), to: dir.appendingPathComponent("s.h5"))

        // eval reproduces the dev metric recorded at training, to the printed digit.
        let e = try Self.run(["eval", "--store", "s.h5", "--adapter", "zebra"] + common, in: dir)
        #expect(e.status == 0, "\(e.err)")
        let metric = Self.capture(#"accuracy (\d\.\d{4})"#, e.out)
        let recorded = Self.capture(#"recorded at training: (\d\.\d{4})"#, e.out)
        #expect(metric != nil && metric == recorded, "\(e.out)")

        let p = try Self.run(["predict", "--store", "s.h5", "--adapter", "zebra", "--json"] + common, stdin: "cat zebra dog\nbird egg\n", in: dir)
        #expect(p.status == 0, "\(p.err)")
        let lines = p.out.split(separator: "\n")
        #expect(lines.count == 2)
        for line in lines {
            let obj = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let probs = try #require(obj["probabilities"] as? [String: Double])
            #expect(Set(probs.keys) == ["no", "yes"] && abs(probs.values.reduce(0, +) - 1) < 1e-5)
            #expect(["no", "yes"].contains(obj["label"] as? String ?? ""))
        }

        let i = try Self.run(["inspect", "s.h5"], in: dir)
        #expect(i.status == 0 && i.out.contains("zebra2") && i.out.contains("pfeiffer+ln/2"), "\(i.out)\n\(i.err)")

        try Data("fusion zf\nbase model\nstore s.h5\ntask z.toml\ncompose fuse(zebra, zebra2)\ntrain epochs 1, lr 1e-2, batch 16\n".utf8)
            .write(to: dir.appendingPathComponent("zf.fuse"))
        try Self.checkTrainEvaluate("zf.fuse", in: dir)

        // parallel(zebra, zebra2): one pass over two copies of each batch gives each member what
        // it gives alone (the [CLS] rows of copy i go to member i's head), within 1e-5.
        let storePath = dir.appendingPathComponent("s.h5").path
        let modelPath = dir.appendingPathComponent("model").path
        let parallelRecipe = dir.appendingPathComponent("zp.fuse")
        try Data("fusion zp\nbase \(modelPath)\nstore \(storePath)\ncompose parallel(zebra, zebra2)\n".utf8).write(to: parallelRecipe)
        let texts = ["cat zebra dog", "bird egg", "zebra zebra cat egg dog bird", "dog"].map { (text: $0, pair: String?.none) }
        let together = try ParallelPredictor(recipe: parallelRecipe.path).predict(texts)
        for (i, name) in ["zebra", "zebra2"].enumerated() {
            let alone = try Predictor.adapter(name, store: storePath, model: modelPath).predict(texts)
            for (t, probs) in alone.enumerated() {
                #expect(together[t][i].member == name)
                #expect(zip(together[t][i].outputs, probs).allSatisfy { abs($0 - $1) <= 1e-5 }, "\(name) on \(texts[t].text)")
            }
        }

        // doctor names the kernel in use and why, and the model it finds.
        let d = try Self.run(["doctor", "--model", "model", "--threads", "1"], in: dir)
        #expect(
            d.status == 0 && d.out.contains("core in use") && d.out.contains("why") && d.out.contains("not the all-MiniLM-L6-v2 checksum"),
            "\(d.out)\n\(d.err)")

        // A recipe naming a missing adapter fails with its position.
        try Data("fusion zg\nbase model\nstore s.h5\ntask z.toml\ncompose fuse(zebra, zebar)\n".utf8).write(to: dir.appendingPathComponent("zg.fuse"))
        let bad = try Self.run(["check", "zg.fuse"], in: dir)
        #expect(bad.status != 0 && bad.err.contains("zg.fuse:5:21:") && bad.err.contains("did you mean 'zebra"), "\(bad.out)\n\(bad.err)")
    }

    /// Every method trains from the CLI, evaluates identically after reload, and a recipe fusing
    /// three kinds (LoRA, prefix, bottleneck) checks, trains, evaluates, predicts and reports its attention.
    @Test func everyMethodAndAMixedFusion() throws {
        let dir = try Support.tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        try Self.tinyModel(dir)
        try Self.syntheticTask(dir, examples: 300, seed: 6)
        let common = ["--model", "model", "--threads", "1"]
        for method in ["lora", "prefix", "prompt", "bitfit", "ia3", "parallel", "unipelt"] {
            // Each method gets only the options it reads (the others are refused).
            let lora = ["--lora-rank", "2"]
            let prefix = ["--prefix-length", "3", "--prefix-mlp", "8"]
            let extra = ["lora": lora, "prefix": prefix, "prompt": ["--prompt", "3"], "unipelt": prefix + lora + ["--prompt", "2"]][method] ?? []
            let t = try Self.run(
                ["train-adapter", "--task", "z.toml", "--store", "s.h5", "--name", "z_\(method)", "--method", method, "--epochs", "1"] + extra
                    + common, in: dir)
            #expect(t.status == 0 && t.out.contains("saved adapter 'z_\(method)'"), "\(method): \(t.out)\n\(t.err)")
            let e = try Self.run(["eval", "--store", "s.h5", "--adapter", "z_\(method)"] + common, in: dir)
            let metric = Self.capture(#"accuracy (\d\.\d{4})"#, e.out)
            let recorded = Self.capture(#"recorded at training: (\d\.\d{4})"#, e.out)
            #expect(e.status == 0 && metric != nil && metric == recorded, "\(method): \(e.out)\n\(e.err)")
        }
        let m = try Self.run(["eval", "--store", "s.h5", "--adapter", "z_lora", "--merge"] + common, in: dir)
        #expect(m.status == 0, "\(m.err)")
        let i = try Self.run(["inspect", "s.h5"], in: dir)
        #expect(i.out.contains("lora r2 α16 query,value") && i.out.contains("prefix 3") && i.out.contains("unipelt"), "\(i.out)")

        // A prompt-tuned member cannot be composed: refused at its position.
        try Data("fusion zp\nbase model\nstore s.h5\ntask z.toml\ncompose fuse(z_lora, z_prompt)\n".utf8).write(
            to: dir.appendingPathComponent("zp.fuse"))
        let bad = try Self.run(["check", "zp.fuse"], in: dir)
        #expect(bad.status != 0 && bad.err.contains("zp.fuse:5:22:") && bad.err.contains("prompt"), "\(bad.out)\n\(bad.err)")

        try Data(
            "fusion zm\nbase model\nstore s.h5\ntask z.toml\ncompose fuse(z_lora, z_prefix, z_parallel)\ntrain epochs 1, lr 1e-2, batch 16\n".utf8
        )
        .write(to: dir.appendingPathComponent("zm.fuse"))
        try Self.checkTrainEvaluate("zm.fuse", in: dir)
        let p = try Self.run(["predict", "--recipe", "zm.fuse", "--threads", "1"], stdin: "cat zebra dog\n", in: dir)
        #expect(p.status == 0 && !p.out.isEmpty, "\(p.err)")
        let a = try Self.run(["inspect", "s.h5", "--fusion", "zm", "--attention", "--model", "model", "--threads", "1"], in: dir)
        #expect(a.status == 0 && a.out.contains("z_prefix"), "\(a.out)\n\(a.err)")
    }
}

extension CLITests {
    /// Through the executable, on the tiny model: training into a name the store holds is refused
    /// before any training; leaving out every layer is refused; blank or NUL predict lines are
    /// refused with their line number (they used to get a label); more threads than CPUs gets a
    /// note. Each was accepted without a word before.
    @Test func storedWorkAndBadLinesAreGuarded() throws {
        let dir = try Support.tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        try Self.tinyModel(dir)
        try Self.syntheticTask(dir, examples: 100, seed: 3)
        let common = ["--model", "model", "--threads", "1"]
        let train = ["train-adapter", "--task", "z.toml", "--store", "s.h5", "--epochs", "1"] + common
        #expect(try Self.run(train, in: dir).status == 0)
        let store = dir.appendingPathComponent("s.h5")
        let before = try Data(contentsOf: store)
        let again = try Self.run(train, in: dir)
        #expect(
            again.status != 0 && again.err.contains("already holds adapter 'zebra'") && !again.out.contains("epoch 1"), "\(again.out)\n\(again.err)")
        let all = try Self.run(train + ["--name", "none", "--leave-out", "0,1"], in: dir)
        #expect(all.status != 0 && all.err.contains("leaves out every one of the model's 2 layers"), "\(all.err)")
        #expect(try Data(contentsOf: store) == before)
        let replaced = try Self.run(train + ["--replace", "--seed", "7"], in: dir)
        #expect(replaced.status == 0 && replaced.out.contains("saved adapter 'zebra'"), "\(replaced.err)")

        let predict = ["predict", "--store", "s.h5", "--adapter", "zebra"] + common
        let blank = try Self.run(predict, stdin: "dog cat\n\n   \t \nfish\n", in: dir)
        #expect(blank.status != 0 && blank.err.contains("stdin:3: a blank text") && blank.out.isEmpty, "\(blank.out)\n\(blank.err)")
        let nul = try Self.run(predict, stdin: "dog\u{0}cat\n", in: dir)
        #expect(nul.status != 0 && nul.err.contains("stdin:1: the line holds a NUL byte"), "\(nul.err)")
        let fine = try Self.run(predict, stdin: "dog cat\n\nfish\n", in: dir)
        #expect(fine.status == 0 && fine.out.split(separator: "\n").count == 2, "\(fine.out)\n\(fine.err)")

        let many = ProcessInfo.processInfo.activeProcessorCount + 1
        let eval = try Self.run(["eval", "--store", "s.h5", "--adapter", "zebra", "--model", "model", "--threads", "\(many)"], in: dir)
        #expect(eval.status == 0 && eval.err.contains("note: --threads \(many) is more than"), "\(eval.err)")
    }
}
