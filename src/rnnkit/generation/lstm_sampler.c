/* Batch-1 sampling from a stacked LSTM language model, in C: rnnkit's fastest sampling path.
 *
 * rnnkit compiles this file on first use (see native.py) and uses the TorchScript loop
 * instead when there is no C compiler or the build fails. It computes what FastSampler.run computes for one row with
 * temperature (or greedy) sampling, with the same choice rule, in float32:
 *
 *   gates = x_proj + W_hh h            (x_proj: a row of the token table for layer 0, W_ih h_below + b above)
 *   c = f * c + i * g,  h = o * tanh(c)
 *   logits = head_b + head_w h_top     (both already divided by the temperature)
 *   token = first v with cumsum(softmax(logits))[v] > u * total   (u: one pre-drawn uniform per token)
 *
 * Why C: at batch 1 the arithmetic is ~1 MFLOP per character, and what costs is everything around
 * it. Here one call generates many tokens (2,048 from Python); T threads each own a fixed block
 * of hidden units (all four gate rows of each unit are theirs, and the head's rows are split the
 * same way), so every thread reads the same slice of the weights at every step, and that slice
 * stays in its core's L2 cache.
 * Threads meet at a barrier after each layer and after the head (three per character for two layers);
 * each then draws the same token from the same logits, so the choice needs no barrier of its own.
 *
 * Memory layouts (all row-major float32, prepared by the Python side):
 *   table  (V, 4H)          layer 0's input projection of each token, plus both biases
 *   w_hh   (L, 4H, H)       recurrent weights of each layer
 *   w_ih   (L-1, 4H, H)     input weights of layers 1..L-1 (their input is the layer below's h)
 *   b_in   (L-1, 4H)        both biases of layers 1..L-1
 *   Gate rows are "unit-major": rows 4j..4j+3 are the i, f, o, g rows of hidden unit j.
 *   head_w (V, H), head_b (V,): the head, divided by the temperature
 *   scores (V,)             in: the logits for the first token (the seed's), divided by the temperature;
 *                           out: the logits for the token after the last one generated
 *   h      (2, L, H)        in: the state to start from in h[0]; out: the state after the last token
 *                           in h[0] (h[1] is scratch: the two take turns)
 *   c      (L, H)           the cell state, updated in place
 * Scores and state come back so that a long generation can run as several calls (Python checks for
 * Ctrl-C between them).
 */
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    atomic_int arrived;
    atomic_int phase;
    int threads;
} Barrier;

/* Spin until every thread has arrived; yield after a while so an oversubscribed machine still
 * makes progress. */
static void barrier_wait(Barrier *b) {
    int phase = atomic_load_explicit(&b->phase, memory_order_acquire);
    if (atomic_fetch_add_explicit(&b->arrived, 1, memory_order_acq_rel) == b->threads - 1) {
        atomic_store_explicit(&b->arrived, 0, memory_order_relaxed);
        atomic_store_explicit(&b->phase, phase + 1, memory_order_release);
        return;
    }
    for (long spins = 0; atomic_load_explicit(&b->phase, memory_order_acquire) == phase; spins++) {
        if (spins > 20000) sched_yield();
    }
}

typedef struct {
    int layers, hidden, vocab, length, greedy, end, threads;
    const float *table, *w_hh, *w_ih, *b_in, *head_w, *head_b, *uniforms;
    float *scores;      /* (V,): the first token's logits in, the next token's out */
    float *h[2];        /* two (L, H) buffers: read the step's old state from one, write the new into the other */
    float *c;           /* (L, H): each unit's cell is read and written by its own thread only */
    float *logits;      /* (V,) */
    int64_t *tokens;
    int produced;
    atomic_int go;      /* workers wait for it: set once every thread that could start has started */
    Barrier barrier;
} Job;

typedef struct {
    Job *job;
    int index;
} Worker;

/* Partial sums per row: 32 floats are 4 AVX registers per row, 16 for the four rows of dot4, so
 * the compiler keeps them all in registers without reassociating one sum (2x256 model, 2 cores:
 * 16 partial sums 46 us per character, 32: 39 us, 64: 67 us; docs/benchmarks.md). */
#define LANES 32

/* Four dot products of length n sharing x: the four gate rows of one unit, added to out. */
static void dot4(const float *w, const float *x, int n, float out[4]) {
    float acc[4][LANES] = {{0}};
    int k = 0;
    for (; k + LANES <= n; k += LANES)
        for (int r = 0; r < 4; r++)
            for (int j = 0; j < LANES; j++) acc[r][j] += w[r * n + k + j] * x[k + j];
    for (int r = 0; r < 4; r++) {
        float s = 0.0f;
        for (int j = 0; j < LANES; j++) s += acc[r][j];
        for (int q = k; q < n; q++) s += w[r * n + q] * x[q];
        out[r] += s;
    }
}

static float dot(const float *w, const float *x, int n) {
    float acc[LANES] = {0};
    int k = 0;
    for (; k + LANES <= n; k += LANES)
        for (int j = 0; j < LANES; j++) acc[j] += w[k + j] * x[k + j];
    float s = 0.0f;
    for (int j = 0; j < LANES; j++) s += acc[j];
    for (; k < n; k++) s += w[k] * x[k];
    return s;
}

static float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

/* tanh(x) = 2 sigmoid(2x) - 1: libm's expf is much cheaper than its tanhf (docs/benchmarks.md,
 * "Generation speed"). It is off by at most ~2e-7 (absolute), against ~3e-8 for tanhf:
 * too little to change a sampled token but at a near-tie (the tests check whole samples). */
