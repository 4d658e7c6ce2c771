import AdapterFusion
import ArgumentParser
import Foundation

struct Embed: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print mean-pooled, L2-normalised sentence embeddings from the frozen encoder (or with a stored adapter).")

    @Argument(help: "Sentences to embed. Without any, one sentence per line is read from standard input.")
    var sentences: [String] = []

    @Option(help: "Model directory holding config.json, model.safetensors and vocab.txt.")
    var model = ModelDirectory.defaultPath

    @Option(help: "Maximum tokens per sentence, including [CLS] and [SEP].")
    var maxLength = 256

    @Option(help: "Pooling: mean (L2-normalised, sentence-transformers) or cls (raw [CLS] state).")
    var pooling: PoolingKind = .mean

    @Flag(help: "Print one JSON object per sentence instead of plain numbers.")
    var json = false

    @Option(help: "Threads (default: $AFUSION_THREADS, else the CPUs this process may use).")
    var threads: Int?

    @Option(help: "Run the encoder with this stored adapter (any method) from --store.") var adapter: String?
    @Option(help: "HDF5 store for --adapter.") var store = "runs/store.h5"

    func validate() throws {
        try Check.range(maxLength, 8...100_000, option: "--max-length")
        try Check.range(threads, 1...4096, option: "--threads")
    }

    func run() throws {
        try Threads.apply(threads)
        var texts = sentences
        if texts.isEmpty {
            while let line = readLine(strippingNewline: true) { if !line.isEmpty { texts.append(line) } }
        }
        guard !texts.isEmpty else { throw CommandError("no sentences given (as arguments or on standard input)") }
        let (encoder, tokenizer) = try ModelDirectory.load(model)
        let fingerprint = try adapter.map { _ in try ModelDirectory.fingerprint(model) }
        let hook = try adapter.map { try AdapterStore.loadMember(store, name: $0, baseFingerprint: fingerprint).0 }
        let workspace = EncoderWorkspace(config: encoder.config)
        // 64 sentences per pass (memory stays flat on long inputs), printed as they are done.
        for start in stride(from: 0, to: texts.count, by: 64) {
            let chunk = Array(texts[start..<min(start + 64, texts.count)])
            let batch = TokenBatch(encodings: chunk.map { tokenizer.encode($0, maxLength: min(maxLength, encoder.config.maxPositionEmbeddings)) })
            let vectors: [[Float]]
            if pooling == .mean {
                vectors = Pooling.meanNormalized(try encoder.forward(batch, workspace: workspace, hook: hook), batch: batch)
            } else {
                // [CLS] alone: the top layer computes only those rows.
                let cls = try encoder.forward(batch, workspace: workspace, hook: hook, rows: .firstTokens)
                let H = cls.cols
                vectors = (0..<batch.count).map { Array(UnsafeBufferPointer(start: cls.data + $0 * H, count: H)) }
            }
            try emit(chunk, vectors)
        }
    }

    private func emit(_ texts: [String], _ vectors: [[Float]]) throws {
        for (text, v) in zip(texts, vectors) {
            let numbers = v.map { String(format: "%.6f", $0) }
            if json {
                let escaped = String(data: try JSONSerialization.data(withJSONObject: [text], options: [.withoutEscapingSlashes]), encoding: .utf8)!
                    .dropFirst().dropLast()
                print("{\"text\": \(escaped), \"dim\": \(v.count), \"embedding\": [\(numbers.joined(separator: ", "))]}")
            } else {
                print(numbers.joined(separator: " "))
            }
        }
    }
}

enum PoolingKind: String, ExpressibleByArgument { case mean, cls }
