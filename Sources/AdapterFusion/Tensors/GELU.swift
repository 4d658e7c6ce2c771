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
        @inline(__always) func derivative(_ x: VectorMath.V) -> VectorMath.V {
            let cdf = 0.5 * (1 + VectorMath.erf(x * 0.70710678118654752))
            let pdf = VectorMath.exp(-0.5 * x * x) * 0.39894228040143268
            return cdf + x * pdf
        }
        var i = 0
        while i + 8 <= count {
            let dx = VectorMath.load(dinp + i) + VectorMath.load(dout + i) * derivative(VectorMath.load(inp + i))
            VectorMath.store(dx, dinp + i)
            i += 8
        }
        if i < count {
            var x = VectorMath.V(repeating: 0)
            for j in 0..<(count - i) { x[j] = inp[i + j] }
            let d = derivative(x)
            for j in 0..<(count - i) { dinp[i + j] += dout[i + j] * d[j] }
        }
    }
}
