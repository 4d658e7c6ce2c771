import AdapterFusion
import Foundation
import Testing

/// Data-parallel training and stage one across ranks, through `mpirun -np 2` (Open MPI) on the
/// tiny BERT, against the same commands run as one process. Skipped, saying why, when `mpirun`
/// is not installed (`make setup` installs it).
///
/// Tolerance: per tensor, max |2 ranks − 1 process| ≤ 1e-6 · max |1 process|. The ranks sum
/// their shards' gradients, where one process sums all examples in one product: the same terms
/// in another order, ~1e-7 relative per step, which AdamW carries into the weights without
/// growth over these few steps.
@Suite(.serialized) struct MPITests {
    static let mpirun = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// `mpirun -np 2 afusion ARGS` in `dir`.
    static func mpi(_ args: [String], in dir: URL) throws -> CLITests.Run {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try #require(mpirun))
        p.arguments = ["--oversubscribe", "-np", "2"] + (geteuid() == 0 ? ["--allow-run-as-root"] : [])
            + [try FaultInjectionTests.afusionBinary().path] + args
        p.currentDirectoryURL = dir
        let out = Pipe()
        let err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return CLITests.Run(status: p.terminationStatus, out: String(decoding: o, as: UTF8.self), err: String(decoding: e, as: UTF8.self))
    }

    /// A folder with the tiny model and `tasks` synthetic tasks t0, t1, … of different sizes.
    static func workspace(tasks: Int) throws -> URL {
        let dir = try Support.tempDir()
        try CLITests.tinyModel(dir)
        for t in 0..<tasks {
            var csv = "label,text\n"
            for e in TrainerTests.synthetic(150 + 60 * t, seed: UInt64(5 + t)) { csv += "\(e.label == 1 ? "yes" : "no"),\(e.text)\n" }
            try Data(csv.utf8).write(to: dir.appendingPathComponent("t\(t).csv"))
            try Data("name = \"t\(t)\"\nmax_length = 16\n[data]\nfiles = [\"t\(t).csv\"]\nformat = \"csv\"\n[labels]\nnames = [\"no\", \"yes\"]\n".utf8)
                .write(to: dir.appendingPathComponent("t\(t).toml"))
        }
        return dir
    }

    static func expectClose(_ a: [Parameter], _ b: [Parameter], sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(a.map(\.name) == b.map(\.name), sourceLocation: sourceLocation)
        for (p, q) in zip(a, b) {
            let norm = p.value.array.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            let diff = zip(p.value.array, q.value.array).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }.squareRoot()
            print("RELDIFF", p.name, diff / max(norm, 1e-30))
            #expect(diff <= 1e-6 * norm, "\(p.name): ‖difference‖ \(diff), ‖weights‖ \(norm)", sourceLocation: sourceLocation)
        }
    }

    static let training = ["--epochs", "2", "--lr", "1e-2", "--reduction", "2", "--batch", "15", "--model", "model", "--threads", "1"]

    @Test(.enabled(if: mpirun != nil, "mpirun not found: install openmpi-bin (make setup does)"))
    func twoRanksTrainTheSameAdapterAndFusionAsOneProcess() throws {
        let dir = try Self.workspace(tasks: 1)
        defer { try? FileManager.default.removeItem(at: dir) }
        // Batch 15 over 150 examples: shards of 8 and 7, and dropout on throughout.
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
