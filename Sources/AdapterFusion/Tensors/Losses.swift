import Foundation

/// Mean softmax cross-entropy over a batch of logits.
public enum CrossEntropy {
    /// Returns Σ −log softmax(logits[b])[label[b]] / `over` (default: B, the mean) and writes the
    /// probabilities to `probs` [B, C]. A data-parallel shard divides by the global batch size.
    public static func forward(
        probs: UnsafeMutablePointer<Float>, logits: UnsafePointer<Float>, labels: [Int], classes c: Int, over: Int? = nil
    ) -> Float {
        Softmax.forward(out: probs, inp: logits, n: labels.count, c: c, ld: c)
        var loss: Double = 0
        for (b, y) in labels.enumerated() { loss -= Foundation.log(Double(max(probs[b * c + y], 1e-30))) }
        return Float(loss / Double(over ?? labels.count))
    }

    /// dlogits += (probs − onehot(label)) / `over` (default B).
    public static func backward(
        dlogits: UnsafeMutablePointer<Float>, probs: UnsafePointer<Float>, labels: [Int], classes c: Int, over: Int? = nil
    ) {
        let inv = 1 / Float(over ?? labels.count)
        for (b, y) in labels.enumerated() {
            for j in 0..<c { dlogits[b * c + j] += inv * (probs[b * c + j] - (j == y ? 1 : 0)) }
        }
    }
}

/// Mean squared error for regression heads with one output.
public enum MeanSquaredError {
    /// Returns Σ (pred[b] − target[b])² / `over` (default: B, the mean).
    public static func forward(pred: UnsafePointer<Float>, targets: [Float], over: Int? = nil) -> Float {
        var s: Double = 0
        for (b, t) in targets.enumerated() { let d = Double(pred[b] - t); s += d * d }
        return Float(s / Double(over ?? targets.count))
    }

    /// dpred += 2(pred − target) / `over` (default B).
    public static func backward(dpred: UnsafeMutablePointer<Float>, pred: UnsafePointer<Float>, targets: [Float], over: Int? = nil) {
        let k = 2 / Float(over ?? targets.count)
        for (b, t) in targets.enumerated() { dpred[b] += k * (pred[b] - t) }
    }
}
