/* Fused CPU kernels for the StyleGAN2 layers' inference path (see cpu_kernels.py).

   Maps are channels-last images (pixel after pixel, `channels` values each) unless said.

   For float32 (_f32) and bfloat16 stored as uint16 (_bf16):
   sgh_epilogue         in place: v = clamp(act(v * scale[channel] + noise[pixel] * noise_gain
                                                + bias[channel]), lo, hi)
   sgh_fir_epilogue     out = epilogue(separable 4-tap FIR filter of a map Y):
                        out[h, w] = sum_i sum_j taps_y[i] taps_x[j] Y[h + i - pad_y, w + j - pad_x]
                        (a correlation; zero outside Y). Y is one map `in`, or (_phases) the
                        stride-2 transposed convolution's output given as its four phases,
                        Y[2i + a, 2j + b] = phase_ab[i, j], so it is never interleaved in memory.

   For float32 only:
   sgh_act_backward     the epilogue's gradient from its output `out` (as NVIDIA's kernel computes
                        it): grad_in = grad * act'(out) where lo < out < hi, else 0; and, where
                        not NULL, grad_bias[c] = sum over pixels of grad_in and grad_noise[p] = sum
                        over channels of grad_in.
   sgh_winograd_input   a 3x3 convolution (padding 1) as Winograd F(4x4, 3x3), whose 36
   sgh_winograd_output  matrix products PyTorch runs in between (cpu_kernels.winograd_conv3x3):
                        V[k, tile, c] = (B^T d B)[k] * scale[c] of each 6x6 input tile d, then
                        out = epilogue(A^T M A) for each tile's 4x4 output pixels.
   sgh_winograd_conv    both transforms and the 36 products between them, tile block by tile
                        block (for layers whose transformed kernel fits the L2 cache).
   sgh_winograd_output_adjoint
                        the output transform's adjoint, for gradients: dM[k, tile, c] =
                        (A dY A^T)[k] of each tile's 4x4 output gradient dY.
   sgh_winograd_kernel_gradient
                        g[k, o, i] += sum over tiles of dM[k, tile, o] V[k, tile, i], both
                        transforms made tile block by tile block, never written out whole.
   sgh_upsample2x       upfirdn2d with up=2 and a separable 4-tap filter on contiguous planes
                        (StyleGAN2's image): out[p, n, w] = sum_{u, v} ty[n % 2][u] tx[w % 2][v]
                        x[p, n / 2 + dy[n % 2][u], w / 2 + dx[w % 2][v]].

   act is leaky ReLU with slope `alpha` when `leaky` is set, else the identity; a clamp
   bound of +-inf clamps nothing; noise may be NULL (no noise). Sums are float32; bfloat16
   results are rounded to nearest even once, at the end (by the CPU's VCVTNEPS2BF16 in the
   epilogue where it has AVX512-BF16, which also flushes float32 subnormals to zero). Rows
   of pixels are split across `threads` OpenMP threads (ignored when built without OpenMP).
   Functions returning int return 1 when a scratch buffer could not be allocated, 2 when they
   do not take the channel counts given (the Winograd products: multiples of 16), else 0. */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#define TAPS 4   /* the filters of StyleGAN2's upsampling layers: [1, 3, 3, 1] */

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

/* The epilogue's arguments, passed along unchanged. */
typedef struct {
    const float *scale, *noise, *bias;
    float noise_gain, alpha, lo, hi;
    int leaky;
} epilogue_t;

/* Where Y's rows are: one map, or four phase maps of a stride-2 transposed convolution of an
   x_h x x_w input (phase_00: (x_h + 1) x (x_w + 1), _01: (x_h + 1) x x_w, _10: x_h x (x_w + 1),
   _11: x_h x x_w pixels). */
typedef struct {
    const void *map;
    const void *phase[4];   /* 00, 01, 10, 11 */
    int64_t height, width, x_w, channels;
} source_t;

/* One vertical step of the upsampling filter over `count` pixels of C channels:
   dst[j * step + c] = sum_i k[i] * row_i[j * C + c]. */
static inline void taps_rows_f32(float *restrict dst, int64_t step, const float *r0, const float *r1,
                                 const float *r2, const float *r3, int64_t count, int64_t C, const float *k) {
    const float k0 = k[0], k1 = k[1], k2 = k[2], k3 = k[3];
    for (int64_t j = 0; j < count; j++, dst += step, r0 += C, r1 += C, r2 += C, r3 += C) {
        _Pragma("omp simd")
        for (int64_t c = 0; c < C; c++) dst[c] = k0 * r0[c] + k1 * r1[c] + k2 * r2[c] + k3 * r3[c];
    }
}

static inline void taps_rows_bf16(float *restrict dst, int64_t step, const uint16_t *r0, const uint16_t *r1,
                                  const uint16_t *r2, const uint16_t *r3, int64_t count, int64_t C, const float *k) {
    const float k0 = k[0], k1 = k[1], k2 = k[2], k3 = k[3];
    for (int64_t j = 0; j < count; j++, dst += step, r0 += C, r1 += C, r2 += C, r3 += C) {
        _Pragma("omp simd")
        for (int64_t c = 0; c < C; c++)
            dst[c] = k0 * load_bf16(r0 + c) + k1 * load_bf16(r1 + c) + k2 * load_bf16(r2 + c) + k3 * load_bf16(r3 + c);
    }
}

/* With AVX-512, fir_ makes each output row on whole vectors of 16 channels, its column sums in
   registers: a column's sum is made once, when it enters the 4-tap window, and the four
   outputs that use it read it from there (the row buffer of vertical_ and horizontal_ cost
   one store and four loads per sum). 32 channels at 1024x512 from the four phases: 3.7 -> 3.0
   ms in bfloat16, 5.1 -> 3.1 ms in float32 (measured). The operations and their order are
   vertical_'s and horizontal_'s, so bfloat16 results are the same bits. */
#if defined(__AVX512F__)
/* 16 values from p + at widened to float32 (bfloat16: exact, the bits move up). */
static inline __attribute__((always_inline)) __m512 load16(const void *p, int64_t at, int bf16) {
    if (bf16)
        return _mm512_castsi512_ps(_mm512_slli_epi32(
            _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)((const uint16_t *)p + at))), 16));
    return _mm512_loadu_ps((const float *)p + at);
}

/* Where tap row i of an output row lies: column q of parity b is element rows[b][i] + (q >> shift) * C. */
typedef struct {
    const void *rows[2][TAPS];
    int shift;
} tap_rows_t;

/* sum[g] = sum_i k[i] * Y[tap row i, column q], channels c + 16g; zero for columns outside Y. */
static inline __attribute__((always_inline)) void column_sum(__m512 *sum, const tap_rows_t *t, int64_t q,
                                                             int64_t y_w, int64_t C, int64_t c, const __m512 *k,
                                                             int G, int bf16) {
    if (q < 0 || q >= y_w) {
        for (int g = 0; g < G; g++) sum[g] = _mm512_setzero_ps();
        return;
    }
    const int64_t at = (q >> t->shift) * C + c;
    const void *const *r = t->rows[q & 1];
    for (int g = 0; g < G; g++) {
        __m512 v = _mm512_mul_ps(k[0], load16(r[0], at + 16 * g, bf16));
        v = _mm512_fmadd_ps(k[1], load16(r[1], at + 16 * g, bf16), v);
        v = _mm512_fmadd_ps(k[2], load16(r[2], at + 16 * g, bf16), v);
        sum[g] = _mm512_fmadd_ps(k[3], load16(r[3], at + 16 * g, bf16), v);
    }
}

