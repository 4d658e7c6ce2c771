import CKernels
import Foundation

/// AdamW (Loshchilov & Hutter): Adam moments with decoupled weight decay, skipped for
/// parameters whose `decay` is false (biases, LayerNorm).
public final class AdamW {
    public let parameters: [Parameter]
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var eps: Float = 1e-8
    public var weightDecay: Float
    public private(set) var step = 0
    private let m: [Tensor]
    private let v: [Tensor]

    public init(_ parameters: [Parameter], weightDecay: Float = 0.01) {
        self.parameters = parameters
        self.weightDecay = weightDecay
        m = parameters.map { Tensor(zeros: $0.value.shape) }
        v = parameters.map { Tensor(zeros: $0.value.shape) }
    }

    /// Sets every gradient to zero (a skipped step).
    public func zeroGradients() { for p in parameters { p.grad.zero() } }

    /// √(Σ g²) over all gradients.
    public func gradientNorm() -> Float {
        var s: Double = 0
        for p in parameters { s += Double(VectorMath.dot(p.grad.data, p.grad.data, p.grad.count)) }
        return Float(s.squareRoot())
    }

    /// Scales all gradients so their global norm is at most `maxNorm`; returns the norm before.
    @discardableResult
    public func clipGradients(maxNorm: Float) -> Float {
        Profile.measure(.optimizer) { clip(maxNorm: maxNorm) }
    }

    private func clip(maxNorm: Float) -> Float {
        let norm = gradientNorm()
        if norm > maxNorm, norm.isFinite {
            let k = maxNorm / (norm + 1e-6)
            for p in parameters { for i in 0..<p.grad.count { p.grad.data[i] *= k } }
        }
        return norm
    }

    /// One update with learning rate `lr`; gradients are then zeroed.
    public func update(lr: Float) {
        Profile.measure(.optimizer) { apply(lr: lr) }
    }

    private func apply(lr: Float) {
        step += 1
        let c1 = 1 - Float(pow(Double(beta1), Double(step)))
        let c2 = 1 - Float(pow(Double(beta2), Double(step)))
        for (k, p) in parameters.enumerated() {
            // m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²;  w ← w − lr·(m/c₁)/(√(v/c₂) + ε) − lr·λ·w
            let plr = lr * p.learningRateScale
            let decay = p.decay ? plr * weightDecay : 0
            afk_adamw(p.value.data, p.grad.data, m[k].data, v[k].data, p.value.count, plr, beta1, beta2, c1, c2, eps, decay)
            p.grad.zero()
        }
    }
}

/// Linear warm-up from 0 to the peak rate, then linear decay to 0 at the last step.
public struct LinearSchedule: Sendable {
    public let peak: Float
    public let warmupSteps: Int
    public let totalSteps: Int

    public init(peak: Float, warmupSteps: Int, totalSteps: Int) {
        self.peak = peak; self.warmupSteps = warmupSteps; self.totalSteps = max(totalSteps, 1)
    }

    /// Learning rate for 0-based step `t`.
    public func rate(at t: Int) -> Float {
        if t < warmupSteps { return peak * Float(t + 1) / Float(warmupSteps) }
        let remaining = totalSteps - t
        return peak * max(0, Float(remaining) / Float(max(1, totalSteps - warmupSteps)))
    }
}
