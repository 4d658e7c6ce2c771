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

    /// Missing keys keep their defaults (stores written with fewer settings still load).
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = TrainingConfig()
        epochs = try c.decodeIfPresent(Int.self, forKey: .epochs) ?? d.epochs
        learningRate = try c.decodeIfPresent(Float.self, forKey: .learningRate) ?? d.learningRate
        batchSize = try c.decodeIfPresent(Int.self, forKey: .batchSize) ?? d.batchSize
        maxLength = try c.decodeIfPresent(Int.self, forKey: .maxLength) ?? d.maxLength
        warmupFraction = try c.decodeIfPresent(Float.self, forKey: .warmupFraction) ?? d.warmupFraction
        weightDecay = try c.decodeIfPresent(Float.self, forKey: .weightDecay) ?? d.weightDecay
        maxGradNorm = try c.decodeIfPresent(Float.self, forKey: .maxGradNorm) ?? d.maxGradNorm
        patience = try c.decodeIfPresent(Int.self, forKey: .patience) ?? d.patience
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? d.seed
        maxTrain = try c.decodeIfPresent(Int.self, forKey: .maxTrain)
        maxDev = try c.decodeIfPresent(Int.self, forKey: .maxDev)
        hiddenDropout = try c.decodeIfPresent(Float.self, forKey: .hiddenDropout) ?? d.hiddenDropout
        attentionDropout = try c.decodeIfPresent(Float.self, forKey: .attentionDropout) ?? d.attentionDropout
    }

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
