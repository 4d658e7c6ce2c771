import Foundation

/// Everything stored beside a trained fusion (as attributes of `/fusions/<name>`).
public struct FusionRecord: Sendable, Equatable {
    public var name: String
    /// The recipe, verbatim: loading rebuilds the composition from it.
    public var recipe: String
    public var recipeFile: String
    public var task: String
    public var taskFile: String
    public var labels: [String]
    public var metric: String
    public var composition: String
    /// Member adapter names with the weights fingerprint each had when the fusion was trained.
    public var memberFingerprints: [String: String]
    public var options: FusionOptions
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
    public var weightsFingerprint: String = ""

    public init(name: String, recipe: String, recipeFile: String, task: String, taskFile: String, labels: [String], metric: String,
                composition: String, memberFingerprints: [String: String], options: FusionOptions, headConfig: HeadConfig,
                baseModel: String, baseFingerprint: String, hiddenSize: Int, numLayers: Int, devMetrics: [Double],
                bestEpoch: Int, hyperparameters: String, seed: Int, created: String) {
        self.name = name; self.recipe = recipe; self.recipeFile = recipeFile; self.task = task; self.taskFile = taskFile
        self.labels = labels; self.metric = metric; self.composition = composition; self.memberFingerprints = memberFingerprints
        self.options = options; self.headConfig = headConfig; self.baseModel = baseModel; self.baseFingerprint = baseFingerprint
        self.hiddenSize = hiddenSize; self.numLayers = numLayers; self.devMetrics = devMetrics; self.bestEpoch = bestEpoch
        self.hyperparameters = hyperparameters; self.seed = seed; self.created = created
    }

    public var bestDevMetric: Double? { bestEpoch >= 1 && bestEpoch <= devMetrics.count ? devMetrics[bestEpoch - 1] : nil }
}

/// Fusions in the same HDF5 store as the adapters:
///
///     /fusions/<name>/layer_03/query/weight   [H, H]   (key, value likewise; nested fuse nodes under member_i/)
///     /heads/<name>/…                                  (the target task's head)
public enum FusionStore {
    public static func save(composition: Composition, head: PredictionHead, record: FusionRecord, to path: String) throws {
        var rec = record
        rec.weightsFingerprint = AdapterStore.fingerprint(composition.parameters + head.parameters)
        try AdapterStore.rewrite(path, replacing: [("fusions", rec.name), ("heads", rec.name)]) { root in
            let g = try root.createGroup("fusions/\(rec.name)")
            for p in composition.parameters { try g.write(p.name, tensor: p.value) }
            try g.setAttribute("kind", "adapter_fusion")
            try g.setAttribute("recipe", rec.recipe)
            try g.setAttribute("recipe_file", rec.recipeFile)
            try g.setAttribute("task", rec.task)
            try g.setAttribute("task_file", rec.taskFile)
            try g.setAttribute("labels", AdapterStore.json(rec.labels))
            try g.setAttribute("metric", rec.metric)
            try g.setAttribute("composition", rec.composition)
            try g.setAttribute("members", AdapterStore.json(rec.memberFingerprints.keys.sorted()))
            try g.setAttribute("member_fingerprints", AdapterStore.json(rec.memberFingerprints))
            try g.setAttribute("options", AdapterStore.json(rec.options))
            try g.setAttribute("head", rec.name)
            try g.setAttribute("head_config", AdapterStore.json(rec.headConfig))
            try g.setAttribute("base_model", rec.baseModel)
            try g.setAttribute("base_fingerprint", rec.baseFingerprint)
            try g.setAttribute("hidden_size", rec.hiddenSize)
            try g.setAttribute("num_layers", rec.numLayers)
            try g.setAttribute("dev_metric_per_epoch", rec.devMetrics)
            try g.setAttribute("best_epoch", rec.bestEpoch)
            try g.setAttribute("hyperparameters", rec.hyperparameters)
            try g.setAttribute("seed", rec.seed)
            try g.setAttribute("created", rec.created)
            try g.setAttribute("tool_version", rec.toolVersion)
            try g.setAttribute("weights_fingerprint", rec.weightsFingerprint)
            let h = try root.createGroup("heads/\(rec.name)")
            for p in head.parameters { try h.write(p.name, tensor: p.value) }
            try h.setAttribute("kind", rec.headConfig.kind.rawValue)
            try h.setAttribute("config", AdapterStore.json(rec.headConfig))
            try h.setAttribute("labels", AdapterStore.json(rec.labels))
            try h.setAttribute("task", rec.task)
            try h.setAttribute("fusion", rec.name)
        }
    }

