import CKernels

/// Layer normalisation over the last dimension: y = (x − μ)/σ · γ + β
/// (row kernels in `Sources/CKernels`, rows split over `Parallel`'s threads).
public enum LayerNorm {
    /// out[n, c], and per row the mean and reciprocal std kept for the backward pass.
    public static func forward(
        out: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>?,
        rstd: UnsafeMutablePointer<Float>?, inp: UnsafePointer<Float>,
        weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, n: Int, c: Int, eps: Float
    ) {
        Profile.measure(.layerNorm) {
            VectorMath.rows(n, cost: c) { lo, hi in
                afk_layernorm(out + lo * c, mean.map { $0 + lo }, rstd.map { $0 + lo }, inp + lo * c, weight, bias, hi - lo, c, eps)
            }
        }
    }

    /// Accumulates dinp += ∂L/∂x and (when given) dweight, dbias.
    public static func backward(
        dinp: UnsafeMutablePointer<Float>, dweight: UnsafeMutablePointer<Float>?,
        dbias: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>,
        weight: UnsafePointer<Float>, mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
        n: Int, c: Int
    ) {
        Profile.measure(.layerNorm) {
            VectorMath.rows(n, cost: c) { lo, hi in
                afk_layernorm_backward(dinp + lo * c, dout + lo * c, inp + lo * c, weight, mean + lo, rstd + lo, hi - lo, c)
            }
        }
        // Weight gradients sum over rows: one thread, in row order.
        if dweight != nil || dbias != nil {
            for r in 0..<n {
                let x = inp + r * c
                let dy = dout + r * c
                let m = mean[r]
                let s = rstd[r]
                for i in 0..<c {
                    dweight?[i] += (x[i] - m) * s * dy[i]
                    dbias?[i] += dy[i]
                }
            }
        }
    }
}
