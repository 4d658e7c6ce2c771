import Foundation

/// An AdapterFusion layer saved by AdapterHub `adapters` 1.x (`save_adapter_fusion(…,
/// use_safetensors=True)`: `adapter_fusion_config.json`, `model_adapter_fusion.safetensors`).
///
/// AdapterHub's dynamic fusion is afusion's default one (no value bias, dropout on the scores
/// while training): the query reads what the last member reads (the sublayer output h, or
/// LN(h + x) for seq_bn members), keys and values are the members' up-projections, the residual
/// is h, and the key bias adds the same q·b_k to every score (it cancels in the softmax, so it
/// is dropped).
/// Static fusion, temperature annealing, query_before_ln, residual_before and a value applied
/// after the softmax are refused by name.
public enum AdapterHubFusion {
    static let configFile = "adapter_fusion_config.json"
    static let weightsFiles = (safe: "model_adapter_fusion.safetensors", bin: "pytorch_model_adapter_fusion.bin")

    /// The member adapter names, in AdapterHub's order, of the fusion in `directory`.
    public static func members(directory: String) throws -> [String] {
        let file = (directory as NSString).appendingPathComponent(configFile)
        let meta = try JSONFields.read(file, what: "cannot read AdapterHub file")
        guard let names = meta["adapter_names"] as? [String], names.count >= 2 else {
            throw meta.refuse("adapter_names", "must list at least two adapter names")
        }
        return names
    }

    /// Builds `fuse(members…)` over `adapters` (already loaded, e.g. from a store) and sets its
    /// fusion layers from `directory`.
    public static func read(directory: String, adapters: [String: Adapter], hidden: Int, layers: Int) throws -> Composition {
        let file = (directory as NSString).appendingPathComponent(configFile)
        let meta = try JSONFields.read(file, what: "cannot read AdapterHub file")
        guard let c = try meta.object("config") else { throw meta.refuse("config", "is missing") }
        func flag(_ k: String, _ expected: Bool) throws {
            if let v = try c.bool(k), v != expected { throw c.refuse(k, "= \(v) is not supported (afusion's dynamic fusion has \(expected))") }
        }
        for k in ["query", "key", "value", "value_before_softmax"] { try flag(k, true) }
        for k in ["query_before_ln", "residual_before", "temperature"] { try flag(k, false) }
        if let h = try meta.int("hidden_size", in: 1...1_000_000), h != hidden {
            throw meta.refuse("hidden_size", "\(h) differs from the model's \(hidden)")
        }
        let names = try members(directory: directory)
        for n in names where adapters[n] == nil {
            throw AdapterHubAdapter.refuse(file, "member adapter '\(n)' is not loaded (import it first)")
        }
        var options = FusionOptions()
        options.dynamic = true
        options.temperature = 1
        let comp = Composition(.fuse(names.map { .adapter($0) }), adapters: adapters, options: options, hidden: hidden, layers: layers, seed: 0)
        let weights = try AdapterHubAdapter.weights(directory, safetensors: weightsFiles.safe, bin: weightsFiles.bin)
        let fusionName = try meta.string("name") ?? names.joined(separator: ",")
        let node = comp.fuseNodes[0].node
        for (site, layer) in node.fusionLayers {
            let base = AdapterHubAdapter.sublayerPath(site) + ".adapter_fusion_layer.\(fusionName)."
            layer.query.weight.value.copy(
                from: try AdapterHubAdapter.finite(weights.tensor(base + "query.weight", shape: [hidden, hidden]), base + "query.weight", directory))
            layer.query.bias.value.copy(
                from: try AdapterHubAdapter.finite(weights.tensor(base + "query.bias", shape: [hidden]), base + "query.bias", directory))
            layer.key.value.copy(
                from: try AdapterHubAdapter.finite(weights.tensor(base + "key.weight", shape: [hidden, hidden]), base + "key.weight", directory))
            guard let value = layer.value else { throw AdapterHubAdapter.refuse(file, "internal: dynamic fusion without a value matrix") }
            value.weight.value.copy(
                from: try AdapterHubAdapter.finite(weights.tensor(base + "value.weight", shape: [hidden, hidden]), base + "value.weight", directory))
        }
        comp.finishTraining()
        return comp
    }
}

extension AdapterHubFusion {
    /// Writes the fusion layers of `composition` — a dynamic `fuse(a, b, …)` of plain adapters,
    /// without a value bias (or with an all-zero one) at temperature 1 — as `save_adapter_fusion`
    /// would, so that `load_adapter_fusion(directory)` loads it once its members are loaded.
    /// Anything AdapterHub cannot compute is refused with the reason.
    public static func write(_ composition: Composition, directory: String, safetensors: Bool = false) throws {
        func refuse(_ why: String) -> ModelError { ModelError("cannot export to AdapterHub: \(why)") }
        guard case .fuse(let members) = composition.expr, let node = composition.fuseNodes.first?.node as? FuseNode, composition.fuseNodes.count == 1
        else { throw refuse("only a single fuse(…) of adapters has an AdapterHub form, not \(composition.expr)") }
        let names = try members.map { m -> String in
            guard case .adapter(let n) = m else { throw refuse("member \(m) is not an adapter (AdapterHub fuses adapters only)") }
            return n
        }
        if let other = node.members.compactMap({ $0 as? Adapter }).first(where: { $0.config.method != .bottleneck }) {
            throw refuse("member '\(other.name)' is \(other.config.architecture); AdapterHub fuses bottleneck adapters only")
        }
        let inputs = Set(node.members.compactMap { ($0 as? Adapter)?.config.lnBefore })
        guard inputs.count == 1 else {
            throw refuse("some members read LN(h + x) and some h; AdapterHub feeds every member what the last one reads")
        }
        let o = composition.options
        guard o.dynamic else { throw refuse("static fusion (AdapterHub's fusion configs all have a value matrix)") }
        guard o.anneal || o.temperature == 1 else { throw refuse("temperature \(o.temperature) (AdapterHub evaluates at 1)") }
        let fusionName = names.joined(separator: ",")
        var tensors: [(String, Tensor)] = []
        let H = node.hidden
        for site in node.fusionLayers.keys.sorted() {
            let layer = node.fusionLayers[site]!
            guard let value = layer.value else { throw refuse("internal: dynamic fusion without a value matrix") }
            if let b = value.bias, b.value.array.contains(where: { $0 != 0 }) {
                throw refuse("the fusion was trained with a value bias (option value_bias), which AdapterHub's value layer lacks")
            }
            let base = AdapterHubAdapter.sublayerPath(site) + ".adapter_fusion_layer.\(fusionName)."
            tensors += [
                (base + "query.weight", layer.query.weight.value), (base + "query.bias", layer.query.bias.value),
                (base + "key.weight", layer.key.value), (base + "key.bias", Tensor(zeros: [H])),  // cancels in the softmax
                (base + "value.weight", value.weight.value),
            ]
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let config: [String: Any] = [
            "dropout_prob": NSNull(), "key": true, "query": true, "query_before_ln": false, "regularization": true,
            "residual_before": false, "temperature": false, "value": true, "value_before_softmax": true, "value_initialized": true,
        ]
        try AdapterHubAdapter.writeJSON(
            [
                "adapter_names": names, "config": config, "hidden_size": H, "model_class": "BertAdapterModel", "model_name": "",
                "model_type": "bert", "name": fusionName, "version": "adapters.1.2.0",
            ], to: (directory as NSString).appendingPathComponent(configFile))
        try AdapterHubAdapter.writeWeights(tensors, directory, safetensors: safetensors, names: weightsFiles)
    }
}
