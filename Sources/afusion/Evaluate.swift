import AdapterFusion
import ArgumentParser
import Foundation

/// A stored adapter or fusion with its head, ready to predict.
struct LoadedPredictor {
    let name: String
    let kind: String
    let encoder: BertEncoder
    let tokenizer: WordPieceTokenizer
    let hook: LayerHook
    let head: PredictionHead
    let record: TrainingRecord
    /// The training settings it was trained with (sample seeds, batch size, max length).
    let hyper: TrainingConfig
    let composition: Composition?

    var regression: Bool { head.config.kind == .regression }
    var labels: [String] { record.labels }
    var taskFile: String { record.taskFile }
    var recordedDev: Double? { record.bestDevMetric }
    var bestEpoch: Int { record.bestEpoch }
}

/// Which stored model a command works on: `--adapter NAME`, `--fusion NAME` or `--recipe FILE`
/// (the fusion the recipe trained, in the recipe's store, on the recipe's base model).
struct PredictorOptions: ParsableArguments {
    @Option(help: "HDF5 store (default: the recipe's, else runs/store.h5).") var store: String?
    @Option(help: "A stored adapter.") var adapter: String?
    @Option(help: "A stored fusion.") var fusion: String?
    @Option(help: "A fusion recipe (uses the fusion it trained).") var recipe: String?

    func validate() throws {
        guard [adapter, fusion, recipe].compactMap({ $0 }).count == 1 else {
            throw ValidationError("give exactly one of --adapter NAME, --fusion NAME, --recipe FILE")
        }
    }

    func load(model: String, modelGiven: Bool) throws -> LoadedPredictor {
        try loadPredictor(store: store, adapter: adapter, fusion: fusion, recipe: recipe, model: model, modelGiven: modelGiven)
    }
}

/// Loads what `PredictorOptions` names (see there).
func loadPredictor(store: String?, adapter: String?, fusion: String?, recipe: String?, model modelOption: String,
                   modelGiven: Bool) throws -> LoadedPredictor {
    var storePath = store ?? "runs/store.h5"
    var model = modelOption
    var fusionName = fusion
    if let recipe {
        let r = try Recipe.load(recipe)
        if case .parallel = r.expr { throw ValidationError("\(recipe) is a parallel recipe: use `afusion predict --recipe` for it") }
        storePath = store ?? r.store
        if !modelGiven { model = r.base }
        fusionName = r.name
    }
    guard FileManager.default.fileExists(atPath: storePath) else { throw ValidationError("no store at '\(storePath)'") }
    let fingerprint = try ModelLocator.fingerprint(model)
    let (encoder, tokenizer) = try ModelLocator.load(model)
    func settings(_ r: TrainingRecord) throws -> TrainingConfig {
        do { return try JSONDecoder().decode(TrainingConfig.self, from: Data(r.hyperparameters.utf8)) } catch {
            throw ValidationError("\(storePath): the stored hyper-parameters are not valid JSON (\(error))")
        }
    }
    if let name = fusionName {
        let f = try FusionStore.load(storePath, name: name, baseFingerprint: fingerprint)
        return LoadedPredictor(name: name, kind: "fusion", encoder: encoder, tokenizer: tokenizer, hook: f.composition.root,
                               head: f.head, record: f.record.training, hyper: try settings(f.record.training), composition: f.composition)
    }
    let (a, head, rec) = try AdapterStore.load(storePath, name: adapter!, baseFingerprint: fingerprint)
    return LoadedPredictor(name: adapter!, kind: "adapter", encoder: encoder, tokenizer: tokenizer, hook: a, head: head,
                           record: rec.training, hyper: try settings(rec.training), composition: nil)
}

