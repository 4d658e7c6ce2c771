import AdapterFusion
import ArgumentParser
import Foundation

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval", abstract: "Score a stored adapter or fusion on its task's dev or test split.")

    @OptionGroup var which: PredictorOptions
    @Option(help: "Task file (default: the one it was trained on).") var task: String?
    @Option(help: "Split: dev, test or train.") var split = "dev"
    @Option(help: "Score at most N examples (a seeded sample; default for dev: the sample used in training).") var max: Int?
    @Flag(help: "Skip bad data rows (counted) instead of stopping.") var skipBadRows = false
    @OptionGroup var modelOptions: ModelOptions

    func validate() throws {
        try Check.range(max, 1...Int.max, option: "--max")
        guard SplitName(rawValue: split) != nil else { throw ValidationError("--split must be dev, test or train, not '\(split)'") }
        try Check.range(modelOptions.threads, 1...4096, option: "--threads")
    }

    func run() throws {
        try Threads.apply(modelOptions.threads)
        let p = try which.load(modelOptions)
        let spec = try TaskSpec.load(task ?? p.taskFile)
        let examples = try splitExamples(spec, split: split, max: max, settings: p.settings, skipBadRows: skipBadRows)
        guard !examples.isEmpty else { throw CommandError("the \(split) split of \(spec.name) is empty") }
        let t0 = Clock.now()
        let out = try p.evaluate(examples, spec: spec)
        let seconds = Clock.now() - t0
        let recorded =
            split == "dev" && max == nil && task == nil
            ? "  [recorded at training: \(fmt(p.record.bestDevMetric ?? .nan)), epoch \(p.record.bestEpoch)]" : ""
        print(
            "\(p.kind.rawValue) \(p.name) on \(spec.name) \(split) (\(examples.count) examples): \(spec.metric.rawValue) \(fmt(out.metric))"
                + recorded)
        print(String(format: "  %.1f s, %.0f examples/s", seconds, Double(examples.count) / seconds))
    }
}