/* Channels c .. c + 16G - 1 (G <= 2, so that everything stays in registers) of one output row. */
static inline __attribute__((always_inline)) void sliding_row(void *out_row, const tap_rows_t *t, int64_t y_w,
                                                              int64_t C, int64_t c, int64_t width, int pad_x,
                                                              const float *taps_y, const float *taps_x,
                                                              const float *noise_row, const epilogue_t *e, int G,
                                                              int bf16) {
    const __m512 ky[TAPS] = {_mm512_set1_ps(taps_y[0]), _mm512_set1_ps(taps_y[1]), _mm512_set1_ps(taps_y[2]),
                             _mm512_set1_ps(taps_y[3])};
    const __m512 kx[TAPS] = {_mm512_set1_ps(taps_x[0]), _mm512_set1_ps(taps_x[1]), _mm512_set1_ps(taps_x[2]),
                             _mm512_set1_ps(taps_x[3])};
    const __m512 low = _mm512_set1_ps(e->lo), high = _mm512_set1_ps(e->hi);
    const __m512 slope = _mm512_set1_ps(e->leaky ? e->alpha : 1.f);
    __m512 scale[2], bias[2], s0[2], s1[2], s2[2], s3[2];   /* s0..s3: the window's column sums */
    for (int g = 0; g < G; g++) {
        scale[g] = _mm512_loadu_ps(e->scale + c + 16 * g);
        bias[g] = _mm512_loadu_ps(e->bias + c + 16 * g);
    }
    column_sum(s0, t, -pad_x, y_w, C, c, ky, G, bf16);
    column_sum(s1, t, 1 - pad_x, y_w, C, c, ky, G, bf16);
    column_sum(s2, t, 2 - pad_x, y_w, C, c, ky, G, bf16);
    for (int64_t w = 0; w < width; w++) {
        column_sum(s3, t, w + 3 - pad_x, y_w, C, c, ky, G, bf16);
        const __m512 nv = _mm512_set1_ps(noise_row ? noise_row[w] * e->noise_gain : 0.f);
        for (int g = 0; g < G; g++) {
            __m512 v = _mm512_mul_ps(kx[0], s0[g]);
            v = _mm512_fmadd_ps(kx[1], s1[g], v);
            v = _mm512_fmadd_ps(kx[2], s2[g], v);
            v = _mm512_fmadd_ps(kx[3], s3[g], v);
            v = _mm512_add_ps(_mm512_fmadd_ps(v, scale[g], nv), bias[g]);
            v = _mm512_mask_mul_ps(v, _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ), v, slope);
            v = _mm512_min_ps(high, _mm512_max_ps(low, v));   /* this order lets a NaN through, as finish() */
            const int64_t at = w * C + c + 16 * g;
#if defined(__AVX512BF16__)
            if (bf16)   /* VCVTNEPS2BF16: nearest even, NaN stays NaN */
                _mm256_storeu_si256((__m256i *)((uint16_t *)out_row + at), (__m256i)_mm512_cvtneps_pbh(v));
            else
#endif
                _mm512_storeu_ps((float *)out_row + at, v);
            s0[g] = s1[g];
            s1[g] = s2[g];
            s2[g] = s3[g];
        }
    }
}

static inline __attribute__((always_inline)) void sliding_rows(void *out_row, const source_t *y, int64_t h,
                                                               int pad_y, int pad_x, int64_t width,
                                                               const float *taps_y, const float *taps_x,
                                                               const void *zeros, const float *noise_row,
                                                               const epilogue_t *e, int bf16) {
    const int64_t C = y->channels, size = bf16 ? 2 : 4;
    tap_rows_t t = {.shift = y->map ? 0 : 1};
    for (int i = 0; i < TAPS; i++) {
        const int64_t r = h + i - pad_y;
        for (int b = 0; b < 2; b++) {
            if (r < 0 || r >= y->height)
                t.rows[b][i] = zeros;
            else if (y->map)
                t.rows[b][i] = (const char *)y->map + r * y->width * C * size;
            else
                t.rows[b][i] = (const char *)y->phase[2 * (r & 1) + b] + (r >> 1) * (y->x_w + 1 - b) * C * size;
        }
    }
    int64_t c = 0;
    for (; c + 32 <= C; c += 32)
        sliding_row(out_row, &t, y->width, C, c, width, pad_x, taps_y, taps_x, noise_row, e, 2, bf16);
    if (c < C)
        sliding_row(out_row, &t, y->width, C, c, width, pad_x, taps_y, taps_x, noise_row, e, 1, bf16);
}
#endif

/* fir_'s row step with sliding_rows where it applies (returns 1). */
static inline int sliding_row_f32(float *out_row, const source_t *y, int64_t h, int pad_y, int pad_x, int64_t width,
                                  const float *taps_y, const float *taps_x, const float *zeros,
                                  const float *noise_row, const epilogue_t *e) {
#if defined(__AVX512F__)
    if (y->channels % 16 == 0) {
        sliding_rows(out_row, y, h, pad_y, pad_x, width, taps_y, taps_x, zeros, noise_row, e, 0);
        return 1;
    }
#endif
    (void)out_row; (void)y; (void)h; (void)pad_y; (void)pad_x; (void)width; (void)taps_y; (void)taps_x;
    (void)zeros; (void)noise_row; (void)e;
    return 0;
}

static inline int sliding_row_bf16(uint16_t *out_row, const source_t *y, int64_t h, int pad_y, int pad_x,
                                   int64_t width, const float *taps_y, const float *taps_x, const uint16_t *zeros,
                                   const float *noise_row, const epilogue_t *e) {
#if defined(__AVX512BF16__)
    if (y->channels % 16 == 0) {
        sliding_rows(out_row, y, h, pad_y, pad_x, width, taps_y, taps_x, zeros, noise_row, e, 1);
        return 1;
    }
#endif
    (void)out_row; (void)y; (void)h; (void)pad_y; (void)pad_x; (void)width; (void)taps_y; (void)taps_x;
    (void)zeros; (void)noise_row; (void)e;
    return 0;
}

#define DEFINE_KERNELS(SUFFIX, T, LOAD, STORE)                                                      \
                                                                                                    \
static void epilogue_##SUFFIX(T *map, int64_t pixels, int64_t channels, const float *scale,          \
                             const float *noise, float noise_gain, const float *bias, float alpha,  \
                             int leaky, float lo, float hi, int threads) {                          \
    _Pragma("omp parallel for num_threads(threads) schedule(static)")                               \
    for (int64_t p = 0; p < pixels; p++) {                                                          \
        T *row = map + p * channels;                                                                \
        float nv = noise ? noise[p] * noise_gain : 0.f;                                             \
        _Pragma("omp simd")                                                                         \
        for (int64_t c = 0; c < channels; c++)                                                      \
            STORE(row + c, finish(LOAD(row + c), scale[c], nv, bias[c], alpha, leaky, lo, hi));     \
    }                                                                                               \
}                                                                                                   \
                                                                                                    \
/* Pixel q of Y's row r. */                                                                         \
static inline const T *pixel_##SUFFIX(const source_t *y, int64_t r, int64_t q) {                    \
    if (y->map)                                                                                     \
        return (const T *)y->map + (r * y->width + q) * y->channels;                                \
    int64_t a = r & 1, b = q & 1, row_width = y->x_w + 1 - b;                                       \
    return (const T *)y->phase[2 * a + b] + ((r >> 1) * row_width + (q >> 1)) * y->channels;       \
}                                                                                                   \
                                                                                                    \
/* columns[u] = sum_i taps[i] * Y[h + i - pad_y, u - pad_x] for the columns u0 <= u < u1 that lie   \
   inside Y (the others stay zero); `zeros` stands in for rows outside Y. */                        \
static void vertical_##SUFFIX(float *columns, const source_t *y, int64_t h, int pad_y, int pad_x,   \
                              int64_t u0, int64_t u1, const float *taps, const T *zeros) {          \
    const int64_t C = y->channels;                                                                  \
    int inside[TAPS];                                                                               \
    for (int i = 0; i < TAPS; i++) inside[i] = h + i - pad_y >= 0 && h + i - pad_y < y->height;     \
    if (y->map && u1 > u0) {   /* one contiguous run per row */                                     \
        const T *r[TAPS];                                                                           \
        for (int i = 0; i < TAPS; i++)                                                              \
            r[i] = inside[i] ? pixel_##SUFFIX(y, h + i - pad_y, u0 - pad_x) : zeros;                \
        taps_rows_##SUFFIX(columns + u0 * C, 0, r[0], r[1], r[2], r[3], 1, (u1 - u0) * C, taps);   \
        return;                                                                                     \
    }                                                                                               \
    /* Phases: Y's even and odd columns come from two phase rows, each a contiguous run. */         \
    for (int64_t b = 0; b < 2; b++) {                                                               \
        const int64_t q_first = u0 - pad_x + ((b - (u0 - pad_x)) & 1);   /* first column of parity b */\
        if (q_first >= u1 - pad_x) continue;                                                        \
        const int64_t count = (u1 - pad_x - q_first + 1) / 2;                                       \
        const T *r[TAPS];                                                                           \
        for (int i = 0; i < TAPS; i++)                                                              \
            r[i] = inside[i] ? pixel_##SUFFIX(y, h + i - pad_y, q_first) : zeros;                   \
        taps_rows_##SUFFIX(columns + (q_first + pad_x) * C, 2 * C, r[0], r[1], r[2], r[3], count, C,  \
                           taps);                                                                   \
    }                                                                                               \
}                                                                                                   \
                                                                                                    \
/* out_row[w] = epilogue(sum_j taps[j] * columns[w + j]); neighbouring pixels are C apart. */       \
static void horizontal_##SUFFIX(T *out_row, const float *columns, int64_t width, int64_t C,         \
                                const float *taps, const float *noise_row, const epilogue_t *e) {   \
    const float x0 = taps[0], x1 = taps[1], x2 = taps[2], x3 = taps[3];                             \
    /* Locals, not e->...: the stores below could alias the struct for all the compiler knows, */   \
    /* and reloading its fields in the loop kept it from vectorising (2x slower, measured). */      \
    const float *restrict scale = e->scale, *restrict bias = e->bias;                               \
    const float noise_gain = e->noise_gain, alpha = e->alpha, lo = e->lo, hi = e->hi;               \
    const int leaky = e->leaky;                                                                     \
    for (int64_t w = 0; w < width; w++) {                                                           \
        const float *restrict s = columns + w * C;                                                  \
        const float nv = noise_row ? noise_row[w] * noise_gain : 0.f;                               \
        T *restrict d = out_row + w * C;                                                            \
        _Pragma("omp simd")                                                                         \
        for (int64_t c = 0; c < C; c++) {                                                           \
            float v = x0 * s[c] + x1 * s[c + C] + x2 * s[c + 2 * C] + x3 * s[c + 3 * C];            \
            STORE(d + c, finish(v, scale[c], nv, bias[c], alpha, leaky, lo, hi));                   \
        }                                                                                           \
    }                                                                                               \
}                                                                                                   \
                                                                                                    \
