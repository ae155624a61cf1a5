/* A 3x3 convolution (padding 1, stride 1) of a bfloat16 channels-last map on the CPU's AMX
   matrix units, with cpu_kernels.c's epilogue applied to the float32 sums (called through
   cpu_kernels.py: amx_conv3x3, amx_kernel, amx_available).

   oneDNN runs StyleGAN2's narrow layers (32 channels at 1024x512) at a third of its rate on
   wide ones: with 32 channels each 16x16 tile product has little to chew on per load. Here
   each step keeps four 16x16 float32 accumulators (32 pixels x 32 output channels) in the
   tile registers for all 9 taps and every 32 input channels. A tap is a plain tile load from
   the map itself; only the blocks at either end of a row read zero-padded copies of their
   pixels (copying every row first cost 5-10% of the time, measured), and the row after next
   is prefetched block by block (32 channels: 13-15% faster, measured).

   sgh_amx_conv3x3_bf16   out = epilogue(correlation of x with the 3x3 kernel), rounded to
                          bfloat16 once. x [height][width][in_channels], out [height][width]
                          [out_channels], both multiples of 32 channels. The kernel is packed by
                          cpu_kernels.amx_kernel: [out block][tap][in block][half][pair][16 channels][2],
                          the pairs of input channels interleaved as the tile product reads them.
   sgh_amx_phases_bf16    the four phase maps of a stride-2 3x3 transposed convolution in one pass
                          over x (cpu_kernels.amx_phases): p00 [H+1][W+1], p01 [H+1][W], p10 [H][W+1],
                          p11 [H][W], each out_channels wide, rounded to bfloat16; their 9 taps in
                          PHASE_TAPS order, each packed as a 3x3 kernel's tap (cpu_kernels.amx_phase_kernel).
   sgh_amx_project_bf16   out[k][pixel] = clamp(sum_c x[pixel][c] w[k][c] + bias[k], lo, hi) for up
                          to 16 outputs k, summed in float32 into float32 planes (ToRGB: its 3
                          planes, which the image is made of, without a bfloat16 map in between).
                          x [pixels][channels], channels a multiple of 32; w packed by
                          cpu_kernels.amx_projection: [in block][pair][16 outputs][2].
   sgh_amx_conv_ready     1 where this file was built for AMX and Linux lets the process use the
                          tile registers (asked once), else 0: then nothing else here may be called.

   The epilogue: v = clamp(act(v * scale[c] + noise[pixel] * noise_gain + bias[c]), lo, hi), act
   leaky ReLU with slope `alpha` when `leaky` is set; noise may be NULL. Returns nonzero when a
   scratch buffer could not be allocated. */

#define _GNU_SOURCE   /* syscall() */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__AMX_TILE__) && defined(__AMX_BF16__) && defined(__AVX512BF16__) && defined(__linux__)
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18
#define BLOCK 32                   /* pixels, input and output channels per step */
#define TILE_BYTES 64              /* one tile row: 16 float32 or 32 bfloat16 */
#define PACKED_TAP (BLOCK * BLOCK) /* bfloat16 values of one tap of one block pair */

int sgh_amx_conv_ready(void) {
    static int ready = -1;
    if (ready < 0) ready = syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
    return ready;
}

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t bytes_per_row[16];
    uint8_t rows[16];
} tile_config_t;

/* Tiles 0-3: accumulators (16 pixels x 16 output channels, float32); 4-5: input (16 pixels x
   32 channels); 6-7: kernel (16 pairs of input channels x 16 output channels x 2). */
static void configure_tiles(void) {
    tile_config_t config;
    memset(&config, 0, sizeof config);
    config.palette = 1;
    for (int t = 0; t < 8; t++) {
        config.rows[t] = 16;
        config.bytes_per_row[t] = TILE_BYTES;
    }
    _tile_loadconfig(&config);
}

/* A thread's scratch (`edge_elements` values for the end blocks' copies, a block's float32 sums)
   and its tile configuration; 0 where the memory could not be had. */
static int start_thread(uint16_t **edge, int64_t edge_elements, float **sums) {
    *edge = malloc(edge_elements * sizeof **edge);
    *sums = malloc(BLOCK * BLOCK * sizeof **sums);
    if (*edge == NULL || *sums == NULL) return 0;
    configure_tiles();
    return 1;
}

/* Pixels first .. first + count - 1 of input row `row` into `copy`, zeros outside the map. */
static void copy_edge(uint16_t *copy, const uint16_t *x, int64_t row, int64_t first, int64_t count, int64_t height,
                      int64_t width, int64_t channels) {
    int64_t lo = first < 0 ? 0 : first, hi = first + count > width ? width : first + count;
    if (row < 0 || row >= height || hi < lo) lo = hi = first;   /* all zeros */
    memset(copy, 0, (lo - first) * channels * sizeof *copy);
    if (hi > lo)
        memcpy(copy + (lo - first) * channels, x + (row * width + lo) * channels, (hi - lo) * channels * sizeof *copy);
    memset(copy + (hi - first) * channels, 0, (first + count - hi) * channels * sizeof *copy);
}

