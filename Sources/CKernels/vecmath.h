// Vector math for one instruction-set level, included by kernels_impl.h with AFK_W (lanes:
// 16 for AVX-512, 8 for AVX2, 4 for SSE2), AFK_NAME and AFK_TARGET defined. v16f/v16i name
// that level's vector types; each helper gets the level's own name through the defines below.
#define v16f AFK_NAME(vf)
#define v16i AFK_NAME(vi)
#define vsplat AFK_NAME(vsplat)
#define vload AFK_NAME(vload)
#define vstore AFK_NAME(vstore)
#define vload_part AFK_NAME(vload_part)
#define vstore_part AFK_NAME(vstore_part)
#define vselect AFK_NAME(vselect)
#define vmax AFK_NAME(vmax)
#define vmin AFK_NAME(vmin)
#define vabs AFK_NAME(vabs)
#define vsum AFK_NAME(vsum)
#define vmaxlane AFK_NAME(vmaxlane)
#define vexp AFK_NAME(vexp)
#define verf AFK_NAME(verf)
#define vgelu AFK_NAME(vgelu)
#define vgelu_grad AFK_NAME(vgelu_grad)
typedef float v16f __attribute__((vector_size(4 * AFK_W), aligned(4)));
typedef int32_t v16i __attribute__((vector_size(4 * AFK_W), aligned(4)));
#undef AFK_INLINE
#define AFK_INLINE static inline __attribute__((always_inline)) AFK_TARGET

AFK_INLINE v16f vsplat(float x) { return (v16f){0} + x; }
AFK_INLINE v16f vload(const float *p) { v16f v; memcpy(&v, p, sizeof v); return v; }
AFK_INLINE void vstore(float *p, v16f v) { memcpy(p, &v, sizeof v); }
/// Loads the first n < 16 floats of p, zeros elsewhere.
AFK_INLINE v16f vload_part(const float *p, size_t n) {
    float t[AFK_W] = {0};
    for (size_t j = 0; j < n; j++) t[j] = p[j];
    return vload(t);
}
AFK_INLINE void vstore_part(float *p, v16f v, size_t n) {
    float t[AFK_W];
    vstore(t, v);
    for (size_t j = 0; j < n; j++) p[j] = t[j];
}
/// m ? a : b, with m a lane mask (all ones or zeros) from a comparison.
AFK_INLINE v16f vselect(v16i m, v16f a, v16f b) { return (v16f)((m & (v16i)a) | (~m & (v16i)b)); }
AFK_INLINE v16f vmax(v16f a, v16f b) { return vselect(a > b, a, b); }
AFK_INLINE v16f vmin(v16f a, v16f b) { return vselect(a < b, a, b); }
AFK_INLINE v16f vabs(v16f a) { return (v16f)((v16i)a & 0x7fffffff); }
/// Lane sum in a fixed pairwise order.
AFK_INLINE float vsum(v16f v) {
    float t[AFK_W];
    vstore(t, v);
    for (int w = AFK_W / 2; w > 0; w /= 2)
        for (int j = 0; j < w; j++) t[j] += t[j + w];
    return t[0];
}
AFK_INLINE float vmaxlane(v16f v) {
    float t[AFK_W];
    vstore(t, v);
    float m = t[0];
    for (int j = 1; j < AFK_W; j++) m = t[j] > m ? t[j] : m;
    return m;
}

/// eˣ: Cephes' degree-6 polynomial after reduction by ln 2; relative error < 2e-7 on
/// [-87, 88]; inputs below -87 give ≈ 0, above 88 are clamped.
AFK_INLINE v16f vexp(v16f x) {
    x = vmin(vmax(x, vsplat(-87.3f)), vsplat(88.3f));
    const v16f magic = vsplat(12582912.0f);  // 1.5·2²³: the sum's low mantissa bits hold n
    v16f shifted = x * 1.44269504088896341f + magic;
    v16f n = shifted - magic;
    v16f r = x - n * 0.693359375f + n * 2.12194440e-4f;
    v16f p = vsplat(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    v16i bits = (((v16i)shifted - 0x4B400000) + 127) << 23;
    return p * (v16f)bits;
}

/// erf(x), Abramowitz & Stegun 7.1.26; absolute error < 2e-7.
AFK_INLINE v16f verf(v16f x) {
    v16f ax = vabs(x);
    v16f t = 1.0f / (1.0f + 0.3275911f * ax);
    v16f p = vsplat(1.061405429f);
    p = p * t - 1.453152027f;
    p = p * t + 1.421413741f;
    p = p * t - 0.284496736f;
    p = p * t + 0.254829592f;
    v16f y = 1.0f - p * t * vexp(-(ax * ax));
    return (v16f)((v16i)y | ((v16i)x & (int32_t)0x80000000));  // sign of x
}

AFK_INLINE v16f vgelu(v16f x) { return 0.5f * x * (1.0f + verf(x * 0.70710678118654752f)); }

/// gelu'(x) = ½(1 + erf(x/√2)) + x·φ(x).
AFK_INLINE v16f vgelu_grad(v16f x) {
    v16f cdf = 0.5f * (1.0f + verf(x * 0.70710678118654752f));
    v16f pdf = vexp(-0.5f * x * x) * 0.39894228040143268f;
    return cdf + x * pdf;
}
