/// Sentence-level views of packed hidden states.
public enum Pooling {
    /// Mean over each sequence's tokens, then L2-normalised (sentence-transformers' recipe).
    public static func meanNormalized(_ hidden: Tensor, batch: TokenBatch) -> [[Float]] {
        let H = hidden.cols
        return (0..<batch.count).map { s in
            var v = [Float](repeating: 0, count: H)
            for t in batch.offsets[s]..<batch.offsets[s + 1] {
                for j in 0..<H { v[j] += hidden.data[t * H + j] }
            }
            let L = Float(max(batch.length(s), 1))
            for j in 0..<H { v[j] /= L }
            let norm = max(v.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-12)
            return v.map { $0 / norm }
        }
    }

    /// out[B, H] = the [CLS] rows of hidden [tokens, H].
    public static func gatherCLS(_ hidden: Tensor, batch: TokenBatch, into out: Tensor) {
        let H = hidden.cols
        for s in 0..<batch.count { (out.data + s * H).update(from: hidden.data + batch.offsets[s] * H, count: H) }
    }

    /// Backward of `gatherCLS`: dHidden[cls row of s] += dOut[s]; other rows untouched.
    public static func scatterCLS(_ dOut: Tensor, batch: TokenBatch, into dHidden: Tensor) {
        let H = dHidden.cols
        for s in 0..<batch.count { VectorMath.add(dHidden.data + batch.offsets[s] * H, dOut.data + s * H, H) }
    }
}
