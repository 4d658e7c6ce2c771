import Foundation

/// Progress of a training run, for a live display.
public enum TrainingEvent: Sendable {
    case started(trainExamples: Int, devExamples: Int, stepsPerEpoch: Int, paddingRatio: Double)
    case step(epoch: Int, step: Int, of: Int, loss: Float, tokensPerSecond: Double, secondsLeft: Double)
    case epochEnded(epoch: Int, meanLoss: Float, devMetric: Double, best: Bool, seconds: Double)
    case stoppedEarly(epoch: Int)
}

/// Outcome of `Trainer.train`.
public struct TrainingResult: Sendable {
    public var devMetrics: [Double]
    /// 1-based epoch whose parameters were kept.
    public var bestEpoch: Int
    public var bestDevMetric: Double { devMetrics[bestEpoch - 1] }
}

/// Trains a hook (an adapter, a fusion) and a head on a frozen encoder: AdamW with linear
/// warm-up and decay, gradient clipping, seeded dropout, length-bucketed batches, a dev
/// evaluation after every epoch, early stopping, and the best epoch's parameters restored.
///
/// In a data-parallel job (`cluster` of several ranks) every rank forms the same global batches
/// in the same order, computes its shard (every size-th example of each), and the summed
/// gradients make the same update everywhere; rank 0 alone evaluates, reports progress and
/// decides on early stopping. The result is the single-process one up to float summation order.
public final class Trainer {
    public let encoder: BertEncoder
    public let model: Trainable
    public let head: PredictionHead

    public init(encoder: BertEncoder, model: Trainable, head: PredictionHead) {
        self.encoder = encoder
        self.model = model
        self.head = head
    }

    /// Trainable parameters (the model's and the head's).
    public var parameters: [Parameter] { model.parameters + head.parameters }

    public func train(
        train: EncodedSplit, dev: EncodedSplit, spec: TaskSpec, config: TrainingConfig, cluster: Cluster = .shared,
        progress: (TrainingEvent) -> Void = { _ in }
    ) throws -> TrainingResult {
        let progress = cluster.isRoot ? progress : { _ in }
        var rng = SeededRNG(seed: config.seed)
        let lengths = train.lengths
        let probe = Batching.bucketed(lengths: lengths, batchSize: config.batchSize, rng: &rng)
        let stepsPerEpoch = probe.count
        let schedule = LinearSchedule(
            peak: config.learningRate, warmupSteps: Int(config.warmupFraction * Float(stepsPerEpoch * config.epochs)),
            totalSteps: stepsPerEpoch * config.epochs)
        let parameters = self.parameters
        let stepper = TrainingStep(
            encoder: encoder, model: model, head: head, weightDecay: config.weightDecay,
            hiddenDropout: config.hiddenDropout, attentionDropout: config.attentionDropout,
            seed: config.seed &+ 1, maxGradNorm: config.maxGradNorm)
        progress(
            .started(
                trainExamples: train.examples.count, devExamples: dev.examples.count, stepsPerEpoch: stepsPerEpoch,
                paddingRatio: Batching.paddingRatio(probe, lengths: lengths)))
        var devMetrics: [Double] = []
        var best = (epoch: 0, metric: -Double.infinity)
        var snapshot = parameters.map { Tensor(zeros: $0.value.shape) }
        var step = 0
        let totalTokens = Double(lengths.reduce(0, +)) * Double(config.epochs)
        var tokensDone = 0.0
        let t0 = Clock.now()
        for epoch in 1...config.epochs {
            let epochStart = Clock.now()
            let batches = epoch == 1 ? probe : Batching.bucketed(lengths: lengths, batchSize: config.batchSize, rng: &rng)
            var lossSum: Double = 0
            for (k, idx) in batches.enumerated() {
                model.setProgress(Float(step) / Float(stepsPerEpoch * config.epochs))
                let mine = cluster.isParallel ? Array(stride(from: cluster.rank, to: idx.count, by: cluster.size).map { idx[$0] }) : idx
                let shard = mine.isEmpty ? nil : (train.batch(mine), train.targets(mine, regression: spec.isRegression))
                let loss: Float
                do {
                    loss = try stepper.run(shard: shard, of: idx.count, lr: schedule.rate(at: step), cluster: cluster)
                } catch let e as TrainingError {
                    throw TrainingError("\(e.description) at epoch \(epoch), step \(k + 1); try a lower learning rate")
                }
                step += 1
                lossSum += Double(loss)
                tokensDone += Double(idx.reduce(0) { $0 + lengths[$1] })
                let elapsed = Clock.now() - t0
                progress(
                    .step(
                        epoch: epoch, step: k + 1, of: batches.count, loss: Float(lossSum / Double(k + 1)),
                        tokensPerSecond: tokensDone / elapsed, secondsLeft: elapsed / tokensDone * (totalTokens - tokensDone)))
            }
            model.prepareForEvaluation()
            // Rank 0 evaluates; the others only learn whether to stop.
            var stop = false
            if cluster.isRoot {
                let metric = try Evaluator(encoder: encoder, hook: model.hook, head: head).evaluate(dev, spec: spec, batchSize: config.batchSize)
                    .metric
                devMetrics.append(metric)
                // The first epoch always counts as the best so far (even with a NaN metric), so the
                // weights restored at the end are always ones that were trained.
                let improved = best.epoch == 0 || metric > best.metric
                if improved {
                    best = (epoch, metric)
                    for (s, p) in zip(snapshot, parameters) { s.copy(from: p.value) }
                }
                progress(
                    .epochEnded(
                        epoch: epoch, meanLoss: Float(lossSum / Double(batches.count)), devMetric: metric, best: improved,
                        seconds: Clock.now() - epochStart))
                stop = epoch - best.epoch >= config.patience && epoch < config.epochs
            }
            if try cluster.broadcast(stop ? 1 : 0) == 1 {
                progress(.stoppedEarly(epoch: epoch))
                break
            }
        }
        guard cluster.isRoot else { return TrainingResult(devMetrics: [], bestEpoch: 0) }
        for (s, p) in zip(snapshot, parameters) { p.value.copy(from: s) }
        snapshot = []
        model.prepareForEvaluation()
        return TrainingResult(devMetrics: devMetrics, bestEpoch: best.epoch)
    }
}

/// A training run that cannot go on.
public struct TrainingError: Error, CustomStringConvertible {
    public let description: String
    public init(_ message: String) { description = message }
}