/// The examples of one split of a task, sampled as `trainingSplits` sampled them for dev.
func splitExamples(_ spec: TaskSpec, split: String, max: Int?, hyper: TrainingConfig, skipBadRows: Bool) throws -> [Example] {
    let data = try Dataset.load(spec, skipBadRows: skipBadRows)
    switch split {
    case "dev": return sample(data.dev, max ?? hyper.maxDev, seed: hyper.seed &+ 1)
    case "test": return sample(data.test, max, seed: hyper.seed &+ 2)
    case "train": return sample(data.train, max, seed: hyper.seed)
    default: throw ValidationError("--split must be dev, test or train")
    }
}

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
        guard ["dev", "test", "train"].contains(split) else { throw ValidationError("--split must be dev, test or train, not '\(split)'") }
        try Check.range(modelOptions.threads, 1...4096, option: "--threads")
    }

    func run() throws {
        try Threads.apply(modelOptions.threads)
        let p = try which.load(model: modelOptions.modelDirectory, modelGiven: modelOptions.modelGiven)
        let spec = try TaskSpec.load(task ?? p.taskFile)
        guard spec.labels == p.labels else {
            throw ValidationError("\(spec.path): labels \(spec.labels) differ from the \(p.kind)'s \(p.labels)")
        }
        let examples = try splitExamples(spec, split: split, max: max, hyper: p.hyper, skipBadRows: skipBadRows)
        guard !examples.isEmpty else { throw ValidationError("the \(split) split of \(spec.name) is empty") }
        let encoded = EncodedSplit(examples, tokenizer: p.tokenizer, maxLength: p.hyper.maxLength)
        let t0 = Clock.now()
        let out = try Evaluator(encoder: p.encoder, hook: p.hook, head: p.head).evaluate(encoded, spec: spec, batchSize: p.hyper.batchSize)
        let seconds = Clock.now() - t0
        print("\(p.kind) \(p.name) on \(spec.name) \(split) (\(examples.count) examples): \(spec.metric.rawValue) \(fmt(out.metric))"
              + (split == "dev" && max == nil && task == nil ? "  [recorded at training: \(fmt(p.recordedDev ?? .nan)), epoch \(p.bestEpoch)]" : ""))
        print(String(format: "  %.1f s, %.0f tokens/s", seconds, Double(encoded.lengths.reduce(0, +)) / seconds))
    }
}

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Predict with a stored adapter or fusion (or a parallel recipe): one text per line in, label and probabilities out.",
        discussion: "A tab separates the two texts of a pair task. A parallel recipe prints one column per member.")

    @OptionGroup var which: PredictorOptions
    @Option(help: "Read texts from this file instead of standard input.") var file: String?
    @Option(help: "Separator between the two texts of a pair.") var pairSeparator = "\t"
    @Option(help: "Maximum tokens per text (default: as in training).") var maxLen: Int?
    @Flag(help: "One JSON object per line.") var json = false
    @OptionGroup var modelOptions: ModelOptions

    func readLines() throws -> [String] {
        var lines: [String] = []
        if let file {
            let text = try TextFile.text(file, what: "cannot read input texts")
            lines = text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
        } else {
            while let line = readLine() { if !line.isEmpty { lines.append(line) } }
        }
        guard !lines.isEmpty else { throw ValidationError("no input text") }
        return lines
    }

    func encode(_ lines: [String], _ tokenizer: WordPieceTokenizer, maxLength: Int) -> [Encoding] {
        lines.map { line in
            let parts = line.components(separatedBy: pairSeparator)
            return tokenizer.encode(parts[0], pair: parts.count > 1 ? parts.dropFirst().joined(separator: pairSeparator) : nil, maxLength: maxLength)
        }
    }

    func validate() throws {
        try Check.range(maxLen, 8...100_000, option: "--max-len")
        try Check.range(modelOptions.threads, 1...4096, option: "--threads")
        guard !pairSeparator.isEmpty else { throw ValidationError("--pair-separator must not be empty") }
    }

    func run() throws {
        try Threads.apply(modelOptions.threads)
        if let recipePath = which.recipe, case .parallel = try Recipe.load(recipePath).expr {
            return try runParallel(try Recipe.load(recipePath))
        }
        let p = try which.load(model: modelOptions.modelDirectory, modelGiven: modelOptions.modelGiven)
        try Check.maxLength(maxLen, model: p.encoder.config)
        let lines = try readLines()
        // A pair task's model needs both texts: one text alone would be predicted silently wrong.
        if let spec = try? TaskSpec.load(p.taskFile), spec.pairField != nil || spec.pairSeparator != nil {
            let sep = pairSeparator == "\t" ? "a tab" : "'\(pairSeparator)'"
            for (i, line) in lines.enumerated() where !line.contains(pairSeparator) {
                throw ValidationError("\(file ?? "stdin"):\(i + 1): \(p.kind) '\(p.name)' was trained on text pairs (\(spec.name)); "
                                      + "give both texts separated by \(sep)")
            }
        }
        let outputs = try Evaluator(encoder: p.encoder, hook: p.hook, head: p.head)
            .predict(encode(lines, p.tokenizer, maxLength: maxLen ?? p.hyper.maxLength), regression: p.regression)
        for (line, o) in zip(lines, outputs) { print(format(line, o, labels: p.labels, regression: p.regression)) }
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

    /// parallel(a, b, …): one encoder pass over k copies of the batch, member i on copy i,
    /// then each member's own head on its copy.
    func runParallel(_ recipe: Recipe) throws {
        let storePath = which.store ?? recipe.store
        let model = modelOptions.modelGiven ? modelOptions.modelDirectory : recipe.base
        let fingerprint = try ModelLocator.fingerprint(model)
        let (encoder, tokenizer) = try ModelLocator.load(model)
        let records = try recipe.check(baseFingerprint: fingerprint, hiddenSize: encoder.config.hiddenSize, records: AdapterStore.list(storePath))
        let names = recipe.expr.adapterNames
        var adapters: [String: Adapter] = [:], heads: [PredictionHead] = []
        for n in names {
            let (a, h, _) = try AdapterStore.load(storePath, name: n, baseFingerprint: fingerprint)
            adapters[n] = a; heads.append(h)
        }
        let comp = Composition(recipe.expr, adapters: adapters, options: recipe.options, hidden: encoder.config.hiddenSize,
                               layers: encoder.config.numHiddenLayers, seed: 0)
        let lines = try readLines()
        let k = names.count
        var results = [[String]](repeating: [], count: lines.count)
        let ws = EncoderWorkspace(config: encoder.config)
        for start in stride(from: 0, to: lines.count, by: 32) {
            let chunk = Array(lines[start..<min(start + 32, lines.count)])
            let maxLength = maxLen ?? 128
            let encs = encode(chunk, tokenizer, maxLength: maxLength)
            let batch = TokenBatch(encodings: Array(repeating: encs, count: k).flatMap { $0 })
            let hidden = try encoder.forward(batch, workspace: ws, hook: comp.root)
            for (i, n) in names.enumerated() {
                let sub = TokenBatch(encodings: encs)  // copy i of the batch
                let part = Tensor(zeros: [sub.tokenCount, encoder.config.hiddenSize])
                part.data.update(from: hidden.data + batch.offsets[i * chunk.count] * hidden.cols, count: part.count)
                let logits = heads[i].forward(part, batch: sub)
                let rec = records[n]!
                let C = heads[i].config.outputs, classify = heads[i].config.kind == .classification
                if classify { Softmax.forward(out: logits.data, inp: logits.data, n: chunk.count, c: C, ld: C) }
                for r in 0..<chunk.count {
                    let o = Array(UnsafeBufferPointer(start: logits.data + r * C, count: C))
                    if classify {
                        let best = o.indices.max { o[$0] < o[$1] }!
                        results[start + r].append(json ? "\(jsonString(n)): \(jsonString(rec.labels[best]))" : "\(n)=\(rec.labels[best])")
                    } else {
                        results[start + r].append(json ? "\(jsonString(n)): \(o[0])" : "\(n)=\(String(format: "%.3f", o[0]))")
                    }
                }
            }
        }
        for (line, r) in zip(lines, results) {
            print(json ? "{\"text\": \(jsonString(line)), " + r.joined(separator: ", ") + "}" : r.joined(separator: "\t") + "\t" + line)
        }
    }
}

