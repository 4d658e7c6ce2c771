import AdapterFusion
import Foundation
import Testing

@Suite struct StoreTests {
    func record(_ name: String, adapter: Adapter, head: PredictionHead, base: String = "base-sha") -> AdapterRecord {
        AdapterRecord(
            name: name, task: "t", taskFile: "tasks/t.toml", labels: ["a", "b", "c"], metric: "accuracy",
            adapterConfig: adapter.config, headConfig: head.config, baseModel: "tiny", baseFingerprint: base,
            hiddenSize: 8, numLayers: 3, devMetrics: [0.5, 0.75, 0.625], bestEpoch: 2, settings: TrainingConfig(),
            seed: 9, created: "2026-11-26T00:00:00Z")
    }

    func randomized(_ name: String, seed: UInt64, placement: AdapterPlacement = .pfeiffer) -> (Adapter, PredictionHead) {
        let a = Adapter(name: name, config: AdapterConfig(placement: placement, reductionFactor: 4, leaveOut: [1]), hidden: 8, layers: 3, seed: seed)
        let h = PredictionHead(config: HeadConfig(kind: .classification, outputs: 3), hidden: 8, seed: seed)
        var rng = SeededRNG(seed: seed)
        for p in a.parameters + h.parameters { for i in 0..<p.value.count { p.value[i] = rng.nextNormal() } }
        return (a, h)
    }

    @Test func saveLoadReplaceKeepOthers() throws {
        let dir = try Support.tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("store.h5").path
        let (a, h) = randomized("one", seed: 1)
        try AdapterStore.save(adapter: a, head: h, record: record("one", adapter: a, head: h), to: path)
        let (b, hb) = randomized("two", seed: 2, placement: .houlsby)
        try AdapterStore.save(adapter: b, head: hb, record: record("two", adapter: b, head: hb), to: path)
        #expect(try AdapterStore.list(path).map(\.name) == ["one", "two"])

        let (la, lh, rec) = try AdapterStore.load(path, name: "one", baseFingerprint: "base-sha")
        for (p, q) in zip(a.parameters + h.parameters, la.parameters + lh.parameters) {
            #expect(p.name == q.name && p.value.array == q.value.array)
        }
        var expected = record("one", adapter: a, head: h)
        expected.weightsFingerprint = rec.weightsFingerprint
        #expect(rec == expected)
        #expect(rec.bestDevMetric == 0.75)
        #expect(la.module(layer: 1, site: .output) == nil && la.config.leaveOut == [1])

        // Replacing "one" keeps "two" bit for bit and leaves no temporary file.
        let (c, hc) = randomized("one", seed: 3)
        try AdapterStore.save(adapter: c, head: hc, record: record("one", adapter: c, head: hc), to: path, replace: true)
        #expect(try AdapterStore.load(path, name: "one", baseFingerprint: nil).0.parameters[0].value.array == c.parameters[0].value.array)
        #expect(try AdapterStore.load(path, name: "two", baseFingerprint: nil).0.parameters.map(\.value.array) == b.parameters.map(\.value.array))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["store.h5", "store.h5.lock"])
    }

