/* Fused CPU kernels for the StyleGAN2 layers' inference path (see cpu_kernels.py).

   Every map is one channels-last image: pixel after pixel, `channels` values each.
   Two kernels per number format (float32, bfloat16 stored as uint16):

   epilogue   in place: v = clamp(act(v * scale[channel] + noise[pixel] * noise_gain + bias[channel]),
                                  lo, hi)
   fir_epilogue
              out = epilogue(separable FIR filter of `in`): out[h, w] =
              sum_i sum_j taps_y[i] * taps_x[j] * in[h + i - pad_y, w + j - pad_x]
              (a correlation; zero outside `in`)

   act is leaky ReLU with slope `alpha` when `leaky` is set, else the identity; a clamp
   bound of +-inf clamps nothing; noise may be NULL (no noise). Sums are float32; bfloat16
   results are rounded to nearest even once, at the end. Rows of pixels are split across
   `threads` OpenMP threads (ignored when built without OpenMP). */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static inline float load_f32(const float *p) { return *p; }
static inline void store_f32(float *p, float v) { *p = v; }

static inline float load_bf16(const uint16_t *p) {
    uint32_t bits = (uint32_t)*p << 16;
    float v;
    memcpy(&v, &bits, 4);
    return v;
}

static inline void store_bf16(uint16_t *p, float v) {
    uint32_t bits;
    memcpy(&bits, &v, 4);
    uint32_t rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;   /* nearest, ties to even */
    *p = (uint16_t)(v != v ? 0x7FC0u : rounded);                         /* NaN stays NaN */
}

static inline float finish(float v, float scale, float noise, float bias, float alpha, int leaky, float lo,
                           float hi) {
    v = v * scale + noise + bias;
    if (leaky) v = v < 0.f ? v * alpha : v;
    return v < lo ? lo : (v > hi ? hi : v);
}

#define TAPS 4   /* the filters of StyleGAN2's upsampling layers: [1, 3, 3, 1] */

#define DEFINE_KERNELS(SUFFIX, T, LOAD, STORE)                                                  \
void sgh_epilogue_##SUFFIX(T *map, int64_t pixels, int64_t channels, const float *scale,        \
                           const float *noise, float noise_gain, const float *bias,             \
                           float alpha, int leaky,                                              \
                           float lo, float hi, int threads) {                                   \
    _Pragma("omp parallel for num_threads(threads) schedule(static)")                           \
    for (int64_t p = 0; p < pixels; p++) {                                                      \
        T *row = map + p * channels;                                                            \
        float nv = noise ? noise[p] * noise_gain : 0.f;                                         \
        _Pragma("omp simd")                                                                     \
        for (int64_t c = 0; c < channels; c++)                                                  \
            STORE(row + c, finish(LOAD(row + c), scale[c], nv, bias[c], alpha, leaky, lo, hi));           \
    }                                                                                           \
}                                                                                               \
                                                                                                \
int sgh_fir_epilogue_##SUFFIX(const T *in, int64_t in_h, int64_t in_w, int64_t channels,        \
                              T *out, int64_t out_h, int64_t width,                             \
                              const float *taps_y, const float *taps_x, int pad_y, int pad_x,   \
                              const float *scale, const float *noise, float noise_gain,         \
                              const float *bias, float alpha, int leaky, float lo, float hi,    \
                              int threads) {                                                    \
    int failed = 0;                                                                             \
    /* Column sums cover the padded columns u = q + pad_x of input column q. */                \
    const int64_t span = width + TAPS - 1;                                                      \
    const int64_t u0 = pad_x > 0 ? pad_x : 0;                                                   \
    const int64_t u1 = in_w + pad_x < span ? in_w + pad_x : span;                               \
    const int64_t n = u1 > u0 ? (u1 - u0) * channels : 0;                                       \
    _Pragma("omp parallel num_threads(threads)")                                                \
    {                                                                                           \
        float *columns = calloc(span * channels, sizeof(float));                                \
        T *zero_row = calloc(n + 1, sizeof(T));                                                 \
        if (!columns || !zero_row) {                                                            \
            _Pragma("omp atomic write")                                                         \
            failed = 1;                                                                         \
        }                                                                                       \
        _Pragma("omp for schedule(static)")                                                     \
        for (int64_t h = 0; h < out_h; h++) {                                                   \
            if (!columns || !zero_row) continue;                                                \
            /* Vertical taps, rows outside the input read as zeros: one float row of sums. */   \
            const T *rows[TAPS];                                                                \
            for (int i = 0; i < TAPS; i++) {                                                    \
                int64_t r = h + i - pad_y;                                                      \
                rows[i] = r < 0 || r >= in_h ? zero_row : in + (r * in_w + u0 - pad_x) * channels; \
            }                                                                                   \
            const T *r0 = rows[0], *r1 = rows[1], *r2 = rows[2], *r3 = rows[3];                 \
            const float y0 = taps_y[0], y1 = taps_y[1], y2 = taps_y[2], y3 = taps_y[3];         \
            float *sums = columns + u0 * channels;                                              \
            _Pragma("omp simd")                                                                 \
            for (int64_t e = 0; e < n; e++)                                                     \
                sums[e] = y0 * LOAD(r0 + e) + y1 * LOAD(r1 + e) + y2 * LOAD(r2 + e) + y3 * LOAD(r3 + e); \
            /* Horizontal taps (neighbouring pixels are `channels` apart), then the epilogue. */ \
            const float x0 = taps_x[0], x1 = taps_x[1], x2 = taps_x[2], x3 = taps_x[3];         \
            const float *noise_row = noise ? noise + h * width : NULL;                          \
            T *out_row = out + h * width * channels;                                            \
            for (int64_t w = 0; w < width; w++) {                                               \
                const float *s = columns + w * channels;                                        \
                const float nv = noise_row ? noise_row[w] * noise_gain : 0.f;                   \
                T *d = out_row + w * channels;                                                  \
                _Pragma("omp simd")                                                             \
                for (int64_t c = 0; c < channels; c++) {                                        \
                    float v = x0 * s[c] + x1 * s[c + channels] + x2 * s[c + 2 * channels]       \
                              + x3 * s[c + 3 * channels];                                       \
                    STORE(d + c, finish(v, scale[c], nv, bias[c], alpha, leaky, lo, hi));       \
                }                                                                               \
            }                                                                                   \
        }                                                                                       \
        free(columns);                                                                          \
        free(zero_row);                                                                         \
    }                                                                                           \
    return failed;                                                                              \
}

DEFINE_KERNELS(f32, float, load_f32, store_f32)
DEFINE_KERNELS(bf16, uint16_t, load_bf16, store_bf16)
