/*
 * BlazingText's compiled CPU training loops: fastText's own per-example SGD, in plain C with
 * POSIX threads (see word2vec.py and classifier.py for the model; native.py for the caller).
 *
 * Why C: the PyTorch path trains in mini-batches of a few thousand examples, and each step is
 * a handful of tensor ops whose call overhead and memory traffic dominate at word2vec's sizes
 * (dim 100, 6 output rows an example). fastText and word2vec instead run one fused loop per
 * example that keeps the hidden vector and its gradient in L1 and touches each row once. This
 * file is that loop, following fastText 0.9 (src/fasttext.cc, model.cc, loss.cc) closely:
 *
 *   - Hogwild (Recht et al. 2011): N threads, each on its own slice of the corpus, update the
 *     shared tables without locks; one shared atomic word counter drives the learning rate,
 *     lr * (1 - words done / words to do), and lets the caller show progress.
 *   - word2vec: per line, subsampling, then for each position a window shrunk uniformly to
 *     1..window (fastText's `uniform(1, ws)`), negative sampling from the unigram^0.75 table
 *     (word2vec's power; fastText's own table uses 0.5), a sigmoid read from fastText's table.
 *   - supervised: the mean of a line's word and word-n-gram rows, a softmax over the labels,
 *     the hidden gradient divided by the line's length (fastText's `normalizeGradient_`).
 *
 * Where this differs from fastText, and why:
 *   - a negative that happens to be the positive word is skipped (word2vec, and our PyTorch
 *     path), not redrawn: redrawing never ends on a one-word vocabulary;
 *   - the random generator is xorshift64* (cheaper than std::minstd_rand; one thread with one
 *     seed draws the same stream, so it trains the same model byte for byte run after run);
 *   - no log table: fastText uses it only for the reported loss, which we do not report.
 *
 * Safety: every index the loops follow is checked once before the GIL is released, so a bad
 * array from Python raises ValueError instead of writing outside the tables.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- fastText's sigmoid table (loss.cc) ------------------------------------------------- */

#define SIGMOID_TABLE_SIZE 512
#define MAX_SIGMOID 8

static float sigmoid_table[SIGMOID_TABLE_SIZE + 1];

static void init_sigmoid_table(void)
{
    for (int i = 0; i <= SIGMOID_TABLE_SIZE; i++) {
        double x = (double)(i * 2 * MAX_SIGMOID) / SIGMOID_TABLE_SIZE - MAX_SIGMOID;
        sigmoid_table[i] = (float)(1.0 / (1.0 + exp(-x)));
    }
}

static inline float fast_sigmoid(float x)
{
    if (x < -MAX_SIGMOID)
        return 0.0f;
    if (x > MAX_SIGMOID)
        return 1.0f;
    int i = (int)((x + MAX_SIGMOID) * SIGMOID_TABLE_SIZE / MAX_SIGMOID / 2);
    return sigmoid_table[i];
}

/* ---- random numbers: xorshift64* (Vigna 2016), seeded through splitmix64 ------------------ */

typedef struct {
    uint64_t s;
} rng_t;

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

static rng_t rng_seeded(uint64_t seed, uint64_t stream)
{
    rng_t r;
    r.s = splitmix64(seed ^ splitmix64(stream + 1));
    if (r.s == 0)
        r.s = 0x9E3779B97F4A7C15ULL; /* xorshift's one forbidden state */
    return r;
}

