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

    static func main() { main(joiningNegativeValues(Array(CommandLine.arguments.dropFirst()))) }

    /// `--epochs -1` → `--epochs=-1`: ArgumentParser takes "-1" for an option name and says only
    /// "Missing value"; joined, the option's own check says what is wrong with -1.
    static func joiningNegativeValues(_ args: [String]) -> [String] {
        var out: [String] = []
        var i = 0
        while i < args.count {
            let a = args[i]
            if a.hasPrefix("--"), !a.contains("="), i + 1 < args.count, Double(args[i + 1]) != nil, args[i + 1].hasPrefix("-") {
                out.append(a + "=" + args[i + 1])
                i += 2
            } else {
                out.append(a)
                i += 1
            }
        }
        return out
    }
}
