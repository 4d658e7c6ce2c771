import Foundation

/// A bottleneck adapter and its head in AdapterHub `adapters` 1.x's directory format
/// (`save_adapter(…, use_safetensors=True)`): `adapter_config.json`, `adapter.safetensors`,
/// `head_config.json`, `model_head.safetensors`.
///
/// afusion's adapters compute AdapterHub's bottleneck with original_ln_after true and
/// residual_before_ln true: out = LN(h + up(f(down(u))) + x), where u is the sublayer output h
/// (original_ln_before false: double_seq_bn and `BnConfig`'s defaults) or LN(h + x) with the
/// layer's own LayerNorm (original_ln_before true: seq_bn, AdapterHub's "pfeiffer") — at the
/// output (`pfeiffer`), or at the attention output too (`houlsby`: mh_adapter). A config that
/// computes anything else (scaling, gating, layer norms inside the adapter, PHM, parallel,
/// invertible adapters) is refused, naming the field: importing it would give other outputs
/// than AdapterHub's.
public struct AdapterHubAdapter {
    public let adapter: Adapter
    /// The task head; nil for an adapter saved without `head_config.json` (fusion members and
    /// language adapters usually are), which is usable as a composition member only.
    public let head: PredictionHead?
    /// Label names in output order (AdapterHub's label2id); empty for a regression head or none.
    public let labels: [String]

    public init(adapter: Adapter, head: PredictionHead?, labels: [String]) {
        self.adapter = adapter
        self.head = head
        self.labels = labels
    }

    static let adapterConfigFile = "adapter_config.json"
    static let adapterWeights = (safe: "adapter.safetensors", bin: "pytorch_adapter.bin")
    static let headConfigFile = "head_config.json"
    static let headWeights = (safe: "model_head.safetensors", bin: "pytorch_model_head.bin")

    /// Reads the adapter and head in `directory` for an encoder of `hidden` × `layers` whose
    /// config.json says `modelType` (AdapterHub's `model_type`, checked when both are known).
    public static func read(directory: String, hidden: Int, layers: Int, name: String? = nil, modelType: String? = nil) throws
        -> AdapterHubAdapter
    {
        func path(_ f: String) -> String { (directory as NSString).appendingPathComponent(f) }
        let meta = try JSONFields.read(path(adapterConfigFile), what: "cannot read AdapterHub file")
        guard let config = try meta.object("config") else { throw meta.refuse("config", "is missing") }
        let stored = try meta.string("name") ?? (directory as NSString).lastPathComponent
        if let h = try meta.int("hidden_size", in: 1...1_000_000), h != hidden {
            throw meta.refuse("hidden_size", "\(h) differs from the base model's \(hidden)")
        }
        if let t = try meta.string("model_type"), let modelType, t != modelType {
            throw meta.refuse("model_type", "'\(t)' differs from the base model's '\(modelType)'")
        }
        let adapterConfig = try Self.adapterConfig(config, hidden: hidden, layers: layers)
        let adapter = Adapter(name: name ?? stored, config: adapterConfig, hidden: hidden, layers: layers, seed: 0)
        let weights = try Self.weights(directory, safetensors: adapterWeights.safe, bin: adapterWeights.bin)
        for (l, s) in adapterConfig.sites(layers: layers) {
            let m = adapter.module(layer: l, site: s)!
            let base = Self.sublayerPath(HookSite(l, s)) + ".adapters.\(stored)."
            for (p, key) in [
                (m.downWeight, "adapter_down.0.weight"), (m.downBias, "adapter_down.0.bias"), (m.upWeight, "adapter_up.weight"),
                (m.upBias, "adapter_up.bias"),
            ] {
                p.value.copy(from: try finite(weights.tensor(base + key, shape: p.value.shape), base + key, directory))
            }
        }
        guard FileManager.default.fileExists(atPath: path(headConfigFile)) else { return AdapterHubAdapter(adapter: adapter, head: nil, labels: []) }
        let (head, labels) = try readHead(directory: directory, stored: stored, hidden: hidden)
        return AdapterHubAdapter(adapter: adapter, head: head, labels: labels)
    }

    /// Refuses a tensor holding NaN or ±inf: imported, it would predict garbage without a word.
    static func finite(_ t: Tensor, _ name: String, _ directory: String) throws -> Tensor {
        guard let bad = (0..<t.count).first(where: { !t[$0].isFinite }) else { return t }
        throw SourceError(file: directory, "cannot import: tensor '\(name)' holds \(t[bad]) at element \(bad); weights must be finite")
    }