static inline float load_bf16_value(uint16_t bits) {   /* exact: the bits move up */
    const uint32_t wide = (uint32_t)bits << 16;
    float v;
    memcpy(&v, &wide, sizeof v);
    return v;
}

/* The block of pixels x0 .. x0 + 31 of input row `row` on its way to L2, if the row exists:
   the tile loads do not set off the CPU's own prefetching (32 channels: 13-15% faster). */
static inline void prefetch_block(const uint16_t *x, int64_t row, int64_t x0, int64_t height, int64_t width,
                                  int64_t channels) {
    if (row >= height) return;
    const char *start = (const char *)(x + (row * width + x0) * channels);
    const int64_t bytes = (width - x0 < BLOCK ? width - x0 : BLOCK) * channels * (int64_t)sizeof *x;
    for (int64_t b = 0; b < bytes; b += 64) __builtin_prefetch(start + b, 0, 2);
}

/* Adds one tap's products to the four accumulators: 32 pixels from `a` (a channels-last map or
   an edge copy, in_channels apart) times the tap's packed kernel `b`, 32 input channels a step. */
static inline void add_tap(const uint16_t *a, const uint16_t *b, int64_t in_blocks, int64_t in_channels) {
    const int64_t row_stride = in_channels * sizeof *a;   /* bytes from one pixel to the next */
    for (int64_t ib = 0; ib < in_blocks; ib++, a += BLOCK, b += PACKED_TAP) {
        _tile_loadd(4, a, row_stride);
        _tile_loadd(5, a + 16 * in_channels, row_stride);
        _tile_loadd(6, b, TILE_BYTES);
        _tile_loadd(7, b + PACKED_TAP / 2, TILE_BYTES);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
}

/* The four accumulators into sums [32 pixels][32 output channels]. */
static inline void store_sums(float *sums) {
    _tile_stored(0, sums, BLOCK * sizeof *sums);
    _tile_stored(1, sums + 16, BLOCK * sizeof *sums);
    _tile_stored(2, sums + 16 * BLOCK, BLOCK * sizeof *sums);
    _tile_stored(3, sums + 16 * BLOCK + 16, BLOCK * sizeof *sums);
}

static void finish_block(const float *sums, uint16_t *out, int64_t pixels, int64_t out_channels,
                         int64_t first_pixel, const float *scale, const float *noise, float noise_gain,
                         const float *bias, float alpha, int leaky, float lo, float hi) {
    const __m512 low = _mm512_set1_ps(lo), high = _mm512_set1_ps(hi), slope = _mm512_set1_ps(leaky ? alpha : 1.f);
    for (int64_t p = 0; p < pixels; p++) {
        const __m512 nv = _mm512_set1_ps(noise ? noise[first_pixel + p] * noise_gain : 0.f);
        for (int half = 0; half < 2; half++) {
            __m512 v = _mm512_loadu_ps(sums + p * BLOCK + 16 * half);
            v = _mm512_add_ps(_mm512_fmadd_ps(v, _mm512_loadu_ps(scale + 16 * half), nv),
                              _mm512_loadu_ps(bias + 16 * half));
            v = _mm512_mask_mul_ps(v, _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ), v, slope);
            v = _mm512_min_ps(high, _mm512_max_ps(low, v));
            _mm256_storeu_si256((__m256i *)(out + p * out_channels + 16 * half), (__m256i)_mm512_cvtneps_pbh(v));
        }
    }
}

