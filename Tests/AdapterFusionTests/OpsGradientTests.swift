import AdapterFusion
import Foundation
import Testing

/// Each op's backward against central finite differences of its forward (see `checkGradient`).
/// The loss is L = Σ y ⊙ r with a fixed random r, so ∂L/∂y = r.
@Suite struct OpsGradientTests {
    @Test func linear() {
        let (n, i, o) = (5, 7, 4)
        let x = Support.random([n, i], seed: 1)
        let w = Support.random([o, i], seed: 2)
        let b = Support.random([o], seed: 3)
        let r = Support.random([n, o], seed: 4)
        let y = Tensor(zeros: [n, o])
        func loss() -> Double {
            Linear.forward(y: y.data, x: x.data, w: w.data, b: b.data, n: n, inDim: i, outDim: o)
            return weightedSum(y, r)
        }
        let dx = Tensor(zeros: x.shape)
        let dw = Tensor(zeros: w.shape)
        let db = Tensor(zeros: b.shape)
        Linear.backward(dx: dx.data, dw: dw.data, db: db.data, dy: r.data, x: x.data, w: w.data, n: n, inDim: i, outDim: o)
        checkGradient(x, analytic: dx, loss)
        checkGradient(w, analytic: dw, loss)
        checkGradient(b, analytic: db, loss)
    }

