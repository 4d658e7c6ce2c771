import AdapterFusion
import Foundation
import Testing

/// Data-parallel training and stage one across ranks, through `mpirun -np 2` (Open MPI) on the
/// tiny BERT, against the same commands run as one process. Skipped, saying why, when `mpirun`
/// is not installed (`make setup` installs it).
///
/// Tolerance: all trained weights as one vector, ‖2 ranks − 1 process‖ ≤ 1e-6 · ‖1 process‖.
/// The ranks compute each example's gradient as one process does (same dropout masks, same
/// 1/B), but a product over a shard's rows rounds differently from one over the whole batch,
/// and the shards' sums add in another order: last-bit differences, which AdamW's per-element
/// normalisation can enlarge where a gradient nearly cancels. Measured here: 8.9e-8 (adapter)
/// and 1.7e-7 (fusion) with these settings; with ReLU and lr 1e-2, 6e-6 (README).
@Suite(.serialized) struct MPITests {
    static let mpirun = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// `mpirun -np 2 afusion ARGS` in `dir`.
    static func mpi(_ args: [String], in dir: URL) throws -> CLITests.Run {
        let launcher = [try #require(mpirun), "--oversubscribe", "-np", "2"] + (geteuid() == 0 ? ["--allow-run-as-root"] : [])
        return try CLITests.run(args, in: dir, launcher: launcher)
    }

    /// A folder with the tiny model and `tasks` synthetic tasks t0, t1, … of different sizes.
    static func workspace(tasks: Int) throws -> URL {
        let dir = try Support.tempDir()
        try CLITests.tinyModel(dir)
        for t in 0..<tasks {
            var csv = "label,text\n"
            for e in TrainerTests.synthetic(150 + 60 * t, seed: UInt64(5 + t)) { csv += "\(e.label == 1 ? "yes" : "no"),\(e.text)\n" }
            try Data(csv.utf8).write(to: dir.appendingPathComponent("t\(t).csv"))
            try Data(
                "name = \"t\(t)\"\nmax_length = 16\n[data]\nfiles = [\"t\(t).csv\"]\nformat = \"csv\"\n[labels]\nnames = [\"no\", \"yes\"]\n".utf8
            )
            .write(to: dir.appendingPathComponent("t\(t).toml"))
        }
        return dir
    }

    /// The weights as one vector: ‖two − one‖ ≤ 1e-6 · ‖one‖.
    static func expectClose(_ a: [Parameter], _ b: [Parameter], sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(a.map(\.name) == b.map(\.name), sourceLocation: sourceLocation)
        var norm = 0.0
        var diff = 0.0
        for (p, q) in zip(a, b) {
            for (x, y) in zip(p.value.array, q.value.array) { norm += Double(x) * Double(x); diff += Double(x - y) * Double(x - y) }
        }
        #expect(
            diff.squareRoot() <= 1e-6 * norm.squareRoot(), "‖difference‖ \(diff.squareRoot()), ‖weights‖ \(norm.squareRoot())",
            sourceLocation: sourceLocation)
    }

    static let training = [
        "--epochs", "2", "--lr", "1e-3", "--non-linearity", "gelu", "--reduction", "2", "--batch", "16", "--model", "model", "--threads", "1",
    ]

