import AdapterFusion
import ArgumentParser
import Foundation

struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Bring adapters trained elsewhere into a store.", subcommands: [ImportAdapterHub.self, ImportAdapterHubFusion.self])
}

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a stored adapter in another tool's format.", subcommands: [ExportAdapterHub.self, ExportPEFT.self])
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
    @Flag(help: "Replace an adapter of this name already in the store (without it, that is an error).") var replace = false

    func validate() throws { if let name { try Check.name(name, option: "--name") } }

    func run() throws {
        let modelDir = model ?? ModelDirectory.defaultPath
        try StoreFile.checkWritable(store)
        let fingerprint = try ModelDirectory.fingerprint(modelDir)
        let config = try BertConfig.load((modelDir as NSString).appendingPathComponent("config.json"))
        let imported = try AdapterHubAdapter.read(
            directory: directory, hidden: config.hiddenSize, layers: config.numHiddenLayers, name: name, modelType: config.modelType)
        let adapterName = imported.adapter.name
        try Check.name(adapterName, option: "adapter name")
        try AdapterStore.checkSave(store, kind: .adapter, name: adapterName, replace: replace)
        let affected = replace ? fusionsAffected(byReplacing: adapterName, in: store) : []
        var labels = imported.labels
        var taskName = adapterName
        var taskFile = ""
        // A headless adapter records a placeholder head config (TrainingRecord.hasHead is false).
        let headConfig = imported.head?.config ?? HeadConfig(kind: .regression, outputs: 1)
        var metric = headConfig.kind == .regression ? "pearson" : "accuracy"
        if let task {
            guard imported.head != nil else {
                throw CommandError("\(directory) has no head_config.json, so no head to check --task against; import it without --task")
            }
            let spec = try TaskSpec.load(task)
            guard spec.labels == labels || (spec.isRegression && headConfig.kind == .regression) else {
                throw CommandError("\(task): labels \(spec.labels) differ from the head's \(labels)")
            }
            labels = spec.labels; taskName = spec.name; taskFile = spec.path; metric = spec.metric.rawValue
        }
        let record = AdapterRecord(
            name: adapterName, task: taskName, taskFile: taskFile, labels: labels, metric: metric,
            adapterConfig: imported.adapter.config, headConfig: headConfig, baseModel: ModelDirectory.name(modelDir),
            baseFingerprint: fingerprint, hiddenSize: config.hiddenSize, numLayers: config.numHiddenLayers, devMetrics: [], bestEpoch: 0,
            settings: TrainingConfig(), seed: 0, created: ISO8601DateFormatter().string(from: Date()))
        try AdapterStore.save(adapter: imported.adapter, head: imported.head, record: record, to: store, replace: replace)
        print(
            "imported AdapterHub adapter '\(adapterName)' (\(imported.adapter.config.architecture), reduction \(imported.adapter.config.reductionFactor)) "
                + (imported.head == nil
                    ? "without a head (none was saved with it: use it as a composition member) into \(store)" : "and its head into \(store)"))
        noteReplaced(adapterName, affecting: affected)
    }
}