static inline uint64_t rng_next(rng_t *r)
{
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* Uniform in [0, n) by multiply-shift (Lemire): no division in the inner loop. */
static inline uint32_t rng_below(rng_t *r, uint32_t n)
{
    return (uint32_t)(((rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

/* Uniform in [0, 1) with 24 bits, what a float holds. */
static inline float rng_unit(rng_t *r)
{
    return (float)(rng_next(r) >> 40) * (1.0f / 16777216.0f);
}

/* ---- vector kernels ----------------------------------------------------------------------
 * Written so that -O3 vectorises them without -ffast-math (which would change the process's
 * floating-point state when the module loads): the dot product keeps 8 partial sums, a fixed
 * order, so results do not depend on the compiler's choices between runs. */

static inline float dot(const float *restrict a, const float *restrict b, int n)
{
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += a[i + j] * b[i + j];
    float tail = 0.0f;
    for (; i < n; i++)
        tail += a[i] * b[i];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) +
           tail;
}

/* y += a * x */
static inline void axpy(float *restrict y, const float *restrict x, float a, int n)
{
    for (int i = 0; i < n; i++)
        y[i] += a * x[i];
}

/* fastText's `grad.addRow(wo, target, alpha); wo.addVectorToRow(hidden, target, alpha)`,
 * fused into one pass over the output row (grad takes the row's value before its update). */
static inline void output_update(float *restrict grad, float *restrict out,
                                 const float *restrict hidden, float alpha, int n)
{
    for (int i = 0; i < n; i++) {
        float o = out[i];
        grad[i] += alpha * o;
        out[i] = o + alpha * hidden[i];
    }
}

/* ---- word2vec ------------------------------------------------------------------------------ */

enum { MODE_CBOW = 0, MODE_SKIPGRAM = 1, MODE_BATCH_SKIPGRAM = 2 };

/* fastText's MAX_LINE_SIZE: a line is read (and its windows cut) at most 1024 tokens at a
 * time, so one huge line (text8) still updates the learning rate and splits across threads. */
#define MAX_LINE_TOKENS 1024

typedef struct {
    float *input;  /* rows x dim: words, then character n-grams */
    float *output; /* vocab x dim */
    int dim;
    const int32_t *sub_rows; /* each word's input rows, its own first */
    const int64_t *sub_off;  /* vocab + 1 offsets into sub_rows */
    const int32_t *corpus;
    const int64_t *line_starts; /* lines + 1 offsets into corpus */
    int64_t lines;
    const float *keep; /* subsampling: probability of keeping each word */
    const int32_t *table;
    uint32_t table_size;
    int mode, window, negatives, batch_size;
    float lr, min_lr_fraction;
    int64_t total;    /* words to read in all: epochs x corpus */
    int64_t *counter; /* words read so far, shared by the threads (atomic) */
} w2v_shared;

typedef struct {
    const w2v_shared *sh;
    int64_t start, end; /* its slice of the corpus (positions) */
    uint64_t seed, stream;
    int32_t *words;
    float *hidden, *grad;
    int32_t *negatives;
} w2v_thread;

static inline float current_lr(float lr, float floor_fraction, int64_t done, int64_t total)
{
    float left = 1.0f - (float)((double)done / (double)total);
    return lr * (left > floor_fraction ? left : floor_fraction);
}

/* The vector a word feeds in: its own row when it has no n-grams (no copy), else the mean of
 * its rows (fastText's `computeHidden`). */
static inline const float *word_input(const w2v_shared *s, int32_t word, float *hidden)
{
    const int32_t *rows = s->sub_rows + s->sub_off[word];
    int64_t count = s->sub_off[word + 1] - s->sub_off[word];
    if (count == 1)
        return s->input + (int64_t)rows[0] * s->dim;
    memset(hidden, 0, sizeof(float) * s->dim);
    for (int64_t r = 0; r < count; r++)
        axpy(hidden, s->input + (int64_t)rows[r] * s->dim, 1.0f, s->dim);
    float inv = 1.0f / (float)count;
    for (int i = 0; i < s->dim; i++)
        hidden[i] *= inv;
    return hidden;
}

/* Every row of a word gets the whole gradient (fastText's `Model::update` outside supervised
 * mode). */
static inline void word_backward(const w2v_shared *s, int32_t word, const float *grad)
{
    for (int64_t r = s->sub_off[word]; r < s->sub_off[word + 1]; r++)
        axpy(s->input + (int64_t)s->sub_rows[r] * s->dim, grad, 1.0f, s->dim);
}

/* fastText's `BinaryLogisticLoss::binaryLogistic` with backprop. */
static inline void logistic(const w2v_shared *s, const float *hidden, float *grad, int32_t target,
                            float label, float lr)
{
    float *out = s->output + (int64_t)target * s->dim;
    float alpha = lr * (label - fast_sigmoid(dot(hidden, out, s->dim)));
    output_update(grad, out, hidden, alpha, s->dim);
}

/* fastText's `NegativeSamplingLoss::forward`: the positive, then `negatives` draws. */
static inline void negative_sampling(const w2v_shared *s, const float *hidden, float *grad,
                                     int32_t target, float lr, rng_t *rng)
{
    memset(grad, 0, sizeof(float) * s->dim);
    logistic(s, hidden, grad, target, 1.0f, lr);
    for (int k = 0; k < s->negatives; k++) {
        int32_t negative = s->table[rng_below(rng, s->table_size)];
        if (negative != target)
            logistic(s, hidden, grad, negative, 0.0f, lr);
    }
}

/* fastText's `FastText::skipgram`: the centre word's input predicts each context word. */
static void skipgram_line(const w2v_thread *t, int n, float lr, rng_t *rng)
{
    const w2v_shared *s = t->sh;
    for (int w = 0; w < n; w++) {
        int b = 1 + (int)rng_below(rng, (uint32_t)s->window);
        for (int c = -b; c <= b; c++) {
            if (c == 0 || w + c < 0 || w + c >= n)
                continue;
            /* recomputed per context word, as fastText does: the rows moved since */
            const float *h = word_input(s, t->words[w], t->hidden);
            negative_sampling(s, h, t->grad, t->words[w + c], lr, rng);
            word_backward(s, t->words[w], t->grad);
        }
    }
}

/* fastText's `FastText::cbow`: the mean of every input row of the context words (with
 * subwords: all their n-gram rows together, as fastText's bag) predicts the centre word. */
static void cbow_line(const w2v_thread *t, int n, float lr, rng_t *rng)
{
    const w2v_shared *s = t->sh;
    int dim = s->dim;
    for (int w = 0; w < n; w++) {
        int b = 1 + (int)rng_below(rng, (uint32_t)s->window);
        memset(t->hidden, 0, sizeof(float) * dim);
        int64_t count = 0;
        for (int c = -b; c <= b; c++) {
            if (c == 0 || w + c < 0 || w + c >= n)
                continue;
            int32_t word = t->words[w + c];
            for (int64_t r = s->sub_off[word]; r < s->sub_off[word + 1]; r++) {
                axpy(t->hidden, s->input + (int64_t)s->sub_rows[r] * dim, 1.0f, dim);
                count++;
            }
        }
        if (count == 0)
            continue;
        float inv = 1.0f / (float)count;
        for (int i = 0; i < dim; i++)
            t->hidden[i] *= inv;
        negative_sampling(s, t->hidden, t->grad, t->words[w], lr, rng);
        for (int c = -b; c <= b; c++)
            if (c != 0 && w + c >= 0 && w + c < n)
                word_backward(s, t->words[w + c], t->grad);
    }
}

/* batch_skipgram, Ji et al. 2016's negative sharing: the context words of one centre (at most
 * `batch_size`, nearest first) each predict the centre against one shared set of negatives.
 * Ji et al. batch them into a matrix product for BLAS; one core gains nothing from that, so
 * here they go one after another, each an ordinary SGD step. */
static void batch_skipgram_line(const w2v_thread *t, int n, float lr, rng_t *rng)
{
    const w2v_shared *s = t->sh;
    for (int w = 0; w < n; w++) {
        int b = 1 + (int)rng_below(rng, (uint32_t)s->window);
        int32_t centre = t->words[w];
        for (int k = 0; k < s->negatives; k++)
            t->negatives[k] = s->table[rng_below(rng, s->table_size)];
        int used = 0;
        for (int d = 1; d <= b && used < s->batch_size; d++) {
            for (int side = -1; side <= 1 && used < s->batch_size; side += 2) {
                int c = w + side * d;
                if (c < 0 || c >= n)
                    continue;
                used++;
                const float *h = word_input(s, t->words[c], t->hidden);
                memset(t->grad, 0, sizeof(float) * s->dim);
                logistic(s, h, t->grad, centre, 1.0f, lr);
                for (int k = 0; k < s->negatives; k++)
                    if (t->negatives[k] != centre)
                        logistic(s, h, t->grad, t->negatives[k], 0.0f, lr);
                word_backward(s, t->words[c], t->grad);
            }
        }
    }
}

/* The line holding corpus position `pos` (line_starts[i] <= pos < line_starts[i + 1]). */
static int64_t line_of(const w2v_shared *s, int64_t pos)
{
    int64_t lo = 0, hi = s->lines - 1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo + 1) / 2;
        if (s->line_starts[mid] <= pos)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

/* One thread: read its slice a piece at a time (a piece ends at a line's end, the slice's end
 * or MAX_LINE_TOKENS), going round its slice until the shared counter says all the epochs'
 * words are read, as fastText's `trainThread` does (so a thread slowed by a busy core does
 * less, rather than holding the others up). */
static void *w2v_worker(void *arg)
{
    w2v_thread *t = (w2v_thread *)arg;
    const w2v_shared *s = t->sh;
    if (t->start >= t->end)
        return NULL;
    rng_t rng = rng_seeded(t->seed, t->stream);
    int64_t pos = t->start;
    int64_t line = line_of(s, pos);
    for (;;) {
        int64_t done = __atomic_load_n(s->counter, __ATOMIC_RELAXED);
        if (done >= s->total)
            break;
        float lr = current_lr(s->lr, s->min_lr_fraction, done, s->total);
        while (s->line_starts[line + 1] <= pos)
            line++;
        int64_t stop = s->line_starts[line + 1];
        if (stop > t->end)
            stop = t->end;
        if (stop > pos + MAX_LINE_TOKENS)
            stop = pos + MAX_LINE_TOKENS;
        int n = 0;
        for (int64_t p = pos; p < stop; p++) {
            int32_t word = s->corpus[p];
            if (rng_unit(&rng) < s->keep[word])
                t->words[n++] = word;
        }
        if (s->mode == MODE_CBOW)
            cbow_line(t, n, lr, &rng);
        else if (s->mode == MODE_SKIPGRAM)
            skipgram_line(t, n, lr, &rng);
        else
            batch_skipgram_line(t, n, lr, &rng);
        __atomic_fetch_add(s->counter, stop - pos, __ATOMIC_RELAXED);
        pos = stop;
        if (pos >= t->end) {
            pos = t->start;
            line = line_of(s, pos);
        }
    }
    return NULL;
}

/* ---- supervised -------------------------------------------------------------------------- */

typedef struct {
    float *input;  /* words, then word n-gram buckets */
    float *output; /* labels x dim */
    int dim, labels;
    const int32_t *rows;
    const int64_t *offsets; /* lines + 1 offsets into rows */
    const int32_t *label_ids;
    const int64_t *label_offsets; /* lines + 1 offsets into label_ids */
    const int64_t *order;         /* the lines to train on, in this epoch's order */
    float lr, min_lr_fraction;
    int64_t total;
    int64_t *counter;
} sup_shared;

typedef struct {
    const sup_shared *sh;
    int64_t start, end; /* its slice of `order` */
    uint64_t seed, stream;
    float *hidden, *grad, *scores;
} sup_thread;

/* One line: fastText's `FastText::supervised` with the softmax loss (`SoftmaxLoss::forward`):
 * a multi-label line trains on one of its labels drawn at random. */
static void supervised_line(const sup_thread *t, int64_t line, float lr, rng_t *rng)
{
    const sup_shared *s = t->sh;
    int dim = s->dim;
    int64_t first = s->offsets[line], count = s->offsets[line + 1] - first;
    int64_t lfirst = s->label_offsets[line], lcount = s->label_offsets[line + 1] - lfirst;
    if (count == 0 || lcount == 0)
        return;
    int32_t target = s->label_ids[lfirst + rng_below(rng, (uint32_t)lcount)];
    memset(t->hidden, 0, sizeof(float) * dim);
    for (int64_t r = 0; r < count; r++)
        axpy(t->hidden, s->input + (int64_t)s->rows[first + r] * dim, 1.0f, dim);
    float inv = 1.0f / (float)count;
    for (int i = 0; i < dim; i++)
        t->hidden[i] *= inv;
    float top = -INFINITY, z = 0.0f;
    for (int j = 0; j < s->labels; j++) {
        t->scores[j] = dot(s->output + (int64_t)j * dim, t->hidden, dim);
        if (t->scores[j] > top)
            top = t->scores[j];
    }
    for (int j = 0; j < s->labels; j++) {
        t->scores[j] = expf(t->scores[j] - top);
        z += t->scores[j];
    }
    memset(t->grad, 0, sizeof(float) * dim);
    for (int j = 0; j < s->labels; j++) {
        float alpha = lr * ((j == target ? 1.0f : 0.0f) - t->scores[j] / z);
        output_update(t->grad, s->output + (int64_t)j * dim, t->hidden, alpha, dim);
    }
    for (int64_t r = 0; r < count; r++) /* normalizeGradient_: each row gets grad / length */
        axpy(s->input + (int64_t)s->rows[first + r] * dim, t->grad, inv, dim);
}

static void *sup_worker(void *arg)
{
    sup_thread *t = (sup_thread *)arg;
    const sup_shared *s = t->sh;
    rng_t rng = rng_seeded(t->seed, t->stream);
    for (int64_t i = t->start; i < t->end; i++) {
        int64_t done = __atomic_load_n(s->counter, __ATOMIC_RELAXED);
        int64_t line = s->order[i];
        supervised_line(t, line, current_lr(s->lr, s->min_lr_fraction, done, s->total), &rng);
        __atomic_fetch_add(s->counter, s->offsets[line + 1] - s->offsets[line], __ATOMIC_RELAXED);
    }
    return NULL;
}

/* ---- threads ----------------------------------------------------------------------------- */

/* Start `n` workers and wait for them; one that cannot be started runs on this thread
 * instead, so training never silently skips a slice. Called without the GIL. */
static void run_workers(void *(*work)(void *), void *args, size_t size, int n)
{
    pthread_t *ids = (pthread_t *)malloc(sizeof(pthread_t) * (size_t)n);
    char *started = (char *)calloc((size_t)n, 1);
    for (int i = 0; i < n; i++)
        if (ids != NULL && started != NULL &&
            pthread_create(&ids[i], NULL, work, (char *)args + (size_t)i * size) == 0)
            started[i] = 1;
    for (int i = 0; i < n; i++)
        if (started == NULL || !started[i])
            work((char *)args + (size_t)i * size);
    for (int i = 0; i < n; i++)
        if (started != NULL && started[i])
            pthread_join(ids[i], NULL);
    free(ids);
    free(started);
}

/* ---- argument checking ------------------------------------------------------------------- */

#define MAX_BUFFERS 10

typedef struct {
    Py_buffer views[MAX_BUFFERS];
    int held;
} buffers_t;

static void release_all(buffers_t *b)
{
    for (int i = 0; i < b->held; i++)
        PyBuffer_Release(&b->views[i]);
    b->held = 0;
}

/* A C-contiguous buffer of `itemsize`-byte floats ('f') or signed integers ('i'); its data
 * and length in items, or NULL with an exception set. */
static void *take(buffers_t *b, PyObject *obj, const char *name, char kind, Py_ssize_t itemsize,
                  int writable, Py_ssize_t *length)
{
    Py_buffer *view = &b->views[b->held];
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0)
        return NULL;
    b->held++;
    const char *format = view->format != NULL ? view->format : "B";
    if (*format == '@' || *format == '=' || *format == '<')
        format++;
    int ok = view->itemsize == itemsize && format[0] != '\0' && format[1] == '\0' &&
             (kind == 'f' ? format[0] == 'f' : strchr("ilq", format[0]) != NULL);
    if (!ok) {
        PyErr_Format(PyExc_TypeError, "%s must be a contiguous array of %s%d", name,
                     kind == 'f' ? "float" : "int", (int)(itemsize * 8));
        return NULL;
    }
    *length = view->len / itemsize;
    return view->buf;
}

static int check_ids(const int32_t *ids, Py_ssize_t n, int64_t limit, const char *name)
{
    for (Py_ssize_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= limit) {
            PyErr_Format(PyExc_ValueError, "%s[%zd] = %d is outside [0, %lld)", name, i,
                         (int)ids[i], (long long)limit);
            return -1;
        }
    return 0;
}

/* offsets: n + 1 non-decreasing values from 0 to `last`. */
static int check_offsets(const int64_t *off, Py_ssize_t count, int64_t last, const char *name)
{
    if (count < 1 || off[0] != 0 || off[count - 1] != last) {
        PyErr_Format(PyExc_ValueError, "%s must run from 0 to %lld", name, (long long)last);
        return -1;
    }
    for (Py_ssize_t i = 1; i < count; i++)
        if (off[i] < off[i - 1]) {
            PyErr_Format(PyExc_ValueError, "%s must not decrease (at %zd)", name, i);
            return -1;
        }
    return 0;
}

/* ---- word2vec entry point ---------------------------------------------------------------- */

PyDoc_STRVAR(word2vec_doc,
             "word2vec(*, input, output, subword_rows, subword_offsets, corpus, line_starts, "
             "keep, table, counter, mode, dim, window, negatives, batch_size, learning_rate, "
             "min_lr_fraction, epochs, threads, seed)\n\n"
             "Train word vectors in place (Hogwild over `threads` threads, the GIL released). "
             "mode: 0 cbow, 1 skipgram, 2 batch_skipgram. counter[0] counts the corpus words "
             "read; training stops at epochs x len(corpus).");

static PyObject *py_word2vec(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {
        "input", "output", "subword_rows", "subword_offsets", "corpus", "line_starts",
        "keep", "table", "counter", "mode", "dim", "window", "negatives", "batch_size",
        "learning_rate", "min_lr_fraction", "epochs", "threads", "seed", NULL};
    PyObject *o_input, *o_output, *o_rows, *o_off, *o_corpus, *o_lines, *o_keep, *o_table,
        *o_counter;
    int mode, dim, window, negatives, batch_size, epochs, threads;
    float lr, min_lr_fraction;
    unsigned long long seed;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOOOOOOiiiiiffiiK", keywords, &o_input,
                                     &o_output, &o_rows, &o_off, &o_corpus, &o_lines, &o_keep,
                                     &o_table, &o_counter, &mode, &dim, &window, &negatives,
                                     &batch_size, &lr, &min_lr_fraction, &epochs, &threads,
                                     &seed))
        return NULL;
    if (mode < 0 || mode > 2 || dim < 1 || window < 1 || negatives < 0 || batch_size < 1 ||
        epochs < 1 || threads < 1) {
        PyErr_SetString(PyExc_ValueError, "word2vec: a setting is out of range");
        return NULL;
    }
    buffers_t b = {.held = 0};
    Py_ssize_t n_input, n_output, n_rows, n_off, n_corpus, n_lines, n_keep, n_table, n_counter;
    w2v_shared s;
    memset(&s, 0, sizeof s);
    s.input = take(&b, o_input, "input", 'f', 4, 1, &n_input);
    if (s.input == NULL)
        goto fail;
    s.output = take(&b, o_output, "output", 'f', 4, 1, &n_output);
    if (s.output == NULL)
        goto fail;
    s.sub_rows = take(&b, o_rows, "subword_rows", 'i', 4, 0, &n_rows);
    if (s.sub_rows == NULL)
        goto fail;
    s.sub_off = take(&b, o_off, "subword_offsets", 'i', 8, 0, &n_off);
    if (s.sub_off == NULL)
        goto fail;
    s.corpus = take(&b, o_corpus, "corpus", 'i', 4, 0, &n_corpus);
    if (s.corpus == NULL)
        goto fail;
    s.line_starts = take(&b, o_lines, "line_starts", 'i', 8, 0, &n_lines);
    if (s.line_starts == NULL)
        goto fail;
    s.keep = take(&b, o_keep, "keep", 'f', 4, 0, &n_keep);
    if (s.keep == NULL)
        goto fail;
    s.table = take(&b, o_table, "table", 'i', 4, 0, &n_table);
    if (s.table == NULL)
        goto fail;
    s.counter = take(&b, o_counter, "counter", 'i', 8, 1, &n_counter);
    if (s.counter == NULL)
        goto fail;

    int64_t vocab = n_off - 1, rows = n_input / dim;
    if (vocab < 1 || n_input % dim != 0 || n_output != vocab * dim || n_keep != vocab ||
        n_table < 1 || n_table > UINT32_MAX || n_counter < 1 || n_lines < 1) {
        PyErr_SetString(PyExc_ValueError, "word2vec: array sizes do not agree");
        goto fail;
    }
    if (check_offsets(s.sub_off, n_off, n_rows, "subword_offsets") < 0 ||
        check_ids(s.sub_rows, n_rows, rows, "subword_rows") < 0 ||
        check_offsets(s.line_starts, n_lines, n_corpus, "line_starts") < 0 ||
        check_ids(s.corpus, n_corpus, vocab, "corpus") < 0 ||
        check_ids(s.table, n_table, vocab, "table") < 0)
        goto fail;
    for (int64_t w = 0; w < vocab; w++)
        if (s.sub_off[w + 1] == s.sub_off[w]) {
            PyErr_Format(PyExc_ValueError, "word %lld has no input row", (long long)w);
            goto fail;
        }

    s.dim = dim;
    s.lines = n_lines - 1;
    s.table_size = (uint32_t)n_table;
    s.mode = mode;
    s.window = window;
    s.negatives = negatives;
    s.batch_size = batch_size;
    s.lr = lr;
    s.min_lr_fraction = min_lr_fraction;
    s.total = (int64_t)epochs * n_corpus;
    *s.counter = 0;
    if (n_corpus == 0) {
        release_all(&b);
        Py_RETURN_NONE;
    }

    w2v_thread *workers = (w2v_thread *)calloc((size_t)threads, sizeof(w2v_thread));
    int failed = workers == NULL;
    for (int i = 0; !failed && i < threads; i++) {
        w2v_thread *t = &workers[i];
        t->sh = &s;
        t->start = n_corpus * i / threads; /* fastText seeks each thread to size * i / n */
        t->end = n_corpus * (i + 1) / threads;
        t->seed = seed;
        t->stream = (uint64_t)i;
        t->words = (int32_t *)malloc(sizeof(int32_t) * MAX_LINE_TOKENS);
        t->hidden = (float *)malloc(sizeof(float) * (size_t)dim);
        t->grad = (float *)malloc(sizeof(float) * (size_t)dim);
        t->negatives = (int32_t *)malloc(sizeof(int32_t) * (size_t)(negatives + 1));
        failed = !t->words || !t->hidden || !t->grad || !t->negatives;
    }
    if (!failed) {
        Py_BEGIN_ALLOW_THREADS;
        run_workers(w2v_worker, workers, sizeof(w2v_thread), threads);
        Py_END_ALLOW_THREADS;
    }
    for (int i = 0; workers != NULL && i < threads; i++) {
        free(workers[i].words);
        free(workers[i].hidden);
        free(workers[i].grad);
        free(workers[i].negatives);
    }
    free(workers);
    release_all(&b);
    if (failed)
        return PyErr_NoMemory();
    Py_RETURN_NONE;

fail:
    release_all(&b);
    return NULL;
}

/* ---- supervised entry point -------------------------------------------------------------- */

PyDoc_STRVAR(supervised_doc,
             "supervised(*, input, output, rows, offsets, labels, label_offsets, order, counter, "
             "total, dim, learning_rate, min_lr_fraction, threads, seed)\n\n"
             "Train the classifier in place on the lines `order` lists, once each (one epoch; "
             "Hogwild over `threads` threads, each on a slice of `order`, the GIL released). "
             "counter[0] carries the rows trained on across epochs; the learning rate is "
             "learning_rate x (1 - counter / total).");

static PyObject *py_supervised(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"input", "output", "rows", "offsets", "labels", "label_offsets",
                               "order", "counter", "total", "dim", "learning_rate",
                               "min_lr_fraction", "threads", "seed", NULL};
    PyObject *o_input, *o_output, *o_rows, *o_off, *o_labels, *o_loff, *o_order, *o_counter;
    long long total;
    int dim, threads;
    float lr, min_lr_fraction;
    unsigned long long seed;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOOOOOLiffiK", keywords, &o_input,
                                     &o_output, &o_rows, &o_off, &o_labels, &o_loff, &o_order,
                                     &o_counter, &total, &dim, &lr, &min_lr_fraction, &threads,
                                     &seed))
        return NULL;
    if (dim < 1 || threads < 1 || total < 1) {
        PyErr_SetString(PyExc_ValueError, "supervised: a setting is out of range");
        return NULL;
    }
    buffers_t b = {.held = 0};
    Py_ssize_t n_input, n_output, n_rows, n_off, n_labels, n_loff, n_order, n_counter;
    sup_shared s;
    memset(&s, 0, sizeof s);
    s.input = take(&b, o_input, "input", 'f', 4, 1, &n_input);
    if (s.input == NULL)
        goto fail;
    s.output = take(&b, o_output, "output", 'f', 4, 1, &n_output);
    if (s.output == NULL)
        goto fail;
    s.rows = take(&b, o_rows, "rows", 'i', 4, 0, &n_rows);
    if (s.rows == NULL)
        goto fail;
    s.offsets = take(&b, o_off, "offsets", 'i', 8, 0, &n_off);
    if (s.offsets == NULL)
        goto fail;
    s.label_ids = take(&b, o_labels, "labels", 'i', 4, 0, &n_labels);
    if (s.label_ids == NULL)
        goto fail;
    s.label_offsets = take(&b, o_loff, "label_offsets", 'i', 8, 0, &n_loff);
    if (s.label_offsets == NULL)
        goto fail;
    s.order = take(&b, o_order, "order", 'i', 8, 0, &n_order);
    if (s.order == NULL)
        goto fail;
    s.counter = take(&b, o_counter, "counter", 'i', 8, 1, &n_counter);
    if (s.counter == NULL)
        goto fail;

    int64_t lines = n_off - 1;
    if (n_input % dim != 0 || n_output % dim != 0 || n_output == 0 || n_loff != n_off ||
        n_counter < 1) {
        PyErr_SetString(PyExc_ValueError, "supervised: array sizes do not agree");
        goto fail;
    }
    if (check_offsets(s.offsets, n_off, n_rows, "offsets") < 0 ||
        check_ids(s.rows, n_rows, n_input / dim, "rows") < 0 ||
        check_offsets(s.label_offsets, n_loff, n_labels, "label_offsets") < 0 ||
        check_ids(s.label_ids, n_labels, n_output / dim, "labels") < 0)
        goto fail;
    for (Py_ssize_t i = 0; i < n_order; i++)
        if (s.order[i] < 0 || s.order[i] >= lines) {
            PyErr_Format(PyExc_ValueError, "order[%zd] is not a line", i);
            goto fail;
        }

    s.dim = dim;
    s.labels = (int)(n_output / dim);
    s.lr = lr;
    s.min_lr_fraction = min_lr_fraction;
    s.total = total;
    sup_thread *workers = (sup_thread *)calloc((size_t)threads, sizeof(sup_thread));
    int failed = workers == NULL;
    for (int i = 0; !failed && i < threads; i++) {
        sup_thread *t = &workers[i];
        t->sh = &s;
        t->start = n_order * i / threads;
        t->end = n_order * (i + 1) / threads;
        t->seed = seed;
        t->stream = (uint64_t)i;
        t->hidden = (float *)malloc(sizeof(float) * (size_t)dim);
        t->grad = (float *)malloc(sizeof(float) * (size_t)dim);
        t->scores = (float *)malloc(sizeof(float) * (size_t)s.labels);
        failed = !t->hidden || !t->grad || !t->scores;
    }
    if (!failed) {
        Py_BEGIN_ALLOW_THREADS;
        run_workers(sup_worker, workers, sizeof(sup_thread), threads);
        Py_END_ALLOW_THREADS;
    }
    for (int i = 0; workers != NULL && i < threads; i++) {
        free(workers[i].hidden);
        free(workers[i].grad);
        free(workers[i].scores);
    }
    free(workers);
    release_all(&b);
    if (failed)
        return PyErr_NoMemory();
    Py_RETURN_NONE;

fail:
    release_all(&b);
    return NULL;
}

/* ---- module ------------------------------------------------------------------------------ */

static PyMethodDef methods[] = {
    {"word2vec", (PyCFunction)(void (*)(void))py_word2vec, METH_VARARGS | METH_KEYWORDS,
     word2vec_doc},
    {"supervised", (PyCFunction)(void (*)(void))py_supervised, METH_VARARGS | METH_KEYWORDS,
     supervised_doc},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "_fasttext",
    "BlazingText's compiled CPU training loops (fastText's per-example SGD, Hogwild threads).",
    -1,
    methods,
    NULL,
    NULL,
    NULL,
    NULL};

PyMODINIT_FUNC PyInit__fasttext(void)
{
    init_sigmoid_table();
    return PyModule_Create(&module);
}
