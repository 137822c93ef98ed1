/* The element-wise part of one LSTM step, forward and backward, for rnnkit/nn/lstm_kernel.py.
 *
 * The kernel's loop (Python) does each step's matrix product with torch (oneDNN) and hands the rest
 * to these two functions: one pass over the step's numbers instead of ten torch operations, each of
 * which reads and writes all of them again. Plain C99; built with -O3 -march=native -ffast-math,
 * which vectorises the loops and expf (glibc's vector math library).
 *
 * Layout: b rows, H units; a step's gate block a (b, 4H) is row-major with the gates in the kernel's
 * order i, f, o, g, each a block of H columns. The candidate's pre-activations arrive doubled
 * (the kernel doubles those rows of W, U and the bias), so that g = tanh(a_g) = 2 sigma(2 a_g) - 1
 * is computed from one sigmoid, as the torch fallback does: both paths give the same numbers.
 */
#include <math.h>
#include <stddef.h>

static inline float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
static inline float tanh_(float x) { return 2.0f / (1.0f + expf(-2.0f * x)) - 1.0f; }

/* Forward. In: a (b, 4H) pre-activations (the candidate's doubled), c_prev (b, H); mask (b, H) or NULL.
 * Out: a holds the activations i, f, o, g; c (b, H) the new cell state; tau = tanh(c); h = o * tau;
 * h_next (b, H) = mask * h, what the next step's product reads (NULL on the last step). */
void rnnkit_lstm_forward_step(int b, int H, float *restrict a, const float *restrict c_prev, float *restrict c,
                              float *restrict tau, float *restrict h, const float *restrict mask,
                              float *restrict h_next)
{
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
}

/* Backward. In: a (b, 4H) the activations; c_prev, tau (b, H); dh (b, H) dL/dh_t (outputs and the step
 * after); dc (b, H) the cell gradient from the step after. Out: da (b, 4H) dL/d(pre-activations)
 * (the candidate's with respect to its undoubled pre-activation); dc <- dc_t * f, for the step before. */
void rnnkit_lstm_backward_step(int b, int H, const float *restrict a, const float *restrict c_prev,
                               const float *restrict tau, const float *restrict dh, float *restrict dc,
                               float *restrict da)
{
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
}
