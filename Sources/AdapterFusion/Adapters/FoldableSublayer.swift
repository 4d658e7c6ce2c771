import Foundation

/// A member whose output at a site is h + up(f(down(u))) with plain weights (no scale, no gate):
/// a fusion may then fold its value matrix V into the member's up projection (V·U) and hand the
/// value's share of the gradient back below it (`FusionLayer+Folds.swift`). The fusion reaches
/// the member's value path through this protocol only.
public protocol FoldableSublayer: LayerHook {
    /// The bottleneck module at (layer, site) and its activation f [n, r] of the last forward
    /// pass in `cache`; nil when the member does not act there or cannot be folded.
    func foldable(layer: Int, site: AdapterSite, n: Int, cache: HookCache) -> (module: BottleneckAdapter, activation: UnsafePointer<Float>)?
    /// `backward` at the site, with ∂L/∂f [n, r] from the fusion (the value's share) entering
    /// below the up projection.
    func backward(
        layer: Int, site: AdapterSite, dout: UnsafePointer<Float>, grad: HookGradient, n: Int, cache: HookCache,
        dactivation: UnsafePointer<Float>?)
}