static int fir_##SUFFIX(const source_t *y, T *out, int64_t out_h, int64_t width, const float *taps_y, \
                        const float *taps_x, int pad_y, int pad_x, const epilogue_t *e, int threads) { \
    int failed = 0;                                                                                 \
    const int64_t C = y->channels;                                                                  \
    /* Column sums cover the padded columns u = q + pad_x of Y's column q. */                       \
    const int64_t span = width + TAPS - 1;                                                          \
    const int64_t u0 = pad_x > 0 ? pad_x : 0;                                                       \
    const int64_t u1 = y->width + pad_x < span ? y->width + pad_x : span;                           \
    _Pragma("omp parallel num_threads(threads)")                                                    \
    {                                                                                               \
        float *columns = calloc(span * C, sizeof(float));                                           \
        T *zeros = calloc((span > y->width ? span : y->width) * C, sizeof(T));   /* rows outside Y */ \
        if (!columns || !zeros) {                                                                   \
            _Pragma("omp atomic write")                                                             \
            failed = 1;                                                                             \
        }                                                                                           \
        _Pragma("omp for schedule(static)")                                                         \
        for (int64_t h = 0; h < out_h; h++) {                                                       \
            if (!columns || !zeros) continue;                                                       \
            if (sliding_row_##SUFFIX(out + h * width * C, y, h, pad_y, pad_x, width, taps_y, taps_x,    \
                                     zeros, e->noise ? e->noise + h * width : NULL, e))              \
                continue;                                                                           \
            vertical_##SUFFIX(columns, y, h, pad_y, pad_x, u0, u1, taps_y, zeros);                  \
            horizontal_##SUFFIX(out + h * width * C, columns, width, C, taps_x,                     \
                                e->noise ? e->noise + h * width : NULL, e);                         \
        }                                                                                           \
        free(columns);                                                                              \
        free(zeros);                                                                                \
    }                                                                                               \
    return failed;                                                                                  \
}                                                                                                   \
                                                                                                    \
int sgh_fir_epilogue_##SUFFIX(const T *in, int64_t in_h, int64_t in_w, int64_t channels, T *out,    \
                              int64_t out_h, int64_t width, const float *taps_y,                    \
                              const float *taps_x, int pad_y, int pad_x, const float *scale,        \
                              const float *noise, float noise_gain, const float *bias, float alpha, \
                              int leaky, float lo, float hi, int threads) {                         \
    source_t y = {in, {0}, in_h, in_w, 0, channels};                                                \
    epilogue_t e = {scale, noise, bias, noise_gain, alpha, lo, hi, leaky};                          \
    return fir_##SUFFIX(&y, out, out_h, width, taps_y, taps_x, pad_y, pad_x, &e, threads);          \
}                                                                                                   \
                                                                                                    \
int sgh_fir_epilogue_phases_##SUFFIX(const T *p00, const T *p01, const T *p10, const T *p11,        \
                                     int64_t x_h, int64_t x_w, int64_t channels, T *out,            \
                                     int64_t out_h, int64_t width, const float *taps_y,             \
                                     const float *taps_x, int pad_y, int pad_x,                     \
                                     const float *scale, const float *noise, float noise_gain,      \
                                     const float *bias, float alpha, int leaky, float lo, float hi, \
                                     int threads) {                                                 \
    source_t y = {NULL, {p00, p01, p10, p11}, 2 * x_h + 1, 2 * x_w + 1, x_w, channels};            \
    epilogue_t e = {scale, noise, bias, noise_gain, alpha, lo, hi, leaky};                          \
    return fir_##SUFFIX(&y, out, out_h, width, taps_y, taps_x, pad_y, pad_x, &e, threads);          \
}

DEFINE_KERNELS(f32, float, load_f32, store_f32)
DEFINE_KERNELS(bf16, uint16_t, load_bf16, store_bf16)

void sgh_epilogue_f32(float *map, int64_t pixels, int64_t channels, const float *scale, const float *noise,
                      float noise_gain, const float *bias, float alpha, int leaky, float lo, float hi, int threads) {
    epilogue_f32(map, pixels, channels, scale, noise, noise_gain, bias, alpha, leaky, lo, hi, threads);
}

#if defined(__AVX512BF16__)
/* The bfloat16 epilogue one AVX-512 vector of channels at a time, rounded by the CPU's own
   instruction (VCVTNEPS2BF16: to nearest even, NaN stays NaN). Rounding by hand took about
   a third of the portable version's time (measured). Min and max take their operands in
   the order that lets a NaN through, as finish() does. */
static void epilogue_bf16_avx512(uint16_t *map, int64_t pixels, int64_t channels, const float *scale,
                                 const float *noise, float noise_gain, const float *bias, float alpha, int leaky,
                                 float lo, float hi, int threads) {
    const __m512 low = _mm512_set1_ps(lo), high = _mm512_set1_ps(hi), slope = _mm512_set1_ps(leaky ? alpha : 1.f);
    _Pragma("omp parallel for num_threads(threads) schedule(static)")
    for (int64_t p = 0; p < pixels; p++) {
        uint16_t *row = map + p * channels;
        const __m512 nv = _mm512_set1_ps(noise ? noise[p] * noise_gain : 0.f);
        for (int64_t c = 0; c < channels; c += 16) {
            __m512i bits = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(row + c)));
            __m512 v = _mm512_castsi512_ps(_mm512_slli_epi32(bits, 16));
            v = _mm512_add_ps(_mm512_fmadd_ps(v, _mm512_loadu_ps(scale + c), nv), _mm512_loadu_ps(bias + c));
            v = _mm512_mask_mul_ps(v, _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ), v, slope);
            v = _mm512_min_ps(high, _mm512_max_ps(low, v));
            _mm256_storeu_si256((__m256i *)(row + c), (__m256i)_mm512_cvtneps_pbh(v));
        }
    }
}
#endif

void sgh_epilogue_bf16(uint16_t *map, int64_t pixels, int64_t channels, const float *scale, const float *noise,
                       float noise_gain, const float *bias, float alpha, int leaky, float lo, float hi, int threads) {
#if defined(__AVX512BF16__)
    if (channels % 16 == 0) {
        epilogue_bf16_avx512(map, pixels, channels, scale, noise, noise_gain, bias, alpha, leaky, lo, hi, threads);
        return;
    }
#endif
    epilogue_bf16(map, pixels, channels, scale, noise, noise_gain, bias, alpha, leaky, lo, hi, threads);
}

#define BIAS_LANES 16   /* channels summed together: one AVX-512 vector */

/* Adds the bias gradients of pixels p0 .. p1 - 1 (rows of d, C apart) to `sums`: each block of
   BIAS_LANES channels summed down the pixels in registers, then added in double. Summed pixel by
   pixel into `sums` instead, the 64-channel maps took as long as the gradient itself. */
static void add_bias_sums(const float *d, int64_t p0, int64_t p1, int64_t C, double *sums) {
    int64_t c0 = 0;
    for (; c0 + BIAS_LANES <= C; c0 += BIAS_LANES) {
        float block[BIAS_LANES] = {0};
        for (int64_t p = p0; p < p1; p++)
            for (int l = 0; l < BIAS_LANES; l++) block[l] += d[p * C + c0 + l];
        for (int l = 0; l < BIAS_LANES; l++) sums[c0 + l] += block[l];
    }
    for (; c0 < C; c0++) {
        float total = 0.f;
        for (int64_t p = p0; p < p1; p++) total += d[p * C + c0];
        sums[c0] += total;
    }
}

#define BIAS_BLOCK 64   /* pixels summed in float32 (still in the cache) before the double totals */

int sgh_act_backward(const float *grad, const float *out, int64_t pixels, int64_t channels, float alpha, int leaky,
                     float lo, float hi, float *grad_in, float *grad_bias, float *grad_noise, int threads) {
    const int64_t C = channels;
    double *partial = NULL;   /* each thread's bias sums */
    if (grad_bias && !(partial = calloc((size_t)(threads * C), sizeof(double)))) return 1;
    _Pragma("omp parallel for num_threads(threads) schedule(static)")
    for (int t = 0; t < threads; t++) {
        double *sums = partial ? partial + t * C : NULL;
        const int64_t last = pixels * (t + 1) / threads;
        for (int64_t p0 = pixels * t / threads; p0 < last; p0 += BIAS_BLOCK) {
            const int64_t p1 = p0 + BIAS_BLOCK < last ? p0 + BIAS_BLOCK : last;
            for (int64_t p = p0; p < p1; p++) {
                const float *g = grad + p * C, *o = out + p * C;
                float *d = grad_in + p * C, pixel_sum = 0.f;
                _Pragma("omp simd reduction(+:pixel_sum)")
                for (int64_t c = 0; c < C; c++) {
                    float v = o[c], slope = leaky && !(v > 0.f) ? alpha : 1.f;
                    d[c] = v > lo && v < hi ? g[c] * slope : 0.f;
                    pixel_sum += d[c];
                }
                if (grad_noise) grad_noise[p] = pixel_sum;
            }
            if (sums) add_bias_sums(grad_in, p0, p1, C, sums);
        }
    }
    if (grad_bias) {
        for (int64_t c = 0; c < C; c++) {
            double total = 0.0;
            for (int t = 0; t < threads; t++) total += partial[t * C + c];
            grad_bias[c] = (float)total;
        }
        free(partial);
    }
    return 0;
}