/// `afusion export adapterhub DIR --adapter NAME | --fusion NAME`: a stored adapter + head, or a
/// fusion with its members and head, in the format AdapterHub `adapters` 1.x's `load_adapter`,
/// `load_adapter_fusion` and `load_head` read.
struct ExportAdapterHub: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "adapterhub",
        abstract: "Export a stored adapter (or fusion, with its members) and its head as AdapterHub directories (PyTorch .bin, or safetensors).")

    @Argument(help: "Directory to write.") var directory: String
    @Option(help: "HDF5 store.") var store = "runs/store.h5"
    @Option(help: "The stored adapter.") var adapter: String?
    @Option(help: "The stored fusion: writes DIR/<member>/ per adapter, DIR/fusion/ and DIR/head/.") var fusion: String?
    @Flag(help: "Write *.safetensors (load with use_safetensors=True) instead of PyTorch *.bin files.") var safetensors = false
    @Flag(help: "Write into a folder that is not empty (files of the same names are replaced).") var force = false

    func validate() throws {
        guard (adapter == nil) != (fusion == nil) else { throw ValidationError("give one of --adapter NAME or --fusion NAME") }
        if let adapter { try Check.name(adapter, option: "--adapter") }
        if let fusion { try Check.name(fusion, option: "--fusion") }
    }

    func run() throws {
        guard FileManager.default.fileExists(atPath: store) else { throw CommandError("no store at '\(store)'") }
        guard let adapter else { return try ExportDirectory.write(directory, force: force) { try exportFusion(fusion!) } }
        let (a, head, record) = try AdapterStore.load(store, name: adapter, baseFingerprint: nil)
        try ExportDirectory.write(directory, force: force) {
            try AdapterHubAdapter(adapter: a, head: head, labels: record.labels).write(directory: directory, name: adapter, safetensors: safetensors)
        }
        print(
            "exported adapter '\(adapter)' and its head to \(directory) (base model \(record.baseModel), sha256 \(record.baseFingerprint.prefix(12))…)"
        )
    }
}

/// `afusion import adapterhub-fusion DIR --head HEAD_DIR --task T --name N`: a dynamic
/// AdapterFusion saved by AdapterHub (`save_adapter_fusion`) over adapters already imported into
/// the store, with the head saved by `save_head`.
struct ImportAdapterHubFusion: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "adapterhub-fusion",
        abstract: "Import an AdapterHub fusion directory (adapter_fusion_config.json, model_adapter_fusion.safetensors or .bin) and its head.")

    @Argument(help: "The directory save_adapter_fusion wrote.") var directory: String
    @Option(help: "The directory save_head wrote for the fusion's head.") var head: String
    @Option(help: "Task file of the fusion's target task (its labels must match the head's).") var task: String
    @Option(help: "Name of the fusion in the store.") var name: String
    @Option(help: "HDF5 store that holds the member adapters (import them first with `import adapterhub`).") var store = "runs/store.h5"
    @Option(help: "Base model directory (default: $AFUSION_MODEL or models/all-MiniLM-L6-v2).") var model: String?
    @Flag(help: "Replace a fusion of this name already in the store (without it, that is an error).") var replace = false

    func validate() throws { try Check.name(name, option: "--name") }

    func run() throws {
        let modelDir = model ?? ModelDirectory.defaultPath
        guard FileManager.default.fileExists(atPath: store) else { throw CommandError("no store at '\(store)'") }
        try StoreFile.checkWritable(store)
        try AdapterStore.checkSave(store, kind: .fusion, name: name, replace: replace)
        let fingerprint = try ModelDirectory.fingerprint(modelDir)
        let config = try BertConfig.load((modelDir as NSString).appendingPathComponent("config.json"))
        let spec = try TaskSpec.load(task)
        let members = try AdapterHubFusion.members(directory: directory)
        let records = Dictionary(try AdapterStore.list(store).map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var adapters: [String: Adapter] = [:]
        for m in members {
            guard records[m] != nil else { throw CommandError("\(store) has no adapter '\(m)': import it first with `afusion import adapterhub`") }
            adapters[m] = try AdapterStore.loadMember(store, name: m, baseFingerprint: fingerprint).0
        }
        let comp = try AdapterHubFusion.read(directory: directory, adapters: adapters, hidden: config.hiddenSize, layers: config.numHiddenLayers)
        let (fusionHead, labels) = try AdapterHubAdapter.readHead(directory: head, hidden: config.hiddenSize)
        guard spec.labels == labels || (spec.isRegression && fusionHead.config.kind == .regression) else {
            throw CommandError("\(task): labels \(spec.labels) differ from the head's \(labels)")
        }
        let recipe = """
            fusion \(name)
            base \"\(modelDir)\"
            store \"\(store)\"
            task \"\(task)\"
            compose \(comp.expr)
            options dynamic, temperature 1, lambda \(comp.options.lambda)

            """
        let record = FusionRecord(
            name: name, recipe: recipe, recipeFile: "(imported from \(directory))", task: spec.name, taskFile: spec.path, labels: spec.labels,
            metric: spec.metric.rawValue, composition: comp.expr.description,
            memberFingerprints: Dictionary(uniqueKeysWithValues: members.map { ($0, records[$0]!.weightsFingerprint) }),
            options: comp.options, headConfig: fusionHead.config, baseModel: ModelDirectory.name(modelDir), baseFingerprint: fingerprint,
            hiddenSize: config.hiddenSize, numLayers: config.numHiddenLayers, devMetrics: [], bestEpoch: 0, settings: TrainingConfig(),
            seed: 0, created: ISO8601DateFormatter().string(from: Date()))
        try FusionStore.save(composition: comp, head: fusionHead, record: record, to: store, replace: replace)
        print("imported AdapterHub fusion \(comp.expr) as '\(name)' with its head into \(store)")
    }
}

