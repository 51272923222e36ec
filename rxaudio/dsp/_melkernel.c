/*
 * Compiled streaming STFT -> power / mel / log-mel / MFCC kernel.
 *
 * One call per incoming chunk does what the numpy path does in a dozen calls: carry the last
 * samples between chunks, cut the frames librosa's center=False framing cuts, window them,
 * real FFT (power-of-two n_fft), |X|^2, the mel product (sparse: each filter only touches its
 * own bins), log10 with an amin floor, dB scaling or an orthonormal DCT-II. Everything runs in
 * float64 and is rounded once into the caller's output rows.
 *
 * Frames are processed four at a time, one per lane of a 4 x float64 vector (GCC/Clang
 * vector extensions): every lane runs the same instructions on its own frame, so a frame's
 * result does not depend on which lane or which call it falls in, and any chunking of a
 * stream gives bit-identical rows. On x86-64 the group function is compiled twice (AVX2+FMA
 * and baseline) and picked at load time by the CPU.
 *
 * Used through rxaudio.dsp.features; the numpy path stays for other FFT sizes and as the
 * fallback where this module could not be compiled.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi" /* vectors only cross always-inlined helpers */
#endif

typedef double v4d __attribute__((vector_size(32), aligned(32)));
typedef int64_t v4i __attribute__((vector_size(32), aligned(32)));

#define LANES 4
#define INLINE static inline __attribute__((always_inline))

/* RXAUDIO_NO_CLONES builds the baseline code only (how the tests check the non-AVX2 path) */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__) && \
    !defined(RXAUDIO_NO_CLONES)
#define CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define CLONES
#endif

enum { MODE_POWER = 0, MODE_MAGNITUDE = 1, MODE_MEL = 2, MODE_LOG_MEL = 3, MODE_MFCC = 4 };

typedef struct {
    PyObject_HEAD
    int n_fft, hop, m, n_bins, mode, n_mels, n_out;
    double amin, db_offset;
    double *window;        /* n_fft */
    int *bitrev;           /* m */
    double *tw_re, *tw_im; /* stage twiddles, m - 4 of them (stages of size 8..m) */
    double *post_re, *post_im; /* exp(-2 pi i k / n_fft), k = 0..m */
    int *mel_lo, *mel_len, *mel_off; /* n_mels: first bin, bins, offset into mel_w */
    double *mel_w;
    double *dct;     /* n_out x n_mels */
    double *dct_off; /* n_out */
    v4d *zr, *zi, *pw, *mel; /* scratch: m, m, n_bins, n_mels */
    float *buf;              /* samples not yet consumed: [0, carry) */
    Py_ssize_t cap, carry;
    long long rows;
    int ready; /* set by a complete, successful __init__ only */
} Kernel;

static void *aligned(size_t n) {
    void *p = NULL;
    size_t size = (n + 63) & ~(size_t)63;
    if (size == 0) size = 64;
    if (posix_memalign(&p, 64, size) != 0) return NULL;
    memset(p, 0, size);
    return p;
}

/* ---- vector helpers ---------------------------------------------------------------------- */

INLINE v4d vsplat(double x) { return (v4d){x, x, x, x}; }

INLINE v4d vblend(v4i mask, v4d a, v4d b) { /* mask ? a : b, lane by lane */
    return (v4d)(((v4i)a & mask) | ((v4i)b & ~mask));
}

/* log10(x) for positive normal x: exponent from the bits, the mantissa folded into
 * [sqrt(1/2), sqrt(2)), ln(m) = 2 atanh(s) with s = (m - 1) / (m + 1), |s| <= 0.1716, by its
 * series to s^19 (truncation below 3e-17 relative). */
INLINE v4d vlog10(v4d x) {
    const v4i bits = (v4i)x;
    v4i e = ((bits >> 52) & 0x7FF) - 1023;
    v4d m = (v4d)((bits & 0x000FFFFFFFFFFFFFLL) | 0x3FF0000000000000LL);
    const v4i big = (v4i)(m > vsplat(1.4142135623730951));
    m = vblend(big, m * 0.5, m);
    e = e - big; /* mask lanes are -1 */
    const v4d s = (m - 1.0) / (m + 1.0);
    const v4d s2 = s * s;
    v4d p = vsplat(1.0 / 19.0);
    p = p * s2 + 1.0 / 17.0;
    p = p * s2 + 1.0 / 15.0;
    p = p * s2 + 1.0 / 13.0;
    p = p * s2 + 1.0 / 11.0;
    p = p * s2 + 1.0 / 9.0;
    p = p * s2 + 1.0 / 7.0;
    p = p * s2 + 1.0 / 5.0;
    p = p * s2 + 1.0 / 3.0;
    p = p * s2 + 1.0;
    const v4d ln = __builtin_convertvector(e, v4d) * 0.69314718055994530942 + 2.0 * s * p;
    /* the bit tricks above assume a finite positive input: +inf stays +inf */
    return vblend((v4i)(x == vsplat(INFINITY)), x, ln * 0.43429448190325182765);
}

