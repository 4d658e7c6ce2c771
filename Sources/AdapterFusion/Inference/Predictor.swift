import Foundation

/// A stored adapter or fusion with its head on its encoder, ready to predict, evaluate and
/// (for a fusion) summarise its attention. Built from a store entry or from the recipe that
/// trained a fusion.
public final class Predictor {
    public enum Kind: String, Sendable { case adapter, fusion }

    public let name: String
    public let kind: Kind
    public let encoder: BertEncoder
    public let tokenizer: WordPieceTokenizer
    /// nil: the bare encoder (a LoRA adapter merged into its weights).
    public let hook: LayerHook?
    public let head: PredictionHead
    public let record: TrainingRecord
    /// The settings it was trained with (sample seeds, batch size, max length).
    public let settings: TrainingConfig
    /// The fusion's composition (nil for an adapter).
    public let composition: Composition?

    public var regression: Bool { head.config.kind == .regression }
    public var labels: [String] { record.labels }
    public var taskFile: String { record.taskFile }

    init(
        name: String, kind: Kind, encoder: BertEncoder, tokenizer: WordPieceTokenizer, hook: LayerHook?, head: PredictionHead,
        record: TrainingRecord, composition: Composition?
    ) {
        self.name = name; self.kind = kind; self.encoder = encoder; self.tokenizer = tokenizer
        self.hook = hook; self.head = head; self.record = record; self.composition = composition
        settings = record.settings
    }

    /// Adapter `name` of `store`, on the model in `model` (refused if trained on another).
    /// `merge`: fold a LoRA adapter into a copy of the encoder's weights and run without a hook.
    public static func adapter(_ name: String, store: String, model: String, merge: Bool = false) throws -> Predictor {
        let fingerprint = try ModelDirectory.fingerprint(model)
        var (encoder, tokenizer) = try ModelDirectory.load(model)
        let (a, head, rec) = try AdapterStore.load(store, name: name, baseFingerprint: fingerprint)
        var hook: LayerHook? = a
        if merge {
            guard a.mergeable else {
                throw ModelError("adapter '\(name)' is \(a.config.architecture): only LoRA adapters fold into the weights (--merge)")
            }
            encoder = BertEncoder(config: encoder.config, weights: a.merged(into: encoder.weights))
            hook = nil
        }
        return Predictor(
            name: name, kind: .adapter, encoder: encoder, tokenizer: tokenizer, hook: hook, head: head,
            record: rec.training, composition: nil)
    }

    /// Fusion `name` of `store`, on the model in `model`, with every member checked.
    public static func fusion(_ name: String, store: String, model: String) throws -> Predictor {
        let fingerprint = try ModelDirectory.fingerprint(model)
        let (encoder, tokenizer) = try ModelDirectory.load(model)
        let f = try FusionStore.load(store, name: name, baseFingerprint: fingerprint)
        return Predictor(
            name: name, kind: .fusion, encoder: encoder, tokenizer: tokenizer, hook: f.composition.root,
            head: f.head, record: f.record.training, composition: f.composition)
    }

    /// The fusion a recipe trained, in the recipe's store (or `store`) on the recipe's base model
    /// (or `model`). A parallel recipe has no single predictor: see `ParallelPredictor`.
    public static func recipe(_ path: String, store: String? = nil, model: String? = nil) throws -> Predictor {
        let r = try Recipe.load(path)
        if case .parallel = r.expr {
            throw ModelError("\(path) is a parallel recipe: it runs its members' own heads (ParallelPredictor, `afusion predict --recipe`)")
        }
        return try fusion(r.name, store: store ?? r.store, model: model ?? r.base)
    }

    /// The encodings of texts (with an optional second text each), at `maxLength` tokens
    /// (default: as in training).
    public func encode(_ inputs: [(text: String, pair: String?)], maxLength: Int? = nil) -> [Encoding] {
        inputs.map { tokenizer.encode($0.text, pair: $0.pair, maxLength: maxLength ?? settings.maxLength) }
    }

    /// Per input: class probabilities in label order, or the predicted value.
    public func predict(_ inputs: [(text: String, pair: String?)], maxLength: Int? = nil) throws -> [[Float]] {
        try Evaluator(encoder: encoder, hook: hook, head: head).predict(encode(inputs, maxLength: maxLength), regression: regression)
    }

    /// Scores `examples` with `spec`'s metric (encoded at the training max length, batched as in
    /// training's dev evaluation, so a reloaded model reproduces its recorded dev metric exactly).
    public func evaluate(_ examples: [Example], spec: TaskSpec) throws -> Evaluator.Output {
        guard spec.labels == labels else {
            throw ModelError("\(spec.path): labels \(spec.labels) differ from the \(kind.rawValue)'s \(labels)")
        }
        let encoded = EncodedSplit(examples, tokenizer: tokenizer, maxLength: settings.maxLength)
        return try Evaluator(encoder: encoder, hook: hook, head: head).evaluate(encoded, spec: spec, batchSize: settings.batchSize)
    }

    /// Mean fusion attention per fuse node, site and member over all tokens of `examples`.
    public func attentionSummary(_ examples: [Example]) throws -> AttentionSummary {
        guard let composition else { throw ModelError("'\(name)' is an adapter; only a fusion has attention to summarise") }
        return try AttentionSummary(
            composition: composition, encoder: encoder,
            encodings: EncodedSplit(examples, tokenizer: tokenizer, maxLength: settings.maxLength).encodings)
    }
}