extension ExportAdapterHub {
    /// The fusion, its members and its head: DIR/<member>/ per adapter, DIR/fusion/, DIR/head/.
    func exportFusion(_ fusion: String) throws {
        let loaded = try FusionStore.load(store, name: fusion, baseFingerprint: nil)
        let comp = loaded.composition
        func sub(_ s: String) -> String { (directory as NSString).appendingPathComponent(s) }
        try AdapterHubFusion.write(comp, directory: sub("fusion"), safetensors: safetensors)  // checks first, before any member is written
        for member in comp.expr.adapterNames {
            let (a, head, record) = try AdapterStore.loadMember(store, name: member, baseFingerprint: loaded.record.baseFingerprint)
            try AdapterHubAdapter(adapter: a, head: head, labels: record.labels).write(directory: sub(member), name: member, safetensors: safetensors)
        }
        try AdapterHubAdapter.writeHead(loaded.head, labels: loaded.record.labels, name: fusion, directory: sub("head"), safetensors: safetensors)
        let names = comp.expr.adapterNames
        let st = safetensors ? ", use_safetensors=True" : ""
        print("exported fusion '\(fusion)' (\(comp.expr)) to \(directory): \(names.map { $0 + "/" }.joined(separator: ", ")), fusion/, head/")
        print(
            """
            load it with AdapterHub `adapters` 1.x:
                from adapters import BertAdapterModel
                from adapters.composition import Fuse
                model = BertAdapterModel.from_pretrained("\(loaded.record.baseModel)")
            \(names.map { "    model.load_adapter(\"\(sub($0))\", with_head=False\(st))" }.joined(separator: "\n"))
                model.load_adapter_fusion("\(sub("fusion"))"\(st))
                model.load_head("\(sub("head"))"\(st))
                model.set_active_adapters(Fuse(\(names.map { "\"\($0)\"" }.joined(separator: ", "))))
                model.active_head = "\(fusion)"
            """)

    }
}

/// `afusion export peft DIR --adapter NAME`: a stored LoRA adapter for Hugging Face PEFT
/// (`PeftModel.from_pretrained(BertModel…, DIR)`); PEFT gets the encoder's update, not the head.
struct ExportPEFT: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "peft", abstract: "Export a stored LoRA adapter as a PEFT directory (adapter_config.json, adapter_model.safetensors).")

    @Argument(help: "Directory to write.") var directory: String
    @Option(help: "HDF5 store.") var store = "runs/store.h5"
    @Option(help: "The stored LoRA adapter.") var adapter: String
    @Flag(help: "Write into a folder that is not empty (files of the same names are replaced).") var force = false

    func validate() throws { try Check.name(adapter, option: "--adapter") }

    func run() throws {
        guard FileManager.default.fileExists(atPath: store) else { throw CommandError("no store at '\(store)'") }
        let (a, _, record) = try AdapterStore.load(store, name: adapter, baseFingerprint: nil)
        try ExportDirectory.write(directory, force: force) { try PEFTLoRA.write(a, directory: directory, baseModel: record.baseModel) }
        print(
            "exported LoRA adapter '\(adapter)' (\(a.config.architecture)) to \(directory) for PEFT (base model \(record.baseModel); the head is not part of it)"
        )
    }
}
