import AdapterFusion
import Foundation
import Testing

/// The OpenBLAS kernel choice and the thread pool: what the speed of every other path rests on.
@Suite struct SpeedSetupTests {
    static func cpu(_ flags: Set<String>) -> CPUInfo {
        CPUInfo(vendor: "GenuineIntel", brand: "test", family: 6, model: 207, flags: flags)
    }

    @Test func kernelRuleFollowsUsableISA() {
        let avx512: Set = ["avx2", "fma", "os_avx", "avx512f", "avx512bw", "avx512dq", "avx512vl", "os_avx512"]
        #expect(KernelChoice.choose(Self.cpu(avx512)).coretype == "SkylakeX")
        #expect(KernelChoice.choose(Self.cpu(avx512.union(["avx512_bf16"]))).coretype == "Cooperlake")
        // AVX-512 present but the OS does not save ZMM state: AVX2 kernels.
        #expect(KernelChoice.choose(Self.cpu(avx512.subtracting(["os_avx512"]))).coretype == "Haswell")
        #expect(KernelChoice.choose(Self.cpu(["avx2", "fma", "os_avx"])).coretype == "Haswell")
        // AVX2 without the OS's YMM state, or without FMA: OpenBLAS decides.
        #expect(KernelChoice.choose(Self.cpu(["avx2", "fma"])).coretype == nil)
        #expect(KernelChoice.choose(Self.cpu(["avx2", "os_avx"])).source == .openblas)
    }

    @Test func environmentSettingIsNeverOverridden() {
        let c = KernelChoice.forThisMachine(environment: ["OPENBLAS_CORETYPE": "Prescott"])
        #expect(c.coretype == "Prescott")
        #expect(c.source == .environment)
        // An empty value counts as unset.
        #expect(KernelChoice.forThisMachine(environment: ["OPENBLAS_CORETYPE": ""]).source != .environment)
    }

    /// The guard against the 4.6× regression: with AVX2 usable, OpenBLAS must not run its SSE3
    /// or generic kernels (unless the environment asked for them on purpose).
    @Test func coreInUseIsNotPrescottOnAVX2Machines() throws {
        let blas = BLAS.library
        try #require(CPUInfo.current.hasAVX2FMA, "this CPU has no usable AVX2 + FMA")
        guard blas.choice.source != .environment else { return }  // the host chose on purpose
        let slow = ["prescott", "generic", "core2", "katmai", "coppermine", "northwood", "banias", "atom", "nehalem"]
        #expect(!slow.contains(blas.corename.lowercased()), "OpenBLAS runs \(blas.corename) on \(CPUInfo.current.brand)")
        #expect(blas.corename.lowercased() == (blas.choice.coretype ?? "").lowercased(), "asked \(blas.choice.coretype ?? "-"), got \(blas.corename)")
    }

    @Test func parallelRunCoversEveryTaskOnce() {
        Parallel.setThreads(2)
        defer { Parallel.setThreads(Parallel.defaultThreads) }
        for tasks in [0, 1, 2, 7, 100, 1000] {
            let hits = UnsafeMutablePointer<Int>.allocate(capacity: max(tasks, 1))
            hits.initialize(repeating: 0, count: max(tasks, 1))
            Parallel.run(tasks: tasks) { t, _ in hits[t] += 1 }
            #expect((0..<tasks).allSatisfy { hits[$0] == 1 }, "\(tasks) tasks")
            hits.deallocate()
        }
    }

    /// Training is bitwise the same at 1, 2 and 3 threads: products are cut into row blocks
    /// that depend on the shape only, attention blocks and dropout masks are drawn per block,
    /// and reductions run in a fixed order. Two steps of a fusion of two adapters + head on
    /// the real encoder (varied lengths, dropout on); every parameter and the loss compared.
    @Test func trainingIsBitwiseIdenticalAtAnyThreadCount() throws {
        let (encoder, _) = try Support.model.get()
        let c = encoder.config
        var rng = SeededRNG(seed: 11)
        let seqs: [[Int32]] = (0..<8).map { s in
            [101] + (0..<(40 + 9 * s)).map { _ in Int32(1000 + Int(rng.next() % 20000)) } + [102]
        }
        let batch = TokenBatch(sequences: seqs)
        let labels = Targets.labels((0..<8).map { $0 % 3 })
        func run(threads: Int) -> (loss: [Float], values: [[Float]]) {
            Parallel.setThreads(threads)
            var members: [String: Adapter] = [:]
            for i in 0..<2 {
                let a = Adapter(name: "m\(i)", config: AdapterConfig(), hidden: c.hiddenSize, layers: c.numHiddenLayers, seed: UInt64(i))
                var r = SeededRNG(seed: 40 + UInt64(i))
                for p in a.parameters { for k in 0..<p.value.count { p.value[k] += 0.02 * r.nextNormal() } }
                members["m\(i)"] = a
            }
            let comp = Composition(
                .fuse([.adapter("m0"), .adapter("m1")]), adapters: members, options: FusionOptions(),
                hidden: c.hiddenSize, layers: c.numHiddenLayers, seed: 9)
            let head = PredictionHead(config: HeadConfig(kind: .classification, outputs: 3), hidden: c.hiddenSize, seed: 2)
            let params = comp.parameters + head.parameters
            let optimizer = AdamW(params)
            let ws = EncoderWorkspace(config: c, training: true)
            let dropout = DropoutState(hidden: 0.1, attention: 0.1, seed: 3)
            var losses: [Float] = []
            for _ in 0..<2 {
                let h = try! encoder.forward(batch, workspace: ws, hook: comp.root, dropout: dropout)
                head.forward(h, batch: batch, dropout: dropout)
                losses.append(head.loss(labels) + comp.regularize())
                encoder.backward(head.backward(labels, batch: batch), workspace: ws, hook: comp.root, dropout: dropout)
                optimizer.clipGradients(maxNorm: 1)
                optimizer.update(lr: 1e-3)
            }
            return (losses, params.map { $0.value.array })
        }
        defer { Parallel.setThreads(Parallel.defaultThreads) }
        let one = run(threads: 1)
        for t in [2, 3] {
            let other = run(threads: t)
            #expect(other.loss.map(\.bitPattern) == one.loss.map(\.bitPattern), "loss at \(t) threads")
            let differing = zip(one.values, other.values).filter { a, b in a.map(\.bitPattern) != b.map(\.bitPattern) }.count
            #expect(differing == 0, "\(differing) of \(one.values.count) parameter tensors differ at \(t) threads")
        }
    }
}
