#include "ckernels.h"
#include <string.h>
#include <cpuid.h>

// ---- CPU facts -----------------------------------------------------------------------------
static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

void afk_cpu_query(afk_cpu_info *info) {
    memset(info, 0, sizeof *info);
    unsigned a, b, c, d, maxLeaf;
    if (!__get_cpuid(0, &maxLeaf, &b, &c, &d)) return;
    memcpy(info->vendor, &b, 4); memcpy(info->vendor + 4, &d, 4); memcpy(info->vendor + 8, &c, 4);
    __get_cpuid(1, &a, &b, &c, &d);
    int baseFamily = (a >> 8) & 0xf, baseModel = (a >> 4) & 0xf;
    info->family = baseFamily == 0xf ? baseFamily + ((a >> 20) & 0xff) : baseFamily;
    info->model = (baseFamily == 0x6 || baseFamily == 0xf) ? baseModel + (((a >> 16) & 0xf) << 4) : baseModel;
    info->stepping = a & 0xf;
    info->sse3 = c & 1; info->ssse3 = (c >> 9) & 1; info->fma = (c >> 12) & 1;
    info->sse41 = (c >> 19) & 1; info->sse42 = (c >> 20) & 1; info->avx = (c >> 28) & 1; info->f16c = (c >> 29) & 1;
    int osxsave = (c >> 27) & 1;
    if (osxsave) {
        uint64_t xcr0 = xgetbv0();
        info->os_avx = (xcr0 & 0x6) == 0x6;
        info->os_avx512 = info->os_avx && (xcr0 & 0xe0) == 0xe0;
        info->os_amx = (xcr0 & 0x60000) == 0x60000;
    }
    if (maxLeaf >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        info->avx2 = (b >> 5) & 1;
        info->avx512f = (b >> 16) & 1; info->avx512dq = (b >> 17) & 1; info->avx512cd = (b >> 28) & 1;
        info->avx512bw = (b >> 30) & 1; info->avx512vl = (b >> 31) & 1;
        info->avx512_fp16 = (d >> 23) & 1; info->amx_bf16 = (d >> 22) & 1; info->amx_tile = (d >> 24) & 1;
        __cpuid_count(7, 1, a, b, c, d);
        info->avx512_bf16 = (a >> 5) & 1;
    }
    unsigned maxExt = __get_cpuid_max(0x80000000, 0);
    if (maxExt >= 0x80000004) {
        unsigned regs[12];
        for (unsigned i = 0; i < 3; i++) __cpuid(0x80000002 + i, regs[4 * i], regs[4 * i + 1], regs[4 * i + 2], regs[4 * i + 3]);
        memcpy(info->brand, regs, 48);
        info->brand[48] = 0;
    }
}

// ---- Kernels, once per level -----------------------------------------------------------------
typedef struct {
    void (*bias_gelu)(float *, float *, const float *, size_t, size_t);
    void (*gelu_backward)(float *, const float *, const float *, size_t, int);
    void (*softmax)(float *, size_t, size_t, size_t, float);
    void (*softmax_backward)(float *, const float *, const float *, size_t, size_t, size_t, float);
    void (*layernorm)(float *, float *, float *, const float *, const float *, const float *, size_t, size_t, float);
    void (*layernorm_backward)(float *, const float *, const float *, const float *, const float *, const float *,
                               size_t, size_t);
    void (*add)(float *, const float *, size_t);
    void (*add_bias)(float *, const float *, size_t, size_t);
    void (*mask_scale)(float *, const float *, const uint8_t *, size_t, float);
    void (*exp)(float *, const float *, size_t);
    void (*erf)(float *, const float *, size_t);
    void (*adamw)(float *, const float *, float *, float *, size_t, float, float, float, float, float, float, float);
} afk_table;

#define AFK_NAME(x) x##_avx512
#define AFK_W 16
#define AFK_TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")))
#include "kernels_impl.h"
#undef AFK_NAME
#undef AFK_TARGET
#undef AFK_W
#define AFK_NAME(x) x##_avx2
#define AFK_W 8
#define AFK_TARGET __attribute__((target("avx2,fma")))
#include "kernels_impl.h"
#undef AFK_NAME
#undef AFK_TARGET
#undef AFK_W
#define AFK_NAME(x) x##_sse2
#define AFK_W 4
#define AFK_TARGET
#include "kernels_impl.h"
#undef AFK_NAME
#undef AFK_TARGET
#undef AFK_W

static int supported_level(void) {
    afk_cpu_info i;
    afk_cpu_query(&i);
    if (i.avx512f && i.avx512bw && i.avx512dq && i.avx512vl && i.avx2 && i.fma && i.os_avx512) return 3;
    if (i.avx2 && i.fma && i.os_avx) return 2;
    return 1;
}

static const afk_table *table = &table_sse2;
static int level = 1;

__attribute__((constructor)) static void afk_init(void) { afk_set_kernel_level(3); }

int afk_set_kernel_level(int wanted) {
    int best = supported_level();
    level = wanted < best ? (wanted < 1 ? 1 : wanted) : best;
    table = level == 3 ? &table_avx512 : level == 2 ? &table_avx2 : &table_sse2;
    return level;
}

int afk_kernel_level(void) { return level; }

void afk_bias_gelu(float *out, float *pre, const float *bias, size_t n, size_t c) { table->bias_gelu(out, pre, bias, n, c); }
void afk_gelu_backward(float *dinp, const float *dout, const float *inp, size_t count, int accumulate) {
    table->gelu_backward(dinp, dout, inp, count, accumulate);
}
void afk_softmax(float *x, size_t n, size_t c, size_t ld, float scale) { table->softmax(x, n, c, ld, scale); }
void afk_softmax_backward(float *dinp, const float *dout, const float *y, size_t n, size_t c, size_t ld, float scale) {
    table->softmax_backward(dinp, dout, y, n, c, ld, scale);
}
void afk_layernorm(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b, size_t n,
                   size_t c, float eps) {
    table->layernorm(out, mean, rstd, inp, w, b, n, c, eps);
}
void afk_layernorm_backward(float *dinp, const float *dout, const float *inp, const float *w, const float *mean,
                            const float *rstd, size_t n, size_t c) {
    table->layernorm_backward(dinp, dout, inp, w, mean, rstd, n, c);
}
void afk_add(float *y, const float *x, size_t count) { table->add(y, x, count); }
void afk_add_bias(float *y, const float *b, size_t n, size_t c) { table->add_bias(y, b, n, c); }
void afk_mask_scale(float *out, const float *inp, const uint8_t *mask, size_t count, float keep) {
    table->mask_scale(out, inp, mask, count, keep);
}
void afk_exp(float *out, const float *inp, size_t count) { table->exp(out, inp, count); }
void afk_erf(float *out, const float *inp, size_t count) { table->erf(out, inp, count); }
void afk_adamw(float *w, const float *g, float *m, float *v, size_t count, float lr, float beta1, float beta2, float c1,
               float c2, float eps, float decay) {
    table->adamw(w, g, m, v, count, lr, beta1, beta2, c1, c2, eps, decay);
}
