import AdapterFusion
import ArgumentParser
import Foundation

/// Which stored model a command works on: `--adapter NAME`, `--fusion NAME` or `--recipe FILE`
/// (the fusion the recipe trained, in the recipe's store, on the recipe's base model).
struct PredictorOptions: ParsableArguments {
    @Option(help: "HDF5 store (default: the recipe's, else runs/store.h5).") var store: String?
    @Option(help: "A stored adapter.") var adapter: String?
    @Option(help: "A stored fusion.") var fusion: String?
    @Option(help: "A fusion recipe (uses the fusion it trained).") var recipe: String?
    @Flag(help: "Fold a LoRA adapter into a copy of the base weights and run the plain encoder (same outputs within 1e-5).")
    var merge = false

    func validate() throws {
        guard [adapter, fusion, recipe].compactMap({ $0 }).count == 1 else {
            throw ValidationError("give exactly one of --adapter NAME, --fusion NAME, --recipe FILE")
        }
        if let adapter { try Check.name(adapter, option: "--adapter") }
        if let fusion { try Check.name(fusion, option: "--fusion") }
        if merge && adapter == nil { throw ValidationError("--merge applies to a LoRA --adapter") }
    }

    /// The predictor these options name, on `model.modelDirectory` (a recipe's base model unless
    /// --model or $AFUSION_MODEL is given).
    func load(_ model: ModelOptions) throws -> Predictor {
        if let recipe { return try Predictor.recipe(recipe, store: store, model: model.modelGiven ? model.modelDirectory : nil) }
        let storePath = store ?? "runs/store.h5"
        guard FileManager.default.fileExists(atPath: storePath) else { throw CommandError("no store at '\(storePath)'") }
        if let fusion { return try Predictor.fusion(fusion, store: storePath, model: model.modelDirectory) }
        return try Predictor.adapter(adapter!, store: storePath, model: model.modelDirectory, merge: merge)
    }
}

/// The examples of a split of `spec`, sampled as the predictor's training run sampled them.
func splitExamples(_ spec: TaskSpec, split: String, max: Int?, settings: TrainingConfig, skipBadRows: Bool) throws -> [Example] {
    guard let name = SplitName(rawValue: split) else { throw ValidationError("--split must be dev, test or train, not '\(split)'") }
    return try Dataset.load(spec, skipBadRows: skipBadRows).examples(name, max: max, settings: settings)
}

/// `s` as a JSON string literal.
func jsonString(_ s: String) -> String {
    String(data: try! JSONSerialization.data(withJSONObject: [s], options: [.withoutEscapingSlashes]), encoding: .utf8)!
        .dropFirst().dropLast().description
}
