import Foundation

/// Stage one as a library call: builds an adapter of `config`'s method (prefix and prompt start
/// from real words' states), a head seeded from the run's seed, trains both on a task on the
/// frozen base, and returns them with the record to store:
///
///     let base = try BaseModel(directory: "models/all-MiniLM-L6-v2")
///     let run = AdapterTraining(method: .lora)
///     let trained = try run.train(task: try TaskSpec.load("tasks/trec.toml"), name: "trec", base: base)!
///     try AdapterStore.save(adapter: trained.adapter, head: trained.head, record: trained.record, to: "runs/store.h5")
public struct AdapterTraining {
    /// The method and its shape (`AdapterConfig.method(_:)` gives each method's defaults).
    public var config: AdapterConfig
    /// Epochs, learning rate, batch, … (`learningRate` defaults to the method's, below).
    public var settings: TrainingConfig
    /// Skip and count malformed data rows instead of stopping.
    public var skipBadRows = false

    public init(method: PEFTMethod = .bottleneck, settings: TrainingConfig? = nil) {
        config = AdapterConfig.method(method)
        var s = settings ?? TrainingConfig()
        if settings == nil { s.learningRate = Self.defaultLearningRate(method) }
        self.settings = s
    }

    public init(config: AdapterConfig, settings: TrainingConfig) {
        self.config = config
        self.settings = settings
    }

    /// The learning rate a method trains well with on our tasks.
    public static func defaultLearningRate(_ m: PEFTMethod) -> Float {
        switch m {
        case .bottleneck, .parallel, .prefix: return 1e-3
        case .lora: return 3e-3
        case .bitfit: return 5e-3
        case .prompt: return 1e-2
        case .ia3: return 3e-2
        case .unipelt: return 2e-3
        }
    }

    /// A trained adapter, its head and the record `AdapterStore.save` writes.
    public struct Trained {
        public let adapter: Adapter
        public let head: PredictionHead
        public let record: AdapterRecord
    }

    /// Trains adapter `name` for `spec` on `base` (data-parallel over `cluster`'s ranks). Returns
    /// what to store on rank 0, nil on the other ranks.
    public func train(
        task spec: TaskSpec, name: String, base: BaseModel, cluster: Cluster = .alone, progress: (RunEvent) -> Void = { _ in }
    ) throws -> Trained? {
        let c = base.encoder.config
        var tc = settings
        tc.hiddenDropout = c.hiddenDropoutProb
        tc.attentionDropout = c.attentionProbsDropoutProb
        var ac = config
        ac.intermediateSize = c.intermediateSize
        if let problem = ac.problem(hidden: c.hiddenSize, layers: c.numHiddenLayers, maxPositions: c.maxPositionEmbeddings) {
            throw TrainingError("method \(ac.method.rawValue): \(problem)")
        }
        if let p = ac.prompt, tc.maxLength + p.length > c.maxPositionEmbeddings {
            throw TrainingError(
                "max length \(tc.maxLength) plus \(p.length) prompt tokens exceeds the model's \(c.maxPositionEmbeddings) positions")
        }
        let data = try TrainingData(spec, settings: tc, tokenizer: base.tokenizer, skipBadRows: skipBadRows)
        progress(.data(data.summary(task: spec.name)))
        let adapter = try build(name: name, config: ac, spec: spec, base: base)
        let head = PredictionHead(config: HeadConfig(task: spec), hidden: c.hiddenSize, seed: tc.seed &+ 7)
        progress(.built(describe(adapter, head: head, base: base, settings: tc)))
        let result = try Trainer(encoder: base.encoder, model: adapter, head: head).train(
            train: data.train, dev: data.dev, spec: spec, config: tc, cluster: cluster
        ) { progress(.training($0)) }
        adapter.finishTraining()
        guard cluster.isRoot else { return nil }
        let record = AdapterRecord(
            name: name, task: spec.name, taskFile: spec.path, labels: spec.labels, metric: spec.metric.rawValue,
            adapterConfig: ac, headConfig: head.config, baseModel: base.name, baseFingerprint: base.fingerprint,
            hiddenSize: c.hiddenSize, numLayers: c.numHiddenLayers, devMetrics: result.devMetrics, bestEpoch: result.bestEpoch,
            settings: tc, seed: Int(tc.seed), created: ISO8601DateFormatter().string(from: Date()))
        return Trained(adapter: adapter, head: head, record: record)
    }

    /// The adapter, with a prefix or prompt started from real words' states (a vocabulary
    /// without real words, as a test model's, keeps the random start).
    func build(name: String, config ac: AdapterConfig, spec: TaskSpec, base: BaseModel) throws -> Adapter {
        let c = base.encoder.config
        let seed = settings.seed
        let adapter = Adapter(name: name, config: ac, hidden: c.hiddenSize, layers: c.numHiddenLayers, seed: seed)
        if let prefix = adapter.prefixModule, let p = ac.prefix {
            let ids = PromptModule.initialIDs(PromptConfig(length: p.length), labels: spec.labels, tokenizer: base.tokenizer, seed: seed)
            try prefix.initialize(from: base.encoder, ids: ids, cls: base.tokenizer.clsId, sep: base.tokenizer.sepId)
        }
        if let prompt = adapter.promptModule, let p = ac.prompt {
            let ids = PromptModule.initialIDs(p, labels: spec.labels, tokenizer: base.tokenizer, seed: seed)
            if !ids.isEmpty { prompt.initialize(from: base.encoder.weights.wordEmbeddings, ids: ids) }
        }
        return adapter
    }

    /// "adapter x: pfeiffer+ln, reduction 16 (bottleneck 24), relu; N trainable parameters (…); lr …".
    func describe(_ adapter: Adapter, head: PredictionHead, base: BaseModel, settings tc: TrainingConfig) -> String {
        let ac = adapter.config
        let hidden = base.encoder.config.hiddenSize
        let shape =
            ac.hasBottleneck ? ", reduction \(ac.reductionFactor) (bottleneck \(ac.bottleneckSize(hidden: hidden))), \(ac.nonLinearity.rawValue)" : ""
        let trainable = (adapter.parameters + head.parameters).reduce(0) { $0 + $1.value.count }
        return "adapter \(adapter.name): \(ac.architecture)\(shape); \(trainable) trainable parameters "
            + "(\(Self.parameterSummary(adapter, encoder: base.encoder))); "
            + "lr \(tc.learningRate), batch \(tc.batchSize), max \(tc.epochs) epochs, \(BLAS.threads) thread(s)"
    }

    /// "N in the adapter, p % of the encoder's M" (and, for a prefix, what is stored after training).
    public static func parameterSummary(_ adapter: Adapter, encoder: BertEncoder) -> String {
        let n = adapter.parameters.reduce(0) { $0 + $1.value.count }
        let total = encoder.weights.parameterCount
        var text = "\(n) in the adapter, \(String(format: "%.2f", 100 * Double(n) / Double(total))) % of the encoder's \(total)"
        if let p = adapter.prefixModule, let mlp = p.mlp {
            let stored = n - mlp.reduce(0) { $0 + $1.value.count } + p.length * 2 * encoder.config.hiddenSize * p.layers.count
            text += "; \(stored) stored after training (the prefix MLP's output, flattened)"
        }
        return text
    }
}
