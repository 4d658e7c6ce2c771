import Foundation

/// Evaluation metrics. Classification metrics take predicted and gold class indices;
/// correlations take predicted and gold values.
public enum Metrics {
    public static func accuracy(_ pred: [Int], _ gold: [Int]) -> Double {
        guard !gold.isEmpty else { return 0 }
        return Double(zip(pred, gold).filter { $0 == $1 }.count) / Double(gold.count)
    }

    /// Unweighted mean of per-class F1 over the classes present in gold or predictions.
    public static func macroF1(_ pred: [Int], _ gold: [Int], classes: Int) -> Double {
        var f1s: [Double] = []
        for c in 0..<classes {
            let tp = zip(pred, gold).filter { $0 == c && $1 == c }.count
            let fp = zip(pred, gold).filter { $0 == c && $1 != c }.count
            let fn = zip(pred, gold).filter { $0 != c && $1 == c }.count
            if tp + fp + fn == 0 { continue }
            f1s.append(2 * Double(tp) / Double(2 * tp + fp + fn))
        }
        return f1s.isEmpty ? 0 : f1s.reduce(0, +) / Double(f1s.count)
    }

    /// Matthews correlation, in Gorodkin's multi-class form (equal to the binary MCC for 2 classes).
    public static func matthews(_ pred: [Int], _ gold: [Int], classes: Int) -> Double {
        var confusion = [[Double]](repeating: [Double](repeating: 0, count: classes), count: classes)
        for (p, g) in zip(pred, gold) { confusion[g][p] += 1 }
        let s = Double(gold.count)
        let c = (0..<classes).reduce(0.0) { $0 + confusion[$1][$1] }
        let t = (0..<classes).map { k in confusion[k].reduce(0, +) }  // gold counts
        let p = (0..<classes).map { k in (0..<classes).reduce(0.0) { $0 + confusion[$1][k] } }  // predicted counts
        let num = c * s - zip(t, p).reduce(0.0) { $0 + $1.0 * $1.1 }
        let den = ((s * s - p.reduce(0) { $0 + $1 * $1 }) * (s * s - t.reduce(0) { $0 + $1 * $1 })).squareRoot()
        return den == 0 ? 0 : num / den
    }

    public static func pearson(_ x: [Double], _ y: [Double]) -> Double {
        let n = Double(x.count)
        guard n > 1 else { return 0 }
        let mx = x.reduce(0, +) / n
        let my = y.reduce(0, +) / n
        var sxy = 0.0
        var sxx = 0.0
        var syy = 0.0
        for (a, b) in zip(x, y) { sxy += (a - mx) * (b - my); sxx += (a - mx) * (a - mx); syy += (b - my) * (b - my) }
        return sxx == 0 || syy == 0 ? 0 : sxy / (sxx * syy).squareRoot()
    }

    /// Pearson correlation of ranks (ties share their mean rank).
    public static func spearman(_ x: [Double], _ y: [Double]) -> Double { pearson(ranks(x), ranks(y)) }

    static func ranks(_ v: [Double]) -> [Double] {
        let order = v.indices.sorted { v[$0] < v[$1] }
        var r = [Double](repeating: 0, count: v.count)
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count && v[order[j + 1]] == v[order[i]] { j += 1 }
            for k in i...j { r[order[k]] = Double(i + j) / 2 + 1 }
            i = j + 1
        }
        return r
    }

    /// The task's metric from predictions: class indices (classification) or values (regression).
    public static func score(
        _ metric: TaskSpec.Metric, predictedLabels: [Int], predictedValues: [Float],
        examples: [Example], classes: Int
    ) -> Double {
        switch metric {
        case .accuracy: return accuracy(predictedLabels, examples.map(\.label))
        case .macroF1: return macroF1(predictedLabels, examples.map(\.label), classes: classes)
        case .mcc: return matthews(predictedLabels, examples.map(\.label), classes: classes)
        case .pearson: return pearson(predictedValues.map(Double.init), examples.map { Double($0.value) })
        case .spearman: return spearman(predictedValues.map(Double.init), examples.map { Double($0.value) })
        }
    }
}
