import AdapterFusion
import ArgumentParser
import Foundation

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks that print throughput, achieved GFLOP/s and peak memory.",
        subcommands: [BenchForward.self, BenchTrainAdapter.self, BenchTrainFusion.self, BenchInferFusion.self])
}

/// Options every benchmark shares.
struct BenchOptions: ParsableArguments {
    @Option(help: "Sequences per batch.") var batch = 32
    @Option(help: "Tokens per sequence.") var seq = 128
    @Option(help: "OpenBLAS threads.") var threads = 1
    @Option(help: "Timed iterations (after one warm-up).") var iters = 5
    @Option(help: "Seed of the synthetic token ids.") var seed: UInt64 = 0
    @Option(help: "Model directory.") var model = ModelLocator.defaultDirectory

    /// A synthetic batch: [CLS], random word ids, [SEP], every sequence `seq` long.
    func syntheticBatch(vocab: Int) -> TokenBatch {
        var rng = SeededRNG(seed: seed)
        let seqs: [[Int32]] = (0..<batch).map { _ in
            [101] + (0..<(seq - 2)).map { _ in Int32(1000 + Int(rng.next() % UInt64(vocab - 1000))) } + [102]
        }
        return TokenBatch(sequences: seqs)
    }

    /// Loads the encoder with OpenBLAS set to `threads`.
    func encoder() throws -> BertEncoder {
        BLAS.setThreads(threads)
        return try BertEncoder(directory: model)
    }

    /// Runs `body` once to warm up, then `iters` times; prints tokens/s (median and best) and peak RSS.
    func measure(_ title: String, tokens: Int, note: String = "", _ body: () throws -> Void) rethrows {
        try body()
        var times: [Double] = []
        for _ in 0..<iters {
            let t0 = Clock.now()
            try body()
            times.append(Clock.now() - t0)
        }
        let median = times.sorted()[times.count / 2]
        print("\(title), batch \(batch) x seq \(seq), threads \(threads)")
        print(String(format: "  tokens/s        %.0f (median of %d%@), best %.0f", Double(tokens) / median, times.count, note, Double(tokens) / times.min()!))
        print(String(format: "  peak RSS        %.0f MB", Perf.peakRSSMegabytes()))
    }

    /// Training steps (forward with dropout, backward, AdamW) of `hook` + a new 2-label head.
    func trainingSteps(_ title: String, encoder: BertEncoder, hook: LayerHook, parameters: [Parameter],
                       regularizer: @escaping () -> Float = { 0 }) throws {
        let c = encoder.config
        let batch = syntheticBatch(vocab: c.vocabSize)
        var rng = SeededRNG(seed: seed)
        let labels = Targets.labels((0..<batch.count).map { _ in Int(rng.next() % 2) })
        let head = PredictionHead(config: HeadConfig(kind: .classification, outputs: 2), hidden: c.hiddenSize, seed: 2)
        let optimizer = AdamW(parameters + head.parameters)
        let ws = EncoderWorkspace(config: c, training: true)
        let dropout = DropoutState(hidden: c.hiddenDropoutProb, attention: c.attentionProbsDropoutProb, seed: 3)
        let trainable = (parameters + head.parameters).reduce(0) { $0 + $1.value.count }
        try measure("\(title) + head (\(trainable) trainable parameters), dropout \(c.hiddenDropoutProb)", tokens: batch.tokenCount,
                    note: " steps: forward + backward + AdamW") {
            let h = try encoder.forward(batch, workspace: ws, hook: hook, dropout: dropout)
            head.forward(h, batch: batch, dropout: dropout)
            _ = head.loss(labels)
            encoder.backward(head.backward(labels, batch: batch), workspace: ws, hook: hook, dropout: dropout)
            _ = regularizer()
            optimizer.clipGradients(maxNorm: 1)
            optimizer.update(lr: 1e-4)
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
        var times: [Double] = []
        _ = try encoder.forward(batch, workspace: ws)  // warm-up: buffers, page faults, BLAS threads
        for _ in 0..<options.iters {
            let t0 = Clock.now()
            _ = try encoder.forward(batch, workspace: ws)
            times.append(Clock.now() - t0)
        }
        let tokens = Double(batch.tokenCount)
        let flops = Perf.encoderFLOPs(c, batch: batch)
        let best = times.min()!, median = times.sorted()[times.count / 2]
        let sgemm = Perf.sgemmGFLOPs(m: batch.tokenCount, n: c.intermediateSize, k: c.hiddenSize)
        print("encoder forward  batch \(options.batch) x seq \(options.seq), \(c.numHiddenLayers) layers, hidden \(c.hiddenSize), threads \(options.threads)")
        print(String(format: "  tokens/s        %.0f (median of %d), best %.0f", tokens / median, times.count, tokens / best))
        print(String(format: "  GFLOP/s         %.1f  (FLOPs = layers·Σ_seq[L·(8H² + 4HF) + 4L²H] = %.2f GFLOP per batch)", flops / median / 1e9, flops / 1e9))
        print(String(format: "  sgemm GFLOP/s   %.1f  (one cblas_sgemm of the FFN shape %dx%dx%d)", sgemm, batch.tokenCount, c.intermediateSize, c.hiddenSize))
        print(String(format: "  efficiency      %.0f %% of that sgemm figure", 100 * flops / median / 1e9 / sgemm))
        print(String(format: "  peak RSS        %.0f MB", Perf.peakRSSMegabytes()))
    }
}

struct BenchTrainAdapter: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-adapter",
        abstract: "Training steps of one adapter + head (forward, backward, AdamW) on a synthetic batch, dropout on.")

    @OptionGroup var options: BenchOptions
    @Option(help: "Adapter placement: pfeiffer or houlsby.") var config: AdapterPlacement = .pfeiffer
    @Option(help: "Reduction factor.") var reduction = 16

    func run() throws {
        let encoder = try options.encoder()
        let c = encoder.config
        let adapter = Adapter(name: "bench", config: AdapterConfig(placement: config, reductionFactor: reduction),
                              hidden: c.hiddenSize, layers: c.numHiddenLayers, seed: 1)
        try options.trainingSteps("train \(config.rawValue) adapter (reduction \(reduction))", encoder: encoder, hook: adapter,
                                  parameters: adapter.parameters)
    }
}

