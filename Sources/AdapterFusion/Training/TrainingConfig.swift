import Foundation

/// Settings of one training run (stored as JSON with the result).
public struct TrainingConfig: Codable, Sendable, Equatable {
    public var epochs = 3
    public var learningRate: Float = 1e-3
    public var batchSize = 32
    /// Maximum tokens per example, including special tokens.
    public var maxLength = 128
    /// Share of all steps spent warming up linearly.
    public var warmupFraction: Float = 0.1
    public var weightDecay: Float = 0.01
    public var maxGradNorm: Float = 1.0
    /// Epochs without dev improvement before stopping.
    public var patience = 2
    public var seed: UInt64 = 42
    /// Use at most this many training examples (a seeded sample), for quick runs.
    public var maxTrain: Int?
    /// Evaluate on at most this many dev examples (a seeded sample).
    public var maxDev: Int?
    public var hiddenDropout: Float = 0.1
    public var attentionDropout: Float = 0.1

    public init() {}

    enum CodingKeys: String, CodingKey {
        case epochs
        case learningRate = "lr"
        case batchSize = "batch_size"
        case maxLength = "max_length"
        case warmupFraction = "warmup_fraction"
        case weightDecay = "weight_decay"
        case maxGradNorm = "max_grad_norm"
        case patience, seed
        case maxTrain = "max_train"
        case maxDev = "max_dev"
        case hiddenDropout = "hidden_dropout"
        case attentionDropout = "attention_dropout"
    }
}