int sgh_amx_conv3x3_bf16(const uint16_t *x, int64_t height, int64_t width, int64_t in_channels,
                         const uint16_t *kernel, int64_t out_channels, uint16_t *out, const float *scale,
                         const float *noise, float noise_gain, const float *bias, float alpha, int leaky,
                         float lo, float hi, int threads) {
    const int64_t in_blocks = in_channels / BLOCK, out_blocks = out_channels / BLOCK;
    const int64_t edge_width = BLOCK + 2;   /* pixels x0 - 1 .. x0 + BLOCK of an edge block */
    int failed = 0;
    _Pragma("omp parallel num_threads(threads)")
    {
        uint16_t *edge;
        float *sums;
        const int usable = start_thread(&edge, 3 * edge_width * in_channels, &sums);
        if (!usable) {
            _Pragma("omp atomic write")
            failed = 1;
        }
        _Pragma("omp for schedule(static)")   /* every thread reaches it, as OpenMP requires */
        for (int64_t y = 0; y < height; y++) {
            if (!usable) continue;
            for (int64_t x0 = 0; x0 < width; x0 += BLOCK) {
                /* Interior blocks read the map itself; a block at either end reads copies of its
                   three rows with zeros outside the map. */
                const int inside = x0 >= 1 && x0 + BLOCK + 1 <= width;
                if (!inside)
                    for (int dy = 0; dy < 3; dy++)
                        copy_edge(edge + dy * edge_width * in_channels, x, y + dy - 1, x0 - 1, edge_width, height,
                                  width, in_channels);
                prefetch_block(x, y + 2, x0, height, width, in_channels);   /* read first by the next row */
                for (int64_t ob = 0; ob < out_blocks; ob++) {
                    _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
                    for (int tap = 0; tap < 9; tap++) {
                        const int64_t row = y + tap / 3 - 1;
                        if (inside && (row < 0 || row >= height)) continue;   /* zeros: nothing to add */
                        const uint16_t *a = inside ? x + (row * width + x0 - 1 + tap % 3) * in_channels
                                                   : edge + ((tap / 3) * edge_width + tap % 3) * in_channels;
                        const uint16_t *b = kernel + (ob * 9 + tap) * in_blocks * PACKED_TAP;
                        add_tap(a, b, in_blocks, in_channels);
                    }
                    store_sums(sums);
                    const int64_t pixels = width - x0 < BLOCK ? width - x0 : BLOCK;
                    const int64_t c0 = ob * BLOCK;
                    finish_block(sums, out + (y * width + x0) * out_channels + c0, pixels, out_channels,
                                 y * width + x0, scale + c0, noise, noise_gain, bias + c0, alpha, leaky, lo, hi);
                }
            }
        }
        if (usable) _tile_release();
        free(edge);
        free(sums);
    }
    return failed;
}

/* The taps of the four phases: (phase, dy, dx), dy and dx from input pixel (i - 1, j - 1). */
static const int PHASE_TAPS[9][3] = {{0, 0, 0}, {0, 0, 1}, {0, 1, 0}, {0, 1, 1}, {1, 0, 1}, {1, 1, 1},
                                     {2, 1, 0}, {2, 1, 1}, {3, 1, 1}};

int sgh_amx_phases_bf16(const uint16_t *x, int64_t height, int64_t width, int64_t in_channels,
                        const uint16_t *kernel, int64_t out_channels, uint16_t *const *phases, int threads) {
    static const float ones[BLOCK] = {1.f, 1.f, 1.f, 1.f, 1.f, 1.f, 1.f, 1.f, 1.f, 1.f, 1.f, 1.f, 1.f, 1.f, 1.f, 1.f,
                                      1.f, 1.f, 1.f, 1.f, 1.f, 1.f, 1.f, 1.f, 1.f, 1.f, 1.f, 1.f, 1.f, 1.f, 1.f, 1.f};
    static const float zeros[BLOCK];
    const int64_t in_blocks = in_channels / BLOCK, out_blocks = out_channels / BLOCK;
    const int64_t edge_width = BLOCK + 1;   /* pixels j0 - 1 .. j0 + BLOCK - 1 of an edge block */
    int failed = 0;
    _Pragma("omp parallel num_threads(threads)")
    {
        uint16_t *edge;
        float *sums;
        const int usable = start_thread(&edge, 2 * edge_width * in_channels, &sums);
        if (!usable) {
            _Pragma("omp atomic write")
            failed = 1;
        }
        _Pragma("omp for schedule(static)")
        for (int64_t i = 0; i <= height; i++) {   /* rows of the even phases; the odd ones end one earlier */
            if (!usable) continue;
            for (int64_t j0 = 0; j0 <= width; j0 += BLOCK) {
                const int inside = j0 >= 1 && j0 + BLOCK <= width;
                if (!inside)
                    for (int dy = 0; dy < 2; dy++)
                        copy_edge(edge + dy * edge_width * in_channels, x, i - 1 + dy, j0 - 1, edge_width, height,
                                  width, in_channels);
                prefetch_block(x, i + 1, j0, height, width, in_channels);   /* read first by the next row */
                for (int64_t ob = 0; ob < out_blocks; ob++)
                    for (int phase = 0, t = 0; phase < 4; phase++) {
                        const int odd_row = phase >> 1, odd_column = phase & 1;
                        const int64_t phase_width = width + 1 - odd_column;
                        const int first = t;
                        while (t < 9 && PHASE_TAPS[t][0] == phase) t++;
                        if (i + odd_row > height || j0 >= phase_width) continue;
                        _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
                        for (int tap = first; tap < t; tap++) {
                            const int dy = PHASE_TAPS[tap][1], dx = PHASE_TAPS[tap][2];
                            const int64_t row = i - 1 + dy;
                            if (inside && (row < 0 || row >= height)) continue;   /* zeros: nothing to add */
                            const uint16_t *a = inside ? x + (row * width + j0 - 1 + dx) * in_channels
                                                       : edge + (dy * edge_width + dx) * in_channels;
                            const uint16_t *b = kernel + (ob * 9 + tap) * in_blocks * PACKED_TAP;
                            add_tap(a, b, in_blocks, in_channels);
                        }
                        store_sums(sums);
                        const int64_t pixels = phase_width - j0 < BLOCK ? phase_width - j0 : BLOCK;
                        finish_block(sums, phases[phase] + (i * phase_width + j0) * out_channels + ob * BLOCK, pixels,
                                     out_channels, 0, ones, NULL, 0.f, zeros, 0.f, 0, -INFINITY, INFINITY);
                    }
            }
        }
        if (usable) _tile_release();
        free(edge);
        free(sums);
    }
    return failed;
}