/* ---- one group of up to four frames ------------------------------------------------------ */

CLONES static void process_group(Kernel *k, const float *const *frame, int lanes, char *out,
                                 Py_ssize_t row_stride, int out_double) {
    const int m = k->m, nb = k->n_bins;
    v4d *restrict zr = k->zr, *restrict zi = k->zi, *restrict pw = k->pw;
    const float *f0 = frame[0], *f1 = frame[1], *f2 = frame[2], *f3 = frame[3];
    const double *win = k->window;

    /* window, pack even/odd samples as re/im, bit-reversed order */
    for (int n = 0; n < m; n++) {
        const int a = 2 * n, b = a + 1, j = k->bitrev[n];
        zr[j] = (v4d){f0[a], f1[a], f2[a], f3[a]} * win[a];
        zi[j] = (v4d){f0[b], f1[b], f2[b], f3[b]} * win[b];
    }
    /* first two radix-2 stages at once (twiddles 1 and -i) */
    for (int b = 0; b < m; b += 4) {
        const v4d t0r = zr[b] + zr[b + 1], t0i = zi[b] + zi[b + 1];
        const v4d t1r = zr[b] - zr[b + 1], t1i = zi[b] - zi[b + 1];
        const v4d t2r = zr[b + 2] + zr[b + 3], t2i = zi[b + 2] + zi[b + 3];
        const v4d t3r = zr[b + 2] - zr[b + 3], t3i = zi[b + 2] - zi[b + 3];
        zr[b] = t0r + t2r;
        zi[b] = t0i + t2i;
        zr[b + 2] = t0r - t2r;
        zi[b + 2] = t0i - t2i;
        zr[b + 1] = t1r + t3i;
        zi[b + 1] = t1i - t3r;
        zr[b + 3] = t1r - t3i;
        zi[b + 3] = t1i + t3r;
    }
    /* remaining decimation-in-time stages, two at a time (half sizes h and 2h): one pass over
     * memory instead of two; the second stage's odd twiddle is the first times -i */
    int half = 4;
    for (; 4 * half <= m; half *= 4) {
        const int h = half;
        const double *w1r = k->tw_re + (h - 4), *w1i = k->tw_im + (h - 4);
        const double *w2r = k->tw_re + (2 * h - 4), *w2i = k->tw_im + (2 * h - 4);
        for (int b = 0; b < m; b += 4 * h) {
            v4d *restrict r0 = zr + b, *restrict i0 = zi + b;
            v4d *restrict r1 = r0 + h, *restrict i1 = i0 + h;
            v4d *restrict r2 = r1 + h, *restrict i2 = i1 + h;
            v4d *restrict r3 = r2 + h, *restrict i3 = i2 + h;
            for (int j = 0; j < h; j++) {
                const double ar = w1r[j], ai = w1i[j], br = w2r[j], bi = w2i[j];
                /* stage h: (0, 1) and (2, 3) */
                const v4d t1r = r1[j] * ar - i1[j] * ai, t1i = r1[j] * ai + i1[j] * ar;
                const v4d t3r = r3[j] * ar - i3[j] * ai, t3i = r3[j] * ai + i3[j] * ar;
                const v4d a0r = r0[j] + t1r, a0i = i0[j] + t1i;
                const v4d a1r = r0[j] - t1r, a1i = i0[j] - t1i;
                const v4d a2r = r2[j] + t3r, a2i = i2[j] + t3i;
                const v4d a3r = r2[j] - t3r, a3i = i2[j] - t3i;
                /* stage 2h: (0, 2) with w2, (1, 3) with -i w2 */
                const v4d u2r = a2r * br - a2i * bi, u2i = a2r * bi + a2i * br;
                const v4d v3r = a3r * br - a3i * bi, v3i = a3r * bi + a3i * br;
                /* -i (v3r + i v3i) = v3i - i v3r */
                r0[j] = a0r + u2r;
                i0[j] = a0i + u2i;
                r2[j] = a0r - u2r;
                i2[j] = a0i - u2i;
                r1[j] = a1r + v3i;
                i1[j] = a1i - v3r;
                r3[j] = a1r - v3i;
                i3[j] = a1i + v3r;
            }
        }
    }
    if (half < m) { /* one radix-2 stage left */
        const double *wr = k->tw_re + (half - 4), *wi = k->tw_im + (half - 4);
        for (int b = 0; b < m; b += 2 * half) {
            v4d *restrict ar = zr + b, *restrict ai = zi + b;
            v4d *restrict br = zr + b + half, *restrict bi = zi + b + half;
            for (int j = 0; j < half; j++) {
                const v4d tr = br[j] * wr[j] - bi[j] * wi[j];
                const v4d ti = br[j] * wi[j] + bi[j] * wr[j];
                const v4d ur = ar[j], ui = ai[j];
                ar[j] = ur + tr;
                ai[j] = ui + ti;
                br[j] = ur - tr;
                bi[j] = ui - ti;
            }
        }
    }
    /* split the half-length complex spectrum into the real signal's bins 0..m; power */
    for (int q = 0; q <= m; q++) {
        const int a = q == m ? 0 : q, c = q == 0 ? 0 : m - q;
        const v4d er = (zr[a] + zr[c]) * 0.5, ei = (zi[a] - zi[c]) * 0.5;
        const v4d orr = (zi[a] + zi[c]) * 0.5, oi = (zr[c] - zr[a]) * 0.5;
        const double cr = k->post_re[q], ci = k->post_im[q];
        const v4d xr = er + (orr * cr - oi * ci);
        const v4d xi = ei + (oi * cr + orr * ci);
        pw[q] = xr * xr + xi * xi;
    }

    const int n_out = k->n_out;
    const v4d *vals = pw;
    if (k->mode == MODE_MAGNITUDE) {
        for (int q = 0; q < nb; q++) {
            v4d v = pw[q];
            for (int l = 0; l < LANES; l++) v[l] = __builtin_sqrt(v[l]);
            pw[q] = v;
        }
    } else if (k->mode >= MODE_MEL) {
        v4d *restrict mel = k->mel;
        for (int f = 0; f < k->n_mels; f++) {
            const double *w = k->mel_w + k->mel_off[f];
            const v4d *p = pw + k->mel_lo[f];
            v4d acc = vsplat(0.0);
            for (int q = 0; q < k->mel_len[f]; q++) acc += p[q] * w[q];
            mel[f] = acc;
        }
        if (k->mode >= MODE_LOG_MEL) {
            const v4d amin = vsplat(k->amin);
            for (int f = 0; f < k->n_mels; f++) {
                const v4d x = mel[f];
                mel[f] = vlog10(vblend((v4i)(x > amin), x, amin));
            }
        }
        if (k->mode == MODE_LOG_MEL) {
            for (int f = 0; f < k->n_mels; f++) mel[f] = mel[f] * 10.0 - k->db_offset;
        } else if (k->mode == MODE_MFCC) {
            /* coefficients into the power scratch (no longer needed) */
            const int nm = k->n_mels;
            for (int i = 0; i < n_out; i++) {
                const double *d = k->dct + (Py_ssize_t)i * nm;
                v4d acc = vsplat(0.0);
                for (int f = 0; f < nm; f++) acc += mel[f] * d[f];
                pw[i] = acc - k->dct_off[i];
            }
        }
        vals = k->mode == MODE_MFCC ? pw : mel;
    }
    for (int l = 0; l < lanes; l++) {
        char *row = out + l * row_stride;
        if (out_double) {
            double *o = (double *)row;
            for (int c = 0; c < n_out; c++) o[c] = vals[c][l];
        } else {
            float *o = (float *)row;
            for (int c = 0; c < n_out; c++) o[c] = (float)vals[c][l];
        }
    }
}

