import AdapterFusion
import ArgumentParser
import Foundation

/// Used by the kill test: saves adapters with fresh random weights into a store in a loop
/// until killed, printing each completed save.
struct StoreStress: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store-stress", abstract: "Save random adapters into a store in a loop (for crash tests).", shouldDisplay: false)

    @Option var store: String
    @Option var name = "stress"
    @Option var hidden = 384
    @Option var layers = 6
    @Option var count = 1_000_000
    @Flag(help: "Save each iteration under its own name (<name>-<i>), to detect lost updates.") var distinct = false

    func run() throws {
        for i in 0..<count {
            let name = distinct ? "\(self.name)-\(i)" : self.name
            let adapter = Adapter(
                name: name, config: AdapterConfig(placement: .houlsby, reductionFactor: 2, initStd: 0.5),
                hidden: hidden, layers: layers, seed: UInt64(i))
            let head = PredictionHead(config: HeadConfig(kind: .classification, outputs: 3), hidden: hidden, seed: UInt64(i))
            let record = AdapterRecord(
                name: name, task: "stress", taskFile: "-", labels: ["a", "b", "c"], metric: "accuracy",
                adapterConfig: adapter.config, headConfig: head.config, baseModel: "none", baseFingerprint: "0",
                hiddenSize: hidden, numLayers: layers, devMetrics: [Double(i)], bestEpoch: 1, settings: TrainingConfig(),
                seed: i, created: "")
            try AdapterStore.save(adapter: adapter, head: head, record: record, to: store, replace: true)
            print("saved \(i)")
            fflush(stdout)
        }
    }
}
