import Foundation

/// GELU in BERT's exact (erf) form: gelu(x) = ½·x·(1 + erf(x/√2)).
public enum GELU {
    /// out[i] = gelu(inp[i]) for `count` elements.
    public static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count: Int) {
        for i in 0..<count {
            let x = inp[i]
            out[i] = 0.5 * x * (1 + erff(x * 0.70710678118654752))
        }
    }

    /// dinp[i] += dout[i] · gelu′(inp[i]), gelu′(x) = ½(1 + erf(x/√2)) + x·φ(x).
    public static func backward(
        dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>,
        count: Int
    ) {
        for i in 0..<count {
            let x = inp[i]
            let cdf = 0.5 * (1 + erff(x * 0.70710678118654752))
            let pdf = expf(-0.5 * x * x) * 0.39894228040143268
            dinp[i] += dout[i] * (cdf + x * pdf)
        }
    }
}
