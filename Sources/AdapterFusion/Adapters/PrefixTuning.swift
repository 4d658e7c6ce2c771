import Foundation

/// Prefix tuning (Li & Liang 2021): P key and value vectors per layer that every token attends
/// to before its own sequence. Trained through a re-parameterisation
///
///     [keys₀ | values₀ | keys₁ | … ] [P, 2·layers·H] = C + tanh(E·W₁ᵀ + b₁)·W₂ᵀ + b₂     E [P, H]
///
/// (`mlpHidden` > 0; C a fixed start, see `initialize`), whose output is stored flattened after
/// training (`flatten()`): a stored
/// prefix holds `layer_03/prefix/keys` and `…/values` [P, H] only. With a per-layer gate
/// (UniPELT) each sequence's prefix values are scaled by g = σ(mean of the layer input · w + b).
public final class PrefixModule {
    enum Slot: CacheSlot {
        case mlpHidden, mlpOutput  // [P, M], [P, W]: the training MLP's activations
        case mlpOutputGradient, mlpHiddenGradient  // their gradients
        case means  // [S, H] each sequence's mean layer input (a gate reads it)
        case gateGradient  // [S]
        case summed  // [P, H] Σ_s g_s ∂L/∂values_s
        case meansGradient  // [S, H]
        case keys(layer: Int)
        case values(layer: Int)  // [P, H] this pass's prefix of a layer
        case gatedValues(layer: Int)  // [S, P, H] g_s · values, per layer: the attention backward reads it
    }

    public let length: Int
    let hidden: Int
    public let layers: [Int]
    /// The re-parameterisation while training: E, W₁, b₁, W₂, b₂.
    public private(set) var mlp: [Parameter]?
    /// The MLP's learning rate relative to the rest (the head).
    public static let mlpRateScale: Float = 0.3
    /// Flattened keys and values by layer (nil while the MLP produces them).
    public private(set) var flat: [Int: (keys: Parameter, values: Parameter)]?
    /// UniPELT gates by layer.
    let gates: [Int: TokenGate]
    /// A fixed start added to the MLP's output while training through it [P, 2·layers·H]: the
    /// keys and values real words have in each layer (`initialize(from:ids:cls:sep:)`).
    private var offset: Tensor?
    private let totalLayers: Int

    public init(
        layers: [Int], totalLayers: Int, hidden: Int, length: Int, mlpHidden: Int, gated: Bool, prefix: String, rng: inout SeededRNG
    ) {
        self.length = length
        self.hidden = hidden
        self.layers = layers
        self.totalLayers = totalLayers
        var gates: [Int: TokenGate] = [:]
        if gated {
            for l in layers { gates[l] = TokenGate(prefix: HookSite(l, .output).layerName + "/gates/prefix/", hidden: hidden, rng: &rng) }
        }
        self.gates = gates
        if mlpHidden > 0 {
            let out = 2 * totalLayers * hidden
            func uniform(_ shape: [Int], fanIn: Int) -> Tensor {
                Tensor(randomUniform: shape, bound: 1 / Float(fanIn).squareRoot(), rng: &rng)
            }
            mlp = [
                Parameter(prefix + "prefix_mlp/embedding", Tensor(randomNormal: [length, hidden], std: 1, rng: &rng), decay: false),
                Parameter(prefix + "prefix_mlp/dense/weight", uniform([mlpHidden, hidden], fanIn: hidden), decay: true),
                Parameter(prefix + "prefix_mlp/dense/bias", uniform([mlpHidden], fanIn: hidden), decay: false),
                Parameter(prefix + "prefix_mlp/output/weight", uniform([out, mlpHidden], fanIn: mlpHidden), decay: true),
                Parameter(prefix + "prefix_mlp/output/bias", uniform([out], fanIn: mlpHidden), decay: false),
            ]
            // One Adam step moves every output of the MLP by up to lr·(1 + Σ|tanh|): at the head's
            // rate the prefix runs away (SMS spam stayed at MCC 0 at 1e-3; 0.89 at 3e-4).
            for p in mlp! { p.learningRateScale = Self.mlpRateScale }
        } else {
            flat = Self.flatParameters(layers: layers, length: length, hidden: hidden) { Tensor(randomNormal: $0, std: 0.5, rng: &rng) }
        }
    }

    private static func flatParameters(layers: [Int], length: Int, hidden: Int, _ make: ([Int]) -> Tensor) -> [Int: (Parameter, Parameter)] {
        var out: [Int: (Parameter, Parameter)] = [:]
        for l in layers {
            let p = HookSite(l, .output).layerName + "/prefix/"
            out[l] = (Parameter(p + "keys", make([length, hidden]), decay: false), Parameter(p + "values", make([length, hidden]), decay: false))
        }
        return out
    }

