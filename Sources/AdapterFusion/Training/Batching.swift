/// Groups examples into batches.
public enum Batching {
    /// Length bucketing: shuffle, cut into pools of `poolBatches` batches, sort each pool by
    /// length, slice it into batches, then shuffle the batch order. Batches hold sequences of
    /// similar length, and every epoch sees a different grouping.
    public static func bucketed(lengths: [Int], batchSize: Int, rng: inout SeededRNG, poolBatches: Int = 50) -> [[Int]] {
        var order = Array(lengths.indices)
        order.shuffle(using: &rng)
        var batches: [[Int]] = []
        let pool = batchSize * poolBatches
        for start in stride(from: 0, to: order.count, by: pool) {
            let chunk = order[start..<min(start + pool, order.count)].sorted { lengths[$0] < lengths[$1] }
            for b in stride(from: 0, to: chunk.count, by: batchSize) {
                batches.append(Array(chunk[(chunk.startIndex + b)..<min(chunk.startIndex + b + batchSize, chunk.endIndex)]))
            }
        }
        batches.shuffle(using: &rng)
        return batches
    }

    /// Deterministic batches for evaluation: by length, then index.
    public static func sorted(lengths: [Int], batchSize: Int) -> [[Int]] {
        let order = lengths.indices.sorted { (lengths[$0], $0) < (lengths[$1], $1) }
        return stride(from: 0, to: order.count, by: batchSize).map { Array(order[$0..<min($0 + batchSize, order.count)]) }
    }

    /// Share of a padded batch that would be padding: 1 − tokens / (batches · longest).
    /// Packed batches (`TokenBatch`) compute none of it; this tells what bucketing saves a padded
    /// implementation, and how uneven the lengths in a batch are.
    public static func paddingRatio(_ batches: [[Int]], lengths: [Int]) -> Double {
        var real = 0
        var padded = 0
        for b in batches {
            let ls = b.map { lengths[$0] }
            real += ls.reduce(0, +)
            padded += (ls.max() ?? 0) * ls.count
        }
        return padded == 0 ? 0 : 1 - Double(real) / Double(padded)
    }
}
