import Foundation

/// A task's train and dev examples for a run, sampled as its `TrainingConfig` says (train with
/// `seed`, dev with `seed + 1`, as `eval` expects) and encoded; with what was read and skipped.
public struct TrainingData {
    public let train: EncodedSplit
    public let dev: EncodedSplit
    /// Examples per split before sampling, and rows skipped by reason.
    public let counts: (train: Int, dev: Int, test: Int)
    public let skipped: [String: Int]

    /// Loads and encodes the splits; a task without train or dev examples is an error.
    public init(_ spec: TaskSpec, settings: TrainingConfig, tokenizer: WordPieceTokenizer, skipBadRows: Bool = false) throws {
        let data = try Dataset.load(spec, skipBadRows: skipBadRows)
        let train = data.examples(.train, max: settings.maxTrain, settings: settings)
        let dev = data.examples(.dev, max: nil, settings: settings)
        guard !train.isEmpty, !dev.isEmpty else {
            throw TrainingError("\(spec.path): the task has \(data.train.count) train and \(data.dev.count) dev examples; both must be non-empty")
        }
        counts = (data.train.count, data.dev.count, data.test.count)
        skipped = data.skipped
        self.train = EncodedSplit(train, tokenizer: tokenizer, maxLength: settings.maxLength)
        self.dev = EncodedSplit(dev, tokenizer: tokenizer, maxLength: settings.maxLength)
    }

    /// "task t: 9003 train / 1000 dev / 3080 test examples; skipped …", and the sample used.
    public func summary(task: String) -> String {
        var s = "task \(task): \(counts.train) train / \(counts.dev) dev / \(counts.test) test examples"
        if !skipped.isEmpty { s += "; skipped " + skipped.sorted { $0.key < $1.key }.map { "\($0.value) (\($0.key))" }.joined(separator: ", ") }
        if train.examples.count < counts.train || dev.examples.count < counts.dev {
            s += "\nusing a seeded sample: \(train.examples.count) train, \(dev.examples.count) dev"
        }
        return s
    }
}

/// The frozen base a run trains on: encoder, tokenizer, and the fingerprint and name stored with
/// what is trained on it.
public struct BaseModel {
    public let encoder: BertEncoder
    public let tokenizer: WordPieceTokenizer
    /// sha256 of the model's weights file.
    public let fingerprint: String
    /// The model directory's name (what records show).
    public let name: String

    /// Loads the model in `directory` (a HF folder: config.json, model.safetensors, vocab.txt).
    public init(directory: String) throws {
        (encoder, tokenizer) = try ModelDirectory.load(directory)
        fingerprint = try ModelDirectory.fingerprint(directory)
        name = ModelDirectory.name(directory)
    }

    public init(encoder: BertEncoder, tokenizer: WordPieceTokenizer, fingerprint: String, name: String) {
        self.encoder = encoder; self.tokenizer = tokenizer; self.fingerprint = fingerprint; self.name = name
    }
}

/// What a training run reports as it goes: the data, the model it built, then the trainer's events.
public enum RunEvent: Sendable {
    /// The data summary (`TrainingData.summary`).
    case data(String)
    /// What is trained: "adapter x: pfeiffer+ln, …; N trainable parameters (…)".
    case built(String)
    case training(TrainingEvent)
}
