// The kernels' bodies, included once per instruction-set level by kernels.c with
// AFK_NAME(x) (the level's name for x), AFK_TARGET (its target attribute) and AFK_W (lanes) defined.
#include "vecmath.h"

AFK_TARGET static void AFK_NAME(bias_gelu)(float *out, float *pre, const float *bias, size_t n, size_t c) {
    for (size_t r = 0; r < n; r++) {
        float *x = pre + r * c, *y = out + r * c;
        size_t i = 0;
        for (; i + AFK_W <= c; i += AFK_W) {
            v16f v = vload(x + i);
            if (bias) { v += vload(bias + i); vstore(x + i, v); }
            vstore(y + i, vgelu(v));
        }
        if (i < c) {
            v16f v = vload_part(x + i, c - i);
            if (bias) { v += vload_part(bias + i, c - i); vstore_part(x + i, v, c - i); }
            vstore_part(y + i, vgelu(v), c - i);
        }
    }
}

/* dinp (+)= dout * gelu'(inp); without accumulate dinp may be dout itself (in place). */
AFK_TARGET static void AFK_NAME(gelu_backward)(float *dinp, const float *dout, const float *inp, size_t count, int accumulate) {
    size_t i = 0;
    for (; i + AFK_W <= count; i += AFK_W) {
        v16f g = vload(dout + i) * vgelu_grad(vload(inp + i));
        vstore(dinp + i, accumulate ? vload(dinp + i) + g : g);
    }
    if (i < count) {
        size_t k = count - i;
        v16f g = vload_part(dout + i, k) * vgelu_grad(vload_part(inp + i, k));
        vstore_part(dinp + i, accumulate ? vload_part(dinp + i, k) + g : g, k);
    }
}

AFK_TARGET static void AFK_NAME(softmax)(float *x, size_t n, size_t c, size_t ld, float scale) {
    for (size_t r = 0; r < n; r++) {
        float *row = x + r * ld;
        size_t i = 0;
        v16f mv = vsplat(-__builtin_inff());
        for (; i + AFK_W <= c; i += AFK_W) mv = vmax(mv, vload(row + i));
        float mx = vmaxlane(mv);
        for (; i < c; i++) mx = row[i] > mx ? row[i] : mx;
        v16f acc = vsplat(0);
        for (i = 0; i + AFK_W <= c; i += AFK_W) {
            v16f e = vexp((vload(row + i) - mx) * scale);
            acc += e;
            vstore(row + i, e);
        }
        if (i < c) {
            // Padding lanes hold exp(-87·…) ≈ 0 only after masking: sum the stored part alone.
            v16f e = vexp((vload_part(row + i, c - i) - mx) * scale);
            vstore_part(row + i, e, c - i);
            float t[AFK_W] = {0};
            for (size_t j = 0; j < c - i; j++) t[j] = row[i + j];
            acc += vload(t);
        }
        v16f inv = vsplat(1.0f / vsum(acc));
        for (i = 0; i + AFK_W <= c; i += AFK_W) vstore(row + i, vload(row + i) * inv);
        if (i < c) vstore_part(row + i, vload_part(row + i, c - i) * inv, c - i);
    }
}

AFK_TARGET static void AFK_NAME(softmax_backward)(float *dinp, const float *dout, const float *y, size_t n, size_t c,
                                                 size_t ld, float scale) {
    for (size_t r = 0; r < n; r++) {
        const float *yr = y + r * ld, *dy = dout + r * ld;
        float *dx = dinp + r * ld;
        v16f acc = vsplat(0);
        size_t i = 0;
        for (; i + AFK_W <= c; i += AFK_W) acc += vload(dy + i) * vload(yr + i);
        if (i < c) acc += vload_part(dy + i, c - i) * vload_part(yr + i, c - i);
        v16f dot = vsplat(vsum(acc));
        for (i = 0; i + AFK_W <= c; i += AFK_W) vstore(dx + i, scale * vload(yr + i) * (vload(dy + i) - dot));
        if (i < c) vstore_part(dx + i, scale * vload_part(yr + i, c - i) * (vload_part(dy + i, c - i) - dot), c - i);
    }
}

AFK_TARGET static void AFK_NAME(layernorm)(float *out, float *mean, float *rstd, const float *inp, const float *w,
                                          const float *b, size_t n, size_t c, float eps) {
    for (size_t r = 0; r < n; r++) {
        const float *x = inp + r * c;
        float *y = out + r * c;
        // Two passes (mean, then centred variance) for accuracy.
        v16f acc = vsplat(0);
        size_t i = 0;
        for (; i + AFK_W <= c; i += AFK_W) acc += vload(x + i);
        if (i < c) acc += vload_part(x + i, c - i);
        float m = vsum(acc) / (float)c;
        acc = vsplat(0);
        for (i = 0; i + AFK_W <= c; i += AFK_W) { v16f d = vload(x + i) - m; acc += d * d; }
        float var = vsum(acc);
        for (; i < c; i++) { float d = x[i] - m; var += d * d; }
        float s = 1.0f / __builtin_sqrtf(var / (float)c + eps);
        for (i = 0; i + AFK_W <= c; i += AFK_W) vstore(y + i, (vload(x + i) - m) * s * vload(w + i) + vload(b + i));
        for (; i < c; i++) y[i] = (x[i] - m) * s * w[i] + b[i];
        if (mean) mean[r] = m;
        if (rstd) rstd[r] = s;
    }
}

