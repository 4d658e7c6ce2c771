import AdapterFusion
import ArgumentParser
import Foundation

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
        guard SplitName(rawValue: split) != nil else { throw ValidationError("--split must be dev, test or train, not '\(split)'") }
        if let fusion { try Check.name(fusion, option: "--fusion") }
    }

    func run() throws {
        guard FileManager.default.fileExists(atPath: store) else { throw CommandError("no store at '\(store)'") }
        if let fusion, attention { return try showAttention(fusion) }
        if fusion != nil || attention { throw ValidationError("use --fusion NAME and --attention together") }
        var unreadable: [String] = []
        let listing = try StoreListing(store) { message in
            StoreFile.warn(message)
            unreadable.append(message)
        }
        if listing.adapters.isEmpty && listing.fusions.isEmpty && unreadable.isEmpty { print("\(store): empty"); return }
        defer { if !listing.adapters.isEmpty || !listing.fusions.isEmpty { reportDamage(listing, unreadable: unreadable.count) } }
        var rows = [["adapter", "task", "method", "params", "metric", "best dev", "epoch", "weights", "base model", "base sha256", "created"]]
        for r in listing.adapters {
            rows.append([
                r.record.name, r.record.task,
                r.record.adapterConfig.architecture + (r.record.adapterConfig.hasBottleneck ? "/\(r.record.adapterConfig.reductionFactor)" : ""),
                r.parameters.map(String.init) ?? "? (damaged)", r.record.metric, r.record.bestDevMetric.map(fmt) ?? "-",
                "\(r.record.bestEpoch)/\(r.record.devMetrics.count)", r.damage == nil ? "intact" : "DAMAGED", r.record.baseModel,
                String(r.record.baseFingerprint.prefix(12)), String(r.record.created.prefix(19)),
            ])
        }
        if !listing.adapters.isEmpty { printTable(rows) }
        if listing.fusions.isEmpty { return }
        print("")
        var frows = [["fusion", "task", "composition", "params", "metric", "best dev", "epoch", "weights", "members intact", "created"]]
        for f in listing.fusions {
            frows.append([
                f.record.name, f.record.task, f.record.composition, f.parameters.map(String.init) ?? "? (damaged)", f.record.metric,
                f.record.bestDevMetric.map(fmt) ?? "-", "\(f.record.bestEpoch)/\(f.record.devMetrics.count)",
                f.damage == nil ? (f.changedMembers.isEmpty ? "intact" : "?") : "DAMAGED",
                f.changedMembers.isEmpty ? "yes" : "no: " + f.changedMembers.joined(separator: ","),
                String(f.record.created.prefix(19)),
            ])
        }
        printTable(frows)
    }

    /// After the tables: why each damaged entry does not load. Damage makes the exit status 1,
    /// so a script can check a store with `afusion inspect`.
    func reportDamage(_ listing: StoreListing, unreadable: Int) {
        let damaged =
            listing.adapters.compactMap { e in e.damage.map { ("adapter", e.record.name, $0) } }
            + listing.fusions.compactMap { e in e.damage.map { ("fusion", e.record.name, $0) } }
        if damaged.isEmpty && unreadable == 0 { return }
        print("")
        for (kind, name, why) in damaged { print("DAMAGED \(kind) '\(name)': \(why)") }
        let total = damaged.count + unreadable
        print("\(total) damaged entr\(total == 1 ? "y" : "ies") in \(store); the others are intact")
        Foundation.exit(1)
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
        let p = try Predictor.fusion(name, store: store, model: modelOptions.modelDirectory)
        let spec = try TaskSpec.load(task ?? p.taskFile)
        let examples = try splitExamples(spec, split: split, max: max, settings: p.settings, skipBadRows: true)
        let summary = try p.attentionSummary(examples)
        var svgRows: [(label: String, values: [Double])] = []
        var svgColumns: [String] = []
        for node in summary.nodes {
            if svgColumns.isEmpty { svgColumns = node.members }
            print(
                "mean fusion attention\(node.prefix.isEmpty ? "" : " of the nested fuse at \(node.prefix)") over \(summary.tokens) tokens "
                    + "of \(spec.name) \(split) (\(examples.count) examples):")
            var rows = [["layer"] + node.members]
            for (site, values) in node.means {
                let label = "\(site.layer)" + (site.site == .attention ? " (attention)" : "")
                rows.append([label] + values.map { String(format: "%.3f", $0) })
                if node.prefix.isEmpty { svgRows.append(("layer \(label)", values)) }
            }
            printTable(rows)
        }
        let out = svg ?? ((store as NSString).deletingLastPathComponent as NSString).appendingPathComponent("\(name)-attention.svg")
        try heatmapSVG(title: "\(name): mean fusion attention on \(spec.name) \(split)", rows: svgRows, columns: svgColumns)
            .write(toFile: out, atomically: true, encoding: .utf8)
        print("heatmap written to \(out)")
    }
}
