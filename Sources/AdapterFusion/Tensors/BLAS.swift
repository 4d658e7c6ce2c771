import COpenBLAS

/// Every matrix product in the project goes through here, to OpenBLAS's `cblas_sgemm`.
public enum BLAS {
    /// Sets the number of OpenBLAS threads for subsequent calls.
    public static func setThreads(_ n: Int) {
        _ = singleThreadedByDefault
        openblas_set_num_threads(Int32(max(1, n)))
    }

    /// OpenBLAS starts with a thread per core; this library starts with one, until `setThreads`
    /// says otherwise (so concurrent callers, such as parallel tests, never share its threads).
    /// Evaluated once, before the first product.
    private static let singleThreadedByDefault: Void = { openblas_set_num_threads(1) }()

    /// Number of threads OpenBLAS will use.
    public static var threads: Int { Int(openblas_get_num_threads()) }

    /// Row-major `C[m,n] = alpha · op(A)[m,k] · op(B)[k,n] + beta · C`.
    /// `op(A)` is A when `transA` is false (A stored [m,k] with row stride `lda`), else Aᵀ (A stored [k,m]).
    @inline(__always)
    public static func gemm(
        transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        _ = singleThreadedByDefault
        cblas_sgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb),
            beta, c, blasint(ldc))
    }
}
