import ArgumentParser

@main
struct AFusion: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "afusion",
        abstract: "Parameter-efficient multi-task learning: adapters and AdapterFusion on a frozen BERT encoder.",
        subcommands: [
            TrainAdapter.self, TrainAdapters.self, CheckRecipe.self, TrainFusion.self, Evaluate.self, Predict.self, Inspect.self, Embed.self,
            Bench.self, Doctor.self,
            Import.self, Export.self,
            StoreStress.self,
        ])
}
