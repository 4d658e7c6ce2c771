/// Layer normalisation over the last dimension: y = (x − μ)/σ · γ + β.
public enum LayerNorm {
    /// out[n, c], and per row the mean and reciprocal std kept for the backward pass.
    public static func forward(
        out: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>?,
        rstd: UnsafeMutablePointer<Float>?, inp: UnsafePointer<Float>,
        weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, n: Int, c: Int, eps: Float
    ) {
        for r in 0..<n {
            let x = inp + r * c, y = out + r * c
            // Two passes (mean, then centred variance) for accuracy, both vectorised.
            let m = VectorMath.sum(x, c) / Float(c)
            var acc = VectorMath.V(repeating: 0), i = 0
            while i + 8 <= c { let d = VectorMath.load(x + i) - m; acc += d * d; i += 8 }
            var v = acc.sum()
            while i < c { let d = x[i] - m; v += d * d; i += 1 }
            let s = 1 / (v / Float(c) + eps).squareRoot()
            for i in 0..<c { y[i] = (x[i] - m) * s * weight[i] + bias[i] }
            mean?[r] = m
            rstd?[r] = s
        }
    }

    /// Accumulates dinp += ∂L/∂x and (when given) dweight, dbias.
    public static func backward(
        dinp: UnsafeMutablePointer<Float>, dweight: UnsafeMutablePointer<Float>?,
        dbias: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>,
        weight: UnsafePointer<Float>, mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
        n: Int, c: Int
    ) {
        for r in 0..<n {
            let x = inp + r * c, dy = dout + r * c, dx = dinp + r * c
            let m = mean[r], s = rstd[r]
            // Two reductions: mean of (dy·γ) and mean of (dy·γ·x̂).
            var dnormMean: Float = 0, dnormDotXhat: Float = 0
            for i in 0..<c {
                let xhat = (x[i] - m) * s
                let dnorm = weight[i] * dy[i]
                dnormMean += dnorm
                dnormDotXhat += dnorm * xhat
            }
            dnormMean /= Float(c)
            dnormDotXhat /= Float(c)
            for i in 0..<c {
                let xhat = (x[i] - m) * s
                dx[i] += (weight[i] * dy[i] - dnormMean - xhat * dnormDotXhat) * s
                dweight?[i] += xhat * dy[i]
                dbias?[i] += dy[i]
            }
        }
    }
}
