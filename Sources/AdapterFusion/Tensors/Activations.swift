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

/// swish(x) = x·σ(x) (also called SiLU).
public enum Swish {
    public static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count: Int) {
        VectorMath.map(out, inp, count) { x in x / (1 + VectorMath.exp(-x)) }
    }
    public static func backward(dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, count: Int) {
        for i in 0..<count {
            let x = inp[i]
            let s = 1 / (1 + VectorMath.exp(SIMD8(repeating: -x))[0])
            dinp[i] += dout[i] * (s + x * s * (1 - s))
        }
    }
}

/// tanh, used by the pre-head dense layer.
public enum Tanh {
    public static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count: Int) {
        // tanh(x) = 1 − 2/(e^{2x} + 1), saturating correctly at both ends.
        VectorMath.map(out, inp, count) { x in 1 - 2 / (VectorMath.exp(2 * x) + 1) }
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
