/// How a fusion weighs its members: the mean softmax weight per fuse node, per site where it
/// acts, per member, over every token of a data set.
public struct AttentionSummary: Sendable {
    /// One fuse node of the composition.
    public struct Node: Sendable {
        /// Storage prefix: "" for the root fuse, "member_2/" … for nested ones.
        public let prefix: String
        /// The member expressions, in order (column labels).
        public let members: [String]
        /// Mean weight per member, by site, in encoder order.
        public let means: [(site: HookSite, weights: [Double])]
    }

    public let nodes: [Node]
    /// Tokens averaged over.
    public let tokens: Int

    /// Runs the composition over `encodings` (deterministic length-sorted batches of 64),
    /// recording the fusion weights.
    init(composition comp: Composition, encoder: BertEncoder, encodings: [Encoding]) throws {
        var sums: [String: [HookSite: [Double]]] = [:]
        var tokens = 0
        for f in comp.fuseNodes { f.node.recordAttention = true }
        defer { for f in comp.fuseNodes { f.node.recordAttention = false } }
        let ws = EncoderWorkspace(config: encoder.config)
        let sites = (0..<encoder.config.numHiddenLayers).flatMap { l in AdapterSite.allCases.map { HookSite(l, $0) } }
        for idx in Batching.sorted(lengths: encodings.map(\.ids.count), batchSize: 64) {
            let batch = TokenBatch(encodings: idx.map { encodings[$0] })
            _ = try encoder.forward(batch, workspace: ws, hook: comp.root)
            tokens += batch.tokenCount
            for f in comp.fuseNodes {
                for site in sites {
                    guard let w = f.node.attentionWeights(layer: site.layer, site: site.site) else { continue }
                    let n = w.cols
                    var acc = sums[f.prefix, default: [:]][site] ?? [Double](repeating: 0, count: n)
                    for t in 0..<w.rows { for i in 0..<n { acc[i] += Double(w[t * n + i]) } }
                    sums[f.prefix, default: [:]][site] = acc
                }
            }
        }
        nodes = comp.fuseNodes.map { f in
            let bySite = sums[f.prefix, default: [:]]
            return Node(
                prefix: f.prefix, members: f.members.map(\.description),
                means: bySite.keys.sorted().map { ($0, bySite[$0]!.map { $0 / Double(max(tokens, 1)) }) })
        }
        self.tokens = tokens
    }
}
