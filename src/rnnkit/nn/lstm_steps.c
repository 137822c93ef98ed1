/* The element-wise part of one LSTM step, forward and backward, for rnnkit/nn/lstm_kernel.py.
 *
 * The kernel's loop (Python) does each step's matrix product with torch (oneDNN) and hands the rest
 * to these two functions: one pass over the step's numbers instead of ten torch operations, each of
 * which reads and writes all of them again. Plain C99; built with -O3 -march=native -fno-math-errno,
 * which vectorises the loops and expf (glibc's vector math library, see below).
 *
 * Layout: b rows, H units; a step's gate block a (b, 4H) is row-major with the gates in the kernel's
 * order i, f, o, g, each a block of H columns. The candidate's pre-activations arrive doubled
 * (the kernel doubles those rows of W, U and the bias), so that g = tanh(a_g) = 2 sigma(2 a_g) - 1
 * is computed from one sigmoid, as the torch fallback does: both paths give the same numbers.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GLIBC__) && defined(__GNUC__) && !defined(__clang__)
/* glibc's vector maths (libmvec) has expf for 4, 8 and 16 lanes; saying so lets the compiler vectorise
 * the loops below that call it. (-ffast-math would say it too, but a library built with it switches the
 * whole process to flushing denormals to zero when it is loaded.) */
float expf(float) __attribute__((__simd__("notinbranch")));
#endif

static inline float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
static inline float tanh_(float x) { return 2.0f / (1.0f + expf(-2.0f * x)) - 1.0f; }

/* float32 -> bfloat16, rounded to nearest even as torch rounds (a NaN stays a NaN). */
static inline uint16_t bf16(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static inline float from_bf16(uint16_t x)
{
    uint32_t u = (uint32_t)x << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* rec (n) added to a: float32, or bfloat16 when is_bf16 (a product that read bf16 writes bf16). */
static void add_product(size_t n, float *restrict a, const void *rec, int is_bf16)
{
    if (is_bf16) {
        const uint16_t *restrict r = rec;
        for (size_t k = 0; k < n; k++) a[k] += from_bf16(r[k]);
    } else {
        const float *restrict r = rec;
        for (size_t k = 0; k < n; k++) a[k] += r[k];
    }
}

/* Forward. In: a (b, 4H) the input projection (the candidate's doubled), rec (b, 4H) the recurrent
 * product (bfloat16 when rec_bf16), added here; c_prev (b, H); mask (b, H) or NULL.
 * Out: a holds the activations i, f, o, g; c (b, H) the new cell state; tau = tanh(c); h = o * tau;
 * h_next (b, H) = mask * h, what the next step's product reads (NULL on the last step), and
 * h_next_bf16 its bfloat16 copy when the products read bf16 (else NULL). */
void rnnkit_lstm_forward_step(int b, int H, float *restrict a, const void *rec, int rec_bf16,
                              const float *restrict c_prev, float *restrict c, float *restrict tau,
                              float *restrict h, const float *restrict mask, float *restrict h_next,
                              uint16_t *restrict h_next_bf16)
{
    add_product((size_t)b * 4 * H, a, rec, rec_bf16);
    for (int r = 0; r < b; r++) {
        float *restrict ai = a + (size_t)r * 4 * H, *restrict af = ai + H, *restrict ao = af + H, *restrict ag = ao + H;
        const float *restrict cp = c_prev + (size_t)r * H;
        float *restrict cr = c + (size_t)r * H, *restrict tr = tau + (size_t)r * H, *restrict hr = h + (size_t)r * H;
        for (int j = 0; j < H; j++) {
            float i = sigmoid(ai[j]), f = sigmoid(af[j]), og = sigmoid(ao[j]);
            float g = 2.0f * sigmoid(ag[j]) - 1.0f;
            float cn = f * cp[j] + i * g;
            float t = tanh_(cn);
            ai[j] = i; af[j] = f; ao[j] = og; ag[j] = g;
            cr[j] = cn; tr[j] = t; hr[j] = og * t;
        }
    }
    if (h_next == NULL) return;
    size_t n = (size_t)b * H;
    if (mask == NULL)
        for (size_t k = 0; k < n; k++) h_next[k] = h[k];
    else
        for (size_t k = 0; k < n; k++) h_next[k] = h[k] * mask[k];
    if (h_next_bf16 != NULL)
        for (size_t k = 0; k < n; k++) h_next_bf16[k] = bf16(h_next[k]);
}

/* Backward. In: a (b, 4H) the activations; c_prev, tau (b, H); dh (b, H) dL/dh_t, completed here
 * when rec is not NULL: dh = d_out + mask * rec, d_out (b, H) the outputs' gradient at step t and rec
 * (b, H) the product da_{t+1} U (bfloat16 when rec_bf16); dc (b, H) the cell gradient from the step
 * after. Out: da (b, 4H) dL/d(pre-activations) (the candidate's with respect to its undoubled
 * pre-activation), and da_bf16 its bfloat16 copy when the products read bf16 (else NULL);
 * dc <- dc_t * f, for the step before. */
void rnnkit_lstm_backward_step(int b, int H, const float *restrict a, const float *restrict c_prev,
                               const float *restrict tau, float *restrict dh, float *restrict dc,
                               float *restrict da, uint16_t *restrict da_bf16, const float *restrict d_out,
                               const void *rec, int rec_bf16, const float *restrict mask)
{
    size_t n = (size_t)b * H;
    if (rec != NULL) {
        for (size_t k = 0; k < n; k++) dh[k] = 0.0f;
        add_product(n, dh, rec, rec_bf16);
        if (mask != NULL)
            for (size_t k = 0; k < n; k++) dh[k] *= mask[k];
        for (size_t k = 0; k < n; k++) dh[k] += d_out[k];
    }
    for (int r = 0; r < b; r++) {
        const float *restrict ai = a + (size_t)r * 4 * H, *restrict af = ai + H, *restrict ao = af + H,
                    *restrict ag = ao + H;
        float *restrict di = da + (size_t)r * 4 * H, *restrict df = di + H, *restrict dO = df + H, *restrict dg = dO + H;
        const float *restrict cp = c_prev + (size_t)r * H, *restrict tr = tau + (size_t)r * H,
                    *restrict dhr = dh + (size_t)r * H;
        float *restrict dcr = dc + (size_t)r * H;
        for (int j = 0; j < H; j++) {
            float i = ai[j], f = af[j], og = ao[j], g = ag[j], t = tr[j], d_h = dhr[j];
            float d_c = dcr[j] + d_h * og * (1.0f - t * t);
            di[j] = d_c * g * i * (1.0f - i);
            df[j] = d_c * cp[j] * f * (1.0f - f);
            dO[j] = d_h * t * og * (1.0f - og);
            dg[j] = d_c * i * (1.0f - g * g);
            dcr[j] = d_c * f;
        }
    }
    if (da_bf16 != NULL)
        for (size_t k = 0; k < (size_t)b * 4 * H; k++) da_bf16[k] = bf16(da[k]);
}
