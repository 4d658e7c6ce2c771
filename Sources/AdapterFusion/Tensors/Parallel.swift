import COpenBLAS
import Dispatch

/// Splits independent work (attention heads, rows, elements) across the threads `BLAS.setThreads`
/// chose. Work inside runs with OpenBLAS single-threaded, so the two never oversubscribe the cores.
/// Results do not depend on the number of threads: every item is computed the same way.
public enum Parallel {
    /// Worker count; set together with OpenBLAS's by `BLAS.setThreads`.
    nonisolated(unsafe) public internal(set) static var threads = 1

    /// Runs `body` with `n` workers for the work between matrix products, leaving OpenBLAS's
    /// own thread count as it is (tests use this to compare 1 and 2 workers).
    public static func withThreads<T>(_ n: Int, _ body: () throws -> T) rethrows -> T {
        let saved = threads
        threads = max(1, n)
        defer { threads = saved }
        return try body()
    }

    /// Calls `body(range, worker)` for `threads` contiguous pieces of `0..<count` (one piece, on
    /// this thread, when there is one thread or fewer than `minimumPerThread` items per thread).
    /// At most `maxWorkers` workers are used (for callers whose scratch space fits that many).
    public static func forEach(_ count: Int, minimumPerThread: Int = 1, maxWorkers: Int = .max, _ body: (Range<Int>, Int) -> Void) {
        let workers = min(threads, maxWorkers, count / max(minimumPerThread, 1))
        guard workers > 1 else { if count > 0 { body(0..<count, 0) }; return }
        let blasThreads = openblas_get_num_threads()
        if blasThreads > 1 { openblas_set_num_threads(1) }
        defer { if blasThreads > 1 { openblas_set_num_threads(blasThreads) } }
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            body((count * w / workers)..<(count * (w + 1) / workers), w)
        }
    }
}
