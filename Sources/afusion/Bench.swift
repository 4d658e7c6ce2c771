import AdapterFusion
import ArgumentParser
import Foundation

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks that print throughput, achieved GFLOP/s and peak memory.",
        subcommands: [BenchForward.self])
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
}

struct BenchForward: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forward", abstract: "Encoder forward pass (inference) on a synthetic batch.")

    @OptionGroup var options: BenchOptions

    func run() throws {
        BLAS.setThreads(options.threads)
        let encoder = try BertEncoder(directory: options.model)
        let c = encoder.config
        let batch = options.syntheticBatch(vocab: c.vocabSize)
        let ws = EncoderWorkspace(config: c)
        _ = try encoder.forward(batch, workspace: ws)  // warm-up: buffers, page faults, BLAS threads
        var times: [Double] = []
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