    /// The AdapterHub config fields afusion can represent, checked by type and range; the rest
    /// refused by name.
    static func adapterConfig(_ c: JSONFields, hidden: Int, layers: Int) throws -> AdapterConfig {
        if let arch = try c.string("architecture"), arch != "bottleneck" {
            throw c.refuse("architecture", "'\(arch)' is not supported: afusion imports AdapterHub bottleneck adapters only")
        }
        func flag(_ k: String, _ expected: Bool) throws {
            if let v = try c.bool(k), v != expected { throw c.refuse(k, "= \(v) is not supported (afusion's placement has \(expected))") }
        }
        for (k, v) in [
            ("original_ln_after", true), ("adapter_residual_before_ln", false), ("ln_before", false), ("ln_after", false),
            ("use_gating", false), ("phm_layer", false), ("is_parallel", false), ("cross_adapter", false),
        ] { try flag(k, v) }
        if c["residual_before_ln"] is String { throw c.refuse("residual_before_ln", "= \"post_add\" is not supported") }
        try flag("residual_before_ln", true)
        if c.has("scaling"), (try? c.number("scaling")) != 1 {
            throw c.refuse("scaling", "= \(c["scaling"]!) is not supported (afusion's adapters add up(·) unscaled)")
        }
        if c.has("inv_adapter") { throw c.refuse("inv_adapter", "(invertible adapters) is not supported") }
        if let d = try c.number("stochastic_depth"), d != 0 { throw c.refuse("stochastic_depth", "= \(d) is not supported") }
        let mh = try c.bool("mh_adapter") ?? false
        let output = try c.bool("output_adapter") ?? true
        let placement: AdapterPlacement
        switch (mh, output) {
        case (false, true): placement = .pfeiffer
        case (true, true): placement = .houlsby
        default: throw c.refuse("mh_adapter", "= \(mh) with output_adapter = \(output) is not supported (output only, or both)")
        }
        guard c.has("reduction_factor") else { throw c.refuse("reduction_factor", "is missing") }
        if c["reduction_factor"] is [String: Any] {
            throw c.refuse("reduction_factor", "is a per-layer mapping, which is not supported (one whole number)")
        }
        // The bottleneck is hidden / reduction_factor wide: at least one unit.
        let reduction = try c.int("reduction_factor", in: 1...hidden)!
        let nonLinearity: Activation
        switch (try c.string("non_linearity") ?? "relu").lowercased() {
        case "relu": nonLinearity = .relu
        case "gelu": nonLinearity = .gelu
        case "swish", "silu": nonLinearity = .swish
        case let other: throw c.refuse("non_linearity", "'\(other)' is not supported (relu, gelu, swish)")
        }
        let leaveOut = try c.ints("leave_out", in: 0..<layers) ?? []
        if Set(leaveOut).count == layers { throw c.refuse("leave_out", "\(leaveOut) leaves out every layer: the adapter would do nothing") }
        return AdapterConfig(
            placement: placement, reductionFactor: reduction, nonLinearity: nonLinearity, leaveOut: leaveOut,
            lnBefore: try c.bool("original_ln_before") ?? false)
    }

    /// A head saved by `save_head` (or beside an adapter): the head and its label names.
    public static func readHead(directory: String, hidden: Int) throws -> (PredictionHead, [String]) {
        let meta = try JSONFields.read((directory as NSString).appendingPathComponent(headConfigFile), what: "cannot read AdapterHub file")
        return try readHead(meta, directory: directory, stored: try meta.string("name") ?? "", hidden: hidden)
    }

    static func readHead(directory: String, stored: String, hidden: Int) throws -> (PredictionHead, [String]) {
        let meta = try JSONFields.read((directory as NSString).appendingPathComponent(headConfigFile), what: "cannot read AdapterHub file")
        return try readHead(meta, directory: directory, stored: stored, hidden: hidden)
    }

    /// The head whose `head_config.json` is `meta`, its weights read from `directory`.
    static func readHead(_ meta: JSONFields, directory: String, stored: String, hidden: Int) throws -> (PredictionHead, [String]) {
        let (config, labels) = try headConfig(meta)
        let head = PredictionHead(config: config, hidden: hidden, seed: 0)
        let weights = try Self.weights(directory, safetensors: headWeights.safe, bin: headWeights.bin)
        let base = "heads.\(stored)."
        let out = outputIndex(preDense: config.preDense)
        var tensors = [(head.output.weight, base + out + ".weight"), (head.output.bias, base + out + ".bias")]
        if let dense = head.dense { tensors += [(dense.weight, base + "1.weight"), (dense.bias, base + "1.bias")] }
        for (p, key) in tensors { p.value.copy(from: try finite(weights.tensor(key, shape: p.value.shape), key, directory)) }
        return (head, labels)
    }

