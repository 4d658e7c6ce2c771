/// Fully connected layer `y = x·Wᵀ + b`, with W stored as [out, in] like PyTorch/HF checkpoints.
public enum Linear {
    /// y[n, out] = x[n, in] · w[out, in]ᵀ + b[out]. `y` is overwritten.
    public static func forward(
        y: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>,
        w: UnsafePointer<Float>, b: UnsafePointer<Float>?, n: Int, inDim: Int, outDim: Int
    ) {
        var beta: Float = 0
        if let b {
            for r in 0..<n { (y + r * outDim).update(from: b, count: outDim) }
            beta = 1
        }
        BLAS.gemm(
            transB: true, m: n, n: outDim, k: inDim, a: x, lda: inDim, b: w, ldb: inDim,
            beta: beta, c: y, ldc: outDim)
    }

    /// Accumulates gradients (`+=`): dx[n, in] += dy·w, dw[out, in] += dyᵀ·x, db[out] += Σₙ dy.
    /// Pass nil for what is frozen or not needed; nothing is computed for it. `x` is only read
    /// for `dw` and may be nil without it.
    public static func backward(
        dx: UnsafeMutablePointer<Float>?, dw: UnsafeMutablePointer<Float>?,
        db: UnsafeMutablePointer<Float>?, dy: UnsafePointer<Float>, x: UnsafePointer<Float>?,
        w: UnsafePointer<Float>, n: Int, inDim: Int, outDim: Int
    ) {
        if let dx {
            BLAS.gemm(
                m: n, n: inDim, k: outDim, a: dy, lda: outDim, b: w, ldb: inDim,
                beta: 1, c: dx, ldc: inDim)
        }
        if let dw {
            guard let x else { preconditionFailure("Linear.backward needs x to compute dw") }
            BLAS.gemm(
                transA: true, m: outDim, n: inDim, k: n, a: dy, lda: outDim, b: x, ldb: inDim,
                beta: 1, c: dw, ldc: inDim)
        }
        if let db {
            for r in 0..<n {
                let row = dy + r * outDim
                for j in 0..<outDim { db[j] += row[j] }
            }
        }
    }
}
