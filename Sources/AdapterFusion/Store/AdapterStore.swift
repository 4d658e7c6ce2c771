import Foundation

/// The version written into every store and record.
public enum AdapterFusionVersion {
    public static let string = "0.2.0"
}

/// Everything stored beside a trained adapter's weights (as attributes of its group); the
/// training fields are reachable directly (`record.task`).
@dynamicMemberLookup
public struct AdapterRecord: Sendable, Equatable {
    public var name: String
    public var adapterConfig: AdapterConfig
    public var training: TrainingRecord

    public init(
        name: String, task: String, taskFile: String, labels: [String], metric: String,
        adapterConfig: AdapterConfig, headConfig: HeadConfig, baseModel: String, baseFingerprint: String,
        hiddenSize: Int, numLayers: Int, devMetrics: [Double], bestEpoch: Int, settings: TrainingConfig,
        seed: Int, created: String
    ) {
        self.name = name
        self.adapterConfig = adapterConfig
        training = TrainingRecord(
            task: task, taskFile: taskFile, labels: labels, metric: metric, headConfig: headConfig,
            baseModel: baseModel, baseFingerprint: baseFingerprint, hiddenSize: hiddenSize,
            numLayers: numLayers, devMetrics: devMetrics, bestEpoch: bestEpoch,
            settings: settings, seed: seed, created: created)
    }

    init(name: String, adapterConfig: AdapterConfig, training: TrainingRecord) {
        self.name = name; self.adapterConfig = adapterConfig; self.training = training
    }

    public subscript<T>(dynamicMember keyPath: WritableKeyPath<TrainingRecord, T>) -> T {
        get { training[keyPath: keyPath] }
        set { training[keyPath: keyPath] = newValue }
    }

    public var bestDevMetric: Double? { training.bestDevMetric }
}

extension AdapterRecord: RecipeMember {
    public var baseModel: String { training.baseModel }
    public var baseFingerprint: String { training.baseFingerprint }
    public var hiddenSize: Int { training.hiddenSize }
}

/// An HDF5 file holding many adapters and heads:
///
///     /adapters/<name>/layer_03/output_adapter/down/weight   [24, 384]   …   (attributes: the record)
///     /heads/<name>/dense/weight, /heads/<name>/output/weight, …          (attributes: config, labels)
///
/// Saving writes a complete new file beside the store (copying every other group across) and
/// renames it over the old one, so a crash or kill at any point leaves either the old store or
/// the new one, never a half-written file.
public enum AdapterStore {
    static let sections = ["adapters", "heads", "fusions"]

    /// Saves an adapter and its head under `record.name`, in its stored form
    /// (`Adapter.finishTraining`: a prefix's MLP is replaced by its output). An adapter already
    /// stored under that name is replaced only when `replace` is true; a fusion of that name is
    /// never replaced (`StoreConflict`, see `checkSave`).
    /// `head` nil stores a headless adapter (a composition member only, `TrainingRecord.hasHead`).
    public static func save(adapter: Adapter, head: PredictionHead?, record: AdapterRecord, to path: String, replace: Bool = false) throws {
        adapter.finishTraining()
        var rec = record
        rec.training.hasHead = head != nil
        rec.weightsFingerprint = fingerprint(adapter.parameters + (head?.parameters ?? []))
        let entry = (kind: StoreEntryKind.adapter, name: rec.name, replace: replace)
        try rewrite(path, replacing: [("adapters", rec.name), ("heads", rec.name)], entry: entry) { root in
            let g = try root.createGroup("adapters/\(rec.name)")
            for p in adapter.parameters { try g.write(p.name, tensor: p.value) }
            try g.setAttribute("kind", rec.adapterConfig.method.kind)
            try g.setAttribute("method", rec.adapterConfig.architecture)
            if rec.adapterConfig.hasBottleneck { try g.setAttribute("placement", rec.adapterConfig.placement.rawValue) }
            try g.setAttribute("config", json(rec.adapterConfig))
            try rec.training.write(to: g, name: rec.name)
            if let head { try rec.training.writeHead(head, in: root, name: rec.name, owner: ("adapter", rec.name)) }
        }
    }