    /// A `head_config.json`'s head and label names, every field checked.
    static func headConfig(_ meta: JSONFields) throws -> (HeadConfig, [String]) {
        guard let c = try meta.object("config") else { throw meta.refuse("config", "is missing") }
        guard try c.string("head_type") == "classification" else {
            throw c.refuse(
                "head_type", "'\(c["head_type"].map(JSONFields.describe) ?? "none")' is not supported (classification, or one output as regression)")
        }
        guard let outputs = try c.int("num_labels", in: 1...1_000_000) else { throw c.refuse("num_labels", "is missing") }
        let layers = try c.int("layers", in: 1...2) ?? 2
        if layers == 2, let act = try c.string("activation_function"), act != "tanh" {
            throw c.refuse("activation_function", "'\(act)' is not supported (tanh)")
        }
        if try c.bool("use_pooler") == true { throw c.refuse("use_pooler", "= true is not supported ([CLS] state only)") }
        let regression = outputs == 1
        let config = HeadConfig(kind: regression ? .regression : .classification, outputs: outputs, preDense: layers == 2)
        return (config, regression ? [] : try labels(c, outputs: outputs))
    }

    /// Checks the bytes of an `adapter_config.json` (`head: false`) or `head_config.json`
    /// (`head: true`) as an import would, without weights: for the fuzzer and for tools.
    public static func checkConfigJSON(_ data: Data, head: Bool, hidden: Int, layers: Int) throws {
        let meta = try JSONFields.parse(data, file: head ? headConfigFile : adapterConfigFile)
        if head {
            _ = try headConfig(meta)
        } else {
            guard let config = try meta.object("config") else { throw meta.refuse("config", "is missing") }
            _ = try adapterConfig(config, hidden: hidden, layers: layers)
        }
    }

    /// Label names in output order from `label2id`: one name per id, every id in 0..<outputs
    /// named once. Without `label2id`, HF's LABEL_0, LABEL_1, ….
    static func labels(_ c: JSONFields, outputs: Int) throws -> [String] {
        guard let map = try c.object("label2id") else { return (0..<outputs).map { "LABEL_\($0)" } }
        var names = [String?](repeating: nil, count: outputs)
        for name in map.object.keys.sorted() {
            guard let id = try map.int(name, in: 0...(outputs - 1)) else { throw map.refuse(name, "is null") }
            if let other = names[id] { throw c.refuse("label2id", "gives id \(id) to both '\(other)' and '\(name)'") }
            names[id] = name
        }
        if let missing = names.firstIndex(where: { $0 == nil }) {
            throw c.refuse("label2id", "names no label for id \(missing) (num_labels is \(outputs))")
        }
        return names.map { $0! }
    }

    /// AdapterHub's module path of a site's sublayer output: `bert.encoder.layer.3.output`, or
    /// `….attention.output` at the attention site.
    static func sublayerPath(_ site: HookSite) -> String {
        "bert.encoder.layer.\(site.layer).\(site.site == .output ? "output" : "attention.output")"
    }

    /// Index of the output layer in AdapterHub's head Sequential: [dropout, dense, tanh, dropout,
    /// output] with the dense layer, [dropout, output] without.
    static func outputIndex(preDense: Bool) -> String { preDense ? "4" : "1" }

    static func refuse(_ file: String, _ why: String) -> SourceError { SourceError(file: file, "cannot import: \(why)") }
}

