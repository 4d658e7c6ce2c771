import AdapterFusion
import ArgumentParser
import Foundation

/// A recipe checked against its store and base model, with everything loaded to train or run it.
struct PreparedRecipe {
    let recipe: Recipe
    let encoder: BertEncoder
    let tokenizer: WordPieceTokenizer
    let fingerprint: String
    let records: [String: AdapterRecord]
    let spec: TaskSpec?

    /// Parses and checks `path`; every error names the recipe file, line and column.
    init(_ path: String, store: String?) throws {
        let r = try Recipe.load(path)
        let storePath = store ?? r.store
        guard FileManager.default.fileExists(atPath: (r.base as NSString).appendingPathComponent("config.json")) else {
            let b = r.ast.base!
            throw r.error(b.line, b.column, "no model at '\(r.base)' (config.json missing)", hint: "run `make setup`, or fix the path")
        }
        guard FileManager.default.fileExists(atPath: storePath) else {
            let s = r.ast.store!
            throw r.error(s.line, s.column, "no store at '\(storePath)'", hint: "train adapters into it first: afusion train-adapter --store \(storePath)")
        }
        var spec: TaskSpec?
        if let t = r.ast.task {
            guard FileManager.default.fileExists(atPath: t.value) else {
                throw r.error(t.line, t.column, "no task file '\(t.value)'",
                              hint: closestMatch((t.value as NSString).lastPathComponent, in: (try? FileManager.default.contentsOfDirectory(atPath: "tasks")) ?? [])
                                .map { "did you mean 'tasks/\($0)'?" })
            }
            spec = try TaskSpec.load(t.value)
        }
        let config = try BertConfig.load((r.base as NSString).appendingPathComponent("config.json"))
        fingerprint = try ModelLocator.fingerprint(r.base)
        records = try r.check(baseFingerprint: fingerprint, hiddenSize: config.hiddenSize, records: AdapterStore.list(storePath))
        // Names are not enough: every member's weights must load with the right shapes and
        // match their fingerprint, or training would fail (or worse) later.
        for n in r.adapterPositions {
            do { _ = try AdapterStore.load(storePath, name: n.value, baseFingerprint: fingerprint) } catch {
                throw r.error(n.line, n.column, "adapter '\(n.value)' cannot be used: \(error)")
            }
        }
        (encoder, tokenizer) = try ModelLocator.load(r.base)
        recipe = r
        self.spec = spec
    }
}

struct CheckRecipe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check", abstract: "Validate fusion recipes without training: syntax, the store, the adapters, the task.")

    @Argument(help: "Recipe files (fusion-recipes/*.fuse).") var recipes: [String]
    @Option(help: "Use this store instead of the recipe's.") var store: String?

    func run() throws {
        var failed = 0
        for path in recipes {
            do {
                let p = try PreparedRecipe(path, store: store)
                let r = p.recipe
                let c = p.encoder.config
                let members = r.expr.adapterNames
                let comp = Composition(r.expr, adapters: Dictionary(uniqueKeysWithValues: members.map {
                    ($0, Adapter(name: $0, config: p.records[$0]!.adapterConfig, hidden: c.hiddenSize, layers: c.numHiddenLayers, seed: 0))
                }), options: r.options, hidden: c.hiddenSize, layers: c.numHiddenLayers, seed: 0)
                let fusionParams = comp.parameters.reduce(0) { $0 + $1.value.count }
                print("\(path): ok — \(r.name): \(r.expr)")
                if let spec = p.spec {
                    print("  task \(spec.name) (\(spec.isRegression ? "regression" : "\(spec.labels.count) labels"), \(spec.metric.rawValue)); "
                          + "\(members.count) frozen adapters; \(fusionParams) fusion parameters; "
                          + "\(r.options.dynamic ? "dynamic" : "static"), temperature \(r.options.anneal ? "50→1" : String(r.options.temperature)), λ \(r.options.lambda)")
                    print("  train: \(r.training.epochs) epochs, lr \(r.training.learningRate), batch \(r.training.batchSize), max_length \(r.training.maxLength), seed \(r.training.seed)")
                } else {
                    print("  parallel: one pass, \(members.count) heads (\(members.joined(separator: ", ")))")
                }
            } catch let e as SourceError {
                printErr(e.description)
                failed += 1
            }
        }
        if failed > 0 { throw ExitCode(1) }
    }
}