/* Winograd F(4x4, 3x3), after Lavin and Gray (interpolation points 0, +-1, +-2 and infinity):
   for a 6x6 input tile d and a 3x3 kernel g the 4x4 correlation output is
   A^T [(G g G^T) * (B^T d B)] A, with
     B^T = [4  0 -5  0  1  0]    A^T = [1  1  1  1  1  0]
           [0 -4 -4  1  1  0]          [0  1 -1  2 -2  0]
           [0  4 -4 -1  1  0]          [0  1  1  4  4  0]
           [0 -2 -1  2  1  0]          [0  1 -1  8 -8  1]
           [0  2 -1 -2  1  0]
           [0  4  0 -5  0  1]
   Tile (ti, tj) reads input rows 4ti - 1 .. 4ti + 4 and columns 4tj - 1 .. 4tj + 4 (zeros
   outside) and writes output pixels 4ti .. 4ti + 3, 4tj .. 4tj + 3 that lie inside the map;
   ceil(H / 4) x ceil(W / 4) tiles, numbered row by row. Transformed tiles are [36, tiles, C]:
   the 36 products PyTorch runs in between are then 36 plain matrices. Channels are taken
   LANES at a time, so that each step below is one vector operation per lane block. */

#define LANES 16

#if defined(__GNUC__)
/* LANES floats as one value (GCC and clang vector extensions): whole lane blocks are written
   with these, so each step is one vector instruction (or two on AVX2) whatever the compiler's
   auto-vectorizer would make of a loop over the lanes. */
typedef float lanes_t __attribute__((vector_size(4 * LANES)));
typedef float unaligned_lanes_t __attribute__((vector_size(4 * LANES), aligned(4), may_alias));
/* Macros, not functions: a function passing vectors by value draws ABI notes where the
   vectors are wider than the CPU's. */
#define load_lanes(p) ((lanes_t)*(const unaligned_lanes_t *)(p))
#define store_lanes(p, v) (*(unaligned_lanes_t *)(p) = (v))
#define WHOLE_LANE_BLOCKS 1
/* In a tile function: hand a whole lane block (n == LANES) to its vector version. */
#define ON_WHOLE_BLOCK(call) do { if (n == LANES) { call; return; } } while (0)
#else
#define WHOLE_LANE_BLOCKS 0
#define ON_WHOLE_BLOCK(call) do { } while (0)
#endif

/* B^T v for six lane vectors v[i0], ..., v[i5] (a column or a row of the tile) into t. */
static inline void input_step(float v[][LANES], float t[][LANES], const int *i, int n) {
    for (int l = 0; l < n; l++) {
        float v0 = v[i[0]][l], v1 = v[i[1]][l], v2 = v[i[2]][l], v3 = v[i[3]][l], v4 = v[i[4]][l], v5 = v[i[5]][l];
        t[i[0]][l] = 4.f * v0 - 5.f * v2 + v4;
        t[i[1]][l] = v3 + v4 - 4.f * (v1 + v2);
        t[i[2]][l] = v4 - v3 + 4.f * (v1 - v2);
        t[i[3]][l] = v4 - v2 + 2.f * (v3 - v1);
        t[i[4]][l] = v4 - v2 + 2.f * (v1 - v3);
        t[i[5]][l] = 4.f * v1 - 5.f * v3 + v5;
    }
}

/* A^T m for six lane vectors m[i0..i5] into four, r[j0..j3]. */
static inline void output_step(float m[][LANES], float r[][LANES], const int *i, const int *j, int n) {
    for (int l = 0; l < n; l++) {
        float s12 = m[i[1]][l] + m[i[2]][l], d12 = m[i[1]][l] - m[i[2]][l];
        float s34 = m[i[3]][l] + m[i[4]][l], d34 = m[i[3]][l] - m[i[4]][l];
        r[j[0]][l] = m[i[0]][l] + s12 + s34;
        r[j[1]][l] = d12 + 2.f * d34;
        r[j[2]][l] = s12 + 4.f * s34;
        r[j[3]][l] = d12 + 8.f * d34 + m[i[5]][l];
    }
}

/* A y for four lane vectors y[i0..i3] into six, t[j0..j5]: the output transform's adjoint. */
static inline void adjoint_step(float y[][LANES], float t[][LANES], const int *i, const int *j, int n) {
    for (int l = 0; l < n; l++) {
        float y0 = y[i[0]][l], y1 = y[i[1]][l], y2 = y[i[2]][l], y3 = y[i[3]][l];
        float s02 = y0 + y2, s13 = y1 + y3, f02 = y0 + 4.f * y2, f13 = 2.f * y1 + 8.f * y3;
        t[j[0]][l] = y0;
        t[j[1]][l] = s02 + s13;
        t[j[2]][l] = s02 - s13;
        t[j[3]][l] = f02 + f13;
        t[j[4]][l] = f02 - f13;
        t[j[5]][l] = y3;
    }
}

/* Index sets: tile column b / row a of a 6x6 (or 4-row, 6-column) block stored row by row. */
static const int COL6[6][6] = {{0, 6, 12, 18, 24, 30}, {1, 7, 13, 19, 25, 31}, {2, 8, 14, 20, 26, 32},
                               {3, 9, 15, 21, 27, 33}, {4, 10, 16, 22, 28, 34}, {5, 11, 17, 23, 29, 35}};
static const int ROW6[6][6] = {{0, 1, 2, 3, 4, 5}, {6, 7, 8, 9, 10, 11}, {12, 13, 14, 15, 16, 17},
                               {18, 19, 20, 21, 22, 23}, {24, 25, 26, 27, 28, 29}, {30, 31, 32, 33, 34, 35}};
static const int COL4[4][4] = {{0, 4, 8, 12}, {1, 5, 9, 13}, {2, 6, 10, 14}, {3, 7, 11, 15}};
static const int ROW4[6][4] = {{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9, 10, 11}, {12, 13, 14, 15}, {16, 17, 18, 19},
                               {20, 21, 22, 23}};
static const int COL4_OF6[6][4] = {{0, 6, 12, 18}, {1, 7, 13, 19}, {2, 8, 14, 20}, {3, 9, 15, 21},
                                   {4, 10, 16, 22}, {5, 11, 17, 23}};   /* a 4-row, 6-column block */
static const int COL6_OF4[4][6] = {{0, 4, 8, 12, 16, 20}, {1, 5, 9, 13, 17, 21}, {2, 6, 10, 14, 18, 22},
                                   {3, 7, 11, 15, 19, 23}};             /* a 6-row, 4-column block */

/* Runs TILE(ti, tj, c0, n) for every tile (tiles split across threads) and every block of
   LANES channels in it: n = LANES, a constant, for the whole blocks, so that they compile to
   whole vectors; the remainder last. */
#define FOR_EACH_TILE_BLOCK(height, width, channels, threads, TILE)                                  \
    _Pragma("omp parallel for collapse(2) num_threads(threads) schedule(static)")                    \
    for (int64_t ti = 0; ti < ((height) + 3) / 4; ti++)                                              \
        for (int64_t tj = 0; tj < ((width) + 3) / 4; tj++) {                                         \
            int64_t c0 = 0;                                                                          \
            for (; c0 + LANES <= (channels); c0 += LANES) TILE(ti, tj, c0, LANES);                   \
            if (c0 < (channels)) TILE(ti, tj, c0, (int)((channels) - c0));                           \
        }

#if WHOLE_LANE_BLOCKS
/* input_step and output_step on whole lane blocks. */
static inline void input_step_lanes(const lanes_t *v, lanes_t *t, const int *i) {
    const lanes_t v0 = v[i[0]], v1 = v[i[1]], v2 = v[i[2]], v3 = v[i[3]], v4 = v[i[4]], v5 = v[i[5]];
    t[i[0]] = 4.f * v0 - 5.f * v2 + v4;
    t[i[1]] = v3 + v4 - 4.f * (v1 + v2);
    t[i[2]] = v4 - v3 + 4.f * (v1 - v2);
    t[i[3]] = v4 - v2 + 2.f * (v3 - v1);
    t[i[4]] = v4 - v2 + 2.f * (v1 - v3);
    t[i[5]] = 4.f * v1 - 5.f * v3 + v5;
}

