import AdapterFusion
import ArgumentParser
import Foundation

/// What `train-adapter` and `train-adapters` share: the adapter's shape and the training settings.
struct AdapterTrainingOptions: ParsableArguments {
    @Option(help: "Placement: pfeiffer (one per layer, after the FFN) or houlsby (two per layer).") var config: AdapterPlacement = .pfeiffer
    @Flag(
        inversion: .prefixedNo,
        help:
            "The adapter reads LN(h + x), the layer's own LayerNorm of the sublayer output plus the residual (AdapterHub's seq_bn), instead of h. Default: on for pfeiffer, off for houlsby (as AdapterHub's double_seq_bn)."
    ) var lnBefore: Bool?
    @Option(help: "Reduction factor: bottleneck = hidden / reduction.") var reduction = 16
    @Option(help: "Bottleneck non-linearity: relu, gelu or swish.") var nonLinearity: Activation = .relu
    @Option(help: "Layers without an adapter, comma-separated (e.g. 0,1).") var leaveOut = ""
    @Option(help: "Maximum epochs.") var epochs = 3
    @Option(
        help:
            "Peak learning rate (AdamW, linear warm-up over 10 % of steps, then linear decay). 1e-3 suits adapters on short schedules; 1e-4 needs ~10x the epochs."
    ) var lr: Float = 1e-3
    @Option(help: "Examples per batch.") var batch = 32
    @Option(help: "Maximum tokens per example (default: the task's max_length).") var maxLen: Int?
    @Option(help: "Seed for initialisation, shuffling and dropout.") var seed: UInt64 = 42
    @Option(help: "Epochs without dev improvement before stopping early.") var patience = 2
    @Option(help: "Train on at most N examples (a seeded sample), for quick runs.") var maxTrain: Int?
    @Option(help: "Evaluate on at most N dev examples (a seeded sample).") var maxDev: Int?
    @Flag(help: "Skip rows with a missing field, unknown label, empty text or invalid UTF-8 (counted) instead of stopping.")
    var skipBadRows = false
    @OptionGroup var modelOptions: ModelOptions

    func validate() throws {
        try Check.range(epochs, 1...100_000, option: "--epochs")
        try Check.range(batch, 1...65_536, option: "--batch")
        try Check.learningRate(lr)
        try Check.range(maxLen, 8...100_000, option: "--max-len")
        try Check.range(patience, 1...100_000, option: "--patience")
        try Check.range(maxTrain, 1...Int.max, option: "--max-train")
        try Check.range(maxDev, 1...Int.max, option: "--max-dev")
        try Check.range(reduction, 1...100_000, option: "--reduction")
        try Check.range(modelOptions.threads, 1...4096, option: "--threads")
    }

    /// Trains an adapter named `name` for `spec` (data-parallel over `cluster`'s ranks). Returns
    /// what to store on rank 0, nil on the other ranks.
    func train(
        _ spec: TaskSpec, name adapterName: String, encoder: BertEncoder, tokenizer: WordPieceTokenizer, fingerprint: String,
        cluster: Cluster
    ) throws -> (Adapter, PredictionHead, AdapterRecord)? {
        let c = encoder.config
        try Check.maxLength(maxLen, model: c)
        var tc = TrainingConfig()
        tc.epochs = epochs; tc.learningRate = lr; tc.batchSize = batch; tc.maxLength = maxLen ?? spec.maxLength
        tc.seed = seed; tc.patience = patience; tc.maxTrain = maxTrain; tc.maxDev = maxDev
        tc.hiddenDropout = c.hiddenDropoutProb; tc.attentionDropout = c.attentionProbsDropoutProb
        let leave = try leaveOut.split(separator: ",").map { s -> Int in
            guard let l = Int(s.trimmingCharacters(in: .whitespaces)), (0..<c.numHiddenLayers).contains(l) else {
                throw ValidationError("--leave-out: '\(s)' is not a layer in 0..<\(c.numHiddenLayers)")
            }
            return l
        }
        guard reduction >= 1 && reduction <= c.hiddenSize else { throw ValidationError("--reduction must be in 1...\(c.hiddenSize)") }
        let adapterConfig = AdapterConfig(
            placement: config, reductionFactor: reduction, nonLinearity: nonLinearity, leaveOut: leave,
            lnBefore: lnBefore ?? AdapterConfig.defaultLNBefore(config))
        let headConfig = headConfig(for: spec)

        let (train, dev) = try trainingSplits(spec, config: tc, tokenizer: tokenizer, skipBadRows: skipBadRows)
        let status = StatusLine()

        let adapter = Adapter(name: adapterName, config: adapterConfig, hidden: c.hiddenSize, layers: c.numHiddenLayers, seed: seed)
        let head = PredictionHead(config: headConfig, hidden: c.hiddenSize, seed: seed &+ 7)
        let params = adapter.parameters + head.parameters
        print(
            "adapter \(adapterName): \(adapterConfig.architecture), reduction \(reduction) (bottleneck \(adapterConfig.bottleneckSize(hidden: c.hiddenSize))), "
                + "\(nonLinearity.rawValue); \(params.reduce(0) { $0 + $1.value.count }) trainable parameters; lr \(lr), batch \(batch), "
                + "max \(epochs) epochs, \(BLAS.threads) thread(s)" + (cluster.isParallel ? " × \(cluster.size) ranks" : ""))
        let trainer = Trainer(encoder: encoder, model: adapter, head: head)
        let result = try trainer.train(train: train, dev: dev, spec: spec, config: tc, cluster: cluster) { event in
            report(event, metric: spec.metric.rawValue, status: status)
        }
        status.finish()
        guard cluster.isRoot else { return nil }
        let record = AdapterRecord(
            name: adapterName, task: spec.name, taskFile: spec.path, labels: spec.labels, metric: spec.metric.rawValue,
            adapterConfig: adapterConfig, headConfig: headConfig, baseModel: ModelDirectory.name(modelOptions.modelDirectory),
            baseFingerprint: fingerprint, hiddenSize: c.hiddenSize, numLayers: c.numHiddenLayers,
            devMetrics: result.devMetrics, bestEpoch: result.bestEpoch, settings: tc,
            seed: Int(seed), created: ISO8601DateFormatter().string(from: Date()))
        return (adapter, head, record)
    }
}

