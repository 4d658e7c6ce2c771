/// Table lookup: out[i, :] = table[ids[i], :].
public enum Embedding {
    /// Writes (or, with `accumulate`, adds) the rows of `table` named by `ids` into `out`.
    public static func forward(
        out: UnsafeMutablePointer<Float>, table: UnsafePointer<Float>, ids: UnsafePointer<Int32>,
        n: Int, dim: Int, accumulate: Bool = false
    ) {
        for i in 0..<n {
            let src = table + Int(ids[i]) * dim
            let dst = out + i * dim
            if accumulate {
                for j in 0..<dim { dst[j] += src[j] }
            } else {
                dst.update(from: src, count: dim)
            }
        }
    }

    /// Scatter-adds the output gradient back to the table rows: dtable[ids[i], :] += dout[i, :].
    public static func backward(
        dtable: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, ids: UnsafePointer<Int32>,
        n: Int, dim: Int
    ) {
        for i in 0..<n {
            let dst = dtable + Int(ids[i]) * dim
            let src = dout + i * dim
            for j in 0..<dim { dst[j] += src[j] }
        }
    }
}
