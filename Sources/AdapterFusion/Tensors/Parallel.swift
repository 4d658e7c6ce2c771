import CKernels
import Foundation
import Synchronization

/// A persistent pool of worker threads for the work of one pass: row blocks of products,
/// attention blocks, rows of GELU and LayerNorm.
///
/// `run(tasks:)` hands out task indices through an atomic counter; the caller works too. What
/// a task computes must not depend on which thread runs it, so results are bitwise the same at
/// any thread count. A call made while the pool is busy (from a task, or from another thread)
/// runs its tasks in the calling thread.
public enum Parallel {
    /// Threads in use, the calling thread included.
    public static var threads: Int { pool.active.load(ordering: .relaxed) + 1 }

    /// Uses `n` threads (at least 1) from now on; starts workers as needed.
    public static func setThreads(_ n: Int) { pool.setActive(max(1, n) - 1) }

    /// The CPUs this process may run on (`sched_getaffinity`), at least 1.
    public static var availableCPUs: Int {
        let n = Int(afk_available_cpus())
        return n > 0 ? n : max(1, ProcessInfo.processInfo.activeProcessorCount)
    }

    /// Runs `body(task, slot)` for task in 0..<tasks across the pool. `slot` names the thread,
    /// for per-thread scratch, and is below `slots` (a caller with scratch for k threads passes
    /// k: the thread count may change while it runs); it must not change what a task computes.
    public static func run(tasks: Int, slots: Int = 255, _ body: (_ task: Int, _ slot: Int) -> Void) {
        if tasks <= 1 || slots <= 1 || pool.active.load(ordering: .relaxed) == 0 {
            for t in 0..<tasks { body(t, 0) }
            return
        }
        withoutActuallyEscaping(body) { pool.run(tasks: tasks, slots: min(slots, 255), $0) }
    }

    /// Splits `count` items into blocks of at least `grain` and runs `body(range)` for each.
    /// The blocks depend on `count` and `grain` only.
    public static func forRanges(_ count: Int, grain: Int, _ body: (Range<Int>) -> Void) {
        let blocks = max(1, min(16, count / max(grain, 1)))
        let per = (count + blocks - 1) / blocks
        run(tasks: blocks) { b, _ in
            let lo = b * per
            let hi = min(count, lo + per)
            if lo < hi { body(lo..<hi) }
        }
    }

    /// The default: `$AFUSION_THREADS` when it holds a whole number ≥ 1, else `availableCPUs`.
    public static var defaultThreads: Int {
        if let v = ProcessInfo.processInfo.environment["AFUSION_THREADS"], let n = Int(v), n >= 1 { return n }
        return availableCPUs
    }

    static let pool: WorkerPool = {
        let pool = WorkerPool()
        pool.setActive(defaultThreads - 1)
        return pool
    }()
}

/// The threads behind `Parallel`. Workers spin briefly for the next job, then sleep.
///
/// One atomic word holds the job's generation, task count and next task index, so a task is
/// claimed by one compare-and-swap that also proves the job is still the current one; the job
/// closure is cleared only after all its tasks are done, so a claimed task always finds it.
final class WorkerPool: @unchecked Sendable {
    let active = Atomic<Int>(0)  // workers taking part (threads − 1)
    private let busy = Atomic<Bool>(false)
    private let state = Atomic<UInt64>(0)  // generation << 44 | slots << 36 | count << 18 | next
    private let done = Atomic<Int>(0)
    private var job: ((Int, Int) -> Void)?
    private var started = 0
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private let setLock = NSLock()
    static let maxTasks = (1 << 18) - 1

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(cond, nil)
    }

    func setActive(_ n: Int) {
        setLock.lock(); defer { setLock.unlock() }
        while started < n {
            let slot = started + 1
            let box = Unmanaged.passRetained(WorkerStart(pool: self, slot: slot)).toOpaque()
            var tid = pthread_t()
            let rc = pthread_create(
                &tid, nil,
                { raw in
                    let start = Unmanaged<WorkerStart>.fromOpaque(raw!).takeRetainedValue()
                    start.pool.workerLoop(slot: start.slot)
                    return nil
                }, box)
            precondition(rc == 0, "cannot start a worker thread (error \(rc))")
            pthread_detach(tid)
            started += 1
        }
        active.store(n, ordering: .releasing)
    }

    func run(tasks: Int, slots: Int, _ body: @escaping (Int, Int) -> Void) {
        guard tasks <= Self.maxTasks,
            busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged
        else {
            for t in 0..<tasks { body(t, 0) }
            return
        }
        job = body
        done.store(0, ordering: .relaxed)
        let gen = ((state.load(ordering: .relaxed) >> 44) &+ 1) & 0xFFFFF
        state.store((gen << 44) | (UInt64(slots) << 36) | (UInt64(tasks) << 18), ordering: .releasing)
        pthread_mutex_lock(mutex); pthread_cond_broadcast(cond); pthread_mutex_unlock(mutex)
        work(slot: 0)
        while done.load(ordering: .acquiring) < tasks { afk_pause() }
        job = nil
        busy.store(false, ordering: .releasing)
    }

    /// Claims and runs tasks of the current job until none are left.
    private func work(slot: Int) {
        while true {
            var s = state.load(ordering: .acquiring)
            var claimed = false
            while !claimed {
                let slots = (s >> 36) & 0xFF
                let count = (s >> 18) & 0x3FFFF
                let nextTask = s & 0x3FFFF
                if nextTask >= count || UInt64(slot) >= slots { return }
                (claimed, s) = state.compareExchange(expected: s, desired: s + 1, ordering: .acquiringAndReleasing)
            }
            job!(Int(s & 0x3FFFF), slot)
            done.wrappingAdd(1, ordering: .releasing)
        }
    }

    fileprivate func workerLoop(slot: Int) {
        var seen: UInt64 = 0
        while true {
            // Spin about a millisecond for the next job (passes issue them back to back), then sleep.
            var spins = 0
            while state.load(ordering: .acquiring) >> 44 == seen && spins < 20_000 { afk_pause(); spins += 1 }
            if state.load(ordering: .acquiring) >> 44 == seen {
                pthread_mutex_lock(mutex)
                while state.load(ordering: .acquiring) >> 44 == seen { pthread_cond_wait(cond, mutex) }
                pthread_mutex_unlock(mutex)
            }
            seen = state.load(ordering: .acquiring) >> 44
            if slot <= active.load(ordering: .relaxed) { work(slot: slot) }
        }
    }
}

private final class WorkerStart {
    let pool: WorkerPool
    let slot: Int
    init(pool: WorkerPool, slot: Int) { self.pool = pool; self.slot = slot }
}
