import CKernels

/// GELU in BERT's exact (erf) form: gelu(x) = ½·x·(1 + erf(x/√2)).
public enum GELU {
    /// out[i] = gelu(inp[i]) for `count` elements.
    public static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count: Int) {
        Profile.measure(.gelu) {
            VectorMath.elements(count) { a, b in afk_bias_gelu(out + a, UnsafeMutablePointer(mutating: inp + a), nil, 1, b - a) }
        }
    }

    /// pre[r, j] += bias[j]; out = gelu(pre), over n rows of c (bias fused into the activation).
    public static func forward(
        out: UnsafeMutablePointer<Float>, pre: UnsafeMutablePointer<Float>,
        bias: UnsafePointer<Float>, n: Int, c: Int
    ) {
        Profile.measure(.gelu) { VectorMath.rows(n, cost: c) { lo, hi in afk_bias_gelu(out + lo * c, pre + lo * c, bias, hi - lo, c) } }
    }

    /// dinp[i] += dout[i] · gelu′(inp[i]), gelu′(x) = ½(1 + erf(x/√2)) + x·φ(x).
    public static func backward(
        dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>,
        count: Int
    ) {
        Profile.measure(.gelu) {
            VectorMath.elements(count) { a, b in afk_gelu_backward(dinp + a, dout + a, inp + a, b - a, 1) }
        }
    }

    /// d[i] = d[i] · gelu′(inp[i]) in place: ∂L/∂(GELU input) from ∂L/∂(GELU output).
    public static func backward(inPlace d: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count: Int) {
        Profile.measure(.gelu) {
            VectorMath.elements(count) { a, b in afk_gelu_backward(d + a, d + a, inp + a, b - a, 0) }
        }
    }
}