static inline void output_step_lanes(const lanes_t *m, lanes_t *r, const int *i, const int *j) {
    const lanes_t s12 = m[i[1]] + m[i[2]], d12 = m[i[1]] - m[i[2]];
    const lanes_t s34 = m[i[3]] + m[i[4]], d34 = m[i[3]] - m[i[4]];
    r[j[0]] = m[i[0]] + s12 + s34;
    r[j[1]] = d12 + 2.f * d34;
    r[j[2]] = s12 + 4.f * s34;
    r[j[3]] = d12 + 8.f * d34 + m[i[5]];
}

static void input_tile_lanes(const float *x, int64_t height, int64_t width, int64_t C, const float *scale,
                             int64_t ti, int64_t tj, int64_t c0, float *out, int64_t k_step) {
    lanes_t d[36], t[36];
    const lanes_t factor = scale ? load_lanes(scale + c0) : (lanes_t){0} + 1.f;
    for (int a = 0; a < 6; a++)
        for (int b = 0; b < 6; b++) {
            const int64_t r = 4 * ti + a - 1, q = 4 * tj + b - 1;
            d[6 * a + b] = r >= 0 && r < height && q >= 0 && q < width ?
                load_lanes(x + (r * width + q) * C + c0) * factor : (lanes_t){0};
        }
    for (int b = 0; b < 6; b++) input_step_lanes(d, t, COL6[b]);   /* t = B^T d */
    for (int a = 0; a < 6; a++) input_step_lanes(t, d, ROW6[a]);   /* d = t B */
    for (int k = 0; k < 36; k++) store_lanes(out + k * k_step + c0, d[k]);
}

static void output_tile_lanes(const float *m, int64_t height, int64_t width, int64_t C, float *y,
                              const epilogue_t *e, int64_t ti, int64_t tj, int64_t c0, int64_t k_step) {
    lanes_t s[36], r[24];
    for (int k = 0; k < 36; k++) s[k] = load_lanes(m + k * k_step + c0);
    for (int b = 0; b < 6; b++) output_step_lanes(s, r, COL6[b], COL4_OF6[b]);   /* r = A^T s, 4 x 6 */
    for (int a = 0; a < 4; a++) output_step_lanes(r, s, ROW6[a], ROW4[a]);       /* s = r A, 4 x 4 */
    const lanes_t scale = load_lanes(e->scale + c0), bias = load_lanes(e->bias + c0);
    const float alpha = e->alpha, lo = e->lo, hi = e->hi;
    const int leaky = e->leaky;
    for (int p = 0; p < 16; p++) {
        const int64_t row = 4 * ti + p / 4, col = 4 * tj + p % 4;
        if (row >= height || col >= width) continue;
        const int64_t pixel = row * width + col;
        lanes_t v = s[p] * scale + (e->noise ? e->noise[pixel] * e->noise_gain : 0.f) + bias;
        float values[LANES];
        memcpy(values, &v, sizeof values);
        for (int l = 0; l < LANES; l++) {   /* the activation and clamp as finish() has them */
            float u = values[l];
            if (leaky) u = u < 0.f ? u * alpha : u;
            values[l] = u < lo ? lo : (u > hi ? hi : u);
        }
        memcpy(y + pixel * C + c0, values, sizeof values);
    }
}
#endif

static inline void input_tile(const float *x, int64_t height, int64_t width, int64_t C, const float *scale,
                              int64_t ti, int64_t tj, int64_t c0, int n, float *out, int64_t k_step) {
    ON_WHOLE_BLOCK(input_tile_lanes(x, height, width, C, scale, ti, tj, c0, out, k_step));
    float d[36][LANES], t[36][LANES];
    for (int a = 0; a < 6; a++)
        for (int b = 0; b < 6; b++) {
            int64_t r = 4 * ti + a - 1, q = 4 * tj + b - 1;
            float *dst = d[6 * a + b];
            if (r >= 0 && r < height && q >= 0 && q < width) {
                const float *src = x + (r * width + q) * C + c0;
                for (int l = 0; l < n; l++) dst[l] = src[l] * (scale ? scale[c0 + l] : 1.f);
            } else {
                for (int l = 0; l < n; l++) dst[l] = 0.f;
            }
        }
    for (int b = 0; b < 6; b++) input_step(d, t, COL6[b], n);   /* t = B^T d */
    for (int a = 0; a < 6; a++) input_step(t, d, ROW6[a], n);   /* d = t B */
    for (int k = 0; k < 36; k++)
        for (int l = 0; l < n; l++) out[k * k_step + c0 + l] = d[k][l];
}

void sgh_winograd_input(const float *x, int64_t height, int64_t width, int64_t channels, const float *scale,
                        float *v, int threads) {
    const int64_t tiles_w = (width + 3) / 4, k_step = (height + 3) / 4 * tiles_w * channels;
#define TILE(ti, tj, c0, n) \
    input_tile(x, height, width, channels, scale, ti, tj, c0, n, v + ((ti) * tiles_w + (tj)) * channels, k_step)
    FOR_EACH_TILE_BLOCK(height, width, channels, threads, TILE)
#undef TILE
}

static inline void output_tile(const float *m, int64_t height, int64_t width, int64_t C, float *y,
                               const epilogue_t *e, int64_t ti, int64_t tj, int64_t c0, int n, int64_t k_step) {
    ON_WHOLE_BLOCK(output_tile_lanes(m, height, width, C, y, e, ti, tj, c0, k_step));
    float s[36][LANES], r[24][LANES];
    for (int k = 0; k < 36; k++)
        for (int l = 0; l < n; l++) s[k][l] = m[k * k_step + c0 + l];
    for (int b = 0; b < 6; b++) output_step(s, r, COL6[b], COL4_OF6[b], n);   /* r = A^T s, 4 x 6 */
    for (int a = 0; a < 4; a++) output_step(r, s, ROW6[a], ROW4[a], n);       /* s = r A, 4 x 4 */
    for (int p = 0; p < 16; p++) {
        int64_t row = 4 * ti + p / 4, col = 4 * tj + p % 4;
        if (row >= height || col >= width) continue;
        int64_t pixel = row * width + col;
        float noise = e->noise ? e->noise[pixel] * e->noise_gain : 0.f;
        float *dst = y + pixel * C + c0;
        for (int l = 0; l < n; l++)
            dst[l] = finish(s[p][l], e->scale[c0 + l], noise, e->bias[c0 + l], e->alpha, e->leaky, e->lo, e->hi);
    }
}

void sgh_winograd_output(const float *m, int64_t height, int64_t width, int64_t channels, float *y,
                         const float *scale, const float *noise, float noise_gain, const float *bias, float alpha,
                         int leaky, float lo, float hi, int threads) {
    const int64_t tiles_w = (width + 3) / 4, k_step = (height + 3) / 4 * tiles_w * channels;
    const epilogue_t e = {scale, noise, bias, noise_gain, alpha, lo, hi, leaky};
#define TILE(ti, tj, c0, n) \
    output_tile(m + ((ti) * tiles_w + (tj)) * channels, height, width, channels, y, &e, ti, tj, c0, n, k_step)
    FOR_EACH_TILE_BLOCK(height, width, channels, threads, TILE)
#undef TILE
}

/* sgh_winograd_conv: the whole convolution here, tile block by tile block, so that a block's
   transformed tiles and products stay in the cache between the three steps (the 36 products
   by torch.bmm in between need two passes over 2.25x the map each way; at 64 channels those
   passes cost what Winograd saves). The products run on a register-blocked kernel: ROWS
   tiles x 64 output channels of accumulators, one input channel at a time. */

#define ROWS 6   /* tiles per register block */

/* The register blocks hold the CPU's own vectors: 16 floats with AVX-512 (blocks up to 64
   columns: 24 accumulators of 32 registers), 8 with AVX (blocks of 16 columns: 12 of 16).
   Blocks wider than the registers spill on every step (15-30x slower, measured on AVX2 and
   SSE builds), so without AVX the products stay with torch.bmm (sgh_winograd_conv_fits). */
#if defined(__GNUC__) && (defined(__AVX512F__) || defined(__AVX__))
#define FUSED_PRODUCTS 1
#else
#define FUSED_PRODUCTS 0
#endif

int sgh_winograd_conv_fits(void) { return FUSED_PRODUCTS; }

#if FUSED_PRODUCTS
#if defined(__AVX512F__)
#define PRODUCT_LANES 16
#define WIDEST_BLOCK 4   /* LANES-column groups */
#else
#define PRODUCT_LANES 8
#define WIDEST_BLOCK 1
#endif
typedef float product_t __attribute__((vector_size(4 * PRODUCT_LANES)));
typedef float unaligned_product_t __attribute__((vector_size(4 * PRODUCT_LANES), aligned(4), may_alias));
#define VECTORS(NV) ((NV) * LANES / PRODUCT_LANES)

/* c[r][j] (+)= sum_k a[r * a_row + k * a_k] b[k * ldb + j] for NROWS rows (c's `ldc` apart) and
   NV * LANES columns: added to c where `accumulate` is set, else written over it. The Winograd
   products read a's rows (a_k = 1), the kernel gradient its columns (a's transpose, a_row = 1). */
