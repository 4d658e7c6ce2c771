import Foundation

/// The version written into every store and record.
public enum AdapterFusionVersion {
    public static let string = "0.2.0"
}

/// Everything stored beside a trained adapter's weights (as attributes of its group).
public struct AdapterRecord: Sendable, Equatable {
    public var name: String
    public var task: String
    public var taskFile: String
    /// Label names in output order; empty for regression.
    public var labels: [String]
    public var metric: String
    public var adapterConfig: AdapterConfig
    public var headConfig: HeadConfig
    public var baseModel: String
    public var baseFingerprint: String
    public var hiddenSize: Int
    public var numLayers: Int
    public var devMetrics: [Double]
    public var bestEpoch: Int
    public var hyperparameters: String
    public var seed: Int
    public var created: String
    public var toolVersion: String = AdapterFusionVersion.string
    /// SHA-256 over the adapter's and head's weights, in name order.
    public var weightsFingerprint: String = ""

    public init(name: String, task: String, taskFile: String, labels: [String], metric: String,
                adapterConfig: AdapterConfig, headConfig: HeadConfig, baseModel: String, baseFingerprint: String,
                hiddenSize: Int, numLayers: Int, devMetrics: [Double], bestEpoch: Int, hyperparameters: String,
                seed: Int, created: String) {
        self.name = name; self.task = task; self.taskFile = taskFile; self.labels = labels; self.metric = metric
        self.adapterConfig = adapterConfig; self.headConfig = headConfig; self.baseModel = baseModel
        self.baseFingerprint = baseFingerprint; self.hiddenSize = hiddenSize; self.numLayers = numLayers
        self.devMetrics = devMetrics; self.bestEpoch = bestEpoch; self.hyperparameters = hyperparameters
        self.seed = seed; self.created = created
    }

    /// Best dev metric.
    public var bestDevMetric: Double? { bestEpoch >= 1 && bestEpoch <= devMetrics.count ? devMetrics[bestEpoch - 1] : nil }
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

    /// Saves (or replaces) an adapter and its head under `record.name`.
    public static func save(adapter: Adapter, head: PredictionHead, record: AdapterRecord, to path: String) throws {
        var rec = record
        rec.weightsFingerprint = fingerprint(adapter.parameters + head.parameters)
        try rewrite(path, replacing: [("adapters", rec.name), ("heads", rec.name)]) { root in
            let g = try root.createGroup("adapters/\(rec.name)")
            for p in adapter.parameters { try g.write(p.name, tensor: p.value) }
            try writeAttributes(rec, to: g)
            let h = try root.createGroup("heads/\(rec.name)")
            for p in head.parameters { try h.write(p.name, tensor: p.value) }
            try h.setAttribute("kind", rec.headConfig.kind.rawValue)
            try h.setAttribute("config", json(rec.headConfig))
            try h.setAttribute("labels", json(rec.labels))
            try h.setAttribute("task", rec.task)
            try h.setAttribute("adapter", rec.name)
        }
    }

