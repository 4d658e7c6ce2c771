import AdapterFusion
import ArgumentParser
import Foundation

/// What `train-adapter` and `train-adapters` share: the method and its shape, and the training settings.
struct AdapterTrainingOptions: ParsableArguments {
    @Option(
        help:
            "Method: bottleneck (Pfeiffer/Houlsby adapters), lora, prefix, prompt, bitfit, ia3, parallel (a scaled adapter beside the FFN) or unipelt (gated adapter + prefix + LoRA per layer)."
    ) var method: PEFTMethod = .bottleneck
    @Option(help: "Placement of bottleneck modules: pfeiffer (one per layer, after the FFN) or houlsby (two per layer; default pfeiffer).")
    var config: AdapterPlacement?
    @Flag(
        inversion: .prefixedNo,
        help:
            "The adapter reads LN(h + x), the layer's own LayerNorm of the sublayer output plus the residual (AdapterHub's seq_bn), instead of h. Default: on for pfeiffer, off for houlsby (as AdapterHub's double_seq_bn)."
    ) var lnBefore: Bool?
    @Option(help: "Reduction factor: bottleneck = hidden / reduction (default 16; 2 for parallel adapters, as He et al.).") var reduction: Int?
    @Option(help: "Scale s of a bottleneck's output, in (0, 100]: out = h + s·up(…) (default 1; 4 for parallel adapters).")
    var scaling: Float?
    @Option(help: "LoRA rank r (default 8).") var loraRank: Int?
    @Option(help: "LoRA alpha: the update is scaled by alpha / r (default 16).") var loraAlpha: Float?
    @Option(help: "Projections LoRA changes, comma-separated: query, key, value, attention_output, ffn_in, ffn_out (default query,value).")
    var loraTargets: String?
    @Option(help: "Dropout on the LoRA input while training (default 0.1).") var loraDropout: Float?
    @Option(help: "Prefix vectors per layer (prefix, unipelt; default 10).") var prefixLength: Int?
    @Option(help: "Hidden width of the prefix's training MLP (0: train the vectors directly; default 512).") var prefixMlp: Int?
    @Option(help: "Soft prompt tokens (prompt: default 10; unipelt: adds a prompt of this many tokens).") var prompt: Int?
    @Option(help: "Where the prompt starts: vocab (random real words, the default) or labels (the label names' tokens).")
    var promptInit: String?
    @Option(
        help:
            "Biases BitFit trains, comma-separated: query, key, value, attention_output, attention_norm, ffn_in, ffn_out, output_norm (default: all but key, which cannot learn)."
    ) var bitfitTargets: String?
    @Option(help: "What IA³ scales, comma-separated: key, value, ffn (default all three).") var ia3Targets: String?
    @Option(help: "Bottleneck non-linearity: relu (the default), gelu or swish.") var nonLinearity: Activation?
    @Option(help: "Layers without an adapter, comma-separated (e.g. 0,1); not for prompt tuning.") var leaveOut: String?
    @Option(help: "Maximum epochs.") var epochs = 3
    @Option(
        help:
            "Peak learning rate (AdamW, linear warm-up over 10 % of steps, then linear decay). Default per method (what trained well on our tasks): 1e-3 for bottleneck, parallel and prefix; 3e-3 for LoRA; 5e-3 for BitFit; 1e-2 for prompt; 3e-2 for IA³; 2e-3 for UniPELT."
    ) var lr: Float?
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
        if let lr { try Check.learningRate(lr) }
        try Check.range(maxLen, 8...100_000, option: "--max-len")
        try Check.range(patience, 1...100_000, option: "--patience")
        try Check.range(maxTrain, 1...Int.max, option: "--max-train")
        try Check.range(maxDev, 1...Int.max, option: "--max-dev")
        try Check.range(reduction, 1...100_000, option: "--reduction")
        try Check.range(loraRank, 1...100_000, option: "--lora-rank")
        try Check.range(prefixLength, 1...510, option: "--prefix-length")
        try Check.range(prefixMlp, 0...65_536, option: "--prefix-mlp")
        try Check.range(prompt, method == .unipelt ? 0...510 : 1...510, option: "--prompt")
        if let d = loraDropout, !(d >= 0 && d < 1) { throw ValidationError("--lora-dropout must be in [0, 1), got \(d)") }
        if let a = loraAlpha, !(a.isFinite && a > 0 && a <= 1e6) { throw ValidationError("--lora-alpha must be in (0, 1e6], got \(a)") }
        if let s = scaling, !(s.isFinite && s > 0 && s <= 100) {
            throw ValidationError("--scaling must be in (0, 100], got \(s) (the adapter's output is multiplied by it)")
        }
        try Check.range(modelOptions.threads, 1...4096, option: "--threads")
        try refuseUnusedOptions()
    }

    /// Options `--method` does not read are refused with the reason, never ignored.
    func refuseUnusedOptions() throws {
        let bottleneck: Set<PEFTMethod> = [.bottleneck, .parallel, .unipelt]
        let uses: [(String, Bool, Set<PEFTMethod>)] = [
            ("--config", config != nil, bottleneck), ("--ln-before/--no-ln-before", lnBefore != nil, [.bottleneck]),
            ("--reduction", reduction != nil, bottleneck), ("--scaling", scaling != nil, bottleneck),
            ("--non-linearity", nonLinearity != nil, bottleneck),
            ("--lora-rank", loraRank != nil, [.lora, .unipelt]), ("--lora-alpha", loraAlpha != nil, [.lora, .unipelt]),
            ("--lora-targets", loraTargets != nil, [.lora, .unipelt]), ("--lora-dropout", loraDropout != nil, [.lora, .unipelt]),
            ("--prefix-length", prefixLength != nil, [.prefix, .unipelt]), ("--prefix-mlp", prefixMlp != nil, [.prefix, .unipelt]),
            ("--prompt", prompt != nil, [.prompt, .unipelt]), ("--prompt-init", promptInit != nil, [.prompt, .unipelt]),
            ("--bitfit-targets", bitfitTargets != nil, [.bitfit]), ("--ia3-targets", ia3Targets != nil, [.ia3]),
            ("--leave-out", leaveOut != nil, Set(PEFTMethod.allCases).subtracting([.prompt])),
        ]
        for (option, given, methods) in uses where given && !methods.contains(method) {
            let users = PEFTMethod.allCases.filter { methods.contains($0) }.map(\.rawValue).joined(separator: ", ")
            throw ValidationError("\(option) does not apply to --method \(method.rawValue) (it sets \(users)); leave it out")
        }
        if promptInit != nil && method == .unipelt && (prompt ?? 0) == 0 {
            throw ValidationError("--prompt-init needs --prompt N with --method unipelt (UniPELT has no prompt by default)")
        }
    }

    /// Trains an adapter named `name` for `spec` (data-parallel over `cluster`'s ranks), printing
    /// progress. Returns what to store on rank 0, nil on the other ranks.
    func train(_ spec: TaskSpec, name adapterName: String, base: BaseModel, cluster: Cluster) throws -> (Adapter, PredictionHead, AdapterRecord)? {
        let c = base.encoder.config
        try Check.maxLength(maxLen, model: c)
        var tc = TrainingConfig()
        tc.epochs = epochs; tc.learningRate = lr ?? AdapterTraining.defaultLearningRate(method); tc.batchSize = batch
        tc.maxLength = maxLen ?? spec.maxLength
        tc.seed = seed; tc.patience = patience; tc.maxTrain = maxTrain; tc.maxDev = maxDev
        let leave = try (leaveOut ?? "").split(separator: ",").map { s -> Int in
            guard let l = Int(s.trimmingCharacters(in: .whitespaces)), (0..<c.numHiddenLayers).contains(l) else {
                throw ValidationError("--leave-out: '\(s)' is not a layer in 0..<\(c.numHiddenLayers)")
            }
            return l
        }
        if Set(leave).count == c.numHiddenLayers {
            throw ValidationError(
                "--leave-out \(leaveOut ?? "") leaves out every one of the model's \(c.numHiddenLayers) layers: nothing would train")
        }
        var run = AdapterTraining(config: try adapterConfig(leaveOut: leave, encoder: c), settings: tc)
        run.skipBadRows = skipBadRows
        let status = StatusLine()
        status.update("loading \(spec.name) data…", force: true)
        let ranks = cluster.isParallel ? " × \(cluster.size) ranks" : ""
        let trained = try run.train(
            task: spec, name: adapterName, base: base, cluster: cluster, progress: reporter(status, metric: spec.metric.rawValue, built: ranks))
        status.finish()
        return trained.map { ($0.adapter, $0.head, $0.record) }
    }
}

