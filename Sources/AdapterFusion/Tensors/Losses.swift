import Foundation

/// Mean softmax cross-entropy over a batch of logits.
public enum CrossEntropy {
    /// Returns mean −log softmax(logits[b])[label[b]] and writes the probabilities to `probs` [B, C].
    public static func forward(probs: UnsafeMutablePointer<Float>, logits: UnsafePointer<Float>, labels: [Int], classes c: Int) -> Float {
        Softmax.forward(out: probs, inp: logits, n: labels.count, c: c, ld: c)
        var loss: Double = 0
        for (b, y) in labels.enumerated() { loss -= Foundation.log(Double(max(probs[b * c + y], 1e-30))) }
        return Float(loss / Double(labels.count))
    }

    /// dlogits += (probs − onehot(label)) / B.
    public static func backward(dlogits: UnsafeMutablePointer<Float>, probs: UnsafePointer<Float>, labels: [Int], classes c: Int) {
        let inv = 1 / Float(labels.count)
        for (b, y) in labels.enumerated() {
            for j in 0..<c { dlogits[b * c + j] += inv * (probs[b * c + j] - (j == y ? 1 : 0)) }
        }
    }
}

/// Mean squared error for regression heads with one output.
public enum MeanSquaredError {
    /// Returns mean (pred[b] − target[b])².
    public static func forward(pred: UnsafePointer<Float>, targets: [Float]) -> Float {
        var s: Double = 0
        for (b, t) in targets.enumerated() { let d = Double(pred[b] - t); s += d * d }
        return Float(s / Double(targets.count))
    }

    /// dpred += 2(pred − target)/B.
    public static func backward(dpred: UnsafeMutablePointer<Float>, pred: UnsafePointer<Float>, targets: [Float]) {
        let k = 2 / Float(targets.count)
        for (b, t) in targets.enumerated() { dpred[b] += k * (pred[b] - t) }
    }
}