    /// Writes a new store file with every group of the old one except `replacing`, plus what
    /// `write` adds, then atomically renames it over `path`. On any error the old file stays.
    public static func rewrite(_ path: String, replacing: [(section: String, name: String)],
                               _ write: (HDF5Group) throws -> Void) throws {
        let tmp = path + ".tmp-\(getpid())"
        defer { unlink(tmp) }
        do {
            let file = try HDF5File(creating: tmp, overwrite: true)
            let root = try file.root
            try root.setAttribute("format", "afusion-store")
            try root.setAttribute("format_version", 1)
            try root.setAttribute("tool_version", AdapterFusionVersion.string)
            if FileManager.default.fileExists(atPath: path) {
                let old = try HDF5File(opening: path)
                let oldRoot = try old.root
                for section in sections where oldRoot.contains(section) {
                    let src = try oldRoot.group(section)
                    let dst = root.contains(section) ? try root.group(section) : try root.createGroup(section)
                    for child in src.children() where !replacing.contains(where: { $0.section == section && $0.name == child }) {
                        try src.copy(child, to: dst)
                    }
                }
            }
            try write(root)
            try file.flush()
        }
        // All HDF5 handles are released here, so the file is closed.
        let fd = open(tmp, O_RDONLY)
        if fd >= 0 { fsync(fd); close(fd) }
        guard rename(tmp, path) == 0 else {
            throw HDF5Error("\(path): cannot replace the store: \(String(cString: strerror(errno)))")
        }
        let dir = open((path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent, O_RDONLY)
        if dir >= 0 { fsync(dir); close(dir) }
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

    static func writeAttributes(_ r: AdapterRecord, to g: HDF5Group) throws {
        try g.setAttribute("kind", "bottleneck_adapter")
        try g.setAttribute("placement", r.adapterConfig.placement.rawValue)
        try g.setAttribute("config", json(r.adapterConfig))
        try g.setAttribute("task", r.task)
        try g.setAttribute("task_file", r.taskFile)
        try g.setAttribute("labels", json(r.labels))
        try g.setAttribute("metric", r.metric)
        try g.setAttribute("head", r.name)
        try g.setAttribute("head_config", json(r.headConfig))
        try g.setAttribute("base_model", r.baseModel)
        try g.setAttribute("base_fingerprint", r.baseFingerprint)
        try g.setAttribute("hidden_size", r.hiddenSize)
        try g.setAttribute("num_layers", r.numLayers)
        try g.setAttribute("dev_metric_per_epoch", r.devMetrics)
        try g.setAttribute("best_epoch", r.bestEpoch)
        try g.setAttribute("hyperparameters", r.hyperparameters)
        try g.setAttribute("seed", r.seed)
        try g.setAttribute("created", r.created)
        try g.setAttribute("tool_version", r.toolVersion)
        try g.setAttribute("weights_fingerprint", r.weightsFingerprint)
    }

    static func readRecord(_ g: HDF5Group, name: String) throws -> AdapterRecord {
        let dec = JSONDecoder()
        func decode<T: Decodable>(_ t: T.Type, _ attr: String) throws -> T {
            do { return try dec.decode(T.self, from: Data(try g.stringAttribute(attr).utf8)) } catch let e as HDF5Error { throw e } catch {
                throw HDF5Error("\(g.file.path): attribute '\(attr)' of '\(g.path)' is not valid JSON for its kind")
            }
        }
        var r = AdapterRecord(
            name: name, task: try g.stringAttribute("task"), taskFile: try g.stringAttribute("task_file"),
            labels: try decode([String].self, "labels"), metric: try g.stringAttribute("metric"),
            adapterConfig: try decode(AdapterConfig.self, "config"), headConfig: try decode(HeadConfig.self, "head_config"),
            baseModel: try g.stringAttribute("base_model"), baseFingerprint: try g.stringAttribute("base_fingerprint"),
            hiddenSize: try g.intAttribute("hidden_size"), numLayers: try g.intAttribute("num_layers"),
            devMetrics: try g.doubleAttribute("dev_metric_per_epoch"), bestEpoch: try g.intAttribute("best_epoch"),
            hyperparameters: try g.stringAttribute("hyperparameters"), seed: try g.intAttribute("seed"),
            created: try g.stringAttribute("created"))
        r.toolVersion = try g.stringAttribute("tool_version")
        r.weightsFingerprint = try g.stringAttribute("weights_fingerprint")
        return r
    }

    /// Records of every adapter in the store, by name.
    public static func list(_ path: String) throws -> [AdapterRecord] {
        let root = try HDF5File(opening: path).root
        guard root.contains("adapters") else { return [] }
        let g = try root.group("adapters")
        return try g.children().map { try readRecord(try g.group($0), name: $0) }
    }

    /// Loads adapter `name` and its head. Refuses a store written for another base model
    /// (`baseFingerprint` differs) or with weights that no longer match their fingerprint.
    public static func load(_ path: String, name: String, baseFingerprint: String?) throws -> (Adapter, PredictionHead, AdapterRecord) {
        let root = try HDF5File(opening: path).root
        guard root.contains("adapters/\(name)") else {
            let names = root.contains("adapters") ? try root.group("adapters").children() : []
            throw HDF5Error("\(path): no adapter '\(name)'" + (closestMatch(name, in: names).map { " (did you mean '\($0)'?)" }
                ?? (names.isEmpty ? " (the store has no adapters)" : "; it has: " + names.joined(separator: ", "))))
        }
        let g = try root.group("adapters/\(name)")
        let rec = try readRecord(g, name: name)
        if let baseFingerprint, baseFingerprint != rec.baseFingerprint {
            throw HDF5Error("\(path): adapter '\(name)' was trained on base model \(rec.baseModel) (sha256 \(rec.baseFingerprint.prefix(12))…), "
                            + "not on the model given (sha256 \(baseFingerprint.prefix(12))…); refusing to load it")
        }
        let adapter = Adapter(name: name, config: rec.adapterConfig, hidden: rec.hiddenSize, layers: rec.numLayers, seed: 0)
        for p in adapter.parameters { p.value.copy(from: try g.readTensor(p.name, shape: p.value.shape)) }
        let h = try root.group("heads/\(rec.name)")
        let head = PredictionHead(config: rec.headConfig, hidden: rec.hiddenSize, seed: 0)
        for p in head.parameters { p.value.copy(from: try h.readTensor(p.name, shape: p.value.shape)) }
        let fp = fingerprint(adapter.parameters + head.parameters)
        guard fp == rec.weightsFingerprint else {
            throw HDF5Error("\(path): weights of adapter '\(name)' do not match their recorded fingerprint (the store was modified or is corrupt)")
        }
        return (adapter, head, rec)
    }
}