    /// Trainable tensors: the MLP's (or the flattened vectors) and the gates'.
    public var parameters: [Parameter] {
        (mlp ?? layers.flatMap { [flat![$0]!.keys, flat![$0]!.values] }) + layers.flatMap { gates[$0]?.parameters ?? [] }
    }

    /// Starts the prefix where real words are (Li & Liang's initialisation from activations):
    /// the keys and values that `ids` (P real words, read as `cls` w₁ … w_P `sep`) have in each
    /// layer of `encoder`.
    /// Trained through the MLP, these become a fixed offset added to its output, whose last layer
    /// is scaled down to start near zero; trained directly, they are the vectors' start. A random
    /// prefix instead makes every token attend to noise from the first step, which the frozen
    /// model does not recover from on some tasks (SMS spam stayed at MCC 0).
    public func initialize(from encoder: BertEncoder, ids: [Int32], cls: Int32, sep: Int32) throws {
        guard !ids.isEmpty else { return }
        let H = hidden
        let words = (0..<length).map { ids[$0 % ids.count] }
        let batch = TokenBatch(sequences: [[cls] + words + [sep]])
        let ws = EncoderWorkspace(config: encoder.config, training: true)
        _ = try encoder.forward(batch, workspace: ws)
        let W = 2 * totalLayers * H
        let start = Tensor(zeros: [length, W])
        for l in 0..<totalLayers {
            let qkv = ws.activations(l).qkv.data
            for j in 0..<length {
                (start.data + j * W + 2 * l * H).update(from: qkv + (1 + j) * 3 * H + H, count: H)
                (start.data + j * W + (2 * l + 1) * H).update(from: qkv + (1 + j) * 3 * H + 2 * H, count: H)
            }
        }
        if let mlp {
            offset = start
            for i in 0..<mlp[3].value.count { mlp[3].value[i] *= 0.01 }
            mlp[4].value.zero()
        } else if let flat {
            for l in layers {
                for j in 0..<length {
                    (flat[l]!.keys.value.data + j * H).update(from: start.data + j * W + 2 * l * H, count: H)
                    (flat[l]!.values.value.data + j * H).update(from: start.data + j * W + (2 * l + 1) * H, count: H)
                }
            }
        }
    }

    /// Replaces the MLP by its output: the stored form.
    public func flatten() {
        guard mlp != nil else { return }
        let cache = HookCache()
        let out = computeMLP(cache)
        let H = hidden
        let W = 2 * totalLayers * H
        flat = Self.flatParameters(layers: layers, length: length, hidden: H) { _ in Tensor(zeros: [length, H]) }
        for l in layers {
            for j in 0..<length {
                (flat![l]!.keys.value.data + j * H).update(from: out + j * W + 2 * l * H, count: H)
                (flat![l]!.values.value.data + j * H).update(from: out + j * W + (2 * l + 1) * H, count: H)
            }
        }
        mlp = nil
    }

    /// The MLP's output [P, 2·layers·H] into the cache (slot 1; slot 0 keeps tanh's output).
    private func computeMLP(_ cache: HookCache) -> UnsafeMutablePointer<Float> {
        let mlp = mlp!
        let M = mlp[1].value.shape[0]
        let W = 2 * totalLayers * hidden
        let hid = cache.tensor(self, Slot.mlpHidden, count: length * M)
        let out = cache.tensor(self, Slot.mlpOutput, count: length * W)
        Linear.forward(y: hid.data, x: mlp[0].value.data, w: mlp[1].value.data, b: mlp[2].value.data, n: length, inDim: hidden, outDim: M)
        for i in 0..<(length * M) { hid.data[i] = tanhf(hid.data[i]) }
        Linear.forward(y: out.data, x: hid.data, w: mlp[3].value.data, b: mlp[4].value.data, n: length, inDim: M, outDim: W)
        if let offset { VectorMath.add(out.data, offset.data, length * W) }
        return out.data
    }

    /// Runs the MLP for this pass (when training through it) and clears its output gradient.
    func beginPass(cache: HookCache) {
        guard mlp != nil else { return }
        let out = computeMLP(cache)
        let H = hidden
        let W = 2 * totalLayers * H
        for l in layers {
            let k = cache.tensor(self, Slot.keys(layer: l), count: length * H).data
            let v = cache.tensor(self, Slot.values(layer: l), count: length * H).data
            for j in 0..<length {
                (k + j * H).update(from: out + j * W + 2 * l * H, count: H)
                (v + j * H).update(from: out + j * W + (2 * l + 1) * H, count: H)
            }
        }
        cache.tensor(self, Slot.mlpOutputGradient, count: length * W).data.update(repeating: 0, count: length * W)
    }

