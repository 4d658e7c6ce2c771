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
    public let head: PredictionHead
    /// Label names in output order (AdapterHub's label2id); empty for a regression head.
    public let labels: [String]

    public init(adapter: Adapter, head: PredictionHead, labels: [String]) {
        self.adapter = adapter
        self.head = head
        self.labels = labels
    }

    static let adapterConfigFile = "adapter_config.json"
    static let adapterWeights = (safe: "adapter.safetensors", bin: "pytorch_adapter.bin")
    static let headConfigFile = "head_config.json"
    static let headWeights = (safe: "model_head.safetensors", bin: "pytorch_model_head.bin")

    /// Reads the adapter and head in `directory` for an encoder of `hidden` × `layers`.
    public static func read(directory: String, hidden: Int, layers: Int, name: String? = nil) throws -> AdapterHubAdapter {
        func path(_ f: String) -> String { (directory as NSString).appendingPathComponent(f) }
        let meta = try json(path(adapterConfigFile))
        guard let config = meta["config"] as? [String: Any] else { throw refuse(path(adapterConfigFile), "'config' is missing") }
        let stored = meta["name"] as? String ?? (directory as NSString).lastPathComponent
        if let h = meta["hidden_size"] as? Int, h != hidden {
            throw refuse(path(adapterConfigFile), "hidden_size \(h) differs from the base model's \(hidden)")
        }
        let adapterConfig = try Self.adapterConfig(config, file: path(adapterConfigFile), layers: layers)
        let adapter = Adapter(name: name ?? stored, config: adapterConfig, hidden: hidden, layers: layers, seed: 0)
        let weights = try Self.weights(directory, safetensors: adapterWeights.safe, bin: adapterWeights.bin)
        for (l, s) in adapterConfig.sites(layers: layers) {
            let m = adapter.module(layer: l, site: s)!
            let base = Self.sublayerPath(HookSite(l, s)) + ".adapters.\(stored)."
            m.downWeight.value.copy(from: try weights.tensor(base + "adapter_down.0.weight", shape: m.downWeight.value.shape))
            m.downBias.value.copy(from: try weights.tensor(base + "adapter_down.0.bias", shape: m.downBias.value.shape))
            m.upWeight.value.copy(from: try weights.tensor(base + "adapter_up.weight", shape: m.upWeight.value.shape))
            m.upBias.value.copy(from: try weights.tensor(base + "adapter_up.bias", shape: m.upBias.value.shape))
        }
        let (head, labels) = try readHead(directory: directory, stored: stored, hidden: hidden)
        return AdapterHubAdapter(adapter: adapter, head: head, labels: labels)
    }

    /// The AdapterHub config fields afusion can represent, checked; the rest refused by name.
    static func adapterConfig(_ c: [String: Any], file: String, layers: Int) throws -> AdapterConfig {
        func flag(_ k: String, _ expected: Bool) throws {
            if let v = c[k] as? Bool, v != expected { throw refuse(file, "\(k) = \(v) is not supported (afusion's placement has \(expected))") }
        }
        try flag("original_ln_after", true)
        try flag("adapter_residual_before_ln", false)
        try flag("ln_before", false)
        try flag("ln_after", false)
        try flag("use_gating", false)
        try flag("phm_layer", false)
        try flag("is_parallel", false)
        try flag("cross_adapter", false)
        if let r = c["residual_before_ln"] as? Bool, !r { throw refuse(file, "residual_before_ln = false is not supported") }
        if c["residual_before_ln"] is String { throw refuse(file, "residual_before_ln = \"post_add\" is not supported") }
        if let s = c["scaling"], (s as? Double) != 1 { throw refuse(file, "scaling = \(s) is not supported (afusion's adapters add up(·) unscaled)") }
        if let inv = c["inv_adapter"], !(inv is NSNull) { throw refuse(file, "inv_adapter (invertible adapters) is not supported") }
        if let d = c["stochastic_depth"] as? Double, d != 0 { throw refuse(file, "stochastic_depth = \(d) is not supported") }
        let mh = c["mh_adapter"] as? Bool ?? false
        let output = c["output_adapter"] as? Bool ?? true
        let placement: AdapterPlacement
        switch (mh, output) {
        case (false, true): placement = .pfeiffer
        case (true, true): placement = .houlsby
        default: throw refuse(file, "mh_adapter = \(mh), output_adapter = \(output) is not supported (output only, or both)")
        }
        guard let f = c["reduction_factor"] as? Double, f == f.rounded(), (1...1_000_000).contains(f) else {
            throw refuse(file, "reduction_factor must be one whole number (a per-layer mapping is not supported)")
        }
        let reduction = Int(f)
        let nonLinearity: Activation
        switch (c["non_linearity"] as? String ?? "relu").lowercased() {
        case "relu": nonLinearity = .relu
        case "gelu": nonLinearity = .gelu
        case "swish", "silu": nonLinearity = .swish
        case let other: throw refuse(file, "non_linearity '\(other)' is not supported (relu, gelu, swish)")
        }
        let leaveOut = (c["leave_out"] as? [Int]) ?? []
        guard leaveOut.allSatisfy({ (0..<layers).contains($0) }) else {
            throw refuse(file, "leave_out \(leaveOut) names layers outside 0..<\(layers)")
        }
        if let v = c["original_ln_before"], !(v is Bool) { throw refuse(file, "original_ln_before = \(v) is not a boolean") }
        return AdapterConfig(
            placement: placement, reductionFactor: reduction, nonLinearity: nonLinearity, leaveOut: leaveOut,
            lnBefore: c["original_ln_before"] as? Bool ?? false)
    }

    /// A head saved by `save_head` (or beside an adapter): the head and its label names.
    public static func readHead(directory: String, hidden: Int) throws -> (PredictionHead, [String]) {
        let meta = try json((directory as NSString).appendingPathComponent(headConfigFile))
        return try readHead(directory: directory, stored: meta["name"] as? String ?? "", hidden: hidden)
    }

    static func readHead(directory: String, stored: String, hidden: Int) throws -> (PredictionHead, [String]) {
        let file = (directory as NSString).appendingPathComponent(headConfigFile)
        let meta = try json(file)
        guard let c = meta["config"] as? [String: Any] else { throw refuse(file, "'config' is missing") }
        guard (c["head_type"] as? String) == "classification" else {
            throw refuse(file, "head_type '\(c["head_type"] ?? "none")' is not supported (classification, or one output as regression)")
        }
        guard let outputs = c["num_labels"] as? Int, outputs >= 1 else { throw refuse(file, "num_labels is missing") }
        let layers = c["layers"] as? Int ?? 2
        guard layers == 1 || layers == 2 else { throw refuse(file, "layers = \(layers) is not supported (1 or 2)") }
        if layers == 2, let act = c["activation_function"] as? String, act != "tanh" {
            throw refuse(file, "activation_function '\(act)' is not supported (tanh)")
        }
        if let pooler = c["use_pooler"] as? Bool, pooler { throw refuse(file, "use_pooler = true is not supported ([CLS] state only)") }
        let regression = outputs == 1
        let config = HeadConfig(kind: regression ? .regression : .classification, outputs: outputs, preDense: layers == 2)
        let head = PredictionHead(config: config, hidden: hidden, seed: 0)
        let weights = try Self.weights(directory, safetensors: headWeights.safe, bin: headWeights.bin)
        let base = "heads.\(stored)."
        if let dense = head.dense {
            dense.weight.value.copy(from: try weights.tensor(base + "1.weight", shape: dense.weight.value.shape))
            dense.bias.value.copy(from: try weights.tensor(base + "1.bias", shape: dense.bias.value.shape))
        }
        let out = outputIndex(preDense: layers == 2)
        head.output.weight.value.copy(from: try weights.tensor(base + out + ".weight", shape: head.output.weight.value.shape))
        head.output.bias.value.copy(from: try weights.tensor(base + out + ".bias", shape: head.output.bias.value.shape))
        var labels: [String] = []
        if !regression {
            let label2id = c["label2id"] as? [String: Int] ?? [:]
            labels = (0..<outputs).map { i in label2id.first { $0.value == i }?.key ?? "LABEL_\(i)" }
        }
        return (head, labels)
    }

    /// AdapterHub's module path of a site's sublayer output: `bert.encoder.layer.3.output`, or
    /// `….attention.output` at the attention site.
    static func sublayerPath(_ site: HookSite) -> String {
        "bert.encoder.layer.\(site.layer).\(site.site == .output ? "output" : "attention.output")"
    }

    /// Index of the output layer in AdapterHub's head Sequential: [dropout, dense, tanh, dropout,
    /// output] with the dense layer, [dropout, output] without.
    static func outputIndex(preDense: Bool) -> String { preDense ? "4" : "1" }

    static func json(_ path: String) throws -> [String: Any] {
        let data = try TextFile.data(path, what: "cannot read AdapterHub file")
        guard let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw SourceError(file: path, "not a JSON object")
        }
        return obj
    }

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
        try Self.writeHead(head, labels: labels, name: name, directory: directory, safetensors: safetensors)
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
