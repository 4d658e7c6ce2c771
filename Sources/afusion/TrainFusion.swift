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
        var run = FusionTraining(p)
        run.skipBadRows = skipBadRows
        let status = StatusLine()
        status.update("loading \(spec.name) data…", force: true)
        let trained = try run.train(cluster: cluster, progress: reporter(status, metric: spec.metric.rawValue))
        status.finish()
        guard let trained else { return }
        let (comp, head, record) = (trained.composition, trained.head, trained.record)
        try FusionStore.save(composition: comp, head: head, record: record, to: storePath, replace: replace)
        print(
            "best epoch \(record.bestEpoch): dev \(spec.metric.rawValue) \(fmt(record.bestDevMetric ?? .nan)); saved fusion '\(r.name)' and its head to \(storePath)"
        )
    }
}