extension AdapterHubAdapter {
    /// Writes the adapter and head into `directory` so that AdapterHub `adapters` 1.x's
    /// `load_adapter(directory)` loads them unchanged and computes the same outputs.
    /// `safetensors`: write `*.safetensors` (load with `use_safetensors=True`) instead of the
    /// PyTorch `*.bin` files `load_adapter` reads by default.
    public func write(directory: String, name: String, safetensors: Bool = false) throws {
        guard adapter.config.method == .bottleneck else {
            throw ModelError(
                "cannot export to AdapterHub: '\(name)' is \(adapter.config.architecture); only bottleneck adapters have an AdapterHub form here")
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        func path(_ f: String) -> String { (directory as NSString).appendingPathComponent(f) }
        let c = adapter.config
        let H = adapter.hidden
        let config: [String: Any] = [
            "adapter_residual_before_ln": false, "cross_adapter": false, "dropout": 0.0, "factorized_phm_W": true,
            "factorized_phm_rule": false, "hypercomplex_nonlinearity": "glorot-uniform", "init_weights": "bert",
            "init_weights_seed": NSNull(), "inv_adapter": NSNull(), "inv_adapter_reduction_factor": NSNull(), "is_parallel": false,
            "learn_phm": true, "leave_out": c.leaveOut, "ln_after": false, "ln_before": false, "mh_adapter": c.placement == .houlsby,
            "non_linearity": c.nonLinearity.rawValue, "original_ln_after": true, "original_ln_before": c.lnBefore, "output_adapter": true,
            "phm_bias": true, "phm_c_init": "normal", "phm_dim": 4, "phm_init_range": 0.0001, "phm_layer": false, "phm_rank": 1,
            "reduction_factor": c.reductionFactor, "residual_before_ln": true, "scaling": 1.0, "shared_W_phm": false,
            "shared_phm_rule": true, "stochastic_depth": 0.0, "use_gating": false,
        ]
        try Self.writeJSON(
            [
                "config": config, "hidden_size": H, "model_class": "BertAdapterModel", "model_name": "", "model_type": "bert",
                "name": name, "version": "adapters.1.2.0",
            ], to: path(Self.adapterConfigFile))
        var tensors: [(String, Tensor)] = []
        for (l, s) in c.sites(layers: adapter.layers) {
            let m = adapter.module(layer: l, site: s)!
            let base = Self.sublayerPath(HookSite(l, s)) + ".adapters.\(name)."
            tensors += [
                (base + "adapter_down.0.weight", m.downWeight.value), (base + "adapter_down.0.bias", m.downBias.value),
                (base + "adapter_up.weight", m.upWeight.value), (base + "adapter_up.bias", m.upBias.value),
            ]
        }
        try Self.writeWeights(tensors, directory, safetensors: safetensors, names: Self.adapterWeights)
        if let head { try Self.writeHead(head, labels: labels, name: name, directory: directory, safetensors: safetensors) }
    }

    /// Writes `head` as `save_head` would (`head_config.json`, `model_head.safetensors`).
    public static func writeHead(_ head: PredictionHead, labels: [String], name: String, directory: String, safetensors: Bool = false) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        func path(_ f: String) -> String { (directory as NSString).appendingPathComponent(f) }
        let hc = head.config
        let names = hc.kind == .regression ? ["LABEL_0"] : labels
        let headConfig: [String: Any] = [
            "activation_function": "tanh", "bias": true, "dropout_prob": NSNull(), "head_type": "classification",
            "label2id": Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, $0) }), "layers": hc.preDense ? 2 : 1,
            "num_labels": hc.outputs, "use_pooler": false,
        ]
        try Self.writeJSON(
            [
                "config": headConfig, "hidden_size": head.hidden, "model_class": "BertAdapterModel", "model_name": "", "model_type": "bert",
                "name": name, "version": "adapters.1.2.0",
            ], to: path(Self.headConfigFile))
        var headTensors: [(String, Tensor)] = []
        let out = Self.outputIndex(preDense: hc.preDense)
        if let dense = head.dense { headTensors += [("heads.\(name).1.weight", dense.weight.value), ("heads.\(name).1.bias", dense.bias.value)] }
        headTensors += [("heads.\(name).\(out).weight", head.output.weight.value), ("heads.\(name).\(out).bias", head.output.bias.value)]
        try Self.writeWeights(headTensors, directory, safetensors: safetensors, names: Self.headWeights)
    }

    static func writeJSON(_ object: [String: Any], to path: String) throws {
        var text = String(
            decoding: try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]),
            as: UTF8.self)
        // JSONSerialization writes 1.0 as 1; AdapterHub checks that these are floats.
        for key in ["scaling", "dropout", "stochastic_depth"] {
            text = text.replacingOccurrences(of: "\"\(key)\" : ([0-9]+)(,?)\n", with: "\"\(key)\" : $1.0$2\n", options: .regularExpression)
        }
        guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8)) else {
            throw SourceError(file: path, "cannot write: \(String(cString: strerror(errno)))")
        }
    }
}