#define DEFINE_REGISTER_BLOCK(NROWS, NV)                                                            \
static inline void register_block_##NROWS##_##NV(const float *a, int64_t a_row, int64_t a_k,         \
                                                 const float *b, int64_t ldb, float *c, int64_t ldc, \
                                                 int64_t depth, int accumulate) {                   \
    product_t acc[NROWS][VECTORS(NV)];                                                              \
    for (int r = 0; r < NROWS; r++)                                                                 \
        for (int j = 0; j < VECTORS(NV); j++) {                                                     \
            acc[r][j] = (product_t){0};                                                             \
            if (accumulate) acc[r][j] = *(const unaligned_product_t *)(c + r * ldc + j * PRODUCT_LANES); \
        }                                                                                           \
    for (int64_t k = 0; k < depth; k++) {                                                           \
        product_t column[VECTORS(NV)];                                                              \
        for (int j = 0; j < VECTORS(NV); j++)                                                       \
            column[j] = *(const unaligned_product_t *)(b + k * ldb + j * PRODUCT_LANES);            \
        for (int r = 0; r < NROWS; r++) {                                                           \
            const float value = a[r * a_row + k * a_k];                                             \
            for (int j = 0; j < VECTORS(NV); j++) acc[r][j] += column[j] * value;                   \
        }                                                                                           \
    }                                                                                               \
    for (int r = 0; r < NROWS; r++)                                                                 \
        for (int j = 0; j < VECTORS(NV); j++)                                                       \
            *(unaligned_product_t *)(c + r * ldc + j * PRODUCT_LANES) = acc[r][j];                  \
}
#else   /* plain loops: correct, but slow enough that Python keeps torch.bmm (see above) */
#define WIDEST_BLOCK 4
#define DEFINE_REGISTER_BLOCK(NROWS, NV)                                                            \
static inline void register_block_##NROWS##_##NV(const float *a, int64_t a_row, int64_t a_k,         \
                                                 const float *b, int64_t ldb, float *c, int64_t ldc, \
                                                 int64_t depth, int accumulate) {                   \
    for (int r = 0; r < NROWS; r++)                                                                 \
        for (int j = 0; j < NV * LANES; j++) {                                                      \
            float sum = accumulate ? c[r * ldc + j] : 0.f;                                          \
            for (int64_t k = 0; k < depth; k++) sum += a[r * a_row + k * a_k] * b[k * ldb + j];     \
            c[r * ldc + j] = sum;                                                                   \
        }                                                                                           \
}
#endif
#define GRADIENT_ROWS 4   /* output channels per register block of the kernel gradient */
DEFINE_REGISTER_BLOCK(ROWS, 4)
DEFINE_REGISTER_BLOCK(ROWS, 2)
DEFINE_REGISTER_BLOCK(ROWS, 1)
DEFINE_REGISTER_BLOCK(GRADIENT_ROWS, 4)
DEFINE_REGISTER_BLOCK(GRADIENT_ROWS, 2)
DEFINE_REGISTER_BLOCK(GRADIENT_ROWS, 1)

/* Tiles per block: ROWS x 8 at up to 64 channels, fewer for wider layers, so that a block's
   transformed tiles (and its products) take about 440 KB, within the L2 cache. */
static int64_t block_tiles(int64_t in_channels, int64_t out_channels) {
    const int64_t widest = in_channels > out_channels ? in_channels : out_channels;
    const int64_t groups = 512 / widest;
    return ROWS * (groups < 1 ? 1 : groups > 8 ? 8 : groups);
}

int sgh_winograd_conv(const float *x, int64_t height, int64_t width, int64_t in_channels, const float *in_scale,
                      const float *u, int64_t out_channels, float *y, const float *scale, const float *noise,
                      float noise_gain, const float *bias, float alpha, int leaky, float lo, float hi, int threads) {
    const int64_t I = in_channels, O = out_channels, tiles_w = (width + 3) / 4;
    const int64_t tiles = (height + 3) / 4 * tiles_w, per_block = block_tiles(I, O);
    const int64_t blocks = (tiles + per_block - 1) / per_block;
    const epilogue_t e = {scale, noise, bias, noise_gain, alpha, lo, hi, leaky};
    int failed = 0;
    if (O % LANES) return 2;
    _Pragma("omp parallel num_threads(threads)")
    {
        float *v = calloc((size_t)(36 * per_block * I), sizeof(float));   /* [36][per_block][I] */
        float *m = malloc((size_t)(36 * per_block * O) * sizeof(float));  /* [36][per_block][O] */
        if (!v || !m) {
            _Pragma("omp atomic write")
            failed = 1;
        }
        _Pragma("omp for schedule(static)")
        for (int64_t block = 0; block < blocks; block++) {
            if (!v || !m) continue;
            const int64_t first = block * per_block;
            const int64_t count = tiles - first < per_block ? tiles - first : per_block;
            for (int64_t s = 0; s < count; s++) {
                const int64_t ti = (first + s) / tiles_w, tj = (first + s) % tiles_w;
                int64_t c0 = 0;
                for (; c0 + LANES <= I; c0 += LANES)
                    input_tile(x, height, width, I, in_scale, ti, tj, c0, LANES, v + s * I, per_block * I);
                if (c0 < I) input_tile(x, height, width, I, in_scale, ti, tj, c0, (int)(I - c0), v + s * I, per_block * I);
            }
            const int64_t rows = (count + ROWS - 1) / ROWS * ROWS;   /* whole register blocks; the rest unused */
            for (int k = 0; k < 36; k++) {
                const float *vk = v + k * per_block * I, *uk = u + k * I * O;
                float *mk = m + k * per_block * O;
                int64_t o0 = 0;
                for (; WIDEST_BLOCK >= 4 && o0 + 4 * LANES <= O; o0 += 4 * LANES)
                    for (int64_t r0 = 0; r0 < rows; r0 += ROWS)
                        register_block_ROWS_4(vk + r0 * I, I, 1, uk + o0, O, mk + r0 * O + o0, O, I, 0);
                for (; WIDEST_BLOCK >= 2 && o0 + 2 * LANES <= O; o0 += 2 * LANES)   /* 32 channels: the 1024 model's top */
                    for (int64_t r0 = 0; r0 < rows; r0 += ROWS)
                        register_block_ROWS_2(vk + r0 * I, I, 1, uk + o0, O, mk + r0 * O + o0, O, I, 0);
                for (; o0 < O; o0 += LANES)
                    for (int64_t r0 = 0; r0 < rows; r0 += ROWS)
                        register_block_ROWS_1(vk + r0 * I, I, 1, uk + o0, O, mk + r0 * O + o0, O, I, 0);
            }
            for (int64_t s = 0; s < count; s++) {
                const int64_t ti = (first + s) / tiles_w, tj = (first + s) % tiles_w;
                for (int64_t o0 = 0; o0 < O; o0 += LANES)
                    output_tile(m + s * O, height, width, O, y, &e, ti, tj, o0, LANES, per_block * O);
            }
        }
        free(v);
        free(m);
    }
    return failed;
}

#if WHOLE_LANE_BLOCKS
static inline void adjoint_step_lanes(const lanes_t *y, lanes_t *t, const int *i, const int *j) {
    const lanes_t y0 = y[i[0]], y1 = y[i[1]], y2 = y[i[2]], y3 = y[i[3]];
    const lanes_t s02 = y0 + y2, s13 = y1 + y3, f02 = y0 + 4.f * y2, f13 = 2.f * y1 + 8.f * y3;
    t[j[0]] = y0;
    t[j[1]] = s02 + s13;
    t[j[2]] = s02 - s13;
    t[j[3]] = f02 + f13;
    t[j[4]] = f02 - f13;
    t[j[5]] = y3;
}

static void adjoint_tile_lanes(const float *dy, int64_t height, int64_t width, int64_t C, int64_t ti, int64_t tj,
                               int64_t c0, float *out, int64_t k_step) {
    lanes_t g[16], t[24], u[36];
    for (int p = 0; p < 16; p++) {
        const int64_t row = 4 * ti + p / 4, col = 4 * tj + p % 4;
        g[p] = row < height && col < width ? load_lanes(dy + (row * width + col) * C + c0) : (lanes_t){0};
    }
    for (int b = 0; b < 4; b++) adjoint_step_lanes(g, t, COL4[b], COL6_OF4[b]);   /* t = A g, 6 x 4 */
    for (int a = 0; a < 6; a++) adjoint_step_lanes(t, u, ROW4[a], ROW6[a]);       /* u = t A^T, 6 x 6 */
    for (int k = 0; k < 36; k++) store_lanes(out + k * k_step + c0, u[k]);
}
#endif

