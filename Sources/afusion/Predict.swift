import AdapterFusion
import ArgumentParser
import Foundation

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Predict with a stored adapter or fusion (or a parallel recipe): one text per line in, label and probabilities out.",
        discussion: "A tab separates the two texts of a pair task. A parallel recipe prints one column per member.")

    @OptionGroup var which: PredictorOptions
    @Option(help: "Read texts from this file instead of standard input.") var file: String?
    @Option(help: "Separator between the two texts of a pair.") var pairSeparator = "\t"
    @Option(help: "Maximum tokens per text (default: as in training; 128 for a parallel recipe).") var maxLen: Int?
    @Flag(help: "One JSON object per line.") var json = false
    @OptionGroup var modelOptions: ModelOptions

    func validate() throws {
        try Check.range(maxLen, 8...100_000, option: "--max-len")
        try Check.range(modelOptions.threads, 1...4096, option: "--threads")
        guard !pairSeparator.isEmpty else { throw ValidationError("--pair-separator must not be empty") }
    }

    func run() throws {
        try Threads.apply(modelOptions.threads)
        if let path = which.recipe, case .parallel = try Recipe.load(path).expr { return try runParallel(path) }
        let p = try which.load(modelOptions)
        try Check.maxLength(maxLen, model: p.encoder.config)
        let lines = try readLines()
        // A pair task's model needs both texts: one text alone would be predicted silently wrong.
        if let spec = try? TaskSpec.load(p.taskFile), spec.pairField != nil || spec.pairSeparator != nil {
            let sep = pairSeparator == "\t" ? "a tab" : "'\(pairSeparator)'"
            if let i = lines.firstIndex(where: { !$0.contains(pairSeparator) }) {
                throw CommandError(
                    "\(file ?? "stdin"):\(i + 1): \(p.kind.rawValue) '\(p.name)' was trained on text pairs (\(spec.name)); "
                        + "give both texts separated by \(sep)")
            }
        }
        let outputs = try p.predict(lines.map(split), maxLength: maxLen)
        for (line, o) in zip(lines, outputs) { print(format(line, o, labels: p.labels, regression: p.regression)) }
    }

    /// The input texts, one per line; empty lines are skipped. A line of only white space, or
    /// one holding a NUL byte, has no text to predict: refused with its line number, before any
    /// prediction (it used to get a label).
    func readLines() throws -> [String] {
        var raw: [String] = []
        if let file {
            raw = try TextFile.text(file, what: "cannot read input texts").split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        } else {
            while let line = readLine() { raw.append(line) }
        }
        var lines: [String] = []
        for (i, line) in raw.enumerated() where !line.isEmpty && line != "\r" {
            let text = line.hasSuffix("\r") ? String(line.dropLast()) : line
            if text.unicodeScalars.contains("\u{0}") {
                throw CommandError("\(file ?? "stdin"):\(i + 1): the line holds a NUL byte; it is not text")
            }
            let (first, second) = split(text)
            if first.trimmingCharacters(in: .whitespaces).isEmpty || second?.trimmingCharacters(in: .whitespaces).isEmpty == true {
                throw CommandError("\(file ?? "stdin"):\(i + 1): a blank text (only white space): nothing to predict; remove the line")
            }
            lines.append(text)
        }
        guard !lines.isEmpty else { throw CommandError("no input text") }
        return lines
    }

    /// A line as (text, second text of a pair).
    func split(_ line: String) -> (text: String, pair: String?) {
        let parts = line.components(separatedBy: pairSeparator)
        return (parts[0], parts.count > 1 ? parts.dropFirst().joined(separator: pairSeparator) : nil)
    }

    func format(_ line: String, _ o: [Float], labels: [String], regression: Bool) -> String {
        if regression {
            return json ? "{\"text\": \(jsonString(line)), \"value\": \(o[0])}" : String(format: "%.4f\t%@", o[0], line)
        }
        let best = o.indices.max { o[$0] < o[$1] }!
        if json {
            let probs = zip(labels, o).map { "\(jsonString($0)): \(String(format: "%.6f", $1))" }.joined(separator: ", ")
            return "{\"text\": \(jsonString(line)), \"label\": \(jsonString(labels[best])), \"probabilities\": {\(probs)}}"
        }
        let probs = zip(labels, o).map { "\($0)=\(String(format: "%.3f", $1))" }.joined(separator: " ")
        return "\(labels[best])\t\(probs)\t\(line)"
    }

    /// parallel(a, b, …): every member's label (or value) per line.
    func runParallel(_ path: String) throws {
        let p = try ParallelPredictor(recipe: path, store: which.store, model: modelOptions.modelGiven ? modelOptions.modelDirectory : nil)
        try Check.maxLength(maxLen, model: p.encoder.config)
        let lines = try readLines()
        for (line, outputs) in zip(lines, try p.predict(lines.map(split), maxLength: maxLen ?? 128)) {
            let cells = outputs.map { o -> String in
                if let label = o.label { return json ? "\(jsonString(o.member)): \(jsonString(label))" : "\(o.member)=\(label)" }
                return json ? "\(jsonString(o.member)): \(o.outputs[0])" : "\(o.member)=\(String(format: "%.3f", o.outputs[0]))"
            }
            print(json ? "{\"text\": \(jsonString(line)), " + cells.joined(separator: ", ") + "}" : cells.joined(separator: "\t") + "\t" + line)
        }
    }
}
