import Foundation

/// Everything stored beside a trained fusion (as attributes of `/fusions/<name>`); the training
/// fields are reachable directly (`record.task`).
@dynamicMemberLookup
public struct FusionRecord: Sendable, Equatable {
    public var name: String
    /// The recipe, verbatim: loading rebuilds the composition from it.
    public var recipe: String
    public var recipeFile: String
    public var composition: String
    /// Member adapter names with the weights fingerprint each had when the fusion was trained.
    public var memberFingerprints: [String: String]
    public var options: FusionOptions
    public var training: TrainingRecord

    public init(
        name: String, recipe: String, recipeFile: String, task: String, taskFile: String, labels: [String], metric: String,
        composition: String, memberFingerprints: [String: String], options: FusionOptions, headConfig: HeadConfig,
        baseModel: String, baseFingerprint: String, hiddenSize: Int, numLayers: Int, devMetrics: [Double],
        bestEpoch: Int, settings: TrainingConfig, seed: Int, created: String
    ) {
        self.name = name; self.recipe = recipe; self.recipeFile = recipeFile; self.composition = composition
        self.memberFingerprints = memberFingerprints; self.options = options
        training = TrainingRecord(
            task: task, taskFile: taskFile, labels: labels, metric: metric, headConfig: headConfig,
            baseModel: baseModel, baseFingerprint: baseFingerprint, hiddenSize: hiddenSize,
            numLayers: numLayers, devMetrics: devMetrics, bestEpoch: bestEpoch,
            settings: settings, seed: seed, created: created)
    }

    init(
        name: String, recipe: String, recipeFile: String, composition: String, memberFingerprints: [String: String],
        options: FusionOptions, training: TrainingRecord
    ) {
        self.name = name; self.recipe = recipe; self.recipeFile = recipeFile; self.composition = composition
        self.memberFingerprints = memberFingerprints; self.options = options; self.training = training
    }

    public subscript<T>(dynamicMember keyPath: WritableKeyPath<TrainingRecord, T>) -> T {
        get { training[keyPath: keyPath] }
        set { training[keyPath: keyPath] = newValue }
    }

    public var bestDevMetric: Double? { training.bestDevMetric }
}

/// Fusions in the same HDF5 store as the adapters:
///
///     /fusions/<name>/layer_03/query/weight   [H, H]   (key, value likewise; nested fuse nodes under member_i/)
///     /heads/<name>/…                                  (the target task's head)
public enum FusionStore {
    /// Saves a fusion and its head under `record.name`. A fusion already stored under that name
    /// is replaced only when `replace` is true; an adapter of that name never is (`StoreConflict`).
    public static func save(composition: Composition, head: PredictionHead, record: FusionRecord, to path: String, replace: Bool = false) throws {
        var rec = record
        rec.weightsFingerprint = AdapterStore.fingerprint(composition.parameters + head.parameters)
        let entry = (kind: StoreEntryKind.fusion, name: rec.name, replace: replace)
        try AdapterStore.rewrite(path, replacing: [("fusions", rec.name), ("heads", rec.name)], entry: entry) { root in
            let g = try root.createGroup("fusions/\(rec.name)")
            for p in composition.parameters { try g.write(p.name, tensor: p.value) }
            try g.setAttribute("kind", "adapter_fusion")
            try g.setAttribute("recipe", rec.recipe)
            try g.setAttribute("recipe_file", rec.recipeFile)
            try g.setAttribute("composition", rec.composition)
            try g.setAttribute("members", AdapterStore.json(rec.memberFingerprints.keys.sorted()))
            try g.setAttribute("member_fingerprints", AdapterStore.json(rec.memberFingerprints))
            try g.setAttribute("options", AdapterStore.json(rec.options))
            try rec.training.write(to: g, name: rec.name)
            try rec.training.writeHead(head, in: root, name: rec.name, owner: ("fusion", rec.name))
        }
    }

    static func readRecord(_ g: HDF5Group, name: String) throws -> FusionRecord {
        FusionRecord(
            name: name, recipe: try g.stringAttribute("recipe"), recipeFile: try g.stringAttribute("recipe_file"),
            composition: try g.stringAttribute("composition"),
            memberFingerprints: try decodeAttribute([String: String].self, "member_fingerprints", of: g),
            options: try decodeAttribute(FusionOptions.self, "options", of: g), training: try TrainingRecord.read(g))
    }

    /// Records of every fusion in the store.
    public static func list(_ path: String, damaged: (String) -> Void = StoreFile.warn) throws -> [FusionRecord] {
        let root = try HDF5File(opening: path).root
        guard root.contains("fusions") else { return [] }
        let g = try root.group("fusions")
        return g.children().compactMap { name in
            do { return try readRecord(try g.group(name), name: name) } catch {
                damaged("skipping fusion '\(name)': \(error)")
                return nil
            }
        }
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
        let g = try TrainingRecord.group(root, section: "fusions", kind: "fusion", name: name, path: path)
        let rec = try readRecord(g, name: name)
        try rec.training.checkBase(baseFingerprint, kind: "fusion", name: name, path: path)
        let recipe = try Recipe.parse(rec.recipe, file: "\(path):/fusions/\(name)")
        let stored = Dictionary(try AdapterStore.list(path).map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var adapters: [String: Adapter] = [:]
        for member in recipe.expr.adapterNames {
            guard let r = stored[member] else {
                throw HDF5Error("\(path): fusion '\(name)' needs adapter '\(member)', which the store no longer has; retrain the fusion")
            }
            guard r.weightsFingerprint == rec.memberFingerprints[member] else {
                throw HDF5Error(
                    "\(path): adapter '\(member)' was retrained or changed after fusion '\(name)' was trained on it "
                        + "(weights fingerprint \(r.weightsFingerprint.prefix(12))…, fusion expects \(rec.memberFingerprints[member]?.prefix(12) ?? "none")…); retrain the fusion"
                )
            }
            adapters[member] = try AdapterStore.loadMember(path, name: member, baseFingerprint: baseFingerprint).0
        }
        if let p = Composition.problem(recipe.expr, configs: adapters.mapValues(\.config)) {
            throw HDF5Error("\(path): fusion '\(name)' cannot be rebuilt: \(p.message)")
        }
        let comp = Composition(recipe.expr, adapters: adapters, options: rec.options, hidden: rec.hiddenSize, layers: rec.numLayers, seed: 0)
        for p in comp.parameters { p.value.copy(from: try g.readTensor(p.name, shape: p.value.shape)) }
        comp.finishTraining()
        let head = try rec.training.readHead(from: root, name: name)
        try rec.training.checkWeights(comp.parameters + head.parameters, kind: "fusion", name: name, path: path)
        return Loaded(recipe: recipe, composition: comp, head: head, record: rec)
    }
}
