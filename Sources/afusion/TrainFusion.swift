import AdapterFusion
import ArgumentParser
import Foundation

struct TrainFusion: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-fusion",
        abstract: "Stage two: train the AdapterFusion layers and a new head for a recipe's target task; store them.",
        discussion: "Under mpirun (Open MPI), the ranks train the fusion data-parallel; rank 0 evaluates and writes the store.")

    @Argument(help: "Recipe file (fusion-recipes/*.fuse).") var recipe: String
    @Option(help: "Use this store instead of the recipe's.") var store: String?
    @Option(help: "Threads (default: $AFUSION_THREADS, else the CPUs this process may use).") var threads: Int?
    @Flag(help: "Skip bad data rows (counted) instead of stopping.") var skipBadRows = false
    @Flag(help: "Do nothing if the store already holds this fusion, trained on the same recipe and members.") var ifMissing = false
    @Flag(help: "Replace a fusion of this name already in the store (without it, that is an error, found before training).")
    var replace = false

    func run() throws {
        try Distributed.run { cluster in try train(cluster) }
    }

    func train(_ cluster: Cluster) throws {
        try Threads.apply(threads)
        let p = try PreparedRecipe(recipe, store: store)
        let r = p.recipe
        let storePath = p.storePath
        if cluster.isRoot { try StoreFile.checkWritable(storePath) }  // before any training
        guard let spec = p.spec else {
            throw CommandError("\(recipe): a parallel recipe trains nothing; run it with `afusion predict --recipe \(recipe)`")
        }
        let c = p.encoder.config
        let memberFingerprints = p.memberFingerprints
        var skip = 0
        if cluster.isRoot, ifMissing, let old = try FusionStore.list(storePath).first(where: { $0.name == r.name }),
            old.recipe == r.text, old.memberFingerprints == memberFingerprints, old.baseFingerprint == p.fingerprint
        {
            print(
                "fusion '\(r.name)' is already in \(storePath) (dev \(old.metric) \(fmt(old.bestDevMetric ?? .nan)) at epoch \(old.bestEpoch)); skipping"
            )
            skip = 1
        }
        if try cluster.broadcast(skip) == 1 { return }
        if cluster.isRoot { try AdapterStore.checkSave(storePath, kind: .fusion, name: r.name, replace: replace) }
        var tc = r.training
        tc.hiddenDropout = c.hiddenDropoutProb
        tc.attentionDropout = c.attentionProbsDropoutProb
        let (train, dev) = try trainingSplits(spec, config: tc, tokenizer: p.tokenizer, skipBadRows: skipBadRows)
        let status = StatusLine()

        let comp = p.composition(seed: tc.seed)
        let headConfig = headConfig(for: spec)
        let head = PredictionHead(config: headConfig, hidden: c.hiddenSize, seed: tc.seed &+ 7)
        let params = comp.parameters + head.parameters
        print(
            "fusion \(r.name): \(r.expr); \(params.reduce(0) { $0 + $1.value.count }) trainable parameters "
                + "(\(comp.parameters.reduce(0) { $0 + $1.value.count }) fusion + head); lr \(tc.learningRate), batch \(tc.batchSize), max \(tc.epochs) epochs"
        )
        let trainer = Trainer(encoder: p.encoder, model: comp, head: head)
        let result = try trainer.train(train: train, dev: dev, spec: spec, config: tc, cluster: cluster) {
            report($0, metric: spec.metric.rawValue, status: status)
        }
        status.finish()
        guard cluster.isRoot else { return }
        let record = FusionRecord(
            name: r.name, recipe: r.text, recipeFile: recipe, task: spec.name, taskFile: spec.path, labels: spec.labels,
            metric: spec.metric.rawValue, composition: r.expr.description, memberFingerprints: memberFingerprints, options: r.options,
            headConfig: headConfig, baseModel: ModelDirectory.name(r.base), baseFingerprint: p.fingerprint, hiddenSize: c.hiddenSize,
            numLayers: c.numHiddenLayers, devMetrics: result.devMetrics, bestEpoch: result.bestEpoch,
            settings: tc, seed: Int(tc.seed),
            created: ISO8601DateFormatter().string(from: Date()))
        try FusionStore.save(composition: comp, head: head, record: record, to: storePath, replace: replace)
        print(
            "best epoch \(result.bestEpoch): dev \(spec.metric.rawValue) \(fmt(result.bestDevMetric)); saved fusion '\(r.name)' and its head to \(storePath)"
        )
    }
}
