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
   sgh_winograd_input   a 3x3 convolution (padding 1) as Winograd F(2x2, 3x3), whose 16
   sgh_winograd_output  matrix products PyTorch runs in between (cpu_kernels.winograd_conv3x3):
                        V[k, tile, c] = (B^T d B)[k] * scale[c] of each 4x4 input tile d, then
                        out = epilogue(A^T M A) for each tile's 2x2 output pixels.
   sgh_upsample2x       upfirdn2d with up=2 and a separable 4-tap filter on contiguous planes
                        (StyleGAN2's image): out[p, n, w] = sum_{u, v} ty[n % 2][u] tx[w % 2][v]
                        x[p, n / 2 + dy[n % 2][u], w / 2 + dx[w % 2][v]].

   act is leaky ReLU with slope `alpha` when `leaky` is set, else the identity; a clamp
   bound of +-inf clamps nothing; noise may be NULL (no noise). Sums are float32; bfloat16
   results are rounded to nearest even once, at the end. Rows of pixels are split across
   `threads` OpenMP threads (ignored when built without OpenMP). Functions returning int
   return nonzero when a scratch buffer could not be allocated. */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

#define DEFINE_KERNELS(SUFFIX, T, LOAD, STORE)                                                      \
                                                                                                    \
void sgh_epilogue_##SUFFIX(T *map, int64_t pixels, int64_t channels, const float *scale,            \
                           const float *noise, float noise_gain, const float *bias, float alpha,    \
                           int leaky, float lo, float hi, int threads) {                            \
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
    const float k0 = taps[0], k1 = taps[1], k2 = taps[2], k3 = taps[3];                             \
    int inside[TAPS];                                                                               \
    for (int i = 0; i < TAPS; i++) inside[i] = h + i - pad_y >= 0 && h + i - pad_y < y->height;     \
    if (y->map && u1 > u0) {   /* one contiguous run per row */                                     \
        const T *r[TAPS];                                                                           \
        for (int i = 0; i < TAPS; i++)                                                              \
            r[i] = inside[i] ? pixel_##SUFFIX(y, h + i - pad_y, u0 - pad_x) : zeros;                \
        const T *r0 = r[0], *r1 = r[1], *r2 = r[2], *r3 = r[3];                                     \
        float *dst = columns + u0 * C;                                                              \
        const int64_t n = (u1 - u0) * C;                                                            \
        _Pragma("omp simd")                                                                         \
        for (int64_t e = 0; e < n; e++)                                                             \
            dst[e] = k0 * LOAD(r0 + e) + k1 * LOAD(r1 + e) + k2 * LOAD(r2 + e) + k3 * LOAD(r3 + e); \
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
        const T *r0 = r[0], *r1 = r[1], *r2 = r[2], *r3 = r[3];                                     \
        float *dst = columns + (q_first + pad_x) * C;                                               \
        for (int64_t j = 0; j < count; j++, r0 += C, r1 += C, r2 += C, r3 += C, dst += 2 * C) {     \
            _Pragma("omp simd")                                                                     \
            for (int64_t c = 0; c < C; c++)                                                         \
                dst[c] = k0 * LOAD(r0 + c) + k1 * LOAD(r1 + c) + k2 * LOAD(r2 + c) + k3 * LOAD(r3 + c);\
        }                                                                                           \
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
        T *zeros = calloc(span * C, sizeof(T));                                                     \
        if (!columns || !zeros) {                                                                   \
            _Pragma("omp atomic write")                                                             \
            failed = 1;                                                                             \
        }                                                                                           \
        _Pragma("omp for schedule(static)")                                                         \
        for (int64_t h = 0; h < out_h; h++) {                                                       \
            if (!columns || !zeros) continue;                                                       \
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

/* Winograd F(2x2, 3x3), after Lavin and Gray: for a 4x4 input tile d and a 3x3 kernel g the
   2x2 correlation output is A^T [(G g G^T) * (B^T d B)] A with
   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], A^T = [1 1 1 0; 0 1 -1 -1].
   Tiles cover an even-sized H x W map; tile (ti, tj) reads input rows 2ti - 1 .. 2ti + 2 and
   columns 2tj - 1 .. 2tj + 2 (zeros outside) and writes output pixels 2ti .. 2ti + 1,
   2tj .. 2tj + 1. Tiles are numbered row by row. */

/* B^T v for four values a row (or column) apart. */
#define BT(v0, v1, v2, v3, t0, t1, t2, t3) \
    { t0 = v0 - v2; t1 = v1 + v2; t2 = v2 - v1; t3 = v1 - v3; }

int sgh_winograd_input(const float *x, int64_t height, int64_t width, int64_t channels, const float *scale,
                       float *v, int threads) {
    const int64_t tiles_w = width / 2, tiles = height / 2 * tiles_w, C = channels;
    float *zeros = calloc(C, sizeof(float));   /* stands in for pixels outside the map */
    if (!zeros) return 1;
    _Pragma("omp parallel for num_threads(threads) schedule(static)")
    for (int64_t ti = 0; ti < height / 2; ti++) {
        for (int64_t tj = 0; tj < tiles_w; tj++) {
            const float *d[16];
            for (int a = 0; a < 4; a++)
                for (int b = 0; b < 4; b++) {
                    int64_t r = 2 * ti + a - 1, q = 2 * tj + b - 1;
                    d[4 * a + b] = r >= 0 && r < height && q >= 0 && q < width ? x + (r * width + q) * C : zeros;
                }
            float *out = v + (ti * tiles_w + tj) * C;
            const int64_t k_step = tiles * C;   /* from V[k] to V[k + 1] */
            _Pragma("omp simd")
            for (int64_t c = 0; c < C; c++) {
                float t[16], u[16];
                for (int b = 0; b < 4; b++)   /* rows: t = B^T d */
                    BT(d[b][c], d[4 + b][c], d[8 + b][c], d[12 + b][c], t[b], t[4 + b], t[8 + b], t[12 + b])
                for (int a = 0; a < 4; a++)   /* columns: u = t B */
                    BT(t[4 * a], t[4 * a + 1], t[4 * a + 2], t[4 * a + 3], u[4 * a], u[4 * a + 1], u[4 * a + 2],
                       u[4 * a + 3])
                const float s = scale ? scale[c] : 1.f;
                for (int k = 0; k < 16; k++) out[k * k_step + c] = u[k] * s;
            }
        }
    }
    free(zeros);
    return 0;
}

void sgh_winograd_output(const float *m, int64_t height, int64_t width, int64_t channels, float *y,
                         const float *scale, const float *noise, float noise_gain, const float *bias, float alpha,
                         int leaky, float lo, float hi, int threads) {
    const int64_t tiles_w = width / 2, tiles = height / 2 * tiles_w, C = channels;
    _Pragma("omp parallel for num_threads(threads) schedule(static)")
    for (int64_t ti = 0; ti < height / 2; ti++) {
        for (int64_t tj = 0; tj < tiles_w; tj++) {
            const float *in = m + (ti * tiles_w + tj) * C;
            const int64_t k_step = tiles * C;
            int64_t pixel[4];
            float nv[4];
            for (int p = 0; p < 4; p++) {
                pixel[p] = (2 * ti + p / 2) * width + 2 * tj + p % 2;
                nv[p] = noise ? noise[pixel[p]] * noise_gain : 0.f;
            }
            _Pragma("omp simd")
            for (int64_t c = 0; c < C; c++) {
                float r[8];
                for (int b = 0; b < 4; b++) {   /* rows: r = A^T M */
                    float m0 = in[b * k_step + c], m1 = in[(4 + b) * k_step + c];
                    float m2 = in[(8 + b) * k_step + c], m3 = in[(12 + b) * k_step + c];
                    r[b] = m0 + m1 + m2;
                    r[4 + b] = m1 - m2 - m3;
                }
                float o[4] = {r[0] + r[1] + r[2], r[1] - r[2] - r[3], r[4] + r[5] + r[6], r[5] - r[6] - r[7]};
                for (int p = 0; p < 4; p++)
                    y[pixel[p] * C + c] = finish(o[p], scale[c], nv[p], bias[c], alpha, leaky, lo, hi);
            }
        }
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