static inline void adjoint_tile(const float *dy, int64_t height, int64_t width, int64_t C, int64_t ti,
                                int64_t tj, int64_t c0, int n, float *out, int64_t k_step) {
    ON_WHOLE_BLOCK(adjoint_tile_lanes(dy, height, width, C, ti, tj, c0, out, k_step));
    float g[16][LANES], t[24][LANES], u[36][LANES];
    for (int p = 0; p < 16; p++) {
        int64_t row = 4 * ti + p / 4, col = 4 * tj + p % 4;
        if (row < height && col < width) {
            const float *src = dy + (row * width + col) * C + c0;
            for (int l = 0; l < n; l++) g[p][l] = src[l];
        } else {
            for (int l = 0; l < n; l++) g[p][l] = 0.f;
        }
    }
    for (int b = 0; b < 4; b++) adjoint_step(g, t, COL4[b], COL6_OF4[b], n);   /* t = A g, 6 x 4 */
    for (int a = 0; a < 6; a++) adjoint_step(t, u, ROW4[a], ROW6[a], n);       /* u = t A^T, 6 x 6 */
    for (int k = 0; k < 36; k++)
        for (int l = 0; l < n; l++) out[k * k_step + c0 + l] = u[k][l];
}

void sgh_winograd_output_adjoint(const float *dy, int64_t height, int64_t width, int64_t channels, float *dm,
                                 int threads) {
    const int64_t tiles_w = (width + 3) / 4, k_step = (height + 3) / 4 * tiles_w * channels;
#define TILE(ti, tj, c0, n) \
    adjoint_tile(dy, height, width, channels, ti, tj, c0, n, dm + ((ti) * tiles_w + (tj)) * channels, k_step)
    FOR_EACH_TILE_BLOCK(height, width, channels, threads, TILE)
#undef TILE
}

/* sgh_winograd_kernel_gradient: adds to g [36][O][I] the gradient of the transformed kernel, a
   sum over tiles of each position's output-gradient adjoint (O) times its input tile (I), tile
   block by tile block as sgh_winograd_conv runs: neither transform is written out whole (two
   75 MB maps at 64 channels, 512x256, which torch.bmm would then read back). Each thread sums
   its blocks into its own copy of g, added to g at the end. */

int sgh_winograd_kernel_gradient(const float *x, const float *dy, int64_t height, int64_t width,
                                 int64_t in_channels, int64_t out_channels, float *g, int threads) {
    const int64_t I = in_channels, O = out_channels, tiles_w = (width + 3) / 4;
    const int64_t tiles = (height + 3) / 4 * tiles_w, per_block = block_tiles(I, O);
    const int64_t blocks = (tiles + per_block - 1) / per_block;
    int failed = 0;
    if (I % LANES || O % LANES) return 2;
    _Pragma("omp parallel num_threads(threads)")
    {
        float *v = malloc((size_t)(36 * per_block * I) * sizeof(float));    /* [36][per_block][I] */
        float *dm = malloc((size_t)(36 * per_block * O) * sizeof(float));   /* [36][per_block][O] */
        float *sums = calloc((size_t)(36 * O * I), sizeof(float));          /* this thread's [36][O][I] */
        const int usable = v && dm && sums;
        if (!usable) {
            _Pragma("omp atomic write")
            failed = 1;
        }
        _Pragma("omp for schedule(static)")
        for (int64_t block = 0; block < blocks; block++) {
            if (!usable) continue;
            const int64_t first = block * per_block;
            const int64_t count = tiles - first < per_block ? tiles - first : per_block;
            for (int64_t s = 0; s < count; s++) {
                const int64_t ti = (first + s) / tiles_w, tj = (first + s) % tiles_w;
                for (int64_t c0 = 0; c0 < I; c0 += LANES)
                    input_tile(x, height, width, I, NULL, ti, tj, c0, LANES, v + s * I, per_block * I);
                for (int64_t c0 = 0; c0 < O; c0 += LANES)
                    adjoint_tile(dy, height, width, O, ti, tj, c0, LANES, dm + s * O, per_block * O);
            }
            for (int k = 0; k < 36; k++) {
                const float *vk = v + k * per_block * I, *dk = dm + k * per_block * O;
                float *gk = sums + k * O * I;
                for (int64_t o0 = 0; o0 < O; o0 += GRADIENT_ROWS) {
                    int64_t i0 = 0;
                    for (; WIDEST_BLOCK >= 4 && i0 + 4 * LANES <= I; i0 += 4 * LANES)
                        register_block_GRADIENT_ROWS_4(dk + o0, 1, O, vk + i0, I, gk + o0 * I + i0, I, count, 1);
                    for (; WIDEST_BLOCK >= 2 && i0 + 2 * LANES <= I; i0 += 2 * LANES)
                        register_block_GRADIENT_ROWS_2(dk + o0, 1, O, vk + i0, I, gk + o0 * I + i0, I, count, 1);
                    for (; i0 < I; i0 += LANES)
                        register_block_GRADIENT_ROWS_1(dk + o0, 1, O, vk + i0, I, gk + o0 * I + i0, I, count, 1);
                }
            }
        }
        if (usable) {
            _Pragma("omp critical")
            for (int64_t e = 0; e < 36 * O * I; e++) g[e] += sums[e];
        }
        free(v);
        free(dm);
        free(sums);
    }
    return failed;
}

/* Winograd's kernel transform U = G g G^T and its adjoint, for kernels that change at every
   step (PTI's tuning, training): the 36 values of each (o, i) pair from its 9 taps, G applied
   along the taps' columns and then their rows, vectorised over LANES input channels, in one
   pass. PyTorch ran it as a batched matrix product ([36, 9] by each output channel's [9, I]);
   with sgh_tap_square_sum below, a tuning step is 2.4-2.7% faster (paired, in situ).
     G = [ 1/4    0     0  ]
         [-1/6  -1/6  -1/6 ]
         [-1/6   1/6  -1/6 ]
         [ 1/24  1/12  1/6 ]
         [ 1/24 -1/12  1/6 ]
         [ 0      0     1  ]                                                                   */

/* G v for three lane vectors v[i0..i2] into six, t[j0..j5]. */
static inline void kernel_step(float v[][LANES], float t[][LANES], const int *i, const int *j, int n) {
    for (int l = 0; l < n; l++) {
        const float v0 = v[i[0]][l], v1 = v[i[1]][l], v2 = v[i[2]][l];
        const float outer = v0 * (1.f / 24.f) + v2 * (1.f / 6.f), middle = v1 * (1.f / 12.f);
        t[j[0]][l] = v0 * 0.25f;
        t[j[1]][l] = (v0 + v1 + v2) * (-1.f / 6.f);
        t[j[2]][l] = (v0 - v1 + v2) * (-1.f / 6.f);
        t[j[3]][l] = outer + middle;
        t[j[4]][l] = outer - middle;
        t[j[5]][l] = v2;
    }
}

/* G^T u for six lane vectors u[i0..i5] into three, v[j0..j2]: the kernel step's adjoint. */
static inline void kernel_adjoint_step(float u[][LANES], float v[][LANES], const int *i, const int *j, int n) {
    for (int l = 0; l < n; l++) {
        const float u0 = u[i[0]][l], u1 = u[i[1]][l], u2 = u[i[2]][l], u3 = u[i[3]][l], u4 = u[i[4]][l];
        const float s12 = (u1 + u2) * (1.f / 6.f), d21 = (u2 - u1) * (1.f / 6.f);
        const float s34 = u3 + u4, d34 = u3 - u4;
        v[j[0]][l] = u0 * 0.25f - s12 + s34 * (1.f / 24.f);
        v[j[1]][l] = d21 + d34 * (1.f / 12.f);
        v[j[2]][l] = s34 * (1.f / 6.f) - s12 + u[i[5]][l];
    }
}

static const int COL3[3][3] = {{0, 3, 6}, {1, 4, 7}, {2, 5, 8}};
static const int ROW3[6][3] = {{0, 1, 2}, {3, 4, 5}, {6, 7, 8}, {9, 10, 11}, {12, 13, 14}, {15, 16, 17}};
static const int COL6_OF3[3][6] = {{0, 3, 6, 9, 12, 15}, {1, 4, 7, 10, 13, 16}, {2, 5, 8, 11, 14, 17}};

#if WHOLE_LANE_BLOCKS
/* kernel_step and kernel_adjoint_step on whole lane blocks. */
static inline void kernel_step_lanes(const lanes_t *v, lanes_t *t, const int *i, const int *j) {
    const lanes_t v0 = v[i[0]], v1 = v[i[1]], v2 = v[i[2]];
    const lanes_t outer = v0 * (1.f / 24.f) + v2 * (1.f / 6.f), middle = v1 * (1.f / 12.f);
    t[j[0]] = v0 * 0.25f;
    t[j[1]] = (v0 + v1 + v2) * (-1.f / 6.f);
    t[j[2]] = (v0 - v1 + v2) * (-1.f / 6.f);
    t[j[3]] = outer + middle;
    t[j[4]] = outer - middle;
    t[j[5]] = v2;
}

static inline void kernel_adjoint_step_lanes(const lanes_t *u, lanes_t *v, const int *i, const int *j) {
    const lanes_t s12 = (u[i[1]] + u[i[2]]) * (1.f / 6.f), d21 = (u[i[2]] - u[i[1]]) * (1.f / 6.f);
    const lanes_t s34 = u[i[3]] + u[i[4]], d34 = u[i[3]] - u[i[4]];
    v[j[0]] = u[i[0]] * 0.25f - s12 + s34 * (1.f / 24.f);
    v[j[1]] = d21 + d34 * (1.f / 12.f);
    v[j[2]] = s34 * (1.f / 6.f) - s12 + u[i[5]];
}

