/// GELU in BERT's exact (erf) form: gelu(x) = ½·x·(1 + erf(x/√2)).
public enum GELU {
    /// out[i] = gelu(inp[i]) for `count` elements.
    public static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count: Int) {
        VectorMath.map(out, inp, count) { x in 0.5 * x * (1 + VectorMath.erf(x * 0.70710678118654752)) }
    }

    /// dinp[i] += dout[i] · gelu′(inp[i]), gelu′(x) = ½(1 + erf(x/√2)) + x·φ(x).
    public static func backward(
        dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>,
        count: Int
    ) {
        var i = 0
        while i < count {
            let n = min(8, count - i)
            var x = VectorMath.V(repeating: 0), dy = x, dx = x
            for j in 0..<n { x[j] = inp[i + j]; dy[j] = dout[i + j]; dx[j] = dinp[i + j] }
            let cdf = 0.5 * (1 + VectorMath.erf(x * 0.70710678118654752))
            let pdf = VectorMath.exp(-0.5 * x * x) * 0.39894228040143268
            dx += dy * (cdf + x * pdf)
            for j in 0..<n { dinp[i + j] = dx[j] }
            i += 8
        }
    }
}