static float tanh_(float x) { return 2.0f * sigmoid(2.0f * x) - 1.0f; }

/* The token for one set of logits: greedy (first maximum) or inverse CDF at u. */
static int choose(const float *logits, int vocab, float u, int greedy) {
    int best = 0;
    for (int v = 1; v < vocab; v++)
        if (logits[v] > logits[best]) best = v;
    if (greedy) return best;
    float m = logits[best], total = 0.0f;
    float cum[vocab];
    for (int v = 0; v < vocab; v++) total += expf(logits[v] - m);
    float run = 0.0f;
    for (int v = 0; v < vocab; v++) {
        run += expf(logits[v] - m) / total;
        cum[v] = run;
    }
    float target = u * cum[vocab - 1];
    for (int v = 0; v < vocab; v++)
        if (cum[v] > target) return v;
    return vocab - 1;
}

static void *work(void *arg) {
    Worker *me = (Worker *)arg;
    Job *j = me->job;
    while (!atomic_load_explicit(&j->go, memory_order_acquire)) sched_yield();
    const int H = j->hidden, G = 4 * H, V = j->vocab, L = j->layers;
    /* This thread's hidden units [u0, u1) and head rows [v0, v1). */
    const int u0 = H * me->index / j->threads, u1 = H * (me->index + 1) / j->threads;
    const int v0 = V * me->index / j->threads, v1 = V * (me->index + 1) / j->threads;
    const float *logits = j->scores;
    int old = 0;
    for (int t = 0; t < j->length; t++) {
        /* Every thread draws the same token from the same logits: no barrier needed for it. */
        int token = choose(logits, V, j->uniforms[t], j->greedy);
        if (me->index == 0) j->tokens[t] = token;
        if (token == j->end) {
            if (me->index == 0) j->produced = t + 1;
            return NULL;
        }
        const float *h_old = j->h[old];
        float *h_new = j->h[1 - old];
        for (int l = 0; l < L; l++) {
            const float *w = j->w_hh + (size_t)l * G * H;
            for (int u = u0; u < u1; u++) {
                float gate[4];                                  /* i, f, o, g of unit u */
                if (l == 0) {
                    memcpy(gate, j->table + (size_t)token * G + 4 * u, sizeof gate);
                } else {
                    memcpy(gate, j->b_in + (size_t)(l - 1) * G + 4 * u, sizeof gate);
                    dot4(j->w_ih + ((size_t)(l - 1) * G + 4 * u) * H, h_new + (l - 1) * H, H, gate);
                }
                dot4(w + (size_t)4 * u * H, h_old + l * H, H, gate);
                float *c = j->c + l * H + u;
                *c = sigmoid(gate[1]) * *c + sigmoid(gate[0]) * tanh_(gate[3]);
                h_new[l * H + u] = sigmoid(gate[2]) * tanh_(*c);
            }
            barrier_wait(&j->barrier);                          /* layer l's h is complete */
        }
        for (int v = v0; v < v1; v++)
            j->logits[v] = j->head_b[v] + dot(j->head_w + (size_t)v * H, h_new + (L - 1) * H, H);
        barrier_wait(&j->barrier);                              /* the logits are complete */
        logits = j->logits;
        old = 1 - old;
    }
    if (me->index == 0) {              /* every thread has passed the last barrier: nothing else writes */
        j->produced = j->length;
        if (j->length > 0) memcpy(j->scores, j->logits, sizeof(float) * V);
        if (old == 1) memcpy(j->h[0], j->h[1], sizeof(float) * L * H);
    }
    return NULL;
}

/* Generate up to `length` tokens into `tokens`; returns how many were written (fewer when `end`
 * came), or -1 when memory ran out. Runs on `threads` threads (fewer if some cannot start). */
int rnnkit_lstm_sample(int layers, int hidden, int vocab, const float *table, const float *w_hh,
                       const float *w_ih, const float *b_in, const float *head_w, const float *head_b,
                       float *scores, float *h, float *c, const float *uniforms, int length,
                       int greedy, int end, int threads, int64_t *tokens) {
    Job job = {.layers = layers, .hidden = hidden, .vocab = vocab, .length = length, .greedy = greedy,
               .end = end, .table = table, .w_hh = w_hh, .w_ih = w_ih, .b_in = b_in,
               .head_w = head_w, .head_b = head_b, .scores = scores, .uniforms = uniforms,
               .h = {h, h + (size_t)layers * hidden}, .c = c, .tokens = tokens, .produced = 0};
    job.logits = malloc(sizeof(float) * vocab);
    Worker *workers = malloc(sizeof(Worker) * threads);
    pthread_t *ids = malloc(sizeof(pthread_t) * threads);
    if (!job.logits || !workers || !ids) {
        free(job.logits); free(workers); free(ids);
        return -1;
    }
    atomic_init(&job.go, 0);
    atomic_init(&job.barrier.arrived, 0);
    atomic_init(&job.barrier.phase, 0);
    int started = 1;                                    /* this thread is worker 0 */
    for (; started < threads; started++) {
        workers[started] = (Worker){&job, started};
        if (pthread_create(&ids[started], NULL, work, &workers[started]) != 0) break;
    }
    /* The work is split over the threads that did start; they read the count after `go`. */
    job.threads = started;
    job.barrier.threads = started;
    atomic_store_explicit(&job.go, 1, memory_order_release);
    workers[0] = (Worker){&job, 0};
    work(&workers[0]);
    for (int i = 1; i < started; i++) pthread_join(ids[i], NULL);
    free(job.logits); free(workers); free(ids);
    return job.produced;
}