static void kernel_transform_lanes(const float *taps, int64_t I, int reversed, float *u, int64_t t_step, int64_t c0) {
    lanes_t g[9], t[18], v[36];
    for (int k = 0; k < 9; k++) g[k] = load_lanes(taps + (reversed ? 8 - k : k) * I + c0);
    for (int b = 0; b < 3; b++) kernel_step_lanes(g, t, COL3[b], COL6_OF3[b]);
    for (int a = 0; a < 6; a++) kernel_step_lanes(t, v, ROW3[a], ROW6[a]);
    for (int k = 0; k < 36; k++) store_lanes(u + k * t_step + c0, v[k]);
}

static void kernel_adjoint_lanes(const float *grad, int64_t t_step, float *taps, int64_t I, int64_t c0) {
    lanes_t v[36], t[18], g[9];
    for (int k = 0; k < 36; k++) v[k] = load_lanes(grad + k * t_step + c0);
    for (int a = 0; a < 6; a++) kernel_adjoint_step_lanes(v, t, ROW6[a], ROW3[a]);
    for (int b = 0; b < 3; b++) kernel_adjoint_step_lanes(t, g, COL6_OF3[b], COL3[b]);
    for (int k = 0; k < 9; k++) store_lanes(taps + k * I + c0, g[k]);
}
#endif

/* One output channel's 9 taps [9][I] (tap k at k * I) into u, position t, input channel i at
   t * t_step + i; `reversed` takes tap 8 - k (the kernel the input's gradient runs through). */
static inline void kernel_transform_block(const float *taps, int64_t I, int reversed, float *u, int64_t t_step,
                                          int64_t c0, int n) {
    ON_WHOLE_BLOCK(kernel_transform_lanes(taps, I, reversed, u, t_step, c0));
    float g[9][LANES], t[18][LANES], v[36][LANES];
    for (int k = 0; k < 9; k++)
        for (int l = 0; l < n; l++) g[k][l] = taps[(reversed ? 8 - k : k) * I + c0 + l];
    for (int b = 0; b < 3; b++) kernel_step(g, t, COL3[b], COL6_OF3[b], n);   /* t = G g, 6 x 3 */
    for (int a = 0; a < 6; a++) kernel_step(t, v, ROW3[a], ROW6[a], n);      /* v = t G^T, 6 x 6 */
    for (int k = 0; k < 36; k++)
        for (int l = 0; l < n; l++) u[k * t_step + c0 + l] = v[k][l];
}

/* kernel [O][9][I] (a channels-last [O, I, 3, 3] kernel) into u: output channel o's values at
   o * o_step, position t's at t * t_step (within them, input channel i at i). */
void sgh_winograd_kernel_transform(const float *kernel, int64_t out_channels, int64_t in_channels, int reversed,
                                   float *u, int64_t o_step, int64_t t_step, int threads) {
    const int64_t I = in_channels;
    _Pragma("omp parallel for num_threads(threads) schedule(static)")
    for (int64_t o = 0; o < out_channels; o++) {
        int64_t c0 = 0;
        for (; c0 + LANES <= I; c0 += LANES)
            kernel_transform_block(kernel + o * 9 * I, I, reversed, u + o * o_step, t_step, c0, LANES);
        if (c0 < I) kernel_transform_block(kernel + o * 9 * I, I, reversed, u + o * o_step, t_step, c0, (int)(I - c0));
    }
}

static inline void kernel_adjoint_block(const float *grad, int64_t t_step, float *taps, int64_t I, int64_t c0,
                                        int n) {
    ON_WHOLE_BLOCK(kernel_adjoint_lanes(grad, t_step, taps, I, c0));
    float v[36][LANES], t[18][LANES], g[9][LANES];
    for (int k = 0; k < 36; k++)
        for (int l = 0; l < n; l++) v[k][l] = grad[k * t_step + c0 + l];
    for (int a = 0; a < 6; a++) kernel_adjoint_step(v, t, ROW6[a], ROW3[a], n);    /* t = v G, 6 x 3 */
    for (int b = 0; b < 3; b++) kernel_adjoint_step(t, g, COL6_OF3[b], COL3[b], n); /* g = G^T t, 3 x 3 */
    for (int k = 0; k < 9; k++)
        for (int l = 0; l < n; l++) taps[k * I + c0 + l] = g[k][l];
}

/* The kernel's gradient [O][9][I] from its transform's, grad [36][O][I]: G^T grad G per pair. */
void sgh_winograd_kernel_transform_adjoint(const float *grad, int64_t out_channels, int64_t in_channels,
                                           float *kernel_grad, int threads) {
    const int64_t I = in_channels, t_step = out_channels * in_channels;
    _Pragma("omp parallel for num_threads(threads) schedule(static)")
    for (int64_t o = 0; o < out_channels; o++) {
        int64_t c0 = 0;
        for (; c0 + LANES <= I; c0 += LANES) kernel_adjoint_block(grad + o * I, t_step, kernel_grad + o * 9 * I, I, c0, LANES);
        if (c0 < I) kernel_adjoint_block(grad + o * I, t_step, kernel_grad + o * 9 * I, I, c0, (int)(I - c0));
    }
}

/* out[a][b] = the sum over `taps` of w[a][k][b]^2: a kernel's sum of squares per channel pair,
   for a kernel whose taps lie between its two channel axes in memory (channels-last). In one
   read: PyTorch's square and then sum took two passes and a temporary as large as the kernel. */
void sgh_tap_square_sum(const float *w, int64_t rows, int64_t taps, int64_t cols, float *out, int threads) {
    _Pragma("omp parallel for num_threads(threads) schedule(static)")
    for (int64_t a = 0; a < rows; a++) {
        float *sums = out + a * cols;
        const float *row = w + a * taps * cols;
        for (int64_t b = 0; b < cols; b++) sums[b] = row[b] * row[b];
        for (int64_t k = 1; k < taps; k++)
            for (int64_t b = 0; b < cols; b++) sums[b] += row[k * cols + b] * row[k * cols + b];
    }
}

/* One output value of the 2x upsampling along a row: two taps of `row` (zeros outside). */
static inline float upsampled(const float *row, int64_t width, int64_t j, const float *taps, const int *offsets) {
    float v = 0.f;
    for (int u = 0; u < 2; u++) {
        int64_t q = j + offsets[u];
        if (q >= 0 && q < width) v += taps[u] * row[q];
    }
    return v;
}

int sgh_upsample2x(const float *x, int64_t planes, int64_t height, int64_t width, float *out, int64_t out_h,
                   int64_t out_w, const float *ty, const int *dy, const float *tx, const int *dx, int threads) {
    /* Output columns 2j + b whose taps all lie inside the row: j0 <= j < j1. */
    int low = 0, high = 0;
    for (int t = 0; t < 4; t++) {
        if (-dx[t] > low) low = -dx[t];
        if (dx[t] > high) high = dx[t];
    }
    int64_t j0 = low, j1 = width - high < out_w / 2 ? width - high : out_w / 2;
    if (j1 < j0) j1 = j0;
    int failed = 0;
    _Pragma("omp parallel num_threads(threads)")
    {
        float *row = malloc(width * sizeof(float));
        float *zeros = calloc(width, sizeof(float));
        if (!row || !zeros) {
            _Pragma("omp atomic write")
            failed = 1;
        }
        _Pragma("omp for schedule(static)")
        for (int64_t pn = 0; pn < planes * out_h; pn++) {
            if (!row || !zeros) continue;
            const int64_t p = pn / out_h, n = pn % out_h, a = n & 1;
            /* Vertical taps: the row between two input rows (zeros outside the plane). */
            const float *rows[2];
            for (int u = 0; u < 2; u++) {
                int64_t r = (n >> 1) + dy[2 * a + u];
                rows[u] = r >= 0 && r < height ? x + (p * height + r) * width : zeros;
            }
            const float *r0 = rows[0], *r1 = rows[1], k0 = ty[2 * a], k1 = ty[2 * a + 1];
            _Pragma("omp simd")
            for (int64_t q = 0; q < width; q++) row[q] = k0 * r0[q] + k1 * r1[q];
            /* Horizontal taps: even and odd output columns side by side. */
            float *o = out + (p * out_h + n) * out_w;
            const float e0 = tx[0], e1 = tx[1], o0 = tx[2], o1 = tx[3];
            const int64_t de0 = dx[0], de1 = dx[1], do0 = dx[2], do1 = dx[3];
            _Pragma("omp simd")
            for (int64_t j = j0; j < j1; j++) {
                o[2 * j] = e0 * row[j + de0] + e1 * row[j + de1];
                o[2 * j + 1] = o0 * row[j + do0] + o1 * row[j + do1];
            }
            for (int64_t w = 0; w < out_w; w++) {   /* the border columns */
                if (w / 2 >= j0 && w / 2 < j1) { w = 2 * j1 - 1; continue; }
                o[w] = upsampled(row, width, w / 2, tx + 2 * (w & 1), dx + 2 * (w & 1));
            }
        }
        free(row);
        free(zeros);
    }
    return failed;
}