void sgh_amx_project_bf16(const uint16_t *x, int64_t pixels, int64_t channels, const uint16_t *packed,
                          int64_t outputs, float *out, const float *bias, float lo, float hi, int threads) {
    const int64_t blocks = channels / BLOCK, whole = pixels / 16 * 16;
    const __m512i rows = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                            _mm512_set1_epi32(16));   /* where each pixel's sums start */
    _Pragma("omp parallel num_threads(threads)")
    {
        float sums[16 * 16];
        configure_tiles();
        _Pragma("omp for schedule(static)")
        for (int64_t p0 = 0; p0 < whole; p0 += 16) {   /* 16 pixels a step: one accumulator tile */
            _tile_zero(0);
            for (int64_t b = 0; b < blocks; b++) {
                _tile_loadd(4, x + p0 * channels + b * BLOCK, channels * sizeof *x);
                _tile_loadd(6, packed + b * PACKED_TAP / 2, TILE_BYTES);
                _tile_dpbf16ps(0, 4, 6);
            }
            _tile_stored(0, sums, 16 * sizeof *sums);
            for (int64_t k = 0; k < outputs; k++) {   /* column k of the 16 pixels' sums */
                __m512 v = _mm512_i32gather_ps(_mm512_add_epi32(rows, _mm512_set1_epi32((int)k)), sums, 4);
                v = _mm512_add_ps(v, _mm512_set1_ps(bias[k]));
                v = _mm512_min_ps(_mm512_set1_ps(hi), _mm512_max_ps(_mm512_set1_ps(lo), v));
                _mm512_storeu_ps(out + k * pixels + p0, v);
            }
        }
        _tile_release();
    }
    for (int64_t p = whole; p < pixels; p++)   /* the last few pixels, one by one */
        for (int64_t k = 0; k < outputs; k++) {
            float v = bias[k];
            for (int64_t c = 0; c < channels; c++) {
                const uint16_t *w = packed + ((c / BLOCK) * 16 + (c % BLOCK) / 2) * 32 + 2 * k + c % 2;
                v += load_bf16_value(x[p * channels + c]) * load_bf16_value(*w);
            }
            out[k * pixels + p] = v < lo ? lo : (v > hi ? hi : v);
        }
}

#else   /* built without AMX: say so, and never run */

int sgh_amx_conv_ready(void) { return 0; }

int sgh_amx_conv3x3_bf16(const uint16_t *x, int64_t height, int64_t width, int64_t in_channels,
                         const uint16_t *kernel, int64_t out_channels, uint16_t *out, const float *scale,
                         const float *noise, float noise_gain, const float *bias, float alpha, int leaky,
                         float lo, float hi, int threads) {
    (void)x; (void)height; (void)width; (void)in_channels; (void)kernel; (void)out_channels; (void)out;
    (void)scale; (void)noise; (void)noise_gain; (void)bias; (void)alpha; (void)leaky; (void)lo; (void)hi;
    (void)threads;
    return 1;
}

int sgh_amx_phases_bf16(const uint16_t *x, int64_t height, int64_t width, int64_t in_channels,
                        const uint16_t *kernel, int64_t out_channels, uint16_t *const *phases, int threads) {
    (void)x; (void)height; (void)width; (void)in_channels; (void)kernel; (void)out_channels; (void)phases;
    (void)threads;
    return 1;
}

void sgh_amx_project_bf16(const uint16_t *x, int64_t pixels, int64_t channels, const uint16_t *packed,
                          int64_t outputs, float *out, const float *bias, float lo, float hi, int threads) {
    (void)x; (void)pixels; (void)channels; (void)packed; (void)outputs; (void)out; (void)bias; (void)lo; (void)hi;
    (void)threads;
}

#endif
