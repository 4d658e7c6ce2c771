import AdapterFusion
import ArgumentParser
import Foundation

struct CheckRecipe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check", abstract: "Validate fusion recipes without training: syntax, the store, the adapters, the task.")

    @Argument(help: "Recipe files (fusion-recipes/*.fuse).") var recipes: [String]
    @Option(help: "Use this store instead of the recipe's.") var store: String?

    func run() throws {
        var failed = 0
        for path in recipes {
            do {
                let p = try PreparedRecipe(path, store: store)
                let r = p.recipe
                let members = r.expr.adapterNames
                let comp = p.composition(seed: 0)
                let fusionParams = comp.parameters.reduce(0) { $0 + $1.value.count }
                print("\(path): ok — \(r.name): \(r.expr)")
                if let spec = p.spec {
                    print(
                        "  task \(spec.name) (\(spec.isRegression ? "regression" : "\(spec.labels.count) labels"), \(spec.metric.rawValue)); "
                            + "\(members.count) frozen adapters; \(fusionParams) fusion parameters; "
                            + "\(r.options.dynamic ? "dynamic" : "static"), temperature \(r.options.anneal ? "50→1" : String(r.options.temperature)), λ \(r.options.lambda)"
                    )
                    let kinds = Set(members.compactMap { p.records[$0]?.adapterConfig.architecture.split(separator: " ").first.map(String.init) })
                    if comp.fuseNodes.contains(where: { $0.node is LayerFuseNode }) || comp.root is LayerFuseNode {
                        let n = comp.fuseNodes.first { $0.node is LayerFuseNode }?.node.members.count ?? members.count
                        print(
                            "  members of \(kinds.count) kinds (\(kinds.sorted().joined(separator: ", "))): fused over whole layers, "
                                + "\(n + 1) layer passes per layer (README, \"Fusing any method\")")
                    }
                    print(
                        "  train: \(r.training.epochs) epochs, lr \(r.training.learningRate), batch \(r.training.batchSize), max_length \(r.training.maxLength), seed \(r.training.seed)"
                    )
                } else {
                    print("  parallel: one pass, \(members.count) heads (\(members.joined(separator: ", ")))")
                }
            } catch let e as SourceError {
                printErr(e.description)
                failed += 1
            }
        }
        if failed > 0 { throw ExitCode(1) }
    }
}
