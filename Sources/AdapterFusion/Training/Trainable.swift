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
/// gradient-norm clipping, AdamW.
public final class TrainingStep {
    public let encoder: BertEncoder
    public let model: Trainable
    public let head: PredictionHead
    public let optimizer: AdamW
    public let workspace: EncoderWorkspace
    public let dropout: DropoutState
    public let maxGradNorm: Float

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
    }

    /// Runs one step on `batch` at learning rate `lr`; returns the loss before the update
    /// (the head's loss plus the regulariser). A non-finite loss updates nothing and throws.
    @discardableResult
    public func run(_ batch: TokenBatch, _ targets: Targets, lr: Float) throws -> Float {
        let hidden = try encoder.forward(batch, workspace: workspace, hook: model.hook, dropout: dropout)
        let cache = workspace.hookCache
        head.forward(hidden, batch: batch, dropout: dropout, cache: cache)
        var loss = head.loss(targets, cache: cache)
        encoder.backward(head.backward(targets, batch: batch, cache: cache), workspace: workspace, hook: model.hook, dropout: dropout)
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
}
