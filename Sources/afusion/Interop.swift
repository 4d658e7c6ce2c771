import AdapterFusion
import ArgumentParser
import Foundation

struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Bring adapters trained elsewhere into a store.", subcommands: [ImportAdapterHub.self])
}

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a stored adapter in another tool's format.", subcommands: [ExportAdapterHub.self])
}

/// `afusion import adapterhub DIR`: an adapter + head saved by AdapterHub `adapters` 1.x
/// (`save_adapter(…, use_safetensors=True)`), checked against the base model, into a store.
struct ImportAdapterHub: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "adapterhub",
        abstract: "Import an AdapterHub adapter directory (adapter_config.json, adapter.safetensors, head_config.json, model_head.safetensors).")

    @Argument(help: "The directory save_adapter wrote.") var directory: String
    @Option(help: "HDF5 store to add it to (created if missing).") var store = "runs/store.h5"
    @Option(help: "Name in the store (default: the adapter's name in its config).") var name: String?
    @Option(help: "Task file it was trained for; its labels must match the head's (default: none recorded).") var task: String?
    @Option(help: "Base model directory it was trained on (default: $AFUSION_MODEL or models/all-MiniLM-L6-v2).") var model: String?

    func validate() throws { if let name { try Check.name(name, option: "--name") } }

    func run() throws {
        let modelDir = model ?? ModelDirectory.defaultPath
        try StoreFile.checkWritable(store)
        let fingerprint = try ModelDirectory.fingerprint(modelDir)
        let config = try BertConfig.load((modelDir as NSString).appendingPathComponent("config.json"))
        let imported = try AdapterHubAdapter.read(directory: directory, hidden: config.hiddenSize, layers: config.numHiddenLayers, name: name)
        let adapterName = imported.adapter.name
        try Check.name(adapterName, option: "adapter name")
        var labels = imported.labels
        var taskName = adapterName
        var taskFile = ""
        var metric = imported.head.config.kind == .regression ? "pearson" : "accuracy"
        if let task {
            let spec = try TaskSpec.load(task)
            guard spec.labels == labels || (spec.isRegression && imported.head.config.kind == .regression) else {
                throw CommandError("\(task): labels \(spec.labels) differ from the head's \(labels)")
            }
            labels = spec.labels; taskName = spec.name; taskFile = spec.path; metric = spec.metric.rawValue
        }
        let record = AdapterRecord(
            name: adapterName, task: taskName, taskFile: taskFile, labels: labels, metric: metric,
            adapterConfig: imported.adapter.config, headConfig: imported.head.config, baseModel: ModelDirectory.name(modelDir),
            baseFingerprint: fingerprint, hiddenSize: config.hiddenSize, numLayers: config.numHiddenLayers, devMetrics: [], bestEpoch: 0,
            settings: TrainingConfig(), seed: 0, created: ISO8601DateFormatter().string(from: Date()))
        try AdapterStore.save(adapter: imported.adapter, head: imported.head, record: record, to: store)
        print(
            "imported AdapterHub adapter '\(adapterName)' (\(imported.adapter.config.placement.rawValue), reduction \(imported.adapter.config.reductionFactor)) and its head into \(store)"
        )
    }
}

/// `afusion export adapterhub DIR --adapter NAME`: a stored adapter + head in the format
/// AdapterHub `adapters` 1.x's `load_adapter(DIR)` reads.
struct ExportAdapterHub: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "adapterhub", abstract: "Export a stored adapter and its head as an AdapterHub adapter directory (safetensors).")

    @Argument(help: "Directory to write.") var directory: String
    @Option(help: "HDF5 store.") var store = "runs/store.h5"
    @Option(help: "The stored adapter.") var adapter: String

    func validate() throws { try Check.name(adapter, option: "--adapter") }

    func run() throws {
        guard FileManager.default.fileExists(atPath: store) else { throw CommandError("no store at '\(store)'") }
        let (a, head, record) = try AdapterStore.load(store, name: adapter, baseFingerprint: nil)
        try AdapterHubAdapter(adapter: a, head: head, labels: record.labels).write(directory: directory, name: adapter)
        print(
            "exported adapter '\(adapter)' and its head to \(directory) (base model \(record.baseModel), sha256 \(record.baseFingerprint.prefix(12))…)"
        )
    }
}