AFK_TARGET static void AFK_NAME(layernorm_backward)(float *dinp, const float *dout, const float *inp, const float *w,
                                                   const float *mean, const float *rstd, size_t n, size_t c) {
    for (size_t r = 0; r < n; r++) {
        const float *x = inp + r * c, *dy = dout + r * c;
        float *dx = dinp + r * c;
        float m = mean[r], s = rstd[r];
        // Two reductions: mean of (dy·γ) and mean of (dy·γ·x̂).
        v16f a1 = vsplat(0), a2 = vsplat(0);
        size_t i = 0;
        for (; i + AFK_W <= c; i += AFK_W) {
            v16f dn = vload(w + i) * vload(dy + i);
            a1 += dn;
            a2 += dn * ((vload(x + i) - m) * s);
        }
        float dnMean = vsum(a1), dnDot = vsum(a2);
        for (; i < c; i++) { float dn = w[i] * dy[i]; dnMean += dn; dnDot += dn * ((x[i] - m) * s); }
        dnMean /= (float)c;
        dnDot /= (float)c;
        for (i = 0; i + AFK_W <= c; i += AFK_W) {
            v16f xhat = (vload(x + i) - m) * s;
            vstore(dx + i, vload(dx + i) + (vload(w + i) * vload(dy + i) - dnMean - xhat * dnDot) * s);
        }
        for (; i < c; i++) dx[i] += (w[i] * dy[i] - dnMean - (x[i] - m) * s * dnDot) * s;
    }
}

AFK_TARGET static void AFK_NAME(add)(float *y, const float *x, size_t count) {
    size_t i = 0;
    for (; i + AFK_W <= count; i += AFK_W) vstore(y + i, vload(y + i) + vload(x + i));
    for (; i < count; i++) y[i] += x[i];
}

AFK_TARGET static void AFK_NAME(add_bias)(float *y, const float *b, size_t n, size_t c) {
    for (size_t r = 0; r < n; r++) AFK_NAME(add)(y + r * c, b, c);
}

AFK_TARGET static void AFK_NAME(mask_scale)(float *out, const float *inp, const uint8_t *mask, size_t count, float keep) {
    for (size_t i = 0; i < count; i++) out[i] = inp[i] * ((float)mask[i] * keep);
}

AFK_TARGET static void AFK_NAME(exp)(float *out, const float *inp, size_t count) {
    size_t i = 0;
    for (; i + AFK_W <= count; i += AFK_W) vstore(out + i, vexp(vload(inp + i)));
    if (i < count) vstore_part(out + i, vexp(vload_part(inp + i, count - i)), count - i);
}

AFK_TARGET static void AFK_NAME(erf)(float *out, const float *inp, size_t count) {
    size_t i = 0;
    for (; i + AFK_W <= count; i += AFK_W) vstore(out + i, verf(vload(inp + i)));
    if (i < count) vstore_part(out + i, verf(vload_part(inp + i, count - i)), count - i);
}

AFK_TARGET static void AFK_NAME(adamw)(float *w, const float *g, float *m, float *v, size_t count, float lr, float beta1,
                                      float beta2, float c1, float c2, float eps, float decay) {
    for (size_t i = 0; i < count; i++) {
        m[i] = beta1 * m[i] + (1 - beta1) * g[i];
        v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
        w[i] -= lr * (m[i] / c1) / (__builtin_sqrtf(v[i] / c2) + eps) + decay * w[i];
    }
}

static const afk_table AFK_NAME(table) = {
    AFK_NAME(bias_gelu), AFK_NAME(gelu_backward), AFK_NAME(softmax), AFK_NAME(softmax_backward),
    AFK_NAME(layernorm), AFK_NAME(layernorm_backward), AFK_NAME(add), AFK_NAME(add_bias),
    AFK_NAME(mask_scale), AFK_NAME(exp), AFK_NAME(erf), AFK_NAME(adamw),
};

#undef v16f
#undef v16i
#undef vsplat
#undef vload
#undef vstore
#undef vload_part
#undef vstore_part
#undef vselect
#undef vmax
#undef vmin
#undef vabs
#undef vsum
#undef vmaxlane
#undef vexp
#undef verf
#undef vgelu
#undef vgelu_grad
