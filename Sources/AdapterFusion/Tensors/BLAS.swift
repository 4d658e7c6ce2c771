/// Every matrix product in the project goes through here, to OpenBLAS's `cblas_sgemm`.
///
/// OpenBLAS itself always runs single-threaded; products large enough to share are cut into
/// row blocks that `Parallel` runs on its workers. The blocks depend only on the product's
/// shape, never on the number of threads, so results are bitwise the same at any thread count.
public enum BLAS {
    /// Sets the number of threads products (and the other parallel work) use.
    public static func setThreads(_ n: Int) { Parallel.setThreads(n) }

    /// Number of threads products use.
    public static var threads: Int { Parallel.threads }

    /// The loaded OpenBLAS, kept single-threaded (our workers split the products).
    public static let library: OpenBLAS = {
        let lib = OpenBLAS.shared
        lib.setNumThreads(1)
        return lib
    }()

    /// Products smaller than this many multiply-adds run as one call.
    static let splitThreshold = 1 << 21
    /// Columns per block of a product with few rows.
    static let columnBlock = 64
    /// The most row blocks a product is cut into.
    static let maxBlocks = 8

    /// Row blocks of an m-row product with n·k multiply-adds per row: a function of the shape
    /// alone. Blocks are multiples of 16 rows (the widest OpenBLAS micro-kernel).
    static func rowBlocks(m: Int, n: Int, k: Int) -> Int {
        guard m * n * k >= splitThreshold, m >= 32 else { return 1 }
        return min(maxBlocks, m / 16)
    }

    /// Row-major `C[m,n] = alpha · op(A)[m,k] · op(B)[k,n] + beta · C`.
    /// `op(A)` is A when `transA` is false (A stored [m,k] with row stride `lda`), else Aᵀ (A stored [k,m]).
    @inline(__always)
    public static func gemm(
        transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        Profile.measure(.products) {
            if m < 64, n >= 2 * columnBlock, m * n * k >= 1 << 16 {
                // Few rows (small batches): OpenBLAS would pack all of B for a handful of rows.
                // Column blocks of 64 take its small-matrix path, which reads B in place, and
                // they spread over the threads (latency at batch 1).
                Parallel.run(tasks: (n + columnBlock - 1) / columnBlock) { block, _ in
                    let j0 = block * columnBlock
                    let cols = min(columnBlock, n - j0)
                    let bBlock = transB ? b + j0 * ldb : b + j0
                    call(transA, transB, m, cols, k, alpha, a, lda, bBlock, ldb, beta, c + j0, ldc)
                }
                return
            }
            let blocks = rowBlocks(m: m, n: n, k: k)
            if blocks == 1 {
                call(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
                return
            }
            let rowsPer = (m / blocks + 15) / 16 * 16
            Parallel.run(tasks: (m + rowsPer - 1) / rowsPer) { block, _ in
                let r0 = block * rowsPer
                let rows = min(rowsPer, m - r0)
                // Rows r0..<r0+rows of op(A): row r0 of A, or column r0 of the stored Aᵀ.
                let aBlock = transA ? a + r0 : a + r0 * lda
                call(transA, transB, rows, n, k, alpha, aBlock, lda, b, ldb, beta, c + r0 * ldc, ldc)
            }
        }
    }

    /// Single-threaded products, one per task, for callers that split work themselves.
    @inline(__always)
    static func call(
        _ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
        _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
        _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int
    ) {
        // CBLAS constants: row-major 101, no transpose 111, transpose 112.
        library.sgemm(
            101, transA ? 112 : 111, transB ? 112 : 111, Int32(m), Int32(n), Int32(k),
            alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Products inside a task of `Parallel.run` (attention blocks): never split again.
    @inline(__always)
    public static func gemmSerial(
        transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        call(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    }
}
