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
        let encodings = texts.map { tokenizer.encode($0, maxLength: min(maxLength, encoder.config.maxPositionEmbeddings)) }
        let batch = TokenBatch(encodings: encodings)
        let fingerprint = try adapter.map { _ in try ModelDirectory.fingerprint(model) }
        let hook = try adapter.map { try AdapterStore.load(store, name: $0, baseFingerprint: fingerprint).0 }
        let hidden = try encoder.forward(batch, workspace: EncoderWorkspace(config: encoder.config), hook: hook)
        let vectors = pooling == .mean ? Pooling.meanNormalized(hidden, batch: batch) : Pooling.cls(hidden, batch: batch)
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
