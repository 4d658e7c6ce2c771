#ifndef AFUSION_CKERNELS_H
#define AFUSION_CKERNELS_H
// Elementwise kernels and reductions (the work between matrix products), compiled once per
// instruction-set level (AVX-512, AVX2+FMA, baseline SSE2) and chosen at run time from what the
// CPU and the OS support; plus the CPU facts the OpenBLAS kernel choice needs.
#include <stddef.h>
#include <stdint.h>

// ---- CPU facts ---------------------------------------------------------------------------
typedef struct {
    char vendor[13];
    char brand[49];
    int family, model, stepping;
    int sse3, ssse3, sse41, sse42, avx, avx2, fma, f16c;
    int avx512f, avx512dq, avx512cd, avx512bw, avx512vl, avx512_bf16, avx512_fp16, amx_bf16, amx_tile;
    int os_avx;     // XCR0 bits 1-2: the OS saves SSE and AVX state
    int os_avx512;  // XCR0 bits 5-7: the OS saves opmask and ZMM state
    int os_amx;     // XCR0 bits 17-18
} afk_cpu_info;

/// Fills `info` from CPUID and XGETBV (zeros on a CPU without them).
void afk_cpu_query(afk_cpu_info *info);

/// The instruction-set level the kernels below run at: 3 = AVX-512, 2 = AVX2+FMA, 1 = SSE2.
int afk_kernel_level(void);
/// Forces a level (for tests); a level the CPU cannot run is lowered to one it can. Returns it.
int afk_set_kernel_level(int level);

// ---- Elementwise kernels (pointers may alias only where said) -----------------------------
/// pre[r, j] += bias[j] (bias may be NULL: pre is then only read), out = gelu(pre), over n rows
/// of c; out may be pre.
void afk_bias_gelu(float *out, float *pre, const float *bias, size_t n, size_t c);
/// dinp[i] += dout[i] · gelu'(inp[i]).
void afk_gelu_backward(float *dinp, const float *dout, const float *inp, size_t count, int accumulate);
/// Row softmax in place over n rows of c with stride ld: x = softmax(scale · x).
void afk_softmax(float *x, size_t n, size_t c, size_t ld, float scale);
/// dinp = scale · y ⊙ (dy − ⟨dy, y⟩) per row (overwrites dinp).
void afk_softmax_backward(float *dinp, const float *dout, const float *y, size_t n, size_t c, size_t ld, float scale);
/// out = LN(inp) · w + b per row of c; mean/rstd (may be NULL) receive the statistics.
void afk_layernorm(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                   size_t n, size_t c, float eps);
/// dinp += ∂L/∂x of a LayerNorm, given its statistics (weight gradients not computed).
void afk_layernorm_backward(float *dinp, const float *dout, const float *inp, const float *w,
                            const float *mean, const float *rstd, size_t n, size_t c);
/// y[i] += x[i].
void afk_add(float *y, const float *x, size_t count);
/// y[r, j] += b[j] over n rows of c.
void afk_add_bias(float *y, const float *b, size_t n, size_t c);
/// out[i] = inp[i] · mask[i] · keep (out may be inp).
void afk_mask_scale(float *out, const float *inp, const uint8_t *mask, size_t count, float keep);
/// out[i] = exp(inp[i]) (used by tests and the other activations).
void afk_exp(float *out, const float *inp, size_t count);
/// out[i] = erf(inp[i]).
void afk_erf(float *out, const float *inp, size_t count);
/// One AdamW step over count elements (m, v updated in place; see AdamW.swift for the formula).
void afk_adamw(float *w, const float *g, float *m, float *v, size_t count, float lr, float beta1, float beta2,
               float c1, float c2, float eps, float decay);


/// CPUs this process may run on (sched_getaffinity), or 0 when unknown.
int afk_available_cpus(void);
/// Path of the shared object that holds `symbol` (dladdr), or NULL.
const char *afk_library_path(const void *symbol);

/// A spin-wait hint (PAUSE), for the worker pool.
static inline void afk_pause(void) { __builtin_ia32_pause(); }

#endif
