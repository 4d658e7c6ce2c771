import AdapterFusion
import Foundation
import Testing

/// The README's "Training from Swift" example, compiled and run here on the tiny model, and
/// compared line by line with the README so the two cannot drift apart.
@Suite struct LibraryExampleTests {
    /// Runs the example in `root` (which holds `model/`, `z.toml` and `zf.fuse`).
    func example(_ exampleRoot: String) throws -> (adapterDev: Double?, fusionDev: Double?) {
        // BEGIN README: training
        let root = exampleRoot
        let base = try BaseModel(directory: root + "/model")
        let spec = try TaskSpec.load(root + "/z.toml")
        var stageOne = AdapterTraining(method: .lora)  // the method's defaults, its learning rate
        stageOne.settings.epochs = 2
        let adapter = try stageOne.train(task: spec, name: "zebra", base: base)!
        try AdapterStore.save(adapter: adapter.adapter, head: adapter.head, record: adapter.record, to: root + "/s.h5")
        print(adapter.record.bestDevMetric ?? .nan)

        let recipe = try PreparedRecipe(root + "/zf.fuse")  // fuse(zebra, …) from the store
        let fusion = try FusionTraining(recipe).train()!
        try FusionStore.save(composition: fusion.composition, head: fusion.head, record: fusion.record, to: recipe.storePath)
        // END README
        return (adapter.record.bestDevMetric, fusion.record.bestDevMetric)
    }

    @Test func readmeTrainingExampleRuns() throws {
        let dir = try Support.tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        try CLITests.tinyModel(dir)
        try CLITests.syntheticTask(dir, examples: 200, seed: 4)
        let store = dir.appendingPathComponent("s.h5").path
        // A second member trained the usual way, so the recipe fuses two adapters.
        let other = try AdapterTraining(method: .bottleneck).train(
            task: try TaskSpec.load(dir.path + "/z.toml"), name: "zebra2", base: try BaseModel(directory: dir.path + "/model"))!
        try AdapterStore.save(adapter: other.adapter, head: other.head, record: other.record, to: store)
        let recipe = "fusion zf\nbase \(dir.path)/model\nstore \(store)\ntask \(dir.path)/z.toml\ncompose fuse(zebra, zebra2)\ntrain epochs 1\n"
        try Data(recipe.utf8).write(to: dir.appendingPathComponent("zf.fuse"))
        let (adapterDev, fusionDev) = try example(dir.path)
        // What the example stored reloads, and evaluates to the metric its training recorded.
        let p = try Predictor.adapter("zebra", store: store, model: dir.path + "/model")
        let spec = try TaskSpec.load(dir.path + "/z.toml")
        let dev = try Dataset.load(spec).examples(.dev, max: nil, settings: p.settings)
        #expect(try p.evaluate(dev, spec: spec).metric == adapterDev)
        #expect(try FusionStore.list(store).first?.bestDevMetric == fusionDev && fusionDev != nil)
    }

    @Test func readmeShowsTheExampleThatRuns() throws {
        let source = try String(contentsOfFile: #filePath, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        let begin = try #require(source.firstIndex { $0.contains("// BEGIN README: training") })
        let end = try #require(source.firstIndex { $0.contains("// END README") })
        let tested = source[(begin + 1)..<end].map { $0.count >= 8 ? String($0.dropFirst(8)) : String($0) }
        let readme = try String(contentsOf: Support.packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
            .split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let start = try #require(readme.firstIndex { $0.hasPrefix("let root = \".\"") })
        let shown = Array(readme[start..<(start + tested.count)])
        #expect(Array(shown.dropFirst()) == Array(tested.dropFirst()), "README's training example differs from the one this test runs")
    }
}
