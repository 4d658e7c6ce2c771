import AdapterFusion
import ArgumentParser
import Foundation

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks that print throughput, achieved GFLOP/s and peak memory.",
        subcommands: [BenchForward.self, BenchTrainAdapter.self, BenchTrainFusion.self, BenchInferFusion.self, BenchRealTask.self])

    /// The first line of every benchmark: which kernels run and why.
    static func printHeader() {
        let blas = BLAS.library
        print(
            "OpenBLAS core \(blas.corename) (\(blas.choice.source == .environment ? "from OPENBLAS_CORETYPE" : blas.choice.reason)); "
                + "elementwise kernels \(CPUInfo.kernelLevel); \(BLAS.threads) thread(s)")
    }
}

/// Options every benchmark shares.
struct BenchOptions: ParsableArguments {
    @Option(help: "Sequences per batch.") var batch = 32
    @Option(help: "Tokens per sequence.") var seq = 128
    @Option(help: "Threads (default: $AFUSION_THREADS, else the CPUs this process may use).") var threads: Int?
    @Option(help: "Timed iterations after one warm-up (default: 5, or enough for a second on small batches).") var iters: Int?
    @Flag(help: "Print the time per op class (products, attention, GELU, LayerNorm, softmax, optimizer, other).") var profile = false
    @Option(help: "Seed of the synthetic token ids.") var seed: UInt64 = 0
    @Option(help: "Model directory.") var model = ModelDirectory.defaultPath

    /// A synthetic batch: [CLS], random word ids, [SEP], every sequence `seq` long.
    func syntheticBatch(vocab: Int) -> TokenBatch {
        var rng = SeededRNG(seed: seed)
        let seqs: [[Int32]] = (0..<batch).map { _ in
            [101] + (0..<(seq - 2)).map { _ in Int32(1000 + Int(rng.next() % UInt64(vocab - 1000))) } + [102]
        }
        return TokenBatch(sequences: seqs)
    }

    func validate() throws {
        try Check.range(batch, 1...65_536, option: "--batch")
        try Check.range(seq, 3...100_000, option: "--seq")
        try Check.range(threads, 1...4096, option: "--threads")
        try Check.range(iters, 1...1_000_000, option: "--iters")
    }

    /// Sets the threads, prints the header line and loads the encoder.
    func encoder() throws -> BertEncoder {
        try Threads.apply(threads)
        Bench.printHeader()
        return try BertEncoder(directory: model)
    }

    /// Runs `body` once to warm up, then `iters` times (by default 5, or as many as fill about a
    /// second); prints tokens/s (median and best), the median latency, peak RSS and, with
    /// `--profile`, the time per op class. Returns the median seconds.
    @discardableResult
    func measure(_ title: String, tokens: Int, note: String = "", _ body: () throws -> Void) rethrows -> Double {
        let w0 = Clock.now()
        try body()
        let warm = Clock.now() - w0
        let n = iters ?? max(5, min(1000, Int(1.0 / max(warm, 1e-6))))
        var times: [Double] = []
        Profile.reset(enabled: profile)
        for _ in 0..<n {
            let t0 = Clock.now()
            try body()
            times.append(Clock.now() - t0)
        }
        let total = times.reduce(0, +)
        let median = times.sorted()[times.count / 2]
        print("\(title), batch \(batch) x seq \(seq), threads \(BLAS.threads)")
        print(
            String(
                format: "  tokens/s        %.0f (median of %d%@), best %.0f", Double(tokens) / median, times.count, note,
                Double(tokens) / times.min()!))
        print(String(format: "  latency         %.2f ms per batch (median)", median * 1000))
        print(String(format: "  peak RSS        %.0f MB", Perf.peakRSSMegabytes()))
        if profile { print(Profile.report(total: total)) }
        return median
    }

    /// Training steps (`TrainingStep`: forward with dropout, backward, clipping, AdamW) of
    /// `model` + a new 2-label head.
    func trainingSteps(_ title: String, encoder: BertEncoder, model: Trainable) throws {
        let c = encoder.config
        let batch = syntheticBatch(vocab: c.vocabSize)
        var rng = SeededRNG(seed: seed)
        let labels = Targets.labels((0..<batch.count).map { _ in Int(rng.next() % 2) })
        let head = PredictionHead(config: HeadConfig(kind: .classification, outputs: 2), hidden: c.hiddenSize, seed: 2)
        let step = TrainingStep(
            encoder: encoder, model: model, head: head, hiddenDropout: c.hiddenDropoutProb,
            attentionDropout: c.attentionProbsDropoutProb, seed: 3)
        let trainable = (model.parameters + head.parameters).reduce(0) { $0 + $1.value.count }
        try measure(
            "\(title) + head (\(trainable) trainable parameters), dropout \(c.hiddenDropoutProb)", tokens: batch.tokenCount,
            note: " steps: forward + backward + AdamW"
        ) {
            try step.run(batch, labels, lr: 1e-4)
        }
    }
}