/// Saves a trained adapter into `store` (creating its folder) and says so.
func saveAdapter(_ trained: (Adapter, PredictionHead, AdapterRecord), to store: String) throws {
    let (adapter, head, record) = trained
    let dir = (store as NSString).deletingLastPathComponent
    if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
    try AdapterStore.save(adapter: adapter, head: head, record: record, to: store)
    print(
        "best epoch \(record.bestEpoch): dev \(record.metric) \(fmt(record.bestDevMetric ?? .nan)); saved adapter '\(record.name)' and its head to \(store)"
    )
}

struct TrainAdapter: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-adapter",
        abstract: "Stage one: train a bottleneck adapter and a task head on a frozen encoder; store them in an HDF5 file.",
        discussion: "Under mpirun (Open MPI), the ranks train the one adapter data-parallel; rank 0 evaluates and writes the store.")

    @Option(help: "Task file (tasks/*.toml).") var task: String
    @Option(help: "HDF5 store to add the adapter to (created if missing).") var store = "runs/store.h5"
    @Option(help: "Name of the adapter in the store (default: the task's name).") var name: String?
    @Flag(help: "Do nothing if the store already holds an adapter of this name for this base model and task.")
    var ifMissing = false
    @OptionGroup var options: AdapterTrainingOptions

    func validate() throws {
        if let name { try Check.name(name, option: "--name") }
    }

    func run() throws {
        try Distributed.run { cluster in
            try Threads.apply(options.modelOptions.threads)
            if cluster.isRoot { try StoreFile.checkWritable(store) }  // before any training: a save that would fail is found now
            let spec = try TaskSpec.load(task)
            let adapterName = name ?? spec.name
            let fingerprint = try ModelDirectory.fingerprint(options.modelOptions.modelDirectory)
            var skip = 0
            if cluster.isRoot, ifMissing, FileManager.default.fileExists(atPath: store),
                let rec = try AdapterStore.list(store).first(where: { $0.name == adapterName }),
                rec.baseFingerprint == fingerprint, rec.task == spec.name
            {
                print(
                    "adapter '\(adapterName)' is already in \(store) (dev \(spec.metric.rawValue) \(fmt(rec.bestDevMetric ?? .nan)) at epoch \(rec.bestEpoch)); skipping"
                )
                skip = 1
            }
            if try cluster.broadcast(skip) == 1 { return }
            try Check.name(adapterName, option: "adapter name")
            let (encoder, tokenizer) = try ModelDirectory.load(options.modelOptions.modelDirectory)
            guard
                let trained = try options.train(
                    spec, name: adapterName, encoder: encoder, tokenizer: tokenizer, fingerprint: fingerprint, cluster: cluster)
            else { return }
            try saveAdapter(trained, to: store)
        }
    }
}
