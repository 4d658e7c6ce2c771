import Foundation

/// What one transformer layer's forward pass must keep for its backward pass: the inputs of
/// the LayerNorms, softmax and GELU, and the dropout masks. Products whose only use would be a
/// gradient for a frozen weight (the layer input, the context, the GELU output) are not kept.
/// A training workspace holds one per layer; inference shares one among all layers.
public final class LayerActivations {
    public let qkv: Tensor  // [N, 3H] fused Q, K, V projections
    public var att: Tensor  // [Σ heads·L²] attention probabilities (training only)
    public var attMask: Mask  // [Σ heads·L²] attention dropout mask (training only)
    public let attnSum: Tensor  // [N, H] hook(attnProj) + x: first LayerNorm's input
    public let attnMean: Tensor  // [N]
    public let attnRstd: Tensor  // [N]
    public let ffnPre: Tensor  // [N, F] intermediate before GELU
    public let ffnSum: Tensor  // [N, H] hook(ffnProj) + attnOut: second LayerNorm's input
    public let ffnMean: Tensor  // [N]
    public let ffnRstd: Tensor  // [N]
    public let attnProjMask: Mask  // [N, H] dropout masks (training only)
    public let ffnProjMask: Mask  // [N, H]
    /// The attention prefix of the pass (prefix tuning), for the backward pass.
    public var prefix: AttentionPrefix?

    init(capacity n: Int, attCapacity: Int, config c: BertConfig, training: Bool) {
        let H = c.hiddenSize
        let F = c.intermediateSize
        qkv = Tensor(zeros: [n, 3 * H]); att = Tensor(zeros: [attCapacity])
        attMask = Mask(count: training ? attCapacity : 0)
        attnSum = Tensor(zeros: [n, H]); attnMean = Tensor(zeros: [n]); attnRstd = Tensor(zeros: [n])
        ffnPre = Tensor(zeros: [n, F])
        ffnSum = Tensor(zeros: [n, H]); ffnMean = Tensor(zeros: [n]); ffnRstd = Tensor(zeros: [n])
        attnProjMask = Mask(count: training ? n * H : 0); ffnProjMask = Mask(count: training ? n * H : 0)
    }
}

/// Dropout probabilities and the seeded generator that draws the masks.
///
/// Every dropout site draws one seed per pass from `rng`; each sequence's mask then comes from
/// its own generator, seeded by that draw and the sequence's example id. So the units an example
/// drops depend only on the seed, the step and the example — not on the batch it shares or the
/// data-parallel rank that computes it.
public final class DropoutState {
    public var hidden: Float
    public var attention: Float
    public var rng: SeededRNG
    /// The batch of the current pass (set by the encoder): its token rows and example ids.
    public internal(set) var batch: TokenBatch?

    public init(hidden: Float, attention: Float, seed: UInt64) {
        self.hidden = hidden
        self.attention = attention
        self.rng = SeededRNG(seed: seed)
    }

    /// The generator of example `id` at a site whose per-pass seed is `seed`.
    static func generator(_ seed: UInt64, example id: Int) -> SeededRNG {
        SeededRNG(seed: seed ^ (UInt64(truncatingIfNeeded: id) &* 0x9E37_79B9_7F4A_7C15 &+ 0x632B_E59B_D9B4_E019))
    }

    /// out = dropout(inp) over rows of `width` values, where the batch's sequence s owns rows
    /// `rows[s] ..< rows[s + 1]` (`tokenRows`: its tokens; `sequenceRows`: one row each). Rows
    /// that match no such layout (a slice of the batch) count as one sequence of id 0.
    func apply(
        out: UnsafeMutablePointer<Float>, mask: UnsafeMutablePointer<UInt8>, inp: UnsafePointer<Float>,
        rowCount: Int, width: Int, p: Float, perSequence: Bool
    ) {
        let seed = rng.next()
        var rows = [0, rowCount]
        var ids = [0]
        if let batch {
            let layout = perSequence ? Array(0...batch.count) : batch.offsets
            if layout.last == rowCount { rows = layout; ids = batch.exampleIDs }
        }
        for s in 0..<(rows.count - 1) {
            var g = Self.generator(seed, example: ids[s])
            Dropout.sample(mask: mask + rows[s] * width, count: (rows[s + 1] - rows[s]) * width, p: p, rng: &g)
        }
        Dropout.apply(out: out, inp: inp, mask: mask, count: rowCount * width, p: p)
    }
}