extension AdapterTrainingOptions {
    /// Parses a comma-separated target list for `option`.
    func targets(_ text: String, option: String) throws -> [ProjectionTarget] {
        try text.split(separator: ",").map { part in
            let name = part.trimmingCharacters(in: .whitespaces)
            guard let t = ProjectionTarget(rawValue: name) else {
                throw ValidationError("\(option): '\(name)' is not a target (\(ProjectionTarget.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            return t
        }
    }

    /// The method's configuration from the options, checked against the encoder.
    func adapterConfig(leaveOut: [Int], encoder c: BertConfig) throws -> AdapterConfig {
        var ac = AdapterConfig.method(method)
        ac.placement = config ?? .pfeiffer
        ac.reductionFactor = reduction ?? (method == .parallel ? 2 : 16)
        ac.nonLinearity = nonLinearity ?? .relu
        ac.leaveOut = leaveOut
        ac.lnBefore = method == .bottleneck ? (lnBefore ?? AdapterConfig.defaultLNBefore(ac.placement)) : false
        if let scaling { ac.scaling = scaling }
        ac.intermediateSize = c.intermediateSize
        if ac.lora != nil {
            let d = LoRAConfig()
            ac.lora = LoRAConfig(
                rank: loraRank ?? d.rank, alpha: loraAlpha ?? d.alpha,
                targets: try loraTargets.map { try targets($0, option: "--lora-targets") } ?? d.targets, dropout: loraDropout ?? d.dropout)
        }
        if ac.prefix != nil { ac.prefix = PrefixConfig(length: prefixLength ?? 10, mlpHidden: prefixMlp ?? 512) }
        if method == .prompt || (method == .unipelt && (prompt ?? 0) > 0) {
            ac.prompt = PromptConfig(length: prompt ?? 10, initialization: promptInit ?? "vocab")
        }
        if let t = bitfitTargets, method == .bitfit { ac.bitfit = BitFitConfig(targets: try targets(t, option: "--bitfit-targets")) }
        if let t = ia3Targets, method == .ia3 { ac.ia3 = IA3Config(targets: try targets(t, option: "--ia3-targets")) }
        if let problem = ac.problem(hidden: c.hiddenSize, layers: c.numHiddenLayers, maxPositions: c.maxPositionEmbeddings) {
            throw ValidationError("--method \(method.rawValue): \(problem)")
        }
        return ac
    }
}

/// Saves a trained adapter into `store` (creating its folder) and says so; an adapter of the same
/// name is replaced only with `replace`, naming the fusions that use it.
func saveAdapter(_ trained: (Adapter, PredictionHead, AdapterRecord), to store: String, replace: Bool) throws {
    let (adapter, head, record) = trained
    let dir = (store as NSString).deletingLastPathComponent
    if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
    let affected = replace ? fusionsAffected(byReplacing: record.name, in: store) : []
    try AdapterStore.save(adapter: adapter, head: head, record: record, to: store, replace: replace)
    print(
        "best epoch \(record.bestEpoch): dev \(record.metric) \(fmt(record.bestDevMetric ?? .nan)); saved adapter '\(record.name)' and its head to \(store)"
    )
    noteReplaced(record.name, affecting: affected)
}

struct TrainAdapter: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-adapter",
        abstract:
            "Stage one: train an adapter (bottleneck, LoRA, prefix, prompt, BitFit, IA³, parallel or UniPELT) and a task head on a frozen encoder; store them in an HDF5 file.",
        discussion: "Under mpirun (Open MPI), the ranks train the one adapter data-parallel; rank 0 evaluates and writes the store.")

    @Option(help: "Task file (tasks/*.toml).") var task: String
    @Option(help: "HDF5 store to add the adapter to (created if missing).") var store = "runs/store.h5"
    @Option(help: "Name of the adapter in the store (default: the task's name).") var name: String?
    @Flag(help: "Do nothing if the store already holds an adapter of this name for this base model and task.")
    var ifMissing = false
    @Flag(help: "Replace an adapter of this name already in the store (without it, that is an error, found before training).")
    var replace = false
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
            if cluster.isRoot { try AdapterStore.checkSave(store, kind: .adapter, name: adapterName, replace: replace) }
            let (encoder, tokenizer) = try ModelDirectory.load(options.modelOptions.modelDirectory)
            let base = BaseModel(
                encoder: encoder, tokenizer: tokenizer, fingerprint: fingerprint, name: ModelDirectory.name(options.modelOptions.modelDirectory))
            guard let trained = try options.train(spec, name: adapterName, base: base, cluster: cluster) else { return }
            try saveAdapter(trained, to: store, replace: replace)
        }
    }
}
