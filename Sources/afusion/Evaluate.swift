import AdapterFusion
import ArgumentParser
import Foundation

/// Loads a stored adapter + head for the model given, refusing a base-model mismatch.
func loadStored(_ store: String, _ name: String, model: String) throws -> (BertEncoder, WordPieceTokenizer, Adapter, PredictionHead, AdapterRecord) {
    guard FileManager.default.fileExists(atPath: store) else { throw ValidationError("no store at '\(store)'") }
    let fingerprint = try ModelLocator.fingerprint(model)
    let (adapter, head, record) = try AdapterStore.load(store, name: name, baseFingerprint: fingerprint)
    let (encoder, tokenizer) = try ModelLocator.load(model)
    return (encoder, tokenizer, adapter, head, record)
}

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval", abstract: "Score a stored adapter on its task's dev or test split.")

    @Option(help: "HDF5 store.") var store = "runs/store.h5"
    @Option(help: "Adapter name in the store.") var adapter: String
    @Option(help: "Task file (default: the one the adapter was trained on).") var task: String?
    @Option(help: "Split: dev, test or train.") var split = "dev"
    @Option(help: "Score at most N examples (a seeded sample; default for dev: the sample used in training).") var max: Int?
    @Flag(help: "Skip bad data rows (counted) instead of stopping.") var skipBadRows = false
    @OptionGroup var modelOptions: ModelOptions

    func run() throws {
        BLAS.setThreads(modelOptions.threads)
        let (encoder, tokenizer, hook, head, record) = try loadStored(store, adapter, model: modelOptions.model)
        let spec = try TaskSpec.load(task ?? record.taskFile)
        guard spec.labels == record.labels else {
            throw ValidationError("\(spec.path): labels \(spec.labels) differ from the adapter's \(record.labels)")
        }
        let hyper = try JSONDecoder().decode(TrainingConfig.self, from: Data(record.hyperparameters.utf8))
        let data = try Dataset.load(spec, skipBadRows: skipBadRows)
        let examples: [Example]
        switch split {
        case "dev": examples = sample(data.dev, max ?? hyper.maxDev, seed: hyper.seed &+ 1)
        case "test": examples = sample(data.test, max, seed: hyper.seed &+ 2)
        case "train": examples = sample(data.train, max, seed: hyper.seed)
        default: throw ValidationError("--split must be dev, test or train")
        }
        guard !examples.isEmpty else { throw ValidationError("the \(split) split of \(spec.name) is empty") }
        let encoded = EncodedSplit(examples, tokenizer: tokenizer, maxLength: hyper.maxLength)
        let t0 = Clock.now()
        let out = try Evaluator(encoder: encoder, hook: hook, head: head).evaluate(encoded, spec: spec, batchSize: hyper.batchSize)
        let tokens = encoded.lengths.reduce(0, +)
        print("\(adapter) on \(spec.name) \(split) (\(examples.count) examples): \(spec.metric.rawValue) \(fmt(out.metric))"
              + (split == "dev" && max == nil ? "  [recorded at training: \(fmt(record.bestDevMetric ?? .nan)), epoch \(record.bestEpoch)]" : ""))
        print(String(format: "  %.1f s, %.0f tokens/s", Clock.now() - t0, Double(tokens) / (Clock.now() - t0)))
    }
}

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Predict with a stored adapter: one text per line in (a tab separates the two texts of a pair task), label and probabilities out.")

    @Option(help: "HDF5 store.") var store = "runs/store.h5"
    @Option(help: "Adapter name in the store.") var adapter: String
    @Option(help: "Read texts from this file instead of standard input.") var file: String?
    @Option(help: "Separator between the two texts of a pair.") var pairSeparator = "\t"
    @Option(help: "Maximum tokens per text (default: as in training).") var maxLen: Int?
    @Flag(help: "One JSON object per line.") var json = false
    @OptionGroup var modelOptions: ModelOptions

    func run() throws {
        BLAS.setThreads(modelOptions.threads)
        let (encoder, tokenizer, hook, head, record) = try loadStored(store, adapter, model: modelOptions.model)
        let hyper = try JSONDecoder().decode(TrainingConfig.self, from: Data(record.hyperparameters.utf8))
        var lines: [String] = []
        if let file {
            guard let data = FileManager.default.contents(atPath: file) else { throw ValidationError("cannot read '\(file)'") }
            guard let text = String(data: data, encoding: .utf8) else { throw ValidationError("\(file): not valid UTF-8") }
            lines = text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
        } else {
            while let line = readLine() { if !line.isEmpty { lines.append(line) } }
        }
        guard !lines.isEmpty else { throw ValidationError("no input text") }
        let encodings = lines.map { line -> Encoding in
            let parts = line.components(separatedBy: pairSeparator)
            return tokenizer.encode(parts[0], pair: parts.count > 1 ? parts.dropFirst().joined(separator: pairSeparator) : nil,
                                    maxLength: maxLen ?? hyper.maxLength)
        }
        let regression = record.headConfig.kind == .regression
        let outputs = try Evaluator(encoder: encoder, hook: hook, head: head).predict(encodings, regression: regression)
        for (line, o) in zip(lines, outputs) {
            if regression {
                print(json ? "{\"text\": \(jsonString(line)), \"value\": \(o[0])}" : String(format: "%.4f\t%@", o[0], line))
                continue
            }
            let best = o.indices.max { o[$0] < o[$1] }!
            if json {
                let probs = zip(record.labels, o).map { "\(jsonString($0)): \(String(format: "%.6f", $1))" }.joined(separator: ", ")
                print("{\"text\": \(jsonString(line)), \"label\": \(jsonString(record.labels[best])), \"probabilities\": {\(probs)}}")
            } else {
                let probs = zip(record.labels, o).map { "\($0)=\(String(format: "%.3f", $1))" }.joined(separator: " ")
                print("\(record.labels[best])\t\(probs)\t\(line)")
            }
        }
    }
}