/// Reusable buffers for encoder passes; grows when a larger batch arrives.
///
/// An inference workspace shares one buffer set among all layers. A training workspace keeps
/// every layer's `LayerActivations`, plus the gradient buffers of the backward pass.
public final class EncoderWorkspace {
    public let config: BertConfig
    public let training: Bool
    public private(set) var capacity = 0
    // Buffers whose contents no backward pass reads, shared by all layers.
    private(set) var embSum = Tensor(zeros: [0])  // [N, H] word + position + type
    private(set) var ctx = Tensor(zeros: [0])  // [N, H] attention context
    private(set) var attnProj = Tensor(zeros: [0])  // [N, H] attention output projection: hook input
    private(set) var attnOut = Tensor(zeros: [0])  // [N, H] first LayerNorm output: FFN input
    private(set) var ffnAct = Tensor(zeros: [0])  // [N, F] GELU output (training; inference overwrites ffnPre)
    private(set) var ffnProj = Tensor(zeros: [0])  // [N, H] FFN output projection: hook input
    private(set) var hidden = [Tensor(zeros: [0]), Tensor(zeros: [0])]  // [N, H] layer outputs, ping-pong
    /// Activations by run, then layer: run 0 is the encoder's own pass; a hook that computes a
    /// layer several times over (`LayerFuseNode`) keeps its other runs in 1, 2, …
    private var runs: [[LayerActivations]] = []
    private(set) var embMask = Mask(count: 0)
    private(set) var embMean = Tensor(zeros: [0]), embRstd = Tensor(zeros: [0])  // [N] embedding LayerNorm statistics (training)
    var scratch = Tensor(zeros: [0])  // attention: 3 · maxLength · (maxLength + prefix) per thread
    /// Prefix gradient buffers (prefix tuning): ∂L/∂keys [P, H], ∂L/∂values [sequences·P, H], per-block scratch.
    var dPrefixKeys = Tensor(zeros: [0]), dPrefixValues = Tensor(zeros: [0]), prefixScratch = Tensor(zeros: [0])
    private var attCount = 0
    /// Threads the attention scratch has room for (in this pass).
    private(set) var scratchSlots = 1
    // Backward buffers (training only).
    var dX = Tensor(zeros: [0]), dA = Tensor(zeros: [0]), dB = Tensor(zeros: [0]), dProj = Tensor(zeros: [0])
    var dCtx = Tensor(zeros: [0]), dQKV = Tensor(zeros: [0]), dF1 = Tensor(zeros: [0])
    var dIn = Tensor(zeros: [0])  // [N, H] ∂L/∂(layer input) of a layer a hook computes
    /// What the hooks (adapters, fusion) keep between this workspace's forward and backward passes.
    public let hookCache = HookCache()
    /// The batch of the last forward pass (backward runs on it).
    public private(set) var batch: TokenBatch?
    /// The rows the last forward pass returned, and whether its top layer ran on the first
    /// tokens alone (`BertEncoder.OutputRows`).
    var outputRows: BertEncoder.OutputRows = .all
    var firstTokenLayer = false

    public init(config: BertConfig, training: Bool = false) {
        self.config = config
        self.training = training
    }

    /// Makes sure the buffers fit `batch` with `prefix` attention prefix vectors; allocates only
    /// when it is larger than any before.
    public func reserve(for batch: TokenBatch, prefix: Int = 0) {
        let n = batch.tokenCount
        let H = config.hiddenSize
        let F = config.intermediateSize
        attCount = SelfAttention.probabilityCount(batch, heads: config.numAttentionHeads, prefix: prefix)
        if n > capacity {
            capacity = n
            embSum = Tensor(zeros: [n, H]); ctx = Tensor(zeros: [n, H]); attnProj = Tensor(zeros: [n, H])
            attnOut = Tensor(zeros: [n, H]); ffnAct = Tensor(zeros: [training ? n : 0, F]); ffnProj = Tensor(zeros: [n, H])
            hidden = [Tensor(zeros: [n, H]), Tensor(zeros: [n, H])]
            embMask = Mask(count: training ? n * H : 0)
            embMean = Tensor(zeros: [training ? n : 0]); embRstd = Tensor(zeros: [training ? n : 0])
            runs = (0..<max(runs.count, 1)).map { _ in newRun() }
            if training {
                dX = Tensor(zeros: [n, H]); dA = Tensor(zeros: [n, H]); dB = Tensor(zeros: [n, H])
                dProj = Tensor(zeros: [n, H]); dCtx = Tensor(zeros: [n, H]); dQKV = Tensor(zeros: [n, 3 * H])
                dF1 = Tensor(zeros: [n, F]); dIn = Tensor(zeros: [n, H])
            }
        }
        for run in runs { for l in run { fit(l) } }
        let L = batch.maxLength
        Tensor.ensure(&scratch, 3 * L * (L + prefix) * Parallel.threads)
        scratchSlots = scratch.count / max(3 * L * (L + prefix), 1)
        self.batch = batch
    }

    private func newRun() -> [LayerActivations] {
        (0..<(training ? config.numHiddenLayers : 1)).map { _ in
            LayerActivations(capacity: capacity, attCapacity: training ? attCount : 0, config: config, training: training)
        }
    }

    private func fit(_ l: LayerActivations) {
        if training, l.att.count < attCount {
            l.att = Tensor(zeros: [attCount])
            if training { l.attMask = Mask(count: attCount) }
        }
    }

    /// Buffers of layer `l` in run `run` (0: the encoder's own pass). An inference workspace
    /// shares one set among the layers of a run.
    public func activations(_ l: Int, run: Int = 0) -> LayerActivations {
        while runs.count <= run { runs.append(newRun()) }
        let a = runs[run][training ? l : 0]
        fit(a)
        return a
    }
}