    private func keysValues(_ l: Int, _ cache: HookCache) -> (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) {
        if let flat { return (flat[l]!.keys.value.data, flat[l]!.values.value.data) }
        return (
            cache.tensor(self, Slot.keys(layer: l), count: length * hidden).data,
            cache.tensor(self, Slot.values(layer: l), count: length * hidden).data
        )
    }

    /// Layer l's prefix for `batch`; x [tokens, H] is the layer input (read by a gate).
    func prefix(layer l: Int, x: UnsafePointer<Float>, batch: TokenBatch, training: Bool, frozen: Bool, cache: HookCache) -> AttentionPrefix {
        let (k, v) = keysValues(l, cache)
        guard let gate = gates[l] else { return AttentionPrefix(keys: k, values: v, count: length) }
        // g_s = σ(mean_t x_t · w + b), per sequence; values_s = g_s · values
        let H = hidden
        let S = batch.count
        let means = cache.tensor(self, Slot.means, count: S * H).data
        for s in 0..<S {
            let m = means + s * H
            m.update(repeating: 0, count: H)
            for t in batch.offsets[s]..<batch.offsets[s + 1] { VectorMath.add(m, x + t * H, H) }
            let inv = 1 / Float(batch.length(s))
            for j in 0..<H { m[j] *= inv }
        }
        let g = gate.forward(x: means, n: S, keep: training, cache: cache)
        let gated = cache.tensor(self, Slot.gatedValues(layer: l), count: S * length * H).data  // per layer: the attention backward reads it
        for s in 0..<S { for i in 0..<(length * H) { gated[s * length * H + i] = g[s] * v[i] } }
        return AttentionPrefix(keys: k, values: gated, count: length, valuesPerSequence: true)
    }

    /// Gradients of layer l's prefix (values per sequence when gated); dx [tokens, H] += ∂L/∂x through a gate.
    func backward(
        layer l: Int, dkeys: UnsafePointer<Float>, dvalues: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?, batch: TokenBatch,
        frozen: Bool, cache: HookCache
    ) {
        let H = hidden
        let P = length
        var dv = dvalues
        if let gate = gates[l] {
            let S = batch.count
            let (_, v) = keysValues(l, cache)
            let g = gate.values(cache, n: S)
            let dg = cache.tensor(self, Slot.gateGradient, count: S).data
            let summed = cache.tensor(self, Slot.summed, count: P * H).data
            summed.update(repeating: 0, count: P * H)
            for s in 0..<S {
                let block = dvalues + s * P * H
                dg[s] = VectorMath.dot(block, v, P * H)
                for i in 0..<(P * H) { summed[i] += g[s] * block[i] }
            }
            let dmeans = cache.tensor(self, Slot.meansGradient, count: S * H).data
            dmeans.update(repeating: 0, count: S * H)
            gate.backward(dg: dg, dx: dmeans, n: S, frozen: frozen, cache: cache)
            if let dx {
                for s in 0..<S {
                    let inv = 1 / Float(batch.length(s))
                    for t in batch.offsets[s]..<batch.offsets[s + 1] { for j in 0..<H { dx[t * H + j] += inv * dmeans[s * H + j] } }
                }
            }
            dv = UnsafePointer(summed)
        }
        guard !frozen else { return }
        if let flat {
            VectorMath.add(flat[l]!.keys.grad.data, dkeys, P * H)
            VectorMath.add(flat[l]!.values.grad.data, dv, P * H)
        } else {
            let W = 2 * totalLayers * H
            let dout = cache.tensor(self, Slot.mlpOutputGradient, count: P * W).data
            for j in 0..<P {
                VectorMath.add(dout + j * W + 2 * l * H, dkeys + j * H, H)
                VectorMath.add(dout + j * W + (2 * l + 1) * H, dv + j * H, H)
            }
        }
    }

    /// Carries the pass's output gradient back through the MLP (training through it).
    func endBackward(frozen: Bool, cache: HookCache) {
        guard let mlp, !frozen else { return }
        let M = mlp[1].value.shape[0]
        let W = 2 * totalLayers * hidden
        let hid = cache.tensor(self, Slot.mlpHidden, count: length * M).data
        let dout = cache.tensor(self, Slot.mlpOutputGradient, count: length * W).data
        let dhid = cache.tensor(self, Slot.mlpHiddenGradient, count: length * M).data
        dhid.update(repeating: 0, count: length * M)
        Linear.backward(dx: dhid, dw: mlp[3].grad.data, db: mlp[4].grad.data, dy: dout, x: hid, w: mlp[3].value.data, n: length, inDim: M, outDim: W)
        for i in 0..<(length * M) { dhid[i] *= 1 - hid[i] * hid[i] }
        Linear.backward(
            dx: mlp[0].grad.data, dw: mlp[1].grad.data, db: mlp[2].grad.data, dy: dhid, x: mlp[0].value.data, w: mlp[1].value.data, n: length,
            inDim: hidden, outDim: M)
    }
}
