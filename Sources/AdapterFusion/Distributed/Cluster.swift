import CMPI
import Foundation

/// The processes that train together: this one alone, or the ranks of an MPI job.
///
/// A process started by `mpirun` / `srun` (Open MPI) joins the job the first time `shared` is
/// read; any other process is a cluster of one and never loads MPI. Every collective here is a
/// no-op for a cluster of one, so the same code trains alone and in parallel.
public final class Cluster: @unchecked Sendable {
    /// This process's index, 0 ..< size.
    public let rank: Int
    public let size: Int
    /// Why joining the MPI job failed (then rank 0 of 1): the caller decides whether to stop.
    public let failure: String?

    /// Rank 0 evaluates, logs and writes stores.
    public var isRoot: Bool { rank == 0 }
    public var isParallel: Bool { size > 1 }

    public static let shared = Cluster()
    /// A cluster of one, whatever launched the process (for work a rank does on its own).
    public static let alone = Cluster(rank: 0, size: 1)

    private init(rank: Int, size: Int) {
        self.rank = rank
        self.size = size
        failure = nil
    }

    private init() {
        var r: Int32 = 0
        var s: Int32 = 1
        var err = [CChar](repeating: 0, count: 512)
        let status = afm_init(&r, &s, &err, err.count)
        rank = Int(r)
        size = Int(s)
        failure = status < 0 ? String(cString: err) : nil
        if status == 0 { atexit { afm_finalize() } }
    }

    /// Throws when the process was started by an MPI launcher but could not join the job.
    public func check() throws {
        if let failure { throw ModelError(failure) }
    }

    /// Sums `count` floats at `buffer` over all ranks, in place (every rank gets the sum).
    public func sum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {
        guard isParallel else { return }
        guard afm_allreduce_sum_float(buffer, count) == 0 else { throw ModelError("MPI_Allreduce failed") }
    }

    /// Rank `root`'s `value` on every rank.
    public func broadcast(_ value: Int, root: Int = 0) throws -> Int {
        guard isParallel else { return value }
        var v = Int64(value)
        guard afm_bcast(&v, 8, Int32(root)) == 0 else { throw ModelError("MPI_Bcast failed") }
        return Int(v)
    }

    /// Sends `data` to rank `to` (with its length first).
    public func send(_ data: Data, to: Int, tag: Int = 0) throws {
        var n = Int64(data.count)
        guard afm_send(&n, 8, Int32(to), Int32(tag)) == 0 else { throw ModelError("MPI_Send failed") }
        let ok = data.withUnsafeBytes { afm_send($0.baseAddress, data.count, Int32(to), Int32(tag)) == 0 }
        guard ok else { throw ModelError("MPI_Send failed") }
    }

    /// Receives what rank `from` sent with `send`.
    public func receive(from: Int, tag: Int = 0) throws -> Data {
        var n: Int64 = 0
        guard afm_recv(&n, 8, Int32(from), Int32(tag)) == 0 else { throw ModelError("MPI_Recv failed") }
        var data = Data(count: Int(n))
        let ok = data.withUnsafeMutableBytes { afm_recv($0.baseAddress, Int(n), Int32(from), Int32(tag)) == 0 }
        guard ok else { throw ModelError("MPI_Recv failed") }
        return data
    }

    public func barrier() { if isParallel { _ = afm_barrier() } }

    /// Ends the whole job (every rank) with `code`: what a rank must do on an error, or the
    /// others would wait for it forever.
    public func abort(_ code: Int32) -> Never {
        fflush(stdout)
        fflush(stderr)
        afm_abort(code)
        exit(code)
    }
}
