import Foundation

/// A stored LoRA adapter in the format Hugging Face PEFT's `PeftModel.from_pretrained(model, DIR)`
/// loads onto a BERT `BertModel` (`adapter_config.json` + `adapter_model.safetensors`).
///
/// PEFT names a module's update `base_model.model.<module>.lora_A.weight` [r, in] and
/// `.lora_B.weight` [out, r] and scales it by lora_alpha / r, as we do. Its `target_modules`
/// here is a regular expression over the full module names, because "output.dense" would also
/// match "attention.output.dense" as a plain suffix.
public enum PEFTLoRA {
    /// The BERT module a LoRA target changes, relative to the model.
    static func module(_ t: ProjectionTarget, layer: Int) -> String {
        let p = "encoder.layer.\(layer)."
        switch t {
        case .query, .key, .value: return p + "attention.self." + t.rawValue
        case .attentionOutput: return p + "attention.output.dense"
        case .ffnIn: return p + "intermediate.dense"
        case .ffnOut: return p + "output.dense"
        default: preconditionFailure("\(t) is not a LoRA target")
        }
    }

    /// Writes `adapter` (a LoRA adapter) for PEFT; `baseModel` goes into the config.
    public static func write(_ adapter: Adapter, directory: String, baseModel: String) throws {
        guard adapter.config.method == .lora, let lora = adapter.config.lora else {
            throw ModelError(
                "cannot export to PEFT: '\(adapter.name)' is \(adapter.config.architecture); only LoRA adapters have a PEFT LoRA form here")
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var tensors: [(String, Tensor)] = []
        for p in adapter.parameters {
            // layer_03/lora/query/A → base_model.model.encoder.layer.3.attention.self.query.lora_A.weight
            let parts = p.name.split(separator: "/")
            guard parts.count == 4, let layer = Int(parts[0].dropFirst("layer_".count)), let target = ProjectionTarget(rawValue: String(parts[2]))
            else { throw ModelError("cannot export to PEFT: unexpected parameter \(p.name)") }
            tensors.append(("base_model.model." + module(target, layer: layer) + ".lora_\(parts[3]).weight", p.value))
        }
        try SafeTensorsFile.write(tensors, to: (directory as NSString).appendingPathComponent("adapter_model.safetensors"))
        let names = lora.targets.map { module($0, layer: 0).replacingOccurrences(of: "encoder.layer.0.", with: "") }
        // Layers left out go into the pattern: PEFT refuses `layers_to_transform` with a regex.
        let kept = adapter.config.layers(adapter.layers)
        let layers = adapter.config.leaveOut.isEmpty ? #"\d+"# : "(" + kept.map(String.init).joined(separator: "|") + ")"
        let pattern =
            #".*encoder\.layer\."# + layers + #"\.("# + names.map { $0.replacingOccurrences(of: ".", with: #"\."#) }.joined(separator: "|") + ")"
        let config: [String: Any] = [
            "peft_type": "LORA", "task_type": NSNull(), "base_model_name_or_path": baseModel, "r": lora.rank,
            "lora_alpha": Double(lora.alpha), "lora_dropout": Double(lora.dropout), "target_modules": pattern, "bias": "none",
            "fan_in_fan_out": false, "inference_mode": true, "modules_to_save": NSNull(), "init_lora_weights": true,
            "use_rslora": false, "use_dora": false,
        ]
        let data = try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
        try data.write(to: URL(fileURLWithPath: (directory as NSString).appendingPathComponent("adapter_config.json")))
    }
}