    @Test(.enabled(if: mpirun != nil, "mpirun not found: install openmpi-bin (make setup does)"))
    func twoRanksTrainTheSameAdapterAndFusionAsOneProcess() throws {
        let dir = try Self.workspace(tasks: 1)
        defer { try? FileManager.default.removeItem(at: dir) }
        // Batch 16 over 150 examples: shards of 8 and 8, then 3 and 3; dropout on throughout.
        let one = try CLITests.run(["train-adapter", "--task", "t0.toml", "--store", "one.h5", "--name", "a"] + Self.training, in: dir)
        #expect(one.status == 0, "\(one.out)\n\(one.err)")
        let two = try Self.mpi(["train-adapter", "--task", "t0.toml", "--store", "two.h5", "--name", "a"] + Self.training, in: dir)
        #expect(two.status == 0 && two.out.contains("× 2 ranks"), "\(two.out)\n\(two.err)")
        #expect(two.out.components(separatedBy: "saved adapter 'a'").count == 2, "only rank 0 reports and saves: \(two.out)")
        let (a1, h1, r1) = try AdapterStore.load(dir.appendingPathComponent("one.h5").path, name: "a", baseFingerprint: nil)
        let (a2, h2, r2) = try AdapterStore.load(dir.appendingPathComponent("two.h5").path, name: "a", baseFingerprint: nil)
        Self.expectClose(a1.parameters + h1.parameters, a2.parameters + h2.parameters)
        #expect(r1.devMetrics == r2.devMetrics && r1.bestEpoch == r2.bestEpoch)

        // A fusion of the adapter with a second one, trained both ways from the same store.
        let second = try CLITests.run(
            ["train-adapter", "--task", "t0.toml", "--store", "one.h5", "--name", "b", "--seed", "3", "--no-ln-before"] + Self.training,
            in: dir)
        #expect(second.status == 0, "\(second.err)")
        try FileManager.default.copyItem(at: dir.appendingPathComponent("one.h5"), to: dir.appendingPathComponent("fused.h5"))
        try Data(
            "fusion f\nbase model\nstore fused.h5\ntask t0.toml\ncompose fuse(a, b)\ntrain epochs 2, lr 1e-2, batch 15\n".utf8
        ).write(to: dir.appendingPathComponent("f.fuse"))
        let f1 = try CLITests.run(["train-fusion", "f.fuse", "--store", "one.h5", "--threads", "1"], in: dir)
        #expect(f1.status == 0, "\(f1.out)\n\(f1.err)")
        let f2 = try Self.mpi(["train-fusion", "f.fuse", "--threads", "1"], in: dir)
        #expect(f2.status == 0, "\(f2.out)\n\(f2.err)")
        let g1 = try FusionStore.load(dir.appendingPathComponent("one.h5").path, name: "f", baseFingerprint: nil)
        let g2 = try FusionStore.load(dir.appendingPathComponent("fused.h5").path, name: "f", baseFingerprint: nil)
        Self.expectClose(g1.composition.parameters + g1.head.parameters, g2.composition.parameters + g2.head.parameters)
        #expect(g1.record.training.devMetrics == g2.record.training.devMetrics)
    }

    @Test(.enabled(if: mpirun != nil, "mpirun not found: install openmpi-bin (make setup does)"))
    func twoRanksTrainFourTasksIntoOneStore() throws {
        let dir = try Self.workspace(tasks: 4)
        defer { try? FileManager.default.removeItem(at: dir) }
        let tasks = (0..<4).map { "t\($0).toml" }
        let r = try Self.mpi(["train-adapters"] + tasks + ["--store", "all.h5"] + Self.training, in: dir)
        #expect(r.status == 0, "\(r.out)\n\(r.err)")
        #expect(r.out.contains("rank 1: "), "\(r.out)")
        let stored = try AdapterStore.list(dir.appendingPathComponent("all.h5").path)
        #expect(Set(stored.map(\.name)) == ["t0", "t1", "t2", "t3"])
        // Rank 1's rescue copy is gone once rank 0 has stored everything.
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("all.h5.rank1.h5").path))
        // Each identical (bit for bit) to training it alone.
        for t in 0..<4 {
            let alone = try CLITests.run(["train-adapter", "--task", "t\(t).toml", "--store", "alone.h5"] + Self.training, in: dir)
            #expect(alone.status == 0, "\(alone.err)")
        }
        let single = try AdapterStore.list(dir.appendingPathComponent("alone.h5").path)
        for rec in stored {
            #expect(rec.weightsFingerprint == single.first { $0.name == rec.name }?.weightsFingerprint, "\(rec.name)")
        }
    }
}
