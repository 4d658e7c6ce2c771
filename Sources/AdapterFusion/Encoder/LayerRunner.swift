import Foundation

/// What a hook that computes whole layers (`LayerHook.replacesLayer`) gets to run the encoder's
/// own layer with other hooks: each run keeps its activations apart (run 0 is the encoder's).
public struct LayerRunner {
    /// What `outputSite` keeps under a caller's key for `outputSiteBackward`.
    enum Slot: CacheSlot {
        case sum, mean, rstd  // hook(h, z, x) + x and its LayerNorm statistics
        case sumGradient
    }

    let encoder: BertEncoder
    let batch: TokenBatch
    let workspace: EncoderWorkspace
    let dropout: DropoutState?
    let stop: BackwardStop?

    /// Tokens of the pass.
    public var tokenCount: Int { batch.tokenCount }

    /// output = layer `l` of `input` with `hook`, keeping its activations in run `run`.
    public func forward(_ l: Int, input: Tensor, output: Tensor, hook: LayerHook?, run: Int) {
        encoder.layerForward(l, input: input, output: output, batch, workspace, hook, dropout, run: run)
    }

    /// True when the pass needs ∂L/∂(input of layer l): not at the lowest layer of the pass.
    public func needsInputGradient(_ l: Int) -> Bool {
        switch stop {
        case .layerInput(let s), .outputSite(let s), .attentionSite(let s): return l > s
        case .embeddings: return true
        case nil: return false
        }
    }

    /// dInput += ∂L/∂input of run `run`'s layer `l`, given dOutput = ∂L/∂output (overwritten);
    /// `extra` as `BertEncoder.layerBackward` (overwritten).
    public func backward(_ l: Int, dOutput: Tensor, dInput: Tensor, hook: LayerHook?, run: Int, extra: (dh: Tensor, dx: Tensor)? = nil) {
        encoder.layerBackward(l, dOutput, batch, workspace, hook, dropout!, run: run, stop: nil, extra: extra)
        VectorMath.add(dInput.data, dOutput.data, batch.tokenCount * encoder.config.hiddenSize)
    }

    /// Right after `forward` of a run without a hook: y = LN(hook(h, z, x) + x) for a hook that
    /// acts at layer l's FFN output only, reusing that run's h = dropout(FFN output), x = the FFN
    /// input and z = LN(h + x) (the hookless run's output, `z`). Keeps what `outputSiteBackward`
    /// needs under `key` (one per member and layer).
    public func outputSite(_ l: Int, hook: LayerHook, z: Tensor, output: Tensor, key: AnyObject, training: Bool) {
        let ws = workspace
        let n = batch.tokenCount
        let H = encoder.config.hiddenSize
        let w = encoder.weights.layers[l]
        let cache = ws.hookCache
        let sum = cache.tensor(key, Slot.sum, count: n * H)
        hook.forward(
            layer: l, site: .output, input: HookInput(h: ws.ffnProj.data, normed: z.data, x: ws.attnOut.data), out: sum.data, n: n,
            training: training, cache: cache)
        VectorMath.add(sum.data, ws.attnOut.data, n * H)
        LayerNorm.forward(
            out: output.data, mean: cache.tensor(key, Slot.mean, count: n).data, rstd: cache.tensor(key, Slot.rstd, count: n).data, inp: sum.data,
            weight: w.ffnLNWeight.data, bias: w.ffnLNBias.data, n: n, c: H, eps: encoder.config.layerNormEps)
    }

    /// Backward of `outputSite`: adds ∂L/∂h, ∂L/∂z and ∂L/∂x to `dh`, `dz`, `dx`, given dOutput.
    public func outputSiteBackward(_ l: Int, hook: LayerHook, dOutput: Tensor, key: AnyObject, dh: Tensor, dz: Tensor, dx: Tensor) {
        let cache = workspace.hookCache
        let n = batch.tokenCount
        let H = encoder.config.hiddenSize
        let dsum = cache.tensor(key, Slot.sumGradient, count: n * H)
        dsum.data.update(repeating: 0, count: n * H)
        LayerNorm.backward(
            dinp: dsum.data, dweight: nil, dbias: nil, dout: dOutput.data, inp: cache.tensor(key, Slot.sum, count: n * H).data,
            weight: encoder.weights.layers[l].ffnLNWeight.data, mean: cache.tensor(key, Slot.mean, count: n).data,
            rstd: cache.tensor(key, Slot.rstd, count: n).data, n: n, c: H)
        // sum = hook(h, z, x) + x
        VectorMath.add(dx.data, dsum.data, n * H)
        hook.backward(layer: l, site: .output, dout: dsum.data, grad: HookGradient(dh: dh.data, dnormed: dz.data, dx: dx.data), n: n, cache: cache)
    }
}
