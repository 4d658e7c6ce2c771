import Foundation

/// Stage two as a library call: a recipe's composition (fusion layers seeded from the recipe's
/// seed) and a new head for its target task, trained over the frozen members and base:
///
///     let recipe = try PreparedRecipe("fusion-recipes/sms_spam_fusion.fuse")
///     let trained = try FusionTraining(recipe).train()!
///     try FusionStore.save(composition: trained.composition, head: trained.head, record: trained.record, to: recipe.storePath)
public struct FusionTraining {
    public let recipe: PreparedRecipe
    /// The recipe's `train` settings (epochs, lr, batch, seed, samples).
    public var settings: TrainingConfig
    /// Skip and count malformed data rows instead of stopping.
    public var skipBadRows = false

    public init(_ recipe: PreparedRecipe) {
        self.recipe = recipe
        settings = recipe.recipe.training
    }

    /// A trained fusion, its head and the record `FusionStore.save` writes.
    public struct Trained {
        public let composition: Composition
        public let head: PredictionHead
        public let record: FusionRecord
    }

    /// Trains the recipe's composition and a new head (data-parallel over `cluster`'s ranks).
    /// Returns what to store on rank 0, nil on the other ranks.
    public func train(cluster: Cluster = .alone, progress: (RunEvent) -> Void = { _ in }) throws -> Trained? {
        let r = recipe.recipe
        guard let spec = recipe.spec else {
            throw TrainingError("\(r.name): a parallel recipe trains nothing; run it with `afusion predict --recipe`")
        }
        let c = recipe.encoder.config
        var tc = settings
        tc.hiddenDropout = c.hiddenDropoutProb
        tc.attentionDropout = c.attentionProbsDropoutProb
        let data = try TrainingData(spec, settings: tc, tokenizer: recipe.tokenizer, skipBadRows: skipBadRows)
        progress(.data(data.summary(task: spec.name)))
        let comp = recipe.composition(seed: tc.seed)
        let head = PredictionHead(config: HeadConfig(task: spec), hidden: c.hiddenSize, seed: tc.seed &+ 7)
        let trainable = (comp.parameters + head.parameters).reduce(0) { $0 + $1.value.count }
        progress(
            .built(
                "fusion \(r.name): \(r.expr); \(trainable) trainable parameters "
                    + "(\(comp.parameters.reduce(0) { $0 + $1.value.count }) fusion + head); lr \(tc.learningRate), batch \(tc.batchSize), max \(tc.epochs) epochs"
            ))
        let result = try Trainer(encoder: recipe.encoder, model: comp, head: head).train(
            train: data.train, dev: data.dev, spec: spec, config: tc, cluster: cluster
        ) { progress(.training($0)) }
        guard cluster.isRoot else { return nil }
        let record = FusionRecord(
            name: r.name, recipe: r.text, recipeFile: r.file, task: spec.name, taskFile: spec.path, labels: spec.labels,
            metric: spec.metric.rawValue, composition: r.expr.description, memberFingerprints: recipe.memberFingerprints, options: r.options,
            headConfig: head.config, baseModel: ModelDirectory.name(r.base), baseFingerprint: recipe.fingerprint, hiddenSize: c.hiddenSize,
            numLayers: c.numHiddenLayers, devMetrics: result.devMetrics, bestEpoch: result.bestEpoch, settings: tc, seed: Int(tc.seed),
            created: ISO8601DateFormatter().string(from: Date()))
        return Trained(composition: comp, head: head, record: record)
    }
}
