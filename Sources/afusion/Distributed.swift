import AdapterFusion
import ArgumentParser
import Foundation

/// How a command runs as one rank of an MPI job (or alone).
enum Distributed {
    /// Joins the job (a no-op without an MPI launcher), silences standard output on ranks other
    /// than 0 (they would repeat rank 0's lines), and on an error ends the whole job: the other
    /// ranks would otherwise wait forever in a collective.
    static func run(_ body: (Cluster) throws -> Void) throws {
        let cluster = Cluster.shared
        try cluster.check()
        guard cluster.isParallel else { return try body(cluster) }
        if !cluster.isRoot { _ = freopen("/dev/null", "w", stdout) }
        do {
            try body(cluster)
        } catch {
            FileHandle.standardError.write(Data("afusion (rank \(cluster.rank) of \(cluster.size)): \(error)\n".utf8))
            cluster.abort(1)
        }
        cluster.barrier()
    }
}

/// `train-adapters tasks/a.toml tasks/b.toml …`: stage one for many tasks into one store. Under
/// mpirun every rank trains whole tasks (largest data first, each to the least-loaded rank),
/// each exactly as `train-adapter --task` alone would; rank 0 writes them all into the store, so
/// one store, one writer. Until then the other ranks keep theirs in `<store>.rank<r>.h5`.
struct TrainAdapters: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-adapters",
        abstract: "Stage one for many tasks: an adapter per task file, into one store; under mpirun, whole tasks per rank.")

    @Argument(help: "Task files (tasks/*.toml); each adapter is named after its task.") var tasks: [String]
    @Option(help: "HDF5 store to add the adapters to (created if missing).") var store = "runs/store.h5"
    @Flag(help: "Skip tasks whose adapter the store already holds for this base model.") var ifMissing = false
    @Flag(help: "Replace adapters of these names already in the store (without it, that is an error, found before training).")
    var replace = false
    @OptionGroup var options: AdapterTrainingOptions

    func validate() throws {
        guard !tasks.isEmpty else { throw ValidationError("give at least one task file") }
    }

    func run() throws {
        try Distributed.run { cluster in
            try Threads.apply(options.modelOptions.threads)
            if cluster.isRoot { try StoreFile.checkWritable(store) }
            let specs = try tasks.map { try TaskSpec.load($0) }
            for (i, s) in specs.enumerated() {
                try Check.name(s.name, option: "task name")
                if let j = specs[..<i].firstIndex(where: { $0.name == s.name }) {
                    throw CommandError("\(tasks[i]) and \(tasks[j]) both name the task '\(s.name)'; each adapter is named after its task")
                }
            }
            let fingerprint = try ModelDirectory.fingerprint(options.modelOptions.modelDirectory)
            // Rank 0 decides which tasks still need training; every rank learns the same list.
            var todo = Array(specs.indices)
            if cluster.isRoot, ifMissing, FileManager.default.fileExists(atPath: store) {
                let stored = try AdapterStore.list(store)
                todo = todo.filter { i in
                    !stored.contains { $0.name == specs[i].name && $0.baseFingerprint == fingerprint && $0.task == specs[i].name }
                }
                for i in specs.indices where !todo.contains(i) { print("adapter '\(specs[i].name)' is already in \(store); skipping") }
            }
            if cluster.isRoot { for i in todo { try AdapterStore.checkSave(store, kind: .adapter, name: specs[i].name, replace: replace) } }
            let decided = todo
            todo = try specs.indices.filter { try cluster.broadcast(decided.contains($0) ? 1 : 0) == 1 }
            let owner = Self.assign(todo.map { (task: $0, size: Self.dataSize(specs[$0])) }, ranks: cluster.size)
            if cluster.isRoot && cluster.isParallel {
                for r in 0..<cluster.size {
                    print("rank \(r): " + (owner.filter { $0.value == r }.keys.sorted().map { specs[$0].name }.joined(separator: ", ")))
                }
            }
            let (encoder, tokenizer) = try ModelDirectory.load(options.modelOptions.modelDirectory)
            let base = BaseModel(
                encoder: encoder, tokenizer: tokenizer, fingerprint: fingerprint, name: ModelDirectory.name(options.modelOptions.modelDirectory))
            let mine = todo.filter { owner[$0] == cluster.rank }
            // Ranks other than 0 also keep what they trained in a store of their own until rank 0
            // has stored it: if the job dies first, nothing trained is lost.
            let rescue = store + ".rank\(cluster.rank).h5"
            for i in mine {
                let trained = try options.train(specs[i], name: specs[i].name, base: base, cluster: .alone)!
                try saveAdapter(trained, to: cluster.isRoot ? store : rescue, replace: cluster.isRoot ? replace : true)
            }
            // The rescue store travels to rank 0 whole, once: a send waits for rank 0 to receive,
            // which it does after its own tasks.
            if !cluster.isRoot && !mine.isEmpty { try cluster.send(try Data(contentsOf: URL(fileURLWithPath: rescue)), to: 0) }
            if cluster.isRoot {
                for r in 1..<max(cluster.size, 1) {
                    let theirs = todo.filter { owner[$0] == r }
                    if theirs.isEmpty { continue }
                    let tmp = NSTemporaryDirectory() + "afusion-received-\(UUID().uuidString).h5"
                    defer { try? FileManager.default.removeItem(atPath: tmp) }
                    try cluster.receive(from: r).write(to: URL(fileURLWithPath: tmp))
                    for i in theirs {
                        try saveAdapter(try AdapterStore.load(tmp, name: specs[i].name, baseFingerprint: fingerprint), to: store, replace: replace)
                        print("(trained by rank \(r))")
                    }
                }
            }
            // Everything is in the store: the rescue copies can go.
            cluster.barrier()
            if !mine.isEmpty && !cluster.isRoot {
                try? FileManager.default.removeItem(atPath: rescue)
                try? FileManager.default.removeItem(atPath: rescue + ".lock")
            }
        }
    }

    /// Bytes of a task's data files: how large its training is, roughly.
    static func dataSize(_ spec: TaskSpec) -> Int {
        spec.files.reduce(0) { $0 + ((try? FileManager.default.attributesOfItem(atPath: $1)[.size] as? Int) ?? 0) }
    }

    /// Largest first, each to the rank with the least assigned so far (ties: the lower rank).
    static func assign(_ tasks: [(task: Int, size: Int)], ranks: Int) -> [Int: Int] {
        var load = [Int](repeating: 0, count: ranks)
        var owner: [Int: Int] = [:]
        for t in tasks.sorted(by: { ($0.size, -$0.task) > ($1.size, -$1.task) }) {
            let r = load.indices.min { (load[$0], $0) < (load[$1], $1) }!
            owner[t.task] = r
            load[r] += max(t.size, 1)
        }
        return owner
    }
}