    static func readRecord(_ g: HDF5Group, name: String) throws -> FusionRecord {
        func decode<T: Decodable>(_ t: T.Type, _ attr: String) throws -> T {
            do { return try JSONDecoder().decode(T.self, from: Data(try g.stringAttribute(attr).utf8)) } catch let e as HDF5Error { throw e } catch {
                throw HDF5Error("\(g.file.path): attribute '\(attr)' of '\(g.path)' is not valid JSON for its kind")
            }
        }
        var r = FusionRecord(
            name: name, recipe: try g.stringAttribute("recipe"), recipeFile: try g.stringAttribute("recipe_file"),
            task: try g.stringAttribute("task"), taskFile: try g.stringAttribute("task_file"), labels: try decode([String].self, "labels"),
            metric: try g.stringAttribute("metric"), composition: try g.stringAttribute("composition"),
            memberFingerprints: try decode([String: String].self, "member_fingerprints"), options: try decode(FusionOptions.self, "options"),
            headConfig: try decode(HeadConfig.self, "head_config"), baseModel: try g.stringAttribute("base_model"),
            baseFingerprint: try g.stringAttribute("base_fingerprint"), hiddenSize: try g.intAttribute("hidden_size"),
            numLayers: try g.intAttribute("num_layers"), devMetrics: try g.doubleAttribute("dev_metric_per_epoch"),
            bestEpoch: try g.intAttribute("best_epoch"), hyperparameters: try g.stringAttribute("hyperparameters"),
            seed: try g.intAttribute("seed"), created: try g.stringAttribute("created"))
        r.toolVersion = try g.stringAttribute("tool_version")
        r.weightsFingerprint = try g.stringAttribute("weights_fingerprint")
        return r
    }

    /// Records of every fusion in the store.
    public static func list(_ path: String) throws -> [FusionRecord] {
        let root = try HDF5File(opening: path).root
        guard root.contains("fusions") else { return [] }
        let g = try root.group("fusions")
        return try g.children().map { try readRecord(try g.group($0), name: $0) }
    }

    /// A loaded fusion: its composition over the (frozen) member adapters, its head and record.
    public struct Loaded {
        public let recipe: Recipe
        public let composition: Composition
        public let head: PredictionHead
        public let record: FusionRecord
    }

    /// Loads fusion `name`: rebuilds the composition from the stored recipe, loads every member
    /// and refuses when a member was removed or retrained since (its weights fingerprint differs),
    /// naming that adapter, or when the base model differs.
    public static func load(_ path: String, name: String, baseFingerprint: String?) throws -> Loaded {
        let root = try HDF5File(opening: path).root
        guard root.contains("fusions/\(name)") else {
            let names = root.contains("fusions") ? try root.group("fusions").children() : []
            throw HDF5Error("\(path): no fusion '\(name)'" + (closestMatch(name, in: names).map { " (did you mean '\($0)'?)" }
                ?? (names.isEmpty ? " (the store has no fusions)" : "; it has: " + names.joined(separator: ", "))))
        }
        let g = try root.group("fusions/\(name)")
        let rec = try readRecord(g, name: name)
        if let baseFingerprint, baseFingerprint != rec.baseFingerprint {
            throw HDF5Error("\(path): fusion '\(name)' was trained on base model \(rec.baseModel) (sha256 \(rec.baseFingerprint.prefix(12))…), "
                            + "not on the model given (sha256 \(baseFingerprint.prefix(12))…); refusing to load it")
        }
        let recipe = try Recipe.parse(rec.recipe, file: "\(path):/fusions/\(name)")
        let stored = Dictionary(try AdapterStore.list(path).map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var adapters: [String: Adapter] = [:]
        for member in recipe.expr.adapterNames {
            guard let r = stored[member] else {
                throw HDF5Error("\(path): fusion '\(name)' needs adapter '\(member)', which the store no longer has; retrain the fusion")
            }
            guard r.weightsFingerprint == rec.memberFingerprints[member] else {
                throw HDF5Error("\(path): adapter '\(member)' was retrained or changed after fusion '\(name)' was trained on it "
                                + "(weights fingerprint \(r.weightsFingerprint.prefix(12))…, fusion expects \(rec.memberFingerprints[member]?.prefix(12) ?? "none")…); retrain the fusion")
            }
            adapters[member] = try AdapterStore.load(path, name: member, baseFingerprint: baseFingerprint).0
        }
        let comp = Composition(recipe.expr, adapters: adapters, options: rec.options, hidden: rec.hiddenSize, layers: rec.numLayers, seed: 0)
        for p in comp.parameters { p.value.copy(from: try g.readTensor(p.name, shape: p.value.shape)) }
        comp.finishTraining()
        let h = try root.group("heads/\(name)")
        let head = PredictionHead(config: rec.headConfig, hidden: rec.hiddenSize, seed: 0)
        for p in head.parameters { p.value.copy(from: try h.readTensor(p.name, shape: p.value.shape)) }
        guard AdapterStore.fingerprint(comp.parameters + head.parameters) == rec.weightsFingerprint else {
            throw HDF5Error("\(path): weights of fusion '\(name)' do not match their recorded fingerprint (the store was modified or is corrupt)")
        }
        return Loaded(recipe: recipe, composition: comp, head: head, record: rec)
    }
}
