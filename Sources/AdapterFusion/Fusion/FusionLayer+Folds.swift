import Foundation

/// The value path's gradient and the folds `FusionLayer` applies when they save work (the forward
/// and backward in `FusionLayer.swift` call them): the value folded into bottleneck members' up
/// projections (beside the plain value backward), and Q folded into K on passes of more than H
/// tokens.
extension FusionLayer {
    /// out = residual + Σ_i w_i·((V·U_i)·f_i + V·b_i) + b_v: `forward`'s output with the value
    /// folded into each member's up projection (members that do not act add nothing), as one
    /// product: [w_1·f_1 | w_2·f_2 | …] [n, Σr] times [V·U_1 | V·U_2 | …]ᵀ [Σr, H].
    func foldedValueOutput(
        _ V: Tensor, bias: Tensor?, _ members: [(module: BottleneckAdapter, act: UnsafePointer<Float>)?], w: Tensor,
        residual: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, n: Int, cache: HookCache
    ) {
        let H = hidden
        let N = self.members
        let R = members.reduce(0) { $0 + ($1?.module.bottleneck ?? 0) }
        let vu = buffer(cache, .valueUp, H * R)  // [H, Σr]
        let vb = buffer(cache, .valueBias, N * H)  // [N, H]: V·b_i
        let scaled = buffer(cache, .memberValue, n * R)  // [n, Σr]: w_i·f_i
        vb.data.update(repeating: 0, count: N * H)
        var offset = 0
        for (i, member) in members.enumerated() {
            guard let (m, act) = member else { continue }
            let r = m.bottleneck
            // V·U_i into columns offset ..< offset + r (U_i stored [H, r]);  V·b_i
            BLAS.gemm(m: H, n: r, k: H, a: V.data, lda: H, b: m.upWeight.value.data, ldb: r, c: vu.data + offset, ldc: R)
            BLAS.gemm(transB: true, m: 1, n: H, k: H, a: m.upBias.value.data, lda: H, b: V.data, ldb: H, c: vb.data + i * H, ldc: H)
            for t in 0..<n {
                let wi = w[t * N + i]
                let src = act + t * r
                let dst = scaled.data + t * R + offset
                for k in 0..<r { dst[k] = wi * src[k] }
            }
            offset += r
        }
        // out = residual + b_v + Σ_i w_i·V·b_i, then += scaled·vuᵀ
        out.update(from: residual, count: n * H)
        for t in 0..<n {
            let o = out + t * H
            if let bias { VectorMath.add(o, bias.data, H) }
            for i in 0..<N where members[i] != nil {
                let wi = w[t * N + i]
                let b = vb.data + i * H
                for j in 0..<H { o[j] += wi * b[j] }
            }
        }
        BLAS.gemm(transB: true, m: n, n: H, k: R, a: scaled.data, lda: R, b: vu.data, ldb: R, beta: 1, c: out, ldc: H)
    }

    /// c = Σ_i w_i a_i:  dw[t, i] = dc[t]·a_i[t];  da_i[t] += w[t, i]·dc[t].
    func valueBackward(dc: Tensor, deltas: UnsafePointer<Float>, ddeltas: UnsafeMutablePointer<Float>, w: Tensor, dw: Tensor, n: Int) {
        let H = hidden
        let N = members
        for t in 0..<n {
            for i in 0..<N {
                let a = deltas + (i * n + t) * H
                let da = ddeltas + (i * n + t) * H
                let wi = w[t * N + i]
                dw[t * N + i] = VectorMath.dot(dc.data + t * H, a, H)
                for j in 0..<H { da[j] += wi * dc[t * H + j] }
            }
        }
    }