/// Random pfeiffer adapters (non-zero up projections, as trained ones) under a fresh fusion.
func syntheticFusion(_ c: BertConfig, adapters: Int, dynamic: Bool) -> Composition {
    var rng = SeededRNG(seed: 5)
    var members: [String: Adapter] = [:]
    for i in 0..<adapters {
        let a = Adapter(name: "a\(i)", config: AdapterConfig(), hidden: c.hiddenSize, layers: c.numHiddenLayers, seed: UInt64(i))
        for p in a.parameters { for k in 0..<p.value.count { p.value[k] += 0.02 * rng.nextNormal() } }
        members["a\(i)"] = a
    }
    var options = FusionOptions()
    options.dynamic = dynamic
    return Composition(.fuse((0..<adapters).map { .adapter("a\($0)") }), adapters: members, options: options,
                       hidden: c.hiddenSize, layers: c.numHiddenLayers, seed: 9)
}

struct BenchTrainFusion: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-fusion",
        abstract: "Training steps of a fusion of N frozen pfeiffer adapters + head on a synthetic batch, dropout on.")

    @OptionGroup var options: BenchOptions
    @Option(help: "Number of fused adapters.") var adapters = 3
    @Flag(help: "Static fusion (no value matrix).") var staticFusion = false

    func run() throws {
        let encoder = try options.encoder()
        let comp = syntheticFusion(encoder.config, adapters: adapters, dynamic: !staticFusion)
        try options.trainingSteps("train \(staticFusion ? "static" : "dynamic") fusion of \(adapters) pfeiffer adapters", encoder: encoder,
                                  hook: comp.root, parameters: comp.parameters, regularizer: { comp.regularize() })
    }
}

struct BenchInferFusion: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "infer-fusion", abstract: "Inference through a fusion of N pfeiffer adapters + head on a synthetic batch.")

    @OptionGroup var options: BenchOptions
    @Option(help: "Number of fused adapters.") var adapters = 3

    func run() throws {
        let encoder = try options.encoder()
        let c = encoder.config
        let batch = options.syntheticBatch(vocab: c.vocabSize)
        let comp = syntheticFusion(c, adapters: adapters, dynamic: true)
        let head = PredictionHead(config: HeadConfig(kind: .classification, outputs: 2), hidden: c.hiddenSize, seed: 2)
        let ws = EncoderWorkspace(config: c)
        try options.measure("inference through a fusion of \(adapters) pfeiffer adapters + head", tokens: batch.tokenCount) {
            head.forward(try encoder.forward(batch, workspace: ws, hook: comp.root), batch: batch)
        }
    }
}
