/// Elementwise non-linearities other than GELU, each a forward/backward pair.
/// Backward passes accumulate: dinp += dout · f′(inp).
public enum ReLU {
    public static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count: Int) {
        for i in 0..<count { out[i] = max(inp[i], 0) }
    }
    public static func backward(dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, count: Int) {
        for i in 0..<count where inp[i] > 0 { dinp[i] += dout[i] }
    }
}

/// σ(x) = 1/(1 + e^(−x)) into `out` (in place allowed).
private func sigmoid(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ count: Int) {
    for i in 0..<count { out[i] = -inp[i] }
    VectorMath.exp(out, out, count)
    for i in 0..<count { out[i] = 1 / (1 + out[i]) }
}

/// swish(x) = x·σ(x) (also called SiLU).
public enum Swish {
    public static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count: Int) {
        sigmoid(out, inp, count)
        for i in 0..<count { out[i] *= inp[i] }
    }
    public static func backward(dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, count: Int) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 256) { buf in
            let s = buf.baseAddress!
            for start in stride(from: 0, to: count, by: 256) {
                let m = min(256, count - start)
                sigmoid(s, inp + start, m)
                for j in 0..<m {
                    let x = inp[start + j]
                    dinp[start + j] += dout[start + j] * (s[j] + x * s[j] * (1 - s[j]))
                }
            }
        }
    }
}

/// tanh, used by the pre-head dense layer.
public enum Tanh {
    public static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count: Int) {
        // tanh(x) = 1 − 2/(e^{2x} + 1), saturating correctly at both ends.
        for i in 0..<count { out[i] = 2 * inp[i] }
        VectorMath.exp(out, out, count)
        for i in 0..<count { out[i] = 1 - 2 / (out[i] + 1) }
    }
    /// Uses the forward output y: tanh′ = 1 − y².
    public static func backward(dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, out: UnsafePointer<Float>, count: Int) {
        for i in 0..<count { dinp[i] += dout[i] * (1 - out[i] * out[i]) }
    }
}

/// Non-linearity of an adapter's bottleneck.
public enum Activation: String, Codable, Sendable, CaseIterable {
    case relu, gelu, swish

    public func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count: Int) {
        switch self {
        case .relu: ReLU.forward(out: out, inp: inp, count: count)
        case .gelu: GELU.forward(out: out, inp: inp, count: count)
        case .swish: Swish.forward(out: out, inp: inp, count: count)
        }
    }

    public func backward(dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, count: Int) {
        switch self {
        case .relu: ReLU.backward(dinp: dinp, dout: dout, inp: inp, count: count)
        case .gelu: GELU.backward(dinp: dinp, dout: dout, inp: inp, count: count)
        case .swish: Swish.backward(dinp: dinp, dout: dout, inp: inp, count: count)
        }
    }
}
