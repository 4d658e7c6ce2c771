/// What a head predicts.
public enum HeadKind: String, Codable, Sendable {
    /// n labels, softmax cross-entropy.
    case classification
    /// One real value, mean squared error.
    case regression
}

/// Configuration of a prediction head; stored as JSON in the head's HDF5 attributes.
public struct HeadConfig: Codable, Sendable, Equatable {
    public var kind: HeadKind
    /// Number of outputs: the label count, or 1 for regression.
    public var outputs: Int
    /// A dense + tanh layer before the output layer (as BERT's and AdapterHub's default heads).
    public var preDense: Bool = true
    /// Dropout before each dense layer during training.
    public var dropout: Float = 0.1

    public init(kind: HeadKind, outputs: Int, preDense: Bool = true, dropout: Float = 0.1) {
        self.kind = kind; self.outputs = outputs; self.preDense = preDense; self.dropout = dropout
    }

    enum CodingKeys: String, CodingKey {
        case kind, outputs
        case preDense = "pre_dense"
        case dropout
    }
}

/// Targets of one batch.
public enum Targets: Sendable {
    case labels([Int])
    case values([Float])

    public var count: Int {
        switch self {
        case .labels(let l): return l.count;
        case .values(let v): return v.count
        }
    }
}

/// Prediction head over the [CLS] state: [dropout → dense → tanh] → dropout → output layer.
/// Parameter names are dataset paths under `/heads/<name>/` in a store.
public final class PredictionHead {
    public let config: HeadConfig
    public let hidden: Int
    public let dense: (weight: Parameter, bias: Parameter)?  // [H, H], [H]
    public let output: (weight: Parameter, bias: Parameter)  // [C, H], [C]
    /// What a pass keeps in its `HookCache` between `forward`, `loss` and `backward`, by slot.
    enum Slot: Int, CacheSlot {
        case cls, x1, z, x2  // [B, H]: [CLS] states, dropout(cls), tanh(dense(x1)), dropout(z or cls)
        case logits, probs  // [B, C]
        case state  // [3]: batch size, dropout probability, 1 if given the [CLS] states alone
        case mask1, mask2  // dropout masks [B, H]
    }

    /// The cache of callers that pass none (one pass at a time through this head).
    private let ownCache = HookCache()

    func buffer(_ cache: HookCache, _ slot: Slot, _ count: Int) -> Tensor { cache.tensor(self, slot, count: count) }

    public init(config: HeadConfig, hidden: Int, seed: UInt64) {
        self.config = config
        self.hidden = hidden
        var rng = SeededRNG(seed: seed)
        // BERT's initialiser: N(0, 0.02²) weights, zero biases.
        dense =
            config.preDense
            ? (
                Parameter("dense/weight", Tensor(randomNormal: [hidden, hidden], std: 0.02, rng: &rng), decay: true),
                Parameter("dense/bias", Tensor(zeros: [hidden]), decay: false)
            ) : nil
        output = (
            Parameter("output/weight", Tensor(randomNormal: [config.outputs, hidden], std: 0.02, rng: &rng), decay: true),
            Parameter("output/bias", Tensor(zeros: [config.outputs]), decay: false)
        )
    }

    public var parameters: [Parameter] {
        (dense.map { [$0.weight, $0.bias] } ?? []) + [output.weight, output.bias]
    }

    /// Returns the outputs [B, C] for the batch's [CLS] states (logits, or the regression value),
    /// given the last hidden states [tokens, H] or those states alone [B, H] (what
    /// `BertEncoder.forward(…, rows: .firstTokens)` returns). With `dropout` the pass is a
    /// training pass; what `loss` and `backward` need is kept in `cache` (the pass's workspace
    /// cache; by default the head's own).
    @discardableResult
    public func forward(_ hiddenStates: Tensor, batch: TokenBatch, dropout: DropoutState? = nil, cache: HookCache? = nil) -> Tensor {
        let cache = cache ?? ownCache
        let B = batch.count
        let H = hidden
        let C = config.outputs
        let cls = buffer(cache, .cls, B * H)
        let x1 = buffer(cache, .x1, B * H)
        let z = buffer(cache, .z, B * H)
        let x2 = buffer(cache, .x2, B * H)
        let logits = buffer(cache, .logits, B * C)
        let state = buffer(cache, .state, 3)
        state[0] = Float(B)
        state[1] = dropout == nil ? 0 : config.dropout
        let firstTokens = hiddenStates.rows == B
        state[2] = firstTokens ? 1 : 0
        if firstTokens {
            cls.data.update(from: hiddenStates.data, count: B * H)
        } else {
            Pooling.gatherCLS(hiddenStates, batch: batch, into: cls)
        }
        var input = cls
        if let dense {
            dropoutForward(input, into: x1, mask: cache.mask(self, Slot.mask1, count: B * H), B * H, dropout)
            Linear.forward(y: z.data, x: x1.data, w: dense.weight.value.data, b: dense.bias.value.data, n: B, inDim: H, outDim: H)
            Tanh.forward(out: z.data, inp: z.data, count: B * H)
            input = z
        }
        dropoutForward(input, into: x2, mask: cache.mask(self, Slot.mask2, count: B * H), B * H, dropout)
        Linear.forward(y: logits.data, x: x2.data, w: output.weight.value.data, b: output.bias.value.data, n: B, inDim: H, outDim: C)
        let out = Tensor(zeros: [B, C])
        out.data.update(from: logits.data, count: B * C)
        return out
    }