    @Test func linearBackwardAccumulates() {
        let x = Support.random([3, 4], seed: 1)
        let w = Support.random([2, 4], seed: 2)
        let dy = Support.random([3, 2], seed: 3)
        let once = Tensor(zeros: [3, 4])
        let twice = Tensor(zeros: [3, 4])
        Linear.backward(dx: once.data, dw: nil, db: nil, dy: dy.data, x: x.data, w: w.data, n: 3, inDim: 4, outDim: 2)
        for _ in 0..<2 {
            Linear.backward(dx: twice.data, dw: nil, db: nil, dy: dy.data, x: x.data, w: w.data, n: 3, inDim: 4, outDim: 2)
        }
        for k in 0..<once.count { #expect(abs(twice[k] - 2 * once[k]) <= 1e-5 * max(1, abs(once[k]))) }
    }

    @Test func layerNorm() {
        let (n, c) = (4, 19)  // 19: exercises the vector loop and its scalar tail
        let x = Support.random([n, c], seed: 5)
        let g = Support.random([c], seed: 6)
        let b = Support.random([c], seed: 7)
        let r = Support.random([n, c], seed: 8)
        let y = Tensor(zeros: [n, c])
        let mean = Tensor(zeros: [n])
        let rstd = Tensor(zeros: [n])
        func loss() -> Double {
            LayerNorm.forward(out: y.data, mean: mean.data, rstd: rstd.data, inp: x.data, weight: g.data, bias: b.data, n: n, c: c, eps: 1e-12)
            return weightedSum(y, r)
        }
        _ = loss()
        let dx = Tensor(zeros: x.shape)
        let dg = Tensor(zeros: [c])
        let db = Tensor(zeros: [c])
        LayerNorm.backward(
            dinp: dx.data, dweight: dg.data, dbias: db.data, dout: r.data, inp: x.data, weight: g.data,
            mean: mean.data, rstd: rstd.data, n: n, c: c)
        checkGradient(x, analytic: dx, loss)
        checkGradient(g, analytic: dg, loss)
        checkGradient(b, analytic: db, loss)
    }

    @Test func layerNormForwardNormalises() {
        let x = Support.random([2, 384], seed: 9, std: 3)
        let ones = Tensor(shape: [384], values: .init(repeating: 1, count: 384))
        let zeros = Tensor(zeros: [384])
        let y = Tensor(zeros: [2, 384])
        LayerNorm.forward(out: y.data, mean: nil, rstd: nil, inp: x.data, weight: ones.data, bias: zeros.data, n: 2, c: 384, eps: 1e-12)
        for r in 0..<2 {
            let row = (0..<384).map { Double(y[r * 384 + $0]) }
            let m = row.reduce(0, +) / 384
            let v = row.reduce(0) { $0 + ($1 - m) * ($1 - m) } / 384
            #expect(abs(m) < 1e-5)
            #expect(abs(v - 1) < 1e-4)
        }
    }

    @Test func gelu() {
        let n = 37
        let x = Support.random([n], seed: 10, std: 2)
        let r = Support.random([n], seed: 11)
        let y = Tensor(zeros: [n])
        func loss() -> Double { GELU.forward(out: y.data, inp: x.data, count: n); return weightedSum(y, r) }
        let dx = Tensor(zeros: [n])
        GELU.backward(dinp: dx.data, dout: r.data, inp: x.data, count: n)
        checkGradient(x, analytic: dx, sample: n, loss)
    }

    /// ReLU away from its kink (|x| ≥ 0.1 > h), swish, tanh: element-wise derivatives.
    @Test func otherActivations() {
        let n = 29
        let x = Support.random([n], seed: 30, std: 2)
        let r = Support.random([n], seed: 31)
        let y = Tensor(zeros: [n])
        for i in 0..<n where abs(x[i]) < 0.1 { x[i] = x[i] < 0 ? -0.1 : 0.1 }
        for act in Activation.allCases where act != .gelu {
            func loss() -> Double { act.forward(out: y.data, inp: x.data, count: n); return weightedSum(y, r) }
            let dx = Tensor(zeros: [n])
            act.backward(dinp: dx.data, dout: r.data, inp: x.data, count: n)
            checkGradient(x, analytic: dx, sample: n, loss)
        }
        func tanhLoss() -> Double { Tanh.forward(out: y.data, inp: x.data, count: n); return weightedSum(y, r) }
        _ = tanhLoss()
        let dx = Tensor(zeros: [n])
        Tanh.backward(dinp: dx.data, dout: r.data, out: y.data, count: n)
        checkGradient(x, analytic: dx, sample: n, tanhLoss)
        for v: Float in [-30, -3, 0, 0.5, 30] {
            let a = Tensor(shape: [1], values: [v])
            let b = Tensor(zeros: [1])
            Tanh.forward(out: b.data, inp: a.data, count: 1)
            #expect(abs(b[0] - Foundation.tanh(v)) < 1e-6)
        }
    }

    @Test func crossEntropyAndMSE() {
        let (b, c) = (3, 4)
        let logits = Support.random([b, c], seed: 32, std: 2)
        let probs = Tensor(zeros: [b, c])
        let labels = [2, 0, 3]
        func ce() -> Double { Double(CrossEntropy.forward(probs: probs.data, logits: logits.data, labels: labels, classes: c)) }
        _ = ce()
        let d = Tensor(zeros: [b, c])
        CrossEntropy.backward(dlogits: d.data, probs: probs.data, labels: labels, classes: c)
        checkGradient(logits, analytic: d, sample: b * c, ce)
        let pred = Support.random([b], seed: 33)
        let targets: [Float] = [0.5, -1, 2]
        func mse() -> Double { Double(MeanSquaredError.forward(pred: pred.data, targets: targets)) }
        let dp = Tensor(zeros: [b])
        MeanSquaredError.backward(dpred: dp.data, pred: pred.data, targets: targets)
        checkGradient(pred, analytic: dp, sample: b, mse)
    }

    @Test func geluMatchesErfForm() {
        // Vectorised erf against libm's erff: A&S 7.1.26 is accurate to 1.5e-7 absolute in
        // exact arithmetic; in Float32 we allow 1e-6 for GELU values of magnitude up to 8.
        let xs = (0..<2001).map { Float($0 - 1000) / 125 }
        let x = Tensor(shape: [xs.count], values: xs)
        let y = Tensor(zeros: [xs.count])
        GELU.forward(out: y.data, inp: x.data, count: xs.count)
        for (i, v) in xs.enumerated() {
            let ref = 0.5 * Double(v) * (1 + Foundation.erf(Double(v) / 2.0.squareRoot()))
            #expect(abs(Double(y[i]) - ref) <= 1e-6 * max(1, abs(ref)), "gelu(\(v))")
        }
    }

    @Test func vectorExpAccuracy() {
        // Relative error of the polynomial exp over the range softmax and GELU use.
        var worst = 0.0
        for k in 0..<4000 {
            let v = Float(k) / 4000 * 170 - 86
            let e = Double(VectorMath.exp(v))
            worst = max(worst, abs(e - Foundation.exp(Double(v))) / Foundation.exp(Double(v)))
        }
        #expect(worst < 3e-7, "worst relative error \(worst)")
        #expect(VectorMath.exp(-1000) < 1e-37)
    }

    @Test func softmax() {
        let (n, c, ld) = (3, 11, 13)  // row stride larger than the row: attention-style layout
        let x = Support.random([n, ld], seed: 12)
        let r = Support.random([n, ld], seed: 13)
        let y = Tensor(zeros: [n, ld])
        for row in 0..<n { for j in c..<ld { r[row * ld + j] = 0 } }
        let scale: Float = 0.7
        func loss() -> Double { Softmax.forward(out: y.data, inp: x.data, n: n, c: c, ld: ld, scale: scale); return weightedSum(y, r) }
        _ = loss()
        for row in 0..<n { #expect(abs((0..<c).reduce(Float(0)) { $0 + y[row * ld + $1] } - 1) < 1e-6) }
        let dx = Tensor(zeros: x.shape)
        Softmax.backward(dinp: dx.data, dout: r.data, out: y.data, n: n, c: c, ld: ld, scale: scale)
        checkGradient(x, analytic: dx, sample: x.count, loss)
    }

    @Test func softmaxIsStableForLargeInputs() {
        let x = Tensor(shape: [1, 3], values: [1000, 1001, 999])
        let y = Tensor(zeros: [1, 3])
        Softmax.forward(out: y.data, inp: x.data, n: 1, c: 3, ld: 3)
        #expect(y.array.allSatisfy { $0.isFinite })
        #expect(abs(y[1] - 0.66524096) < 1e-6)
    }

    @Test func embedding() {
        let (v, d) = (6, 5)
        let table = Support.random([v, d], seed: 14)
        let ids: [Int32] = [3, 0, 3, 5]
        let r = Support.random([ids.count, d], seed: 15)
        let y = Tensor(zeros: [ids.count, d])
        func loss() -> Double {
            ids.withUnsafeBufferPointer { Embedding.forward(out: y.data, table: table.data, ids: $0.baseAddress!, n: ids.count, dim: d) }
            return weightedSum(y, r)
        }
        let dt = Tensor(zeros: table.shape)
        ids.withUnsafeBufferPointer { Embedding.backward(dtable: dt.data, dout: r.data, ids: $0.baseAddress!, n: ids.count, dim: d) }
        checkGradient(table, analytic: dt, sample: table.count, loss)
        #expect(dt[1 * d] == 0)  // row 1 never looked up
    }

    @Test func dropout() {
        let n = 4000
        let x = Support.random([n], seed: 16)
        let y = Tensor(zeros: [n])
        let mask = Mask(count: n)
        var rng = SeededRNG(seed: 17)
        Dropout.forward(out: y.data, mask: mask.data, inp: x.data, count: n, p: 0.25, rng: &rng)
        let dropped = (0..<n).filter { mask.data[$0] == 0 }.count
        // Binomial(4000, 0.25): mean 1000, sd ≈ 27; ±5 sd is a deterministic bound for this seed anyway.
        #expect(abs(dropped - 1000) < 140)
        for i in 0..<n { #expect(y[i] == (mask.data[i] == 0 ? 0 : x[i] * (4 / 3 as Float))) }
        // Backward with the stored mask is the forward's Jacobian (the op is linear).
        let r = Support.random([n], seed: 18)
        let dx = Tensor(zeros: [n])
        let jr = Tensor(zeros: [n])
        Dropout.backward(dinp: dx.data, dout: r.data, mask: mask.data, count: n, p: 0.25)
        Dropout.apply(out: jr.data, inp: r.data, mask: mask.data, count: n, p: 0.25)
        #expect(dx.array == jr.array)
        // Same seed, same mask; p = 0 is the identity.
        var rng2 = SeededRNG(seed: 17)
        let mask2 = Mask(count: n)
        Dropout.forward(out: y.data, mask: mask2.data, inp: x.data, count: n, p: 0.25, rng: &rng2)
        #expect(Array(UnsafeBufferPointer(start: mask.data, count: n)) == Array(UnsafeBufferPointer(start: mask2.data, count: n)))
        Dropout.forward(out: y.data, mask: mask2.data, inp: x.data, count: n, p: 0, rng: &rng2)
        #expect(y.array == x.array)
    }
}