func jsonString(_ s: String) -> String {
    String(data: try! JSONSerialization.data(withJSONObject: [s], options: [.withoutEscapingSlashes]), encoding: .utf8)!
        .dropFirst().dropLast().description
}

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List what a store holds; with --fusion NAME --attention, show how a fusion weighs its adapters.",
        discussion: """
        --attention runs the fusion over a split of its task (dev by default), prints the mean attention \
        weight per layer per member adapter (over all tokens), and writes an SVG heatmap (layers × adapters).
        """)

    @Argument(help: "HDF5 store.") var store: String
    @Option(help: "A stored fusion to look into.") var fusion: String?
    @Flag(help: "Mean fusion attention per layer and adapter on a data set, as a table and an SVG heatmap.") var attention = false
    @Option(help: "Task file for --attention (default: the fusion's).") var task: String?
    @Option(help: "Split for --attention: dev, test or train.") var split = "dev"
    @Option(help: "At most N examples for --attention.") var max = 500
    @Option(help: "Where to write the heatmap (default: <store folder>/<fusion>-attention.svg).") var svg: String?
    @OptionGroup var modelOptions: ModelOptions

    func validate() throws {
        try Check.range(max, 1...Int.max, option: "--max")
        guard ["dev", "test", "train"].contains(split) else { throw ValidationError("--split must be dev, test or train, not '\(split)'") }
        if let fusion { try Check.name(fusion, option: "--fusion") }
    }

    func run() throws {
        guard FileManager.default.fileExists(atPath: store) else { throw ValidationError("no store at '\(store)'") }
        if let fusion, attention { return try showAttention(fusion) }
        if fusion != nil || attention { throw ValidationError("use --fusion NAME and --attention together") }
        let records = try AdapterStore.list(store)
        let fusions = try FusionStore.list(store)
        if records.isEmpty && fusions.isEmpty { print("\(store): empty"); return }
        let root = try HDF5File(opening: store).root
        func count(_ grp: HDF5Group) throws -> Int {
            try grp.children().reduce(0) { $0 + (grp.isGroup($1) ? try count(try grp.group($1)) : try grp.shape(of: $1).reduce(1, *)) }
        }
        var rows = [["adapter", "task", "placement", "params", "metric", "best dev", "epoch", "base model", "base sha256", "created"]]
        for r in records {
            let params = (try? count(try root.group("adapters/\(r.name)")) + count(try root.group("heads/\(r.name)"))).map(String.init) ?? "? (damaged)"
            rows.append([r.name, r.task, "\(r.adapterConfig.placement.rawValue)/\(r.adapterConfig.reductionFactor)", params,
                         r.metric, r.bestDevMetric.map(fmt) ?? "-", "\(r.bestEpoch)/\(r.devMetrics.count)", r.baseModel,
                         String(r.baseFingerprint.prefix(12)), String(r.created.prefix(19))])
        }
        if records.count > 0 { printTable(rows) }
        if fusions.isEmpty { return }
        print("")
        var frows = [["fusion", "task", "composition", "params", "metric", "best dev", "epoch", "members intact", "created"]]
        let current = Dictionary(records.map { ($0.name, $0.weightsFingerprint) }, uniquingKeysWith: { a, _ in a })
        for f in fusions {
            let params = (try? count(try root.group("fusions/\(f.name)")) + count(try root.group("heads/\(f.name)"))).map(String.init) ?? "? (damaged)"
            let changed = f.memberFingerprints.filter { current[$0.key] != $0.value }.keys.sorted()
            frows.append([f.name, f.task, f.composition, params, f.metric, f.bestDevMetric.map(fmt) ?? "-",
                          "\(f.bestEpoch)/\(f.devMetrics.count)", changed.isEmpty ? "yes" : "no: " + changed.joined(separator: ","),
                          String(f.created.prefix(19))])
        }
        printTable(frows)
    }

    func printTable(_ rows: [[String]]) {
        let widths = rows[0].indices.map { c in rows.map { $0[c].count }.max()! }
        for (k, row) in rows.enumerated() {
            print(row.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  "))
            if k == 0 { print(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")) }
        }
    }

    func showAttention(_ name: String) throws {
        try Threads.apply(modelOptions.threads)
        let p = try loadPredictor(store: store, adapter: nil, fusion: name, recipe: nil,
                                  model: modelOptions.modelDirectory, modelGiven: modelOptions.modelGiven)
        let comp = p.composition!
        let spec = try TaskSpec.load(task ?? p.taskFile)
        let examples = try splitExamples(spec, split: split, max: max, hyper: p.hyper, skipBadRows: true)
        let encoded = EncodedSplit(examples, tokenizer: p.tokenizer, maxLength: p.hyper.maxLength)
        let layers = p.encoder.config.numHiddenLayers
        // Σ attention per fuse node, (layer, site), member; and token counts.
        var sums: [String: [Int: [Double]]] = [:]
        var tokens = 0
        for f in comp.fuseNodes { f.node.recordAttention = true }
        let ws = EncoderWorkspace(config: p.encoder.config)
        for idx in Batching.sorted(lengths: encoded.lengths, batchSize: 64) {
            let batch = TokenBatch(encodings: idx.map { encoded.encodings[$0] })
            _ = try p.encoder.forward(batch, workspace: ws, hook: p.hook)
            tokens += batch.tokenCount
            for f in comp.fuseNodes {
                for l in 0..<layers {
                    for s in AdapterSite.allCases {
                        guard let w = f.node.attentionWeights(layer: l, site: s) else { continue }
                        let N = w.cols
                        var acc = sums[f.prefix, default: [:]][l * 2 + s.rawValue] ?? [Double](repeating: 0, count: N)
                        for t in 0..<w.rows { for i in 0..<N { acc[i] += Double(w[t * N + i]) } }
                        sums[f.prefix, default: [:]][l * 2 + s.rawValue] = acc
                    }
                }
            }
        }
        let exprs = fuseExpressions(comp.expr, "")
        var svgRows: [(label: String, values: [Double])] = []
        var svgColumns: [String] = []
        for f in comp.fuseNodes {
            guard case .fuse(let members) = exprs[f.prefix]! else { continue }
            let names = members.map(\.description)
            if svgColumns.isEmpty { svgColumns = names }
            print("mean fusion attention\(f.prefix.isEmpty ? "" : " of the nested fuse at \(f.prefix)") over \(tokens) tokens of \(spec.name) \(split) (\(examples.count) examples):")
            var rows = [["layer"] + names]
            for key in sums[f.prefix, default: [:]].keys.sorted() {
                let values = sums[f.prefix]![key]!.map { $0 / Double(tokens) }
                let label = "\(key / 2)" + (key % 2 == 0 ? " (attention)" : "")
                rows.append([label] + values.map { String(format: "%.3f", $0) })
                if f.prefix.isEmpty { svgRows.append(("layer \(label)", values)) }
            }
            printTable(rows)
        }
        let out = svg ?? ((store as NSString).deletingLastPathComponent as NSString).appendingPathComponent("\(name)-attention.svg")
        try heatmapSVG(title: "\(name): mean fusion attention on \(spec.name) \(split)", rows: svgRows, columns: svgColumns)
            .write(toFile: out, atomically: true, encoding: .utf8)
        print("heatmap written to \(out)")
    }

    /// The expression of every fuse node by its storage prefix.
    func fuseExpressions(_ e: CompositionExpr, _ prefix: String) -> [String: CompositionExpr] {
        var out: [String: CompositionExpr] = [:]
        switch e {
        case .adapter: break
        case .fuse(let m), .stack(let m), .average(let m, _), .parallel(let m):
            if case .fuse = e { out[prefix] = e }
            for (i, c) in m.enumerated() { out.merge(fuseExpressions(c, prefix + "member_\(i)/")) { a, _ in a } }
        }
        return out
    }
}

/// A heatmap of values in [0, 1]: one row per layer, one column per adapter, the value in each cell.
func heatmapSVG(title: String, rows: [(label: String, values: [Double])], columns: [String]) -> String {
    // Cells wide enough for the longest column label (about 7 px a character at 12 px).
    let cellW = max(64, 7 * (columns.map(\.count).max() ?? 0) + 12), cellH = 48
    let left = 150, top = 70, height = top + cellH * rows.count + 30
    let width = max(left + cellW * columns.count + 20, 20 + title.count * 9)
    func esc(_ s: String) -> String { s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;") }
    var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" font-family=\"sans-serif\" font-size=\"12\">\n"
    svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    svg += "<text x=\"10\" y=\"22\" font-size=\"14\" font-weight=\"bold\">\(esc(title))</text>\n"
    for (j, c) in columns.enumerated() {
        svg += "<text x=\"\(left + j * cellW + cellW / 2)\" y=\"\(top - 8)\" text-anchor=\"middle\">\(esc(c))</text>\n"
    }
    for (i, row) in rows.enumerated() {
        let y = top + i * cellH
        svg += "<text x=\"\(left - 8)\" y=\"\(y + cellH / 2 + 4)\" text-anchor=\"end\">\(esc(row.label))</text>\n"
        for (j, v) in row.values.enumerated() {
            // White (0) to dark blue (1).
            let t = min(max(v, 0), 1)
            let (r, g, b) = (Int(255 - 227 * t), Int(255 - 185 * t), Int(255 - 120 * t))
            svg += "<rect x=\"\(left + j * cellW)\" y=\"\(y)\" width=\"\(cellW - 2)\" height=\"\(cellH - 2)\" fill=\"rgb(\(r),\(g),\(b))\"/>\n"
            svg += "<text x=\"\(left + j * cellW + cellW / 2 - 1)\" y=\"\(y + cellH / 2 + 4)\" text-anchor=\"middle\" fill=\"\(t > 0.55 ? "white" : "black")\">\(String(format: "%.2f", v))</text>\n"
        }
    }
    return svg + "</svg>\n"
}