    private func dropoutForward(_ x: Tensor, into y: Tensor, mask: Mask, _ count: Int, _ dropout: DropoutState?) {
        if let dropout, config.dropout > 0 {
            dropout.apply(out: y.data, mask: mask.data, inp: x.data, rowCount: count / hidden, width: hidden, p: config.dropout, perSequence: true)
        } else {
            y.data.update(from: x.data, count: count)
        }
    }

    /// Loss of the last forward pass with `cache`: mean cross-entropy or mean squared error
    /// (the sum divided by `over` when given: a data-parallel shard's part of the global mean).
    public func loss(_ targets: Targets, cache: HookCache? = nil, over: Int? = nil) -> Float {
        let cache = cache ?? ownCache
        let n = Int(buffer(cache, .state, 3)[0]) * config.outputs
        let logits = buffer(cache, .logits, n)
        let probs = buffer(cache, .probs, n)
        switch targets {
        case .labels(let y): return CrossEntropy.forward(probs: probs.data, logits: logits.data, labels: y, classes: config.outputs, over: over)
        case .values(let t): return MeanSquaredError.forward(pred: logits.data, targets: t, over: over)
        }
    }

    /// Backward of `loss` and `forward`: accumulates parameter gradients and returns
    /// ∂L/∂(hidden states) shaped as the forward's input: [tokens, H] (non-zero only at [CLS]
    /// rows) or [B, H].
    public func backward(_ targets: Targets, batch: TokenBatch, cache: HookCache? = nil, over: Int? = nil) -> Tensor {
        let cache = cache ?? ownCache
        let state = buffer(cache, .state, 3)
        let B = Int(state[0])
        let lastDropout = state[1]
        let H = hidden
        let C = config.outputs
        let x1 = buffer(cache, .x1, B * H)
        let z = buffer(cache, .z, B * H)
        let x2 = buffer(cache, .x2, B * H)
        let logits = buffer(cache, .logits, B * C)
        let probs = buffer(cache, .probs, B * C)
        let mask1 = cache.mask(self, Slot.mask1, count: B * H)
        let mask2 = cache.mask(self, Slot.mask2, count: B * H)
        let dLogits = Tensor(zeros: [B, C])
        let dX2 = Tensor(zeros: [B, H])
        switch targets {
        case .labels(let y): CrossEntropy.backward(dlogits: dLogits.data, probs: probs.data, labels: y, classes: C, over: over)
        case .values(let t): MeanSquaredError.backward(dpred: dLogits.data, pred: logits.data, targets: t, over: over)
        }
        Linear.backward(
            dx: dX2.data, dw: output.weight.grad.data, db: output.bias.grad.data, dy: dLogits.data,
            x: x2.data, w: output.weight.value.data, n: B, inDim: H, outDim: C)
        if lastDropout > 0 { Dropout.apply(out: dX2.data, inp: dX2.data, mask: mask2.data, count: B * H, p: lastDropout) }
        var dCLS = dX2
        if let dense {
            let dZ = Tensor(zeros: [B, H])
            let dX1 = Tensor(zeros: [B, H])
            Tanh.backward(dinp: dZ.data, dout: dX2.data, out: z.data, count: B * H)
            Linear.backward(
                dx: dX1.data, dw: dense.weight.grad.data, db: dense.bias.grad.data, dy: dZ.data,
                x: x1.data, w: dense.weight.value.data, n: B, inDim: H, outDim: H)
            if lastDropout > 0 { Dropout.apply(out: dX1.data, inp: dX1.data, mask: mask1.data, count: B * H, p: lastDropout) }
            dCLS = dX1
        }
        if state[2] == 1 { return dCLS }
        let dHidden = Tensor(zeros: [batch.tokenCount, H])
        Pooling.scatterCLS(dCLS, batch: batch, into: dHidden)
        return dHidden
    }
}

extension HeadConfig {
    /// The head a task needs: one output per label, or one value.
    public init(task spec: TaskSpec) {
        self.init(kind: spec.isRegression ? .regression : .classification, outputs: max(spec.labels.count, 1))
    }
}
