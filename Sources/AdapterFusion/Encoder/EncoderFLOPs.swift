import Foundation

extension Perf {
    /// Matrix-product FLOPs of one encoder forward pass:
    /// per layer and sequence of length L: QKV 6LH², output projection 2LH², FFN 4LHF,
    /// attention scores and context 4L²H. Elementwise work is not counted.
    public static func encoderFLOPs(_ c: BertConfig, batch: TokenBatch) -> Double {
        let H = Double(c.hiddenSize)
        let F = Double(c.intermediateSize)
        var perLayer = 0.0
        for s in 0..<batch.count {
            let L = Double(batch.length(s))
            perLayer += L * (8 * H * H + 4 * H * F) + 4 * L * L * H
        }
        return perLayer * Double(c.numHiddenLayers)
    }
}