struct TrainFusion: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-fusion",
        abstract: "Stage two: train the AdapterFusion layers and a new head for a recipe's target task; store them.")

    @Argument(help: "Recipe file (fusion-recipes/*.fuse).") var recipe: String
    @Option(help: "Use this store instead of the recipe's.") var store: String?
    @Option(help: "Threads (default: $AFUSION_THREADS, else the CPUs this process may use).") var threads: Int?
    @Flag(help: "Skip bad data rows (counted) instead of stopping.") var skipBadRows = false
    @Flag(help: "Do nothing if the store already holds this fusion, trained on the same recipe and members.") var ifMissing = false

    func run() throws {
        try Threads.apply(threads)
        let p = try PreparedRecipe(recipe, store: store)
        let r = p.recipe
        let storePath = store ?? r.store
        try StoreFile.checkWritable(storePath)  // before any training
        guard let spec = p.spec else {
            throw ValidationError("\(recipe): a parallel recipe trains nothing; run it with `afusion predict --recipe \(recipe)`")
        }
        let c = p.encoder.config
        let memberFingerprints = Dictionary(uniqueKeysWithValues: r.expr.adapterNames.map { ($0, p.records[$0]!.weightsFingerprint) })
        if ifMissing, let old = try FusionStore.list(storePath).first(where: { $0.name == r.name }),
           old.recipe == r.text, old.memberFingerprints == memberFingerprints, old.baseFingerprint == p.fingerprint {
            print("fusion '\(r.name)' is already in \(storePath) (dev \(old.metric) \(fmt(old.bestDevMetric ?? .nan)) at epoch \(old.bestEpoch)); skipping")
            return
        }
        var tc = r.training
        tc.hiddenDropout = c.hiddenDropoutProb
        tc.attentionDropout = c.attentionProbsDropoutProb
        let (train, dev) = try trainingSplits(spec, config: tc, tokenizer: p.tokenizer, skipBadRows: skipBadRows)
        let status = StatusLine()

        var adapters: [String: Adapter] = [:]
        for n in r.expr.adapterNames { adapters[n] = try AdapterStore.load(storePath, name: n, baseFingerprint: p.fingerprint).0 }
        let comp = Composition(r.expr, adapters: adapters, options: r.options, hidden: c.hiddenSize, layers: c.numHiddenLayers, seed: tc.seed)
        let headConfig = headConfig(for: spec)
        let head = PredictionHead(config: headConfig, hidden: c.hiddenSize, seed: tc.seed &+ 7)
        let params = comp.parameters + head.parameters
        print("fusion \(r.name): \(r.expr); \(params.reduce(0) { $0 + $1.value.count }) trainable parameters "
              + "(\(comp.parameters.reduce(0) { $0 + $1.value.count }) fusion + head); lr \(tc.learningRate), batch \(tc.batchSize), max \(tc.epochs) epochs")
        let trainer = Trainer(encoder: p.encoder, hook: comp.root, head: head, parameters: params)
        trainer.regularizer = { comp.regularize() }
        trainer.onProgress = { comp.setProgress($0) }
        trainer.beforeEvaluation = { comp.finishTraining() }
        let result = try trainer.train(train: train, dev: dev, spec: spec, config: tc) { report($0, metric: spec.metric.rawValue, status: status) }
        status.finish()
        let record = FusionRecord(
            name: r.name, recipe: r.text, recipeFile: recipe, task: spec.name, taskFile: spec.path, labels: spec.labels,
            metric: spec.metric.rawValue, composition: r.expr.description, memberFingerprints: memberFingerprints, options: r.options,
            headConfig: headConfig, baseModel: ModelLocator.name(r.base), baseFingerprint: p.fingerprint, hiddenSize: c.hiddenSize,
            numLayers: c.numHiddenLayers, devMetrics: result.devMetrics, bestEpoch: result.bestEpoch,
            hyperparameters: String(data: try JSONEncoder().encode(tc), encoding: .utf8)!, seed: Int(tc.seed),
            created: ISO8601DateFormatter().string(from: Date()))
        try FusionStore.save(composition: comp, head: head, record: record, to: storePath)
        print("best epoch \(result.bestEpoch): dev \(spec.metric.rawValue) \(fmt(result.bestDevMetric)); saved fusion '\(r.name)' and its head to \(storePath)")
    }
}
