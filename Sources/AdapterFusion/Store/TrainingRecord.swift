import Foundation

/// What every stored trained model (an adapter or a fusion, with its head) records about its
/// task and training, as attributes of its HDF5 group.
public struct TrainingRecord: Sendable, Equatable {
    public var task: String
    public var taskFile: String
    /// Label names in output order; empty for regression.
    public var labels: [String]
    public var metric: String
    public var headConfig: HeadConfig
    public var baseModel: String
    /// SHA-256 of the base model's weights file.
    public var baseFingerprint: String
    public var hiddenSize: Int
    public var numLayers: Int
    public var devMetrics: [Double]
    /// 1-based epoch whose weights were kept.
    public var bestEpoch: Int
    /// The settings of the run (stored as the JSON attribute `hyperparameters`).
    public var settings: TrainingConfig
    public var seed: Int
    public var created: String
    public var toolVersion: String = AdapterFusionVersion.string
    /// SHA-256 over the trained weights (and the head's), in name order.
    public var weightsFingerprint: String = ""
    /// False for an adapter stored without a task head (an AdapterHub adapter saved without
    /// `head_config.json`): usable as a composition member only. Its `headConfig` is then a
    /// placeholder that nothing reads; the group's `head` attribute is "".
    public var hasHead = true

    /// Best dev metric.
    public var bestDevMetric: Double? { bestEpoch >= 1 && bestEpoch <= devMetrics.count ? devMetrics[bestEpoch - 1] : nil }
}