    /// Nothing stored is replaced unless asked: a second save under a stored name is refused
    /// (naming the entry, its task and `--replace`) and leaves the store byte for byte; an
    /// adapter may never take a fusion's name (the two would share /heads/<name>), even with
    /// `replace`. Fails if `save` overwrites silently, as it did before.
    @Test func saveNeverReplacesUnlessAsked() throws {
        let dir = try Support.tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("store.h5").path
        let (a, h) = randomized("one", seed: 1)
        try AdapterStore.save(adapter: a, head: h, record: record("one", adapter: a, head: h), to: path)
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        let (c, hc) = randomized("one", seed: 3)
        for attempt in [
            { try AdapterStore.save(adapter: c, head: hc, record: self.record("one", adapter: c, head: hc), to: path) },
            { try AdapterStore.checkSave(path, kind: .adapter, name: "one", replace: false) },
        ] as [() throws -> Void] {
            #expect(throws: StoreConflict.self) { try attempt() }
            #expect { try attempt() } throws: {
                "\($0)".contains("already holds adapter 'one' (task t, saved 2026-11-26T00:00:00Z)") && "\($0)".contains("--replace")
            }
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
        try AdapterStore.checkSave(path, kind: .adapter, name: "one", replace: true)
        try AdapterStore.checkSave(path, kind: .adapter, name: "two", replace: false)
        try AdapterStore.checkSave(dir.appendingPathComponent("none.h5").path, kind: .adapter, name: "one", replace: false)
        // A fusion named "one" would take the adapter's head: refused whatever `replace` says.
        for replace in [false, true] {
            #expect { try AdapterStore.checkSave(path, kind: .fusion, name: "one", replace: replace) } throws: {
                "\($0)".contains("holds an adapter named 'one'") && "\($0)".contains("/heads/one")
            }
        }
    }

    @Test func refusesOtherBaseModelAndTamperedWeights() throws {
        let dir = try Support.tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("store.h5").path
        let (a, h) = randomized("one", seed: 1)
        try AdapterStore.save(adapter: a, head: h, record: record("one", adapter: a, head: h), to: path)
        #expect { try AdapterStore.load(path, name: "one", baseFingerprint: "other-sha") } throws: {
            "\($0)".contains("trained on base model tiny") && "\($0)".contains("refusing")
        }
        #expect { try AdapterStore.load(path, name: "onr", baseFingerprint: nil) } throws: { "\($0)".contains("did you mean 'one'?") }
        // Change one weight behind the store's back.
        do {
            let g = try HDF5File(opening: path, writable: true).root.group("adapters/one")
            let name = a.parameters[0].name
            let t = try g.readTensor(name)
            t[0] += 1
            try g.remove(name)
            try g.write(name, tensor: t)
        }
        #expect { try AdapterStore.load(path, name: "one", baseFingerprint: "base-sha") } throws: {
            "\($0)".contains("do not match their recorded fingerprint")
        }
    }

    /// `inspect` loads every entry and names the damaged ones (it listed a tampered adapter as
    /// normal before); damage makes its exit status 1.
    @Test func inspectNamesDamagedEntries() throws {
        let dir = try Support.tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("store.h5").path
        for (name, seed) in [("one", UInt64(1)), ("two", 2)] {
            let (a, h) = randomized(name, seed: seed)
            try AdapterStore.save(adapter: a, head: h, record: record(name, adapter: a, head: h), to: path)
        }
        let clean = try CLITests.run(["inspect", "store.h5"], in: dir)
        #expect(clean.status == 0 && !clean.out.contains("DAMAGED"), "\(clean.out)")
        do {
            // The first weight below /adapters/one, however deep.
            var target = try HDF5File(opening: path, writable: true).root.group("adapters/one")
            while let child = target.children().first, target.isGroup(child) { target = try target.group(child) }
            let leaf = try #require(target.children().first)
            let t = try target.readTensor(leaf)
            t[0] += 1
            try target.remove(leaf)
            try target.write(leaf, tensor: t)
        }
        let listing = try StoreListing(path)
        #expect(listing.adapters.first { $0.record.name == "one" }?.damage?.contains("do not match their recorded fingerprint") == true)
        #expect(listing.adapters.first { $0.record.name == "two" }?.damage == nil)
        let r = try CLITests.run(["inspect", "store.h5"], in: dir)
        #expect(r.status == 1 && r.out.contains("DAMAGED adapter 'one'") && r.out.contains("1 damaged entry"), "\(r.out)\n\(r.err)")
    }

    @Test func failedSaveLeavesStoreUntouched() throws {
        let dir = try Support.tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("store.h5").path
        let (a, h) = randomized("one", seed: 1)
        try AdapterStore.save(adapter: a, head: h, record: record("one", adapter: a, head: h), to: path)
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        struct Boom: Error {}
        #expect(throws: Boom.self) {
            try AdapterStore.rewrite(path, replacing: [("adapters", "one")]) { root in
                _ = try root.createGroup("adapters/half")
                throw Boom()
            }
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["store.h5", "store.h5.lock"])
    }

    /// Kill test: a separate process saves adapters in a loop and is killed with SIGKILL at
    /// staggered moments; each time the store must open, hold the first adapter intact, and hold
    /// the stressed adapter either not at all or complete (its weights match their fingerprint).
    @Test func killDuringSaveNeverCorrupts() throws {
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("afusion")
        let bin =
            FileManager.default.isExecutableFile(atPath: exe.path)
            ? exe
            : Support.packageRoot.appendingPathComponent(".build/debug/afusion")
        try #require(FileManager.default.isExecutableFile(atPath: bin.path), "afusion binary not found at \(bin.path)")
        let dir = try Support.tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("store.h5").path
        let (a, h) = randomized("keep", seed: 1)
        try AdapterStore.save(adapter: a, head: h, record: record("keep", adapter: a, head: h), to: path)
        var sawStress = false
        for round in 0..<6 {
            let p = Process()
            p.executableURL = bin
            p.arguments = ["store-stress", "--store", path, "--hidden", "64"]  // ~25 ms per save in a debug build
            p.standardOutput = FileHandle.nullDevice
            try p.run()
            usleep(UInt32(150_000 + 70_000 * round))  // staggered: lands in different phases of a save
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            #expect(p.terminationReason == .uncaughtSignal)
            let names = try AdapterStore.list(path).map(\.name)
            #expect(names.contains("keep"))
            #expect(try AdapterStore.load(path, name: "keep", baseFingerprint: "base-sha").0.parameters[0].value.array == a.parameters[0].value.array)
            if names.contains("stress") {
                sawStress = true
                _ = try AdapterStore.load(path, name: "stress", baseFingerprint: nil)  // throws if half-written
            }
            // A killed writer may leave its temporary file; listing the store (above) removed it,
            // since no live writer held the lock. Only the store and its lock file remain.
            let left = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
            #expect(left == ["store.h5", "store.h5.lock"], "after kill \(round): \(left)")
        }
        #expect(sawStress, "no save completed before a kill: the test did not exercise replacement")
    }
}
