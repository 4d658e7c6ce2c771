/// What the trainer trains on a frozen encoder: an adapter, or a composition whose fusion
/// layers learn over frozen adapters. The head is trained beside it.
public protocol Trainable: AnyObject {
    /// The hook the encoder runs with.
    var hook: LayerHook { get }
    /// Its trainable tensors (the head's are added by the trainer).
    var parameters: [Parameter] { get }
    /// Extra loss terms (fusion's value regulariser): adds their gradient, returns their value.
    func regularize() -> Float
    /// Called before every step with the share of training done, in [0, 1) (temperature annealing).
    func setProgress(_ fraction: Float)
    /// Called before every evaluation and after training (sets the inference temperature).
    func prepareForEvaluation()
}

extension Trainable {
    public func regularize() -> Float { 0 }
    public func setProgress(_ fraction: Float) {}
    public func prepareForEvaluation() {}
}

extension Adapter: Trainable {
    public var hook: LayerHook { self }
}

extension Composition: Trainable {
    public var hook: LayerHook { root }
    public func prepareForEvaluation() { finishTraining() }
}

/// One optimisation step, the same for the trainer and the benchmarks: forward with dropout,
/// the head's loss, backward through the frozen encoder, the model's regulariser, global
/// gradient-norm clipping, AdamW. Data-parallel: each rank runs its shard of the global batch,
/// and the gradients of the global mean loss are summed over the ranks before the update.
public final class TrainingStep {
    public let encoder: BertEncoder
    public let model: Trainable
    public let head: PredictionHead
    public let optimizer: AdamW
    public let workspace: EncoderWorkspace
    public let dropout: DropoutState
    public let maxGradNorm: Float
    /// Dropout seeds derive from (seed, step): a step's masks do not depend on earlier steps'
    /// batches, nor on whether a rank had any examples in them.
    let seed: UInt64
    private var steps: UInt64 = 0
    private var flat: [Float] = []

    public init(
        encoder: BertEncoder, model: Trainable, head: PredictionHead, weightDecay: Float = 0.01,
        hiddenDropout: Float, attentionDropout: Float, seed: UInt64, maxGradNorm: Float = 1
    ) {
        self.encoder = encoder
        self.model = model
        self.head = head
        optimizer = AdamW(model.parameters + head.parameters, weightDecay: weightDecay)
        workspace = EncoderWorkspace(config: encoder.config, training: true)
        dropout = DropoutState(hidden: hiddenDropout, attention: attentionDropout, seed: seed)
        self.maxGradNorm = maxGradNorm
        self.seed = seed
    }

    /// Runs one step on `batch` at learning rate `lr`; returns the loss before the update
    /// (the head's loss plus the regulariser). A non-finite loss updates nothing and throws.
    @discardableResult
    public func run(_ batch: TokenBatch, _ targets: Targets, lr: Float) throws -> Float {
        try run(shard: (batch, targets), of: batch.count, lr: lr, cluster: nil)
    }

    /// One step of a data-parallel job: this rank's `shard` (nil when it has no examples) of a
    /// global batch of `globalCount` examples. Every rank gets the same summed gradients and
    /// makes the same update; returns the global loss.
    @discardableResult
    public func run(shard: (batch: TokenBatch, targets: Targets)?, of globalCount: Int, lr: Float, cluster: Cluster?) throws -> Float {
        dropout.rng = SeededRNG(seed: seed &+ steps &* 0xD1B5_4A32_D192_ED03)
        steps += 1
        var loss: Float = 0
        if let (batch, targets) = shard, batch.count > 0 {
            // The head reads [CLS] alone: the top layer computes only what that needs.
            let hidden = try encoder.forward(batch, workspace: workspace, hook: model.hook, dropout: dropout, rows: .firstTokens)
            let cache = workspace.hookCache
            head.forward(hidden, batch: batch, dropout: dropout, cache: cache)
            // The shard's part of the global mean: each example's gradient is what one process computes.
            loss = head.loss(targets, cache: cache, over: globalCount)
            encoder.backward(
                head.backward(targets, batch: batch, cache: cache, over: globalCount), workspace: workspace, hook: model.hook, dropout: dropout)
        }
        if let cluster, cluster.isParallel { try sumOverRanks(cluster, &loss) }
        loss += model.regularize()
        guard loss.isFinite else {
            optimizer.zeroGradients()
            throw TrainingError("loss became \(loss)")
        }
        // A finite loss can still carry NaN gradients (a NaN weight whose output is clamped):
        // updating with them would poison every parameter.
        let norm = optimizer.clipGradients(maxNorm: maxGradNorm)
        guard norm.isFinite else {
            optimizer.zeroGradients()
            throw TrainingError("gradient norm became \(norm)")
        }
        optimizer.update(lr: lr)
        return loss
    }

    /// Sums every gradient and the loss over the ranks: one allreduce of them all, packed.
    private func sumOverRanks(_ cluster: Cluster, _ loss: inout Float) throws {
        let total = optimizer.parameters.reduce(0) { $0 + $1.grad.count }
        if flat.count != total + 1 { flat = [Float](repeating: 0, count: total + 1) }
        try flat.withUnsafeMutableBufferPointer { buf in
            var o = 0
            for p in optimizer.parameters { (buf.baseAddress! + o).update(from: p.grad.data, count: p.grad.count); o += p.grad.count }
            buf[total] = loss
            try cluster.sum(buf.baseAddress!, count: total + 1)
            o = 0
            for p in optimizer.parameters { p.grad.data.update(from: buf.baseAddress! + o, count: p.grad.count); o += p.grad.count }
            loss = buf[total]
        }
    }
}
