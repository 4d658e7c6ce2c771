import Foundation

/// How a `TrainingRecord` is written to and read from a store group's attributes, checked
/// against the model and its weights, and how the head beside it is stored: the store layer's
/// side of the record, which itself is a plain value.
extension TrainingRecord {
    func write(to g: HDF5Group, name: String) throws {
        try g.setAttribute("task", task)
        try g.setAttribute("task_file", taskFile)
        try g.setAttribute("labels", AdapterStore.json(labels))
        try g.setAttribute("metric", metric)
        try g.setAttribute("head", hasHead ? name : "")
        try g.setAttribute("head_config", AdapterStore.json(headConfig))
        try g.setAttribute("base_model", baseModel)
        try g.setAttribute("base_fingerprint", baseFingerprint)
        try g.setAttribute("hidden_size", hiddenSize)
        try g.setAttribute("num_layers", numLayers)
        try g.setAttribute("dev_metric_per_epoch", devMetrics)
        try g.setAttribute("best_epoch", bestEpoch)
        try g.setAttribute("hyperparameters", AdapterStore.json(settings))
        try g.setAttribute("seed", seed)
        try g.setAttribute("created", created)
        try g.setAttribute("tool_version", toolVersion)
        try g.setAttribute("weights_fingerprint", weightsFingerprint)
    }

    static func read(_ g: HDF5Group) throws -> TrainingRecord {
        var r = TrainingRecord(
            task: try g.stringAttribute("task"), taskFile: try g.stringAttribute("task_file"),
            labels: try decodeAttribute([String].self, "labels", of: g), metric: try g.stringAttribute("metric"),
            headConfig: try decodeAttribute(HeadConfig.self, "head_config", of: g), baseModel: try g.stringAttribute("base_model"),
            baseFingerprint: try g.stringAttribute("base_fingerprint"), hiddenSize: try g.intAttribute("hidden_size"),
            numLayers: try g.intAttribute("num_layers"), devMetrics: try g.doubleAttribute("dev_metric_per_epoch"),
            bestEpoch: try g.intAttribute("best_epoch"), settings: try decodeAttribute(TrainingConfig.self, "hyperparameters", of: g),
            seed: try g.intAttribute("seed"), created: try g.stringAttribute("created"))
        r.toolVersion = try g.stringAttribute("tool_version")
        r.weightsFingerprint = try g.stringAttribute("weights_fingerprint")
        r.hasHead = (try? g.stringAttribute("head")) != ""
        try r.validate(at: g)
        return r
    }

    /// Rejects attribute values no trained model can have (a damaged or hand-edited store),
    /// before anything is sized from them.
    func validate(at g: HDF5Group) throws {
        func bad(_ what: String) -> HDF5Error { HDF5Error("\(g.file.path): '\(g.path)' has \(what); the entry is damaged") }
        guard (1...65_536).contains(hiddenSize) else { throw bad("hidden_size = \(hiddenSize) (expected 1…65536)") }
        guard (1...1_024).contains(numLayers) else { throw bad("num_layers = \(numLayers) (expected 1…1024)") }
        guard (1...1_000_000).contains(headConfig.outputs) else { throw bad("head_config outputs = \(headConfig.outputs)") }
        guard headConfig.dropout >= 0 && headConfig.dropout < 1 else { throw bad("head_config dropout = \(headConfig.dropout) (expected [0, 1))") }
        if headConfig.kind == .classification && labels.count != headConfig.outputs {
            throw bad("\(labels.count) labels for a head of \(headConfig.outputs) outputs")
        }
        guard (0...devMetrics.count).contains(bestEpoch) else { throw bad("best_epoch = \(bestEpoch) for \(devMetrics.count) epochs") }
    }

    /// Refuses a model trained on another base model than the one given (nil: no check).
    func checkBase(_ given: String?, kind: String, name: String, path: String) throws {
        guard let given, given != baseFingerprint else { return }
        throw HDF5Error(
            "\(path): \(kind) '\(name)' was trained on base model \(baseModel) (sha256 \(baseFingerprint.prefix(12))…), "
                + "not on the model given (sha256 \(given.prefix(12))…); refusing to load it")
    }

    /// Refuses weights that no longer match the fingerprint recorded when they were saved.
    func checkWeights(_ params: [Parameter], kind: String, name: String, path: String) throws {
        guard AdapterStore.fingerprint(params) == weightsFingerprint else {
            throw HDF5Error("\(path): weights of \(kind) '\(name)' do not match their recorded fingerprint (the store was modified or is corrupt)")
        }
    }

    /// The group `/<section>/<name>`, or an error that suggests a close name or lists what is there.
    static func group(_ root: HDF5Group, section: String, kind: String, name: String, path: String) throws -> HDF5Group {
        guard root.contains("\(section)/\(name)") else {
            let names = root.contains(section) ? try root.group(section).children() : []
            throw HDF5Error(
                "\(path): no \(kind) '\(name)'"
                    + (closestMatch(name, in: names).map { " (did you mean '\($0)'?)" }
                        ?? (names.isEmpty ? " (the store has no \(section))" : "; it has: " + names.joined(separator: ", "))))
        }
        return try root.group("\(section)/\(name)")
    }

    /// Writes a head's weights and attributes under `/heads/<name>`.
    func writeHead(_ head: PredictionHead, in root: HDF5Group, name: String, owner: (kind: String, name: String)) throws {
        let h = try root.createGroup("heads/\(name)")
        for p in head.parameters { try h.write(p.name, tensor: p.value) }
        try h.setAttribute("kind", headConfig.kind.rawValue)
        try h.setAttribute("config", AdapterStore.json(headConfig))
        try h.setAttribute("labels", AdapterStore.json(labels))
        try h.setAttribute("task", task)
        try h.setAttribute(owner.kind, owner.name)
    }

    /// Reads `/heads/<name>` into a head of this record's configuration.
    func readHead(from root: HDF5Group, name: String) throws -> PredictionHead {
        let h = try root.group("heads/\(name)")
        let head = PredictionHead(config: headConfig, hidden: hiddenSize, seed: 0)
        for p in head.parameters { p.value.copy(from: try h.readTensor(p.name, shape: p.value.shape)) }
        return head
    }
}

/// A JSON-valued string attribute decoded as `T`.
func decodeAttribute<T: Decodable>(_ type: T.Type, _ attr: String, of g: HDF5Group) throws -> T {
    let text = try g.stringAttribute(attr)
    do { return try JSONDecoder().decode(T.self, from: Data(text.utf8)) } catch {
        throw HDF5Error("\(g.file.path): attribute '\(attr)' of '\(g.path)' is not valid JSON for its kind")
    }
}
