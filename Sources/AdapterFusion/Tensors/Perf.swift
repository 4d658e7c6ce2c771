import Foundation

/// Monotonic wall clock in seconds.
public enum Clock {
    public static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }
}

/// Figures printed by the benchmarks.
public enum Perf {
    /// Peak resident set size of this process so far, in MB (getrusage).
    public static func peakRSSMegabytes() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024
    }

    /// Measured GFLOP/s of C[m,n] = A[m,k]·B[n,k]ᵀ (best of 6): as one single-threaded
    /// `cblas_sgemm` call, and as `BLAS.gemm` splits it over the current threads.
    public static func sgemmGFLOPs(m: Int, n: Int, k: Int) -> (single: Double, split: Double) {
        let a = Tensor(zeros: [m, k])
        let b = Tensor(zeros: [n, k])
        let c = Tensor(zeros: [m, n])
        var rng = SeededRNG(seed: 1)
        for i in 0..<a.count { a[i] = rng.nextUniform() }
        for i in 0..<b.count { b[i] = rng.nextUniform() }
        func best(_ body: () -> Void) -> Double {
            var t = Double.infinity
            for _ in 0..<6 { let t0 = Clock.now(); body(); t = min(t, Clock.now() - t0) }
            return 2 * Double(m) * Double(n) * Double(k) / t / 1e9
        }
        let single = best { BLAS.gemmSerial(transB: true, m: m, n: n, k: k, a: a.data, lda: k, b: b.data, ldb: k, c: c.data, ldc: n) }
        let split = best { BLAS.gemm(transB: true, m: m, n: n, k: k, a: a.data, lda: k, b: b.data, ldb: k, c: c.data, ldc: n) }
        return (single, split)
    }
}
