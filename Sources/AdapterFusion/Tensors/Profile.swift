/// Time per op class for `afusion bench … --profile`. Off by default: then each instrumented
/// call costs one branch. Records only outermost regions (an op inside another is the outer
/// op's time), from the thread that runs the pass.
public enum Profile {
    public enum Op: Int, CaseIterable, Sendable {
        case products, attention, gelu, layerNorm, softmax, optimizer

        var label: String {
            switch self {
            case .products: "products (sgemm)"
            case .attention: "attention (QKᵀ, softmax, PV)"
            case .gelu: "GELU"
            case .layerNorm: "LayerNorm"
            case .softmax: "softmax (heads, fusion)"
            case .optimizer: "optimizer (clip + AdamW)"
            }
        }
    }

    nonisolated(unsafe) static var enabled = false
    nonisolated(unsafe) static var seconds = [Double](repeating: 0, count: Op.allCases.count)
    nonisolated(unsafe) static var depth = 0

    /// Clears the totals and turns recording on or off.
    public static func reset(enabled on: Bool) {
        seconds = [Double](repeating: 0, count: Op.allCases.count)
        enabled = on
    }

    @inline(__always)
    static func measure<T>(_ op: Op, _ body: () throws -> T) rethrows -> T {
        guard enabled, depth == 0 else { return try body() }
        depth = 1
        let t0 = Clock.now()
        defer { seconds[op.rawValue] += Clock.now() - t0; depth = 0 }
        return try body()
    }

    /// A table of seconds and shares of `total` per class, "other" being the rest.
    public static func report(total: Double) -> String {
        var lines = ["  profile (share of the timed iterations):"]
        func line(_ label: String, _ t: Double) -> String {
            "    " + label.padding(toLength: 44, withPad: " ", startingAt: 0)
                + String(format: "%9.1f ms  %5.1f %%", t * 1000, 100 * t / total)
        }
        for op in Op.allCases { lines.append(line(op.label, seconds[op.rawValue])) }
        lines.append(line("other (adapters, fusion, dropout, copies)", total - seconds.reduce(0, +)))
        return lines.joined(separator: "\n")
    }
}
