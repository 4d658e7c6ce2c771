import COpenBLAS
import Dispatch

/// Splits independent work (attention heads, rows, elements) across the threads `BLAS.setThreads`
/// chose. Work inside runs with OpenBLAS single-threaded, so the two never oversubscribe the cores.
/// Results do not depend on the number of threads: every item is computed the same way.
public enum Parallel {
    /// Worker count; set together with OpenBLAS's by `BLAS.setThreads`.
    nonisolated(unsafe) public internal(set) static var threads = 1

    /// Calls `body(range, worker)` for `threads` contiguous pieces of `0..<count` (one piece, on
    /// this thread, when there is one thread or fewer than `minimumPerThread` items per thread).
    public static func forEach(_ count: Int, minimumPerThread: Int = 1, _ body: (Range<Int>, Int) -> Void) {
        let workers = min(threads, count / max(minimumPerThread, 1))
        guard workers > 1 else { if count > 0 { body(0..<count, 0) }; return }
        openblas_set_num_threads(1)
        defer { openblas_set_num_threads(Int32(threads)) }
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            body((count * w / workers)..<(count * (w + 1) / workers), w)
        }
    }
}