struct BenchForward: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forward", abstract: "Encoder forward pass (inference) on a synthetic batch.")

    @OptionGroup var options: BenchOptions

    func run() throws {
        let encoder = try options.encoder()
        let c = encoder.config
        let batch = options.syntheticBatch(vocab: c.vocabSize)
        let ws = EncoderWorkspace(config: c)
        let median = try options.measure("encoder forward, \(c.numHiddenLayers) layers, hidden \(c.hiddenSize)", tokens: batch.tokenCount) {
            _ = try encoder.forward(batch, workspace: ws)
        }
        let flops = Perf.encoderFLOPs(c, batch: batch)
        let sgemm = Perf.sgemmGFLOPs(m: batch.tokenCount, n: c.intermediateSize, k: c.hiddenSize)
        print(
            String(
                format: "  GFLOP/s         %.1f  (FLOPs = layers·Σ_seq[L·(8H² + 4HF) + 4L²H] = %.2f GFLOP per batch)", flops / median / 1e9,
                flops / 1e9))
        print(
            String(
                format: "  sgemm GFLOP/s   %.1f  (one cblas_sgemm call of the FFN shape %dx%dx%d, 1 thread)", sgemm.single, batch.tokenCount,
                c.intermediateSize, c.hiddenSize))
        if BLAS.threads > 1 {
            print(String(format: "                  %.1f  (the same product split over %d threads)", sgemm.split, BLAS.threads))
        }
        print(
            String(
                format: "  efficiency      %.0f %% of %@", 100 * flops / median / 1e9 / (BLAS.threads > 1 ? sgemm.split : sgemm.single),
                BLAS.threads > 1 ? "the split product's figure" : "one sgemm call's figure"))
    }
}

struct BenchTrainAdapter: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-adapter",
        abstract: "Training steps of one adapter + head (forward, backward, AdamW) on a synthetic batch, dropout on.")

    @OptionGroup var options: BenchOptions
    @Option(help: "Method (with its train-adapter defaults): bottleneck, lora, prefix, prompt, bitfit, ia3, parallel, unipelt.")
    var method: PEFTMethod = .bottleneck
    @Option(help: "Adapter placement: pfeiffer or houlsby (bottleneck).") var config: AdapterPlacement = .pfeiffer
    @Option(help: "Reduction factor (bottleneck).") var reduction = 16
    @Flag(inversion: .prefixedNo, help: "The adapter reads LN(h + x) (default: as train-adapter).") var lnBefore: Bool?

    func run() throws {
        let encoder = try options.encoder()
        let c = encoder.config
        var ac = AdapterConfig.method(method)
        ac.intermediateSize = c.intermediateSize
        if method == .bottleneck {
            ac = AdapterConfig(placement: config, reductionFactor: reduction, lnBefore: lnBefore ?? AdapterConfig.defaultLNBefore(config))
        }
        let adapter = Adapter(name: "bench", config: ac, hidden: c.hiddenSize, layers: c.numHiddenLayers, seed: 1)
        let shape = ac.hasBottleneck ? " (reduction \(ac.reductionFactor))" : ""
        try options.trainingSteps("train \(ac.architecture) adapter\(shape)", encoder: encoder, model: adapter)
    }
}

/// Random members (by default pfeiffer+ln adapters, AdapterHub's seq_bn; else `methods`, one
/// per member, with their defaults), perturbed as trained ones are, under a fresh fusion.
func syntheticFusion(_ c: BertConfig, adapters: Int, dynamic: Bool, methods: [PEFTMethod] = []) -> Composition {
    var rng = SeededRNG(seed: 5)
    var members: [String: Adapter] = [:]
    for i in 0..<adapters {
        var config = AdapterConfig(lnBefore: true)
        if i < methods.count, methods[i] != .bottleneck {
            config = AdapterConfig.method(methods[i])
            config.intermediateSize = c.intermediateSize
        }
        let a = Adapter(name: "a\(i)", config: config, hidden: c.hiddenSize, layers: c.numHiddenLayers, seed: UInt64(i), stored: true)
        for p in a.parameters { for k in 0..<p.value.count { p.value[k] += 0.02 * rng.nextNormal() } }
        members["a\(i)"] = a
    }
    var options = FusionOptions()
    options.dynamic = dynamic
    return Composition(
        .fuse((0..<adapters).map { .adapter("a\($0)") }), adapters: members, options: options,
        hidden: c.hiddenSize, layers: c.numHiddenLayers, seed: 9)
}

struct BenchTrainFusion: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-fusion",
        abstract: "Training steps of a fusion of N frozen pfeiffer adapters + head on a synthetic batch, dropout on.")

    @OptionGroup var options: BenchOptions
    @Option(help: "Number of fused adapters.") var adapters = 3
    @Flag(help: "Static fusion (no value matrix).") var staticFusion = false
    @Option(help: "Members' methods, comma-separated (e.g. lora,prefix,bottleneck; default: all bottleneck).") var methods = ""

    func run() throws {
        let encoder = try options.encoder()
        let m = try benchMethods(methods, count: adapters)
        let comp = syntheticFusion(encoder.config, adapters: adapters, dynamic: !staticFusion, methods: m)
        try options.trainingSteps(
            "train \(staticFusion ? "static" : "dynamic") fusion of \(adapters) \(memberDescription(m, adapters))", encoder: encoder,
            model: comp)
    }
}