    /// Backward of `foldedValueOutput` (c = [w_i·f_i] [n, Σr], P = [V·U_i] [H, Σr]):
    /// g = dout·P [n, Σr];  dw[t, i] = g_i[t]·f_i[t] + dout[t]·(V·b_i);  ∂L/∂f_i = w_i·g_i;
    /// dV += Σ_i (doutᵀ·c)_i·U_iᵀ + (Σ_t w_i[t]·dout[t]) ⊗ b_i;  db_v += Σ_t dout[t].
    func foldedValueBackward(
        dout: UnsafePointer<Float>, _ bottlenecks: [(module: BottleneckAdapter, act: UnsafePointer<Float>)?],
        dactivations: [UnsafeMutablePointer<Float>?], dw: Tensor, n: Int, cache: HookCache
    ) {
        let H = hidden
        let N = members
        let value = value!
        let R = bottlenecks.reduce(0) { $0 + ($1?.module.bottleneck ?? 0) }
        let vu = buffer(cache, .valueUp, H * R)
        let vb = buffer(cache, .valueBias, N * H)
        let scaled = buffer(cache, .memberValue, n * R)
        let w = buffer(cache, .w, n * N)
        let g = buffer(cache, .dmemberValue, n * R)
        let dvu = buffer(cache, .dvalueUp, H * R)
        let e = buffer(cache, .dc, N * H)  // Σ_t w_i[t]·dout[t] per member
        BLAS.gemm(m: n, n: R, k: H, a: dout, lda: H, b: vu.data, ldb: R, c: g.data, ldc: R)
        BLAS.gemm(transA: true, m: H, n: R, k: n, a: dout, lda: H, b: scaled.data, ldb: R, c: dvu.data, ldc: R)
        if let b = value.bias { for t in 0..<n { VectorMath.add(b.grad.data, dout + t * H, H) } }
        e.data.update(repeating: 0, count: N * H)
        var offset = 0
        for (i, member) in bottlenecks.enumerated() {
            guard let (m, act) = member else {
                for t in 0..<n { dw[t * N + i] = 0 }
                continue
            }
            let r = m.bottleneck
            let da = dactivations[i]!
            for t in 0..<n {
                let gi = g.data + t * R + offset
                let wi = w[t * N + i]
                dw[t * N + i] = VectorMath.dot(gi, act + t * r, r) + VectorMath.dot(dout + t * H, vb.data + i * H, H)
                for k in 0..<r { da[t * r + k] = wi * gi[k] }
                for j in 0..<H { e[i * H + j] += wi * dout[t * H + j] }
            }
            // dV += dvu_i·U_iᵀ (U_i stored [H, r]) + e_i ⊗ b_i
            BLAS.gemm(
                transB: true, m: H, n: H, k: r, a: dvu.data + offset, lda: R, b: m.upWeight.value.data, ldb: r, beta: 1,
                c: value.weight.grad.data, ldc: H)
            BLAS.gemm(m: H, n: H, k: 1, a: e.data + i * H, lda: 1, b: m.upBias.value.data, ldb: H, beta: 1, c: value.weight.grad.data, ldc: H)
            offset += r
        }
    }

    /// Whether a pass over n tokens folds Q into K: when that saves work (n > H).
    static func folds(n: Int, hidden H: Int) -> Bool { n > H }

    /// Backward of the folded scores qk = u·M + m, M = QᵀK, m = b_q·K (Q stored [out, in]):
    /// dM = uᵀ·dqk, dm = Σ_t dqk[t], du += dqk·Mᵀ; then dQ += K·dMᵀ, dK += Q·dM + b_qᵀ·dm,
    /// db_q += K·dm.
    func foldedQueryBackward(dqk: Tensor, x: Tensor, dquery: UnsafeMutablePointer<Float>, n: Int, cache: HookCache) {
        let H = hidden
        let m = buffer(cache, .folded, H * H)
        let dm = buffer(cache, .dq, H * H)  // ∂L/∂M (the dq scratch is free here)
        let dmb = buffer(cache, .dw, H)  // ∂L/∂m
        BLAS.gemm(transB: true, m: n, n: H, k: H, a: dqk.data, lda: H, b: m.data, ldb: H, beta: 1, c: dquery, ldc: H)
        BLAS.gemm(transA: true, m: H, n: H, k: n, a: x.data, lda: H, b: dqk.data, ldb: H, c: dm.data, ldc: H)
        dmb.data.update(repeating: 0, count: H)
        for t in 0..<n { VectorMath.add(dmb.data, dqk.data + t * H, H) }
        let Q = query.weight.value.data
        let K = key.value.data
        BLAS.gemm(transB: true, m: H, n: H, k: H, a: K, lda: H, b: dm.data, ldb: H, beta: 1, c: query.weight.grad.data, ldc: H)
        BLAS.gemm(m: H, n: H, k: H, a: Q, lda: H, b: dm.data, ldb: H, beta: 1, c: key.grad.data, ldc: H)
        BLAS.gemm(m: H, n: H, k: 1, a: query.bias.value.data, lda: 1, b: dmb.data, ldb: H, beta: 1, c: key.grad.data, ldc: H)
        BLAS.gemm(m: H, n: 1, k: H, a: K, lda: H, b: dmb.data, ldb: 1, beta: 1, c: query.bias.grad.data, ldc: 1)
    }
}