/* ---- Python type ------------------------------------------------------------------------- */

static void Kernel_free_arrays(Kernel *k) {
    free(k->window);
    free(k->bitrev);
    free(k->tw_re);
    free(k->tw_im);
    free(k->post_re);
    free(k->post_im);
    free(k->mel_lo);
    free(k->mel_len);
    free(k->mel_off);
    free(k->mel_w);
    free(k->dct);
    free(k->dct_off);
    free(k->zr);
    free(k->zi);
    free(k->pw);
    free(k->mel);
    free(k->buf);
}

static void Kernel_dealloc(Kernel *k) {
    Kernel_free_arrays(k);
    Py_TYPE(k)->tp_free((PyObject *)k);
}

/* whether a buffer's struct format is exactly one native-order item of type `code` ('f' or
 * 'd'): "f", "@f", "=f", and "<f" / ">f" when that is this machine's byte order */
static int native(const char *fmt, char code) {
    if (fmt == NULL) return code == 'B';
    const uint16_t probe = 1;
    const char own = *(const char *)&probe ? '<' : '>';
    if (fmt[0] == '@' || fmt[0] == '=' || fmt[0] == own) fmt++;
    return fmt[0] == code && fmt[1] == '\0';
}

/* a C-contiguous float64 array of the given dimensions (-1: any), copied out */
static double *read_doubles(PyObject *obj, const char *name, int ndim, Py_ssize_t d0,
                            Py_ssize_t d1, Py_ssize_t *shape_out) {
    Py_buffer b;
    if (PyObject_GetBuffer(obj, &b, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return NULL;
    double *out = NULL;
    if (b.ndim != ndim || b.itemsize != 8 || !native(b.format, 'd')) {
        PyErr_Format(PyExc_TypeError, "%s must be a %d-D float64 array", name, ndim);
    } else if ((d0 >= 0 && b.shape[0] != d0) || (ndim == 2 && d1 >= 0 && b.shape[1] != d1)) {
        PyErr_Format(PyExc_ValueError, "%s has the wrong shape", name);
    } else {
        out = aligned((size_t)b.len);
        if (out == NULL) {
            PyErr_NoMemory();
        } else {
            memcpy(out, b.buf, (size_t)b.len);
            for (int i = 0; i < ndim; i++) shape_out[i] = b.shape[i];
        }
    }
    PyBuffer_Release(&b);
    return out;
}

static int Kernel_init(Kernel *k, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"n_fft",   "hop", "window",    "mode", "mel", "dct",
                             "dct_off", "amin", "db_offset", NULL};
    int n_fft, hop, mode;
    PyObject *window, *mel = Py_None, *dct = Py_None, *dct_off = Py_None;
    double amin = 1e-10, db_offset = 0.0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "iiOi|OOOdd", kwlist, &n_fft, &hop, &window,
                                     &mode, &mel, &dct, &dct_off, &amin, &db_offset))
        return -1;
    if (k->window != NULL || k->ready) { /* a second __init__, after success or failure */
        PyErr_SetString(PyExc_RuntimeError, "Kernel is already initialised");
        return -1;
    }
    if (n_fft < 16 || n_fft > (1 << 20) || (n_fft & (n_fft - 1)) != 0) {
        PyErr_Format(PyExc_ValueError, "n_fft must be a power of two >= 16, got %d", n_fft);
        return -1;
    }
    if (hop < 1 || hop > n_fft) {
        PyErr_Format(PyExc_ValueError, "hop must be in 1..n_fft, got %d", hop);
        return -1;
    }
    if (mode < MODE_POWER || mode > MODE_MFCC) {
        PyErr_Format(PyExc_ValueError, "unknown mode %d", mode);
        return -1;
    }
    if (!(amin >= 2.2250738585072014e-308) || !isfinite(amin)) {
        PyErr_SetString(PyExc_ValueError, "amin must be a positive normal float");
        return -1;
    }
    const int m = n_fft / 2, nb = m + 1;
    k->n_fft = n_fft;
    k->hop = hop;
    k->m = m;
    k->n_bins = nb;
    k->mode = mode;
    k->amin = amin;
    k->db_offset = db_offset;
    Py_ssize_t shape[2];
    k->window = read_doubles(window, "window", 1, n_fft, -1, shape);
    if (k->window == NULL) return -1;

    k->n_mels = 0;
    k->n_out = nb;
    if (mode >= MODE_MEL) {
        if (mel == Py_None) {
            PyErr_SetString(PyExc_ValueError, "this mode needs a mel filter bank");
            return -1;
        }
        double *bank = read_doubles(mel, "mel", 2, -1, nb, shape);
        if (bank == NULL) return -1;
        const int nm = (int)shape[0];
        k->n_mels = nm;
        k->n_out = nm;
        k->mel_lo = aligned(sizeof(int) * (size_t)nm);
        k->mel_len = aligned(sizeof(int) * (size_t)nm);
        k->mel_off = aligned(sizeof(int) * (size_t)nm);
        if (k->mel_lo == NULL || k->mel_len == NULL || k->mel_off == NULL) {
            free(bank);
            PyErr_NoMemory();
            return -1;
        }
        size_t total = 0;
        for (int f = 0; f < nm; f++) {
            int lo = 0, hi = 0; /* [lo, hi): first to last non-zero weight */
            const double *row = bank + (Py_ssize_t)f * nb;
            while (lo < nb && row[lo] == 0.0) lo++;
            hi = nb;
            while (hi > lo && row[hi - 1] == 0.0) hi--;
            k->mel_lo[f] = lo;
            k->mel_len[f] = hi - lo;
            k->mel_off[f] = (int)total;
            total += (size_t)(hi - lo);
        }
        k->mel_w = aligned(sizeof(double) * total);
        if (k->mel_w == NULL) {
            free(bank);
            PyErr_NoMemory();
            return -1;
        }
        for (int f = 0; f < nm; f++)
            memcpy(k->mel_w + k->mel_off[f], bank + (Py_ssize_t)f * nb + k->mel_lo[f],
                   sizeof(double) * (size_t)k->mel_len[f]);
        free(bank);
        k->mel = aligned(sizeof(v4d) * (size_t)nm);
        if (k->mel == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    if (mode == MODE_MFCC) {
        if (dct == Py_None || dct_off == Py_None) {
            PyErr_SetString(PyExc_ValueError, "mode MFCC needs dct and dct_off");
            return -1;
        }
        k->dct = read_doubles(dct, "dct", 2, -1, k->n_mels, shape);
        if (k->dct == NULL) return -1;
        k->n_out = (int)shape[0];
        if (k->n_out < 1 || k->n_out > nb) {
            PyErr_SetString(PyExc_ValueError, "dct must have 1..n_bins rows");
            return -1;
        }
        k->dct_off = read_doubles(dct_off, "dct_off", 1, k->n_out, -1, shape);
        if (k->dct_off == NULL) return -1;
    }

    int bits = 0;
    while ((1 << bits) < m) bits++;
    k->bitrev = aligned(sizeof(int) * (size_t)m);
    k->tw_re = aligned(sizeof(double) * (size_t)m);
    k->tw_im = aligned(sizeof(double) * (size_t)m);
    k->post_re = aligned(sizeof(double) * (size_t)nb);
    k->post_im = aligned(sizeof(double) * (size_t)nb);
    k->zr = aligned(sizeof(v4d) * (size_t)m);
    k->zi = aligned(sizeof(v4d) * (size_t)m);
    k->pw = aligned(sizeof(v4d) * (size_t)nb);
    k->cap = 2 * n_fft;
    k->buf = aligned(sizeof(float) * (size_t)k->cap);
    if (!k->bitrev || !k->tw_re || !k->tw_im || !k->post_re || !k->post_im || !k->zr ||
        !k->zi || !k->pw || !k->buf) {
        PyErr_NoMemory();
        return -1;
    }
    for (int n = 0; n < m; n++) {
        int r = 0;
        for (int i = 0; i < bits; i++)
            if (n & (1 << i)) r |= 1 << (bits - 1 - i);
        k->bitrev[n] = r;
    }
    for (int half = 4; half < m; half *= 2)
        for (int j = 0; j < half; j++) {
            const double a = -M_PI * (double)j / (double)half; /* exp(-2 pi i j / (2 half)) */
            k->tw_re[half - 4 + j] = cos(a);
            k->tw_im[half - 4 + j] = sin(a);
        }
    for (int q = 0; q <= m; q++) {
        const double a = -2.0 * M_PI * (double)q / (double)n_fft;
        k->post_re[q] = cos(a);
        k->post_im[q] = sin(a);
    }
    k->carry = 0;
    k->rows = 0;
    k->ready = 1;
    return 0;
}

static PyObject *Kernel_push(Kernel *k, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "push(chunk, out) takes two arguments");
        return NULL;
    }
    if (!k->ready) {
        PyErr_SetString(PyExc_RuntimeError, "Kernel is not initialised");
        return NULL;
    }
    Py_buffer in, out;
    if (PyObject_GetBuffer(args[0], &in, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return NULL;
    if (in.ndim != 1 || in.itemsize != 4 || !native(in.format, 'f')) {
        PyBuffer_Release(&in);
        PyErr_SetString(PyExc_TypeError, "chunk must be a contiguous 1-D float32 array");
        return NULL;
    }
    if (PyObject_GetBuffer(args[1], &out, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) <
        0) {
        PyBuffer_Release(&in);
        return NULL;
    }
    const Py_ssize_t count = in.shape[0], n = k->carry + count;
    const Py_ssize_t rows = n >= k->n_fft ? 1 + (n - k->n_fft) / k->hop : 0;
    const int out_double = out.itemsize == 8 && native(out.format, 'd');
    const int out_float = out.itemsize == 4 && native(out.format, 'f');
    if (out.ndim != 2 || !(out_double || out_float) || out.shape[0] != rows ||
        out.shape[1] != k->n_out) {
        PyErr_Format(PyExc_ValueError,
                     "out must be a contiguous float32 or float64 array of shape (%zd, %d)", rows,
                     k->n_out);
        PyBuffer_Release(&in);
        PyBuffer_Release(&out);
        return NULL;
    }
    {   /* refuse NaN and inf before anything changes: all exponent bits set */
        typedef uint32_t __attribute__((may_alias)) bits32;
        const bits32 *u = in.buf;
        uint32_t bad = 0;
        for (Py_ssize_t i = 0; i < count; i++) bad |= (u[i] & 0x7F800000u) == 0x7F800000u;
        if (bad) {
            const float *x = in.buf;
            Py_ssize_t i = 0;
            while (i < count && isfinite(x[i])) i++;
            PyErr_Format(PyExc_FloatingPointError, "sample %zd of the chunk is not finite", i);
            PyBuffer_Release(&in);
            PyBuffer_Release(&out);
            return NULL;
        }
    }
    if (n > k->cap) {
        Py_ssize_t cap = k->cap;
        while (cap < n) cap *= 2;
        float *grown = aligned(sizeof(float) * (size_t)cap);
        if (grown == NULL) {
            PyBuffer_Release(&in);
            PyBuffer_Release(&out);
            return PyErr_NoMemory();
        }
        memcpy(grown, k->buf, sizeof(float) * (size_t)k->carry);
        free(k->buf);
        k->buf = grown;
        k->cap = cap;
    }
    memcpy(k->buf + k->carry, in.buf, sizeof(float) * (size_t)count);
    const Py_ssize_t row_stride = out.strides[0];
    for (Py_ssize_t g = 0; g < rows; g += LANES) {
        const int lanes = rows - g < LANES ? (int)(rows - g) : LANES;
        const float *frame[LANES];
        for (int l = 0; l < LANES; l++) /* spare lanes repeat the first frame */
            frame[l] = k->buf + (g + (l < lanes ? l : 0)) * k->hop;
        process_group(k, frame, lanes, (char *)out.buf + g * row_stride, row_stride, out_double);
    }
    const Py_ssize_t used = rows * k->hop;
    k->carry = n - used;
    if (used && k->carry) memmove(k->buf, k->buf + used, sizeof(float) * (size_t)k->carry);
    k->rows += rows;
    PyBuffer_Release(&in);
    PyBuffer_Release(&out);
    return PyLong_FromSsize_t(rows);
}

static PyObject *Kernel_rows_for(Kernel *k, PyObject *arg) {
    if (!k->ready) {
        PyErr_SetString(PyExc_RuntimeError, "Kernel is not initialised");
        return NULL;
    }
    const Py_ssize_t count = PyLong_AsSsize_t(arg);
    if (count == -1 && PyErr_Occurred()) return NULL;
    if (count < 0 || count > PY_SSIZE_T_MAX - k->carry) {
        PyErr_SetString(PyExc_ValueError, "rows_for: the sample count is out of range");
        return NULL;
    }
    const Py_ssize_t n = k->carry + count;
    return PyLong_FromSsize_t(n >= k->n_fft ? 1 + (n - k->n_fft) / k->hop : 0);
}

/* deltas(hist, weights, out, row0, lo, hi): out[i] = hist[row0 + i] followed by, for each
 * order o, sum_t weights[o][t] * hist[c - half + t] with c = clamp(row0 + i, lo, hi): the rows
 * and their delta features, centres clamped at the stream's edges (librosa's mode="interp").
 * A fixed summation order per value, so the result does not depend on how many rows a call
 * covers. */
static PyObject *deltas(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "deltas(hist, weights, out, row0, lo, hi)");
        return NULL;
    }
    Py_ssize_t idx[3];
    for (int i = 0; i < 3; i++) {
        idx[i] = PyLong_AsSsize_t(args[3 + i]);
        if (idx[i] == -1 && PyErr_Occurred()) return NULL;
    }
    const Py_ssize_t row0 = idx[0], lo = idx[1], hi = idx[2];
    Py_buffer h, w, o;
    if (PyObject_GetBuffer(args[0], &h, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return NULL;
    if (PyObject_GetBuffer(args[1], &w, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyBuffer_Release(&h);
        return NULL;
    }
    if (PyObject_GetBuffer(args[2], &o, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(&h);
        PyBuffer_Release(&w);
        return NULL;
    }
    PyObject *result = NULL;
    if (h.ndim != 2 || h.itemsize != 8 || !native(h.format, 'd') || w.ndim != 2 ||
        w.itemsize != 8 || !native(w.format, 'd') || o.ndim != 2 || o.itemsize != 4 ||
        !native(o.format, 'f')) {
        PyErr_SetString(PyExc_TypeError,
                        "hist and weights must be 2-D float64, out 2-D float32, contiguous");
        goto done;
    }
    const Py_ssize_t n = h.shape[0], d = h.shape[1], n_orders = w.shape[0], width = w.shape[1];
    const Py_ssize_t k = o.shape[0], half = width / 2;
    /* every bound checked without a sum or product that could wrap */
    int bad = width % 2 == 0 || row0 < 0 || row0 > n || k > n - row0 || k < 1 || lo > hi;
    bad = bad || (d > 0 && n_orders + 1 > PY_SSIZE_T_MAX / d) || o.shape[1] != d * (1 + n_orders);
    if (!bad) {
        const Py_ssize_t last = row0 + (k - 1); /* < n: no overflow */
        const Py_ssize_t c_first = row0 < lo ? lo : (row0 > hi ? hi : row0);
        const Py_ssize_t c_last = last < lo ? lo : (last > hi ? hi : last);
        bad = c_first < half || c_last > n - 1 - half;
    }
    if (bad) {
        PyErr_SetString(PyExc_ValueError, "deltas: rows, centres or shapes out of range");
        goto done;
    }
    const double *hist = h.buf, *wt = w.buf;
    float *out = o.buf;
    const Py_ssize_t cols = o.shape[1];
    for (Py_ssize_t i = 0; i < k; i++) {
        const Py_ssize_t r = row0 + i, c = r < lo ? lo : (r > hi ? hi : r);
        float *row = out + i * cols;
        for (Py_ssize_t j = 0; j < d; j++) row[j] = (float)hist[r * d + j];
        const double *win = hist + (c - half) * d;
        for (Py_ssize_t q = 0; q < n_orders; q++) {
            const double *wq = wt + q * width;
            float *dst = row + d * (1 + q);
            for (Py_ssize_t j = 0; j < d; j++) {
                double acc = 0.0;
                for (Py_ssize_t t = 0; t < width; t++) acc += wq[t] * win[t * d + j];
                dst[j] = (float)acc;
            }
        }
    }
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&h);
    PyBuffer_Release(&w);
    PyBuffer_Release(&o);
    return result;
}

/* the rows of spectral(): see there */
CLONES static void spectral_rows(const float *mag, Py_ssize_t k, Py_ssize_t nb,
                                 const char *frames, Py_ssize_t fs0, Py_ssize_t fs1,
                                 Py_ssize_t n, const double *freqs, float *out, float *cum,
                                 double roll, double p, double amin, double threshold) {
    const float roll32 = (float)roll, amin32 = (float)amin, thr32 = (float)threshold;
    const Py_ssize_t nb4 = nb & ~(Py_ssize_t)3, n4 = n & ~(Py_ssize_t)3;
    for (Py_ssize_t r = 0; r < k; r++) {
        const float *m = mag + r * nb;
        /* sums in four independent lanes (order-free: compared with a tolerance); the float32
         * cumulative sum for rolloff stays one sequential pass, as numpy's cumsum */
        v4d tot4 = vsplat(0.0), m14 = vsplat(0.0), psum4 = vsplat(0.0), lsum4 = vsplat(0.0);
        float run = 0.0f;
        Py_ssize_t b = 0;
        for (; b < nb4; b += 4) {
            v4d v, f, sq;
            for (int l = 0; l < 4; l++) {
                v[l] = m[b + l];
                f[l] = freqs[b + l];
                const float s2 = m[b + l] * m[b + l]; /* float32 square, as librosa */
                sq[l] = s2 > amin32 ? s2 : amin32;
                run += m[b + l];
                cum[b + l] = run;
            }
            tot4 += v;
            m14 += v * f;
            psum4 += sq;
            lsum4 += vlog10(sq);
        }
        double total = tot4[0] + tot4[1] + tot4[2] + tot4[3];
        double m1 = m14[0] + m14[1] + m14[2] + m14[3];
        double psum = psum4[0] + psum4[1] + psum4[2] + psum4[3];
        double lsum = lsum4[0] + lsum4[1] + lsum4[2] + lsum4[3];
        for (; b < nb; b++) {
            const float s2 = m[b] * m[b];
            const double sq = s2 > amin32 ? s2 : amin32;
            total += m[b];
            m1 += m[b] * freqs[b];
            psum += sq;
            lsum += log10(sq);
            run += m[b];
            cum[b] = run;
        }
        double cent = 0.0, band = 0.0;
        if (total > 0.0) {
            cent = m1 / total;
            if (p == 2.0) {
                v4d acc4 = vsplat(0.0);
                for (b = 0; b < nb4; b += 4) {
                    v4d v, d;
                    for (int l = 0; l < 4; l++) {
                        v[l] = m[b + l];
                        d[l] = freqs[b + l] - cent;
                    }
                    acc4 += v * d * d;
                }
                double acc = acc4[0] + acc4[1] + acc4[2] + acc4[3];
                for (; b < nb; b++) acc += m[b] * (freqs[b] - cent) * (freqs[b] - cent);
                band = sqrt(acc / total);
            } else {
                double acc = 0.0;
                for (b = 0; b < nb; b++) acc += m[b] * pow(fabs(freqs[b] - cent), p);
                band = pow(acc / total, 1.0 / p);
            }
        }
        /* rolloff: the first bin whose float32 cumulative sum reaches the float32 threshold */
        const float thresh = cum[nb - 1] * roll32;
        Py_ssize_t pick = nb - 1;
        for (b = 0; b < nb; b++)
            if (cum[b] >= thresh) {
                pick = b;
                break;
            }
        /* an infinite power (samples beyond float32's square root range) gives NaN, as numpy's
         * inf / inf does */
        const double flat =
            isfinite(psum) ? pow(10.0, lsum / (double)nb) / (psum / (double)nb) : NAN;
        /* zero-crossing rate (|x| <= threshold counts as zero, which is positive) and rms */
        const char *fr = frames + r * fs0;
        Py_ssize_t crossings = 0;
        int prev = 0;
        v4d sq4 = vsplat(0.0);
        Py_ssize_t i = 0;
        for (; i < n4; i += 4) {
            v4d x4;
            for (int l = 0; l < 4; l++) {
                const float x = *(const float *)(fr + (i + l) * fs1);
                const int neg = x < -thr32; /* float32, as librosa */
                crossings += (i + l) && neg != prev;
                prev = neg;
                x4[l] = x;
            }
            sq4 += x4 * x4;
        }
        double sq = sq4[0] + sq4[1] + sq4[2] + sq4[3];
        for (; i < n; i++) {
            const float x = *(const float *)(fr + i * fs1);
            const int neg = x < -thr32; /* float32, as librosa */
            crossings += i && neg != prev;
            prev = neg;
            sq += (double)x * x;
        }
        float *o = out + r * 6;
        o[0] = (float)cent;
        o[1] = (float)band;
        o[2] = (float)freqs[pick];
        o[3] = (float)flat;
        o[4] = (float)((double)crossings / (double)n);
        o[5] = (float)sqrt(sq / (double)n);
    }
}

/* spectral(mag, frames, freqs, out, roll_percent, p, amin, threshold): per row the six
 * descriptors centroid, bandwidth, rolloff, flatness, zcr, rms into out (k, 6) float32.
 * mag: librosa's float32 |X| rows (k, n_bins), contiguous; frames: the unwindowed float32
 * frames (k, n_fft), any strides. Rolloff (a float32 cumulative sum compared in float32) and
 * the zero-crossing count follow librosa's arithmetic exactly; the others are computed in
 * float64 from the same inputs. */
static PyObject *spectral(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError,
                        "spectral(mag, frames, freqs, out, roll_percent, p, amin, threshold)");
        return NULL;
    }
    double opt[4];
    for (int i = 0; i < 4; i++) {
        opt[i] = PyFloat_AsDouble(args[4 + i]);
        if (opt[i] == -1.0 && PyErr_Occurred()) return NULL;
    }
    const double roll = opt[0], p = opt[1], amin = opt[2], threshold = opt[3];
    Py_buffer mb, fb, qb, ob;
    if (PyObject_GetBuffer(args[0], &mb, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return NULL;
    if (PyObject_GetBuffer(args[1], &fb, PyBUF_STRIDES | PyBUF_FORMAT) < 0) {
        PyBuffer_Release(&mb);
        return NULL;
    }
    if (PyObject_GetBuffer(args[2], &qb, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyBuffer_Release(&mb);
        PyBuffer_Release(&fb);
        return NULL;
    }
    if (PyObject_GetBuffer(args[3], &ob, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(&mb);
        PyBuffer_Release(&fb);
        PyBuffer_Release(&qb);
        return NULL;
    }
    PyObject *result = NULL;
    if (mb.ndim != 2 || mb.itemsize != 4 || !native(mb.format, 'f') || fb.ndim != 2 ||
        fb.itemsize != 4 || !native(fb.format, 'f') || qb.ndim != 1 || qb.itemsize != 8 ||
        !native(qb.format, 'd') || ob.ndim != 2 || ob.itemsize != 4 || !native(ob.format, 'f')) {
        PyErr_SetString(PyExc_TypeError,
                        "mag, frames and out must be 2-D float32, freqs 1-D float64");
        goto done;
    }
    const Py_ssize_t k = mb.shape[0], nb = mb.shape[1], n = fb.shape[1];
    if (fb.shape[0] != k || qb.shape[0] != nb || ob.shape[0] != k || ob.shape[1] != 6 || nb < 1 ||
        n < 2 || !(p > 0.0) || !(amin > 0.0) || !(roll > 0.0 && roll < 1.0)) {
        PyErr_SetString(PyExc_ValueError, "spectral: shapes or options out of range");
        goto done;
    }
    float *cum = PyMem_Malloc(sizeof(float) * (size_t)nb);
    if (cum == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    spectral_rows(mb.buf, k, nb, (const char *)fb.buf, fb.strides[0], fb.strides[1], n, qb.buf,
                  ob.buf, cum, roll, p, amin, threshold);
    PyMem_Free(cum);
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&mb);
    PyBuffer_Release(&fb);
    PyBuffer_Release(&qb);
    PyBuffer_Release(&ob);
    return result;
}

static PyMethodDef module_methods[] = {
    {"spectral", (PyCFunction)(void (*)(void))spectral, METH_FASTCALL,
     "spectral(mag, frames, freqs, out, roll_percent, p, amin, threshold): six descriptors"},
    {"deltas", (PyCFunction)(void (*)(void))deltas, METH_FASTCALL,
     "deltas(hist, weights, out, row0, lo, hi): rows with their delta features"},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef Kernel_methods[] = {
    {"push", (PyCFunction)(void (*)(void))Kernel_push, METH_FASTCALL,
     "push(chunk, out) -> rows: consume float32 samples, write the completed rows into out "
     "(shape (rows_for(len(chunk)), n_out), float32 or float64); FloatingPointError, with "
     "nothing consumed, when a sample is NaN or infinite"},
    {"rows_for", (PyCFunction)Kernel_rows_for, METH_O,
     "rows_for(n) -> rows a chunk of n samples would complete"},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Kernel_members[] = {
    {"carry", T_PYSSIZET, offsetof(Kernel, carry), READONLY, "samples held for the next row"},
    {"rows", T_LONGLONG, offsetof(Kernel, rows), READONLY, "rows produced so far"},
    {"n_out", T_INT, offsetof(Kernel, n_out), READONLY, "values per row"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject KernelType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "rxaudio.dsp._melkernel.Kernel",
    .tp_basicsize = sizeof(Kernel),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Kernel(n_fft, hop, window, mode, mel=None, dct=None, dct_off=None, amin=1e-10, "
              "db_offset=0.0): streaming STFT rows (mode 0 power, 1 magnitude, 2 mel, "
              "3 log-mel dB, 4 MFCC)",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Kernel_init,
    .tp_dealloc = (destructor)Kernel_dealloc,
    .tp_methods = Kernel_methods,
    .tp_members = Kernel_members,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_melkernel", "Compiled streaming STFT/mel/MFCC kernel.", -1,
    module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__melkernel(void) {
    if (PyType_Ready(&KernelType) < 0) return NULL;
    PyObject *mod = PyModule_Create(&module);
    if (mod == NULL) return NULL;
    Py_INCREF(&KernelType);
    if (PyModule_AddObject(mod, "Kernel", (PyObject *)&KernelType) < 0) {
        Py_DECREF(&KernelType);
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}