struct BenchInferFusion: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "infer-fusion", abstract: "Inference through a fusion of N pfeiffer adapters + head on a synthetic batch.")

    @OptionGroup var options: BenchOptions
    @Option(help: "Number of fused adapters.") var adapters = 3
    @Option(help: "Members' methods, comma-separated (e.g. lora,prefix,bottleneck; default: all bottleneck).") var methods = ""

    func run() throws {
        let encoder = try options.encoder()
        let c = encoder.config
        let batch = options.syntheticBatch(vocab: c.vocabSize)
        let m = try benchMethods(methods, count: adapters)
        let comp = syntheticFusion(c, adapters: adapters, dynamic: true, methods: m)
        let head = PredictionHead(config: HeadConfig(kind: .classification, outputs: 2), hidden: c.hiddenSize, seed: 2)
        let ws = EncoderWorkspace(config: c)
        try options.measure("inference through a fusion of \(adapters) \(memberDescription(m, adapters)) + head", tokens: batch.tokenCount) {
            head.forward(try encoder.forward(batch, workspace: ws, hook: comp.root, rows: .firstTokens), batch: batch, cache: ws.hookCache)
        }
    }
}

/// `--methods a,b,c` of the fusion benchmarks: one method per member (prompt cannot be fused).
func benchMethods(_ text: String, count: Int) throws -> [PEFTMethod] {
    guard !text.isEmpty else { return [] }
    let m = try text.split(separator: ",").map { part -> PEFTMethod in
        guard let m = PEFTMethod(rawValue: String(part)), m != .prompt else {
            throw ValidationError("--methods: '\(part)' is not a method a fusion can hold (bottleneck, lora, prefix, bitfit, ia3, parallel, unipelt)")
        }
        return m
    }
    guard m.count == count else { throw ValidationError("--methods names \(m.count) methods for \(count) adapters") }
    return m
}

func memberDescription(_ methods: [PEFTMethod], _ count: Int) -> String {
    methods.isEmpty ? "pfeiffer adapters" : "members (" + methods.map(\.rawValue).joined(separator: ", ") + ")"
}

struct BenchRealTask: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "real-task",
        abstract: "One training epoch of a pfeiffer adapter + head on a real task, with its own bucketed, packed batches; prints examples/s.")

    @Option(help: "Task file.") var task = "tasks/trec.toml"
    @Option(help: "Examples to train on (a seeded sample; default: the whole train split).") var maxTrain: Int?
    @Option(help: "Sequences per batch.") var batch = 32
    @Option(help: "Threads (default: $AFUSION_THREADS, else the CPUs this process may use).") var threads: Int?
    @Option(help: "Model directory.") var model = ModelDirectory.defaultPath

    func validate() throws {
        try Check.range(maxTrain, 1...Int.max, option: "--max-train")
        try Check.range(batch, 1...65_536, option: "--batch")
        try Check.range(threads, 1...4096, option: "--threads")
    }

    func run() throws {
        try Threads.apply(threads)
        Bench.printHeader()
        let spec = try TaskSpec.load(task)
        let (encoder, tokenizer) = try ModelDirectory.load(model)
        var tc = TrainingConfig()
        tc.epochs = 1; tc.batchSize = batch; tc.maxLength = spec.maxLength; tc.maxTrain = maxTrain; tc.maxDev = 32
        tc.hiddenDropout = encoder.config.hiddenDropoutProb; tc.attentionDropout = encoder.config.attentionProbsDropoutProb
        let data = try TrainingData(spec, settings: tc, tokenizer: tokenizer, skipBadRows: spec.skipBadRows)
        print(data.summary(task: spec.name))
        let (train, dev) = (data.train, data.dev)
        let c = encoder.config
        let adapter = Adapter(name: "bench", config: AdapterConfig(), hidden: c.hiddenSize, layers: c.numHiddenLayers, seed: 1)
        let head = PredictionHead(config: HeadConfig(task: spec), hidden: c.hiddenSize, seed: 2)
        let trainer = Trainer(encoder: encoder, model: adapter, head: head)
        var start = 0.0
        var end = 0.0
        _ = try trainer.train(train: train, dev: dev, spec: spec, config: tc) { event in
            switch event {
            case .started: start = Clock.now()
            case .step: end = Clock.now()
            default: break
            }
        }
        let tokens = train.lengths.reduce(0, +)
        let seconds = end - start
        print("train pfeiffer adapter + head on \(spec.name): 1 epoch, \(train.examples.count) examples, batch \(batch), threads \(BLAS.threads)")
        print(
            String(
                format: "  examples/s      %.1f  (%.1f s; %.0f real tokens/s, packed: no padding computed)", Double(train.examples.count) / seconds,
                seconds, Double(tokens) / seconds))
        print(String(format: "  peak RSS        %.0f MB", Perf.peakRSSMegabytes()))
    }
}
