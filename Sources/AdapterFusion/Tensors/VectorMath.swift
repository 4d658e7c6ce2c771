import CKernels

/// Swift's face of the vectorised kernels in `Sources/CKernels` (exp, erf, GELU, softmax,
/// LayerNorm, AdamW), which run at the widest SIMD width the CPU and OS support, plus the few
/// small reductions Swift code needs. Large element counts are split over `Parallel`'s threads
/// in blocks that depend on the count only.
public enum VectorMath {
    public typealias V = SIMD8<Float>

    @inline(__always) static func load(_ p: UnsafePointer<Float>) -> V {
        UnsafeRawPointer(p).loadUnaligned(as: V.self)
    }

    /// Elements per parallel block of the flat kernels (a multiple of 16).
    static let grain = 1 << 15

    /// out[i] = eˣ (relative error < 2e-7 on [-87, 88]; below -87 ≈ 0). In place is allowed.
    public static func exp(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ count: Int) {
        afk_exp(out, inp, count)
    }

    /// eˣ of one value (same kernel).
    public static func exp(_ x: Float) -> Float {
        var x = x
        var y: Float = 0
        afk_exp(&y, &x, 1)
        return y
    }

    /// erf(x) of one value (Abramowitz & Stegun 7.1.26, absolute error < 2e-7).
    public static func erf(_ x: Float) -> Float {
        var x = x
        var y: Float = 0
        afk_erf(&y, &x, 1)
        return y
    }

    /// Σ x[i].
    @inline(__always) public static func sum(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = V(repeating: 0)
        var i = 0
        while i + 8 <= n { acc += load(x + i); i += 8 }
        var s = acc.sum()
        while i < n { s += x[i]; i += 1 }
        return s
    }

    /// Σ x[i]·y[i].
    @inline(__always) public static func dot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = V(repeating: 0)
        var i = 0
        while i + 8 <= n { acc += load(x + i) * load(y + i); i += 8 }
        var s = acc.sum()
        while i < n { s += x[i] * y[i]; i += 1 }
        return s
    }

    /// y[i] += x[i].
    public static func add(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int) {
        elements(n) { a, b in afk_add(y + a, x + a, b - a) }
    }

    /// Runs `body(a, b)` over elements a..<b covering 0..<count, in parallel blocks of whole
    /// 16-element groups when the count is large (for elementwise work any split is exact).
    @inline(__always)
    static func elements(_ count: Int, _ body: (Int, Int) -> Void) {
        rows((count + 15) / 16, cost: 16) { lo, hi in
            let a = lo * 16
            let b = min(hi * 16, count)
            if a < b { body(a, b) }
        }
    }

    /// Runs `body(lo, hi)` over rows 0..<n in parallel blocks when the work (`n · cost`) is large.
    @inline(__always)
    static func rows(_ n: Int, cost: Int, _ body: (Int, Int) -> Void) {
        if n * cost < 2 * grain { body(0, n); return }
        Parallel.forRanges(n, grain: max(1, grain / max(cost, 1))) { body($0.lowerBound, $0.upperBound) }
    }
}