    /// Writes a new store file with every group of the old one except `replacing`, plus what
    /// `write` adds, then atomically renames it over `path`, holding the store's writer lock
    /// throughout (see `StoreFile`). `entry`, when given, is checked against the old file under
    /// the lock (`checkSave`). On any error the old file stays as it was.
    public static func rewrite(
        _ path: String, replacing: [(section: String, name: String)],
        entry: (kind: StoreEntryKind, name: String, replace: Bool)? = nil,
        _ write: (HDF5Group) throws -> Void
    ) throws {
        try StoreFile.replace(path) { target in
            let file = try HDF5File(inMemory: target + ".new-\(UUID().uuidString)")
            do {
                let root = try file.root
                try root.setAttribute("format", "afusion-store")
                try root.setAttribute("format_version", 1)
                try root.setAttribute("tool_version", AdapterFusionVersion.string)
                if FileManager.default.fileExists(atPath: target) {
                    let old = try HDF5File(opening: target)
                    let oldRoot = try old.root
                    if let entry { try checkSave(root: oldRoot, path: path, kind: entry.kind, name: entry.name, replace: entry.replace) }
                    for section in sections where oldRoot.contains(section) {
                        let src = try oldRoot.group(section)
                        let dst = root.contains(section) ? try root.group(section) : try root.createGroup(section)
                        for child in src.children() where !replacing.contains(where: { $0.section == section && $0.name == child }) {
                            try src.copy(child, to: dst)
                        }
                    }
                }
                try write(root)
            }
            return try file.image()
        }
    }

    /// SHA-256 over parameters' names and Float32 bytes, in name order.
    public static func fingerprint(_ params: [Parameter]) -> String {
        var sha = SHA256()
        for p in params.sorted(by: { $0.name < $1.name }) {
            sha.update(Data(p.name.utf8))
            sha.update(UnsafeRawBufferPointer(start: p.value.data, count: p.value.count * 4))
        }
        return sha.finalize()
    }

    static func json<T: Encodable>(_ value: T) throws -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return String(data: try enc.encode(value), encoding: .utf8)!
    }

    static func readRecord(_ g: HDF5Group, name: String) throws -> AdapterRecord {
        let rec = AdapterRecord(
            name: name, adapterConfig: try decodeAttribute(AdapterConfig.self, "config", of: g), training: try TrainingRecord.read(g))
        if let problem = rec.adapterConfig.problem(hidden: rec.hiddenSize, layers: rec.numLayers) {
            throw HDF5Error("\(g.file.path): '\(g.path)' has \(problem) in its config; the entry is damaged")
        }
        return rec
    }

    /// Records of every adapter in the store, by name.
    /// A damaged or foreign entry is skipped and reported through `damaged` (by default a
    /// warning on stderr), so one bad entry never hides the others.
    public static func list(_ path: String, damaged: (String) -> Void = StoreFile.warn) throws -> [AdapterRecord] {
        StoreFile.cleanUp(path)
        let root = try HDF5File(opening: path).root
        guard root.contains("adapters") else { return [] }
        let g = try root.group("adapters")
        return g.children().compactMap { name in
            do { return try readRecord(try g.group(name), name: name) } catch {
                damaged("skipping adapter '\(name)': \(error)")
                return nil
            }
        }
    }

    /// Loads adapter `name` and its head. Refuses a store written for another base model
    /// (`baseFingerprint` differs) or with weights that no longer match their fingerprint, and
    /// a headless adapter (it has no head to predict with; `loadMember` loads it).
    public static func load(_ path: String, name: String, baseFingerprint: String?) throws -> (Adapter, PredictionHead, AdapterRecord) {
        let (adapter, head, rec) = try loadMember(path, name: name, baseFingerprint: baseFingerprint)
        guard let head else {
            throw HDF5Error(
                "\(path): adapter '\(name)' has no task head (imported without head_config.json); "
                    + "use it as a member of a composition (fuse, stack, average, …) with a task, or import it with its head")
        }
        return (adapter, head, rec)
    }

    /// Loads adapter `name` as a composition member: its head too when it has one (nil for a
    /// headless adapter), with the same checks as `load`.
    public static func loadMember(_ path: String, name: String, baseFingerprint: String?) throws -> (Adapter, PredictionHead?, AdapterRecord) {
        let root = try HDF5File(opening: path).root
        let g = try TrainingRecord.group(root, section: "adapters", kind: "adapter", name: name, path: path)
        let rec = try readRecord(g, name: name)
        try rec.training.checkBase(baseFingerprint, kind: "adapter", name: name, path: path)
        let adapter = Adapter(name: name, config: rec.adapterConfig, hidden: rec.hiddenSize, layers: rec.numLayers, seed: 0, stored: true)
        for p in adapter.parameters { p.value.copy(from: try g.readTensor(p.name, shape: p.value.shape)) }
        let head = rec.training.hasHead ? try rec.training.readHead(from: root, name: rec.name) : nil
        try rec.training.checkWeights(adapter.parameters + (head?.parameters ?? []), kind: "adapter", name: name, path: path)
        return (adapter, head, rec)
    }
}