func jsonString(_ s: String) -> String {
    String(data: try! JSONSerialization.data(withJSONObject: [s], options: [.withoutEscapingSlashes]), encoding: .utf8)!
        .dropFirst().dropLast().description
}

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List what a store holds: adapters with task, size, metrics and base model.")

    @Argument(help: "HDF5 store.") var store: String

    func run() throws {
        guard FileManager.default.fileExists(atPath: store) else { throw ValidationError("no store at '\(store)'") }
        let records = try AdapterStore.list(store)
        if records.isEmpty { print("\(store): no adapters"); return }
        var rows = [["adapter", "task", "placement", "params", "metric", "best dev", "epoch", "base model", "base sha256", "created"]]
        let file = try HDF5File(opening: store)
        let root = try file.root
        for r in records {
            let g = try root.group("adapters/\(r.name)"), h = try root.group("heads/\(r.name)")
            var params = 0
            func count(_ grp: HDF5Group) throws {
                for c in grp.children() {
                    if grp.isGroup(c) { try count(try grp.group(c)) } else { params += try grp.shape(of: c).reduce(1, *) }
                }
            }
            try count(g); try count(h)
            rows.append([r.name, r.task, "\(r.adapterConfig.placement.rawValue)/\(r.adapterConfig.reductionFactor)", "\(params)",
                         r.metric, r.bestDevMetric.map(fmt) ?? "-", "\(r.bestEpoch)/\(r.devMetrics.count)", r.baseModel,
                         String(r.baseFingerprint.prefix(12)), String(r.created.prefix(19))])
        }
        let widths = rows[0].indices.map { c in rows.map { $0[c].count }.max()! }
        for (k, row) in rows.enumerated() {
            print(row.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  "))
            if k == 0 { print(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")) }
        }
    }
}
