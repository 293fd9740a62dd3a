# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled core of stableloss: threads, row blocks and the GIL; the maths is in include/*.h.

Every function here takes C-contiguous NumPy arrays of one float dtype (float32 or
float64; labels int64), already validated and laid out by ``stableloss._dispatch``.
They re-check dtype, contiguity and sizes themselves (cheaply) so that no call,
even a direct one, can make a kernel read or write outside an array; labels are
checked inside the kernels (a bad label is reported, never used as an index).

Determinism: rows are cut into blocks whose size depends on the shape only; each
block's loss sum is written to its own slot and the slots are added in order, so
results are bitwise identical for any thread count.
"""
from cython.parallel cimport prange
from libc.stdint cimport int64_t, uint16_t
from libc.stdlib cimport malloc, free
cimport numpy as cnp
import numpy as np
import os

cnp.import_array()

cdef extern from "sl_omp.h" nogil:
    int SL_OPENMP
    int omp_get_max_threads()

cdef extern from "sl_dispatch.h" nogil:
    const char *sl_select(const char *want)
    const char *sl_available()
    int SL_HAVE_F16
    void sl_cvt_half_to_f32(const uint16_t*, int64_t, float*, int)
    void sl_cvt_f32_to_half(const float*, int64_t, uint16_t*, int)
    void sl_lse_rows_f32(const float*, int64_t, int64_t, int64_t, float*)
    void sl_lse_rows_f64(const double*, int64_t, int64_t, int64_t, double*)
    void sl_softmax_rows_f32(const float*, int64_t, int64_t, int64_t, const float*, float*)
    void sl_softmax_rows_f64(const double*, int64_t, int64_t, int64_t, const double*, double*)
    void sl_log_softmax_rows_f32(const float*, int64_t, int64_t, int64_t, float*)
    void sl_log_softmax_rows_f64(const double*, int64_t, int64_t, int64_t, double*)
    void sl_softmax_vjp_rows_f32(const float*, const float*, int64_t, int64_t, int64_t, float*)
    void sl_softmax_vjp_rows_f64(const double*, const double*, int64_t, int64_t, int64_t, double*)
    void sl_log_softmax_vjp_rows_f32(const float*, const float*, int64_t, int64_t, int64_t, float*)
    void sl_log_softmax_vjp_rows_f64(const double*, const double*, int64_t, int64_t, int64_t, double*)
    double sl_ce_index_rows_f32(const float*, int64_t, int64_t, int64_t, const int64_t*, const float*, double,
                                int, int64_t, double, double*, float*, double, const double*, int64_t*)
    double sl_ce_index_rows_f64(const double*, int64_t, int64_t, int64_t, const int64_t*, const double*, double,
                                int, int64_t, double, double*, double*, double, const double*, int64_t*)
    double sl_ce_index_split_f32(const float*, int64_t, int64_t, const int64_t*, const float*, double, int,
                                 int64_t, double*, float*, double, const double*, int64_t*, int, double*)
    double sl_ce_index_split_f64(const double*, int64_t, int64_t, const int64_t*, const double*, double, int,
                                 int64_t, double*, double*, double, const double*, int64_t*, int, double*)
    double sl_ce_index_tiles_f32(const float*, int64_t, int64_t, int64_t, const int64_t*, int, int64_t,
                                 double*, float*, double, const double*, int64_t*)
    double sl_ce_index_tiles_f64(const double*, int64_t, int64_t, int64_t, const int64_t*, int, int64_t,
                                 double*, double*, double, const double*, int64_t*)
    double sl_ce_prob_rows_f32(const float*, const float*, int64_t, int64_t, int64_t, const float*, double,
                               double*, float*, float*, double, const double*, int)
    double sl_ce_prob_rows_f64(const double*, const double*, int64_t, int64_t, int64_t, const double*, double,
                               double*, double*, double*, double, const double*, int)
    double sl_nll_rows_f32(const float*, int64_t, int64_t, int64_t, const int64_t*, const float*, int, int64_t,
                           double*, float*, double, const double*, int64_t*)
    double sl_nll_rows_f64(const double*, int64_t, int64_t, int64_t, const int64_t*, const double*, int, int64_t,
                           double*, double*, double, const double*, int64_t*)
    double sl_bce_logits_elems_f32(const float*, const float*, int64_t, int64_t, int64_t, const float*, int,
                                const float*, int, int, float*, float*, float*, double, const float*)
    double sl_bce_logits_elems_f64(const double*, const double*, int64_t, int64_t, int64_t, const double*, int,
                                const double*, int, int, double*, double*, double*, double, const double*)
    double sl_bce_probs_elems_f32(const float*, const float*, int64_t, int64_t, int64_t, const float*, int, int,
                               double, float*, float*, double, const float*)
    double sl_bce_probs_elems_f64(const double*, const double*, int64_t, int64_t, int64_t, const double*, int, int,
                               double, double*, double*, double, const double*)
    void sl_sigmoid_elems_f32(const float*, int64_t, int64_t, float*)
    void sl_sigmoid_elems_f64(const double*, int64_t, int64_t, double*)
    void sl_sigmoid_vjp_elems_f32(const float*, const float*, int64_t, int64_t, float*)
    void sl_sigmoid_vjp_elems_f64(const double*, const double*, int64_t, int64_t, double*)
    void sl_log_sigmoid_elems_f32(const float*, int64_t, int64_t, float*)
    void sl_log_sigmoid_elems_f64(const double*, int64_t, int64_t, double*)
    void sl_log_sigmoid_vjp_elems_f32(const float*, const float*, int64_t, int64_t, float*)
    void sl_log_sigmoid_vjp_elems_f64(const double*, const double*, int64_t, int64_t, double*)

cdef extern from "sl_math.h" nogil:
    float sl_expf(float)
    float sl_expf_bounded(float)
    double sl_exp(double)
    double sl_exp_bounded(double)
    float sl_logf(float)
    float sl_log1pf(float)


def _math_eval(str name, cnp.ndarray x):
    """Test hook: apply one sl_math.h function elementwise (scalar calls, baseline
    build of the header) -- for the ulp tests in tests/test_math.py."""
    codes = {"expf": 0, "expf_bounded": 1, "logf": 2, "log1pf": 3, "exp": 4, "exp_bounded": 5}
    if name not in codes:
        raise ValueError(f"unknown function {name!r}")
    cdef int code = codes[name]
    cdef Py_ssize_t i, n = x.size
    cdef float[::1] xf, of
    cdef double[::1] xd, od
    if code < 4:
        xa = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
        out = np.empty_like(xa)
        xf = xa
        of = out
        with nogil:
            for i in range(n):
                if code == 0:
                    of[i] = sl_expf(xf[i])
                elif code == 1:
                    of[i] = sl_expf_bounded(xf[i])
                elif code == 2:
                    of[i] = sl_logf(xf[i])
                else:
                    of[i] = sl_log1pf(xf[i])
    else:
        xa = np.ascontiguousarray(x, dtype=np.float64).reshape(-1)
        out = np.empty_like(xa)
        xd = xa
        od = out
        with nogil:
            for i in range(n):
                od[i] = sl_exp(xd[i]) if code == 4 else sl_exp_bounded(xd[i])
    return out.reshape(np.shape(x))


# Below this many elements a call runs on one thread: a parallel region costs
# 1.5-70 us on these machines (../shared/performance.md, section 6).
PARALLEL_THRESHOLD = 32768
# Rows with at most this many classes (plain CE: no class weight, no smoothing) go to
# the tiled kernel that vectorises across rows (../shared/performance.md, section 3).
TINY_CLASSES = 16
# Rows at least this wide are split across threads when there are fewer rows than
# threads (../shared/performance.md, section 4).
SPLIT_MIN_CLASSES = 8192
# Work per block (elements): fixes the row blocks, and with them the order of
# the cross-row sums, from the shape alone.
cdef enum:
    BLOCK_ELEMS = 8192

_path = sl_select(os.environ.get("STABLELOSS_SIMD", "").encode()).decode()


def simd_path():
    """The instruction-set path the kernels run: 'baseline', 'avx2' or 'avx512'."""
    return _path


def set_simd_path(str want):
    """Switch paths ('baseline', 'avx2', 'avx512', '' = best); returns the active one."""
    global _path
    _path = sl_select(want.encode()).decode()
    return _path


def available_paths():
    return tuple(sl_available().decode().split(","))


def half_supported():
    """True when float16 is read directly (the compiler has _Float16); bfloat16 always is."""
    return bool(SL_HAVE_F16)


def openmp_enabled():
    return bool(SL_OPENMP)


def max_threads():
    """omp_get_max_threads() now (honours OMP_NUM_THREADS and threadpoolctl)."""
    return omp_get_max_threads()


cdef int _threads(int n_threads, int64_t work) noexcept:
    if work < PARALLEL_THRESHOLD:
        return 1
    if n_threads <= 0:
        return omp_get_max_threads()
    return n_threads


cdef inline int64_t _rows_per_block(int64_t C) noexcept:
    if C >= BLOCK_ELEMS:
        return 1
    return BLOCK_ELEMS // (C if C > 0 else 1)


cdef int _is32(cnp.ndarray a) except -1:
    if a.dtype == np.float32:
        return 1
    if a.dtype == np.float64:
        return 0
    raise TypeError(f"kernel input must be float32 or float64, got {a.dtype}")


cdef void *_ptr(cnp.ndarray a, object dtype, int64_t size, str name) except NULL:
    """Pointer to a's data after checking dtype, C-contiguity and element count."""
    if a.dtype != dtype:
        raise TypeError(f"{name}: kernel needs dtype {np.dtype(dtype)}, got {a.dtype}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name}: kernel needs a C-contiguous array")
    if a.size != size:
        raise ValueError(f"{name}: kernel needs {size} elements, got {a.size}")
    return cnp.PyArray_DATA(a) if size > 0 else <void *>&_dummy


cdef double _dummy = 0.0


cdef void *_optr(object a, object dtype, int64_t size, str name) except? NULL:
    if a is None:
        return NULL
    return _ptr(<cnp.ndarray>a, dtype, size, name)


cdef double _ordered_sum(double[::1] part) noexcept nogil:
    cdef double s = 0.0
    cdef Py_ssize_t b
    for b in range(part.shape[0]):
        s += part[b]
    return s


def lse(cnp.ndarray x, cnp.ndarray out, int n_threads=0):
    """out[i] = logsumexp(x[i, :]) for x of shape (N, C)."""
    cdef int64_t N = x.shape[0], C = x.shape[1]
    cdef int f32 = _is32(x)
    dt = x.dtype
    cdef void *xp = _ptr(x, dt, N * C, "x")
    cdef void *op = _ptr(out, dt, N, "out")
    cdef int64_t RB = _rows_per_block(C), nb = (N + RB - 1) // RB, b, r0, r1
    cdef int nt = _threads(n_threads, N * C)
    with nogil:
        for b in prange(nb, schedule='static', num_threads=nt):
            r0 = b * RB
            r1 = r0 + RB if r0 + RB < N else N
            if f32:
                sl_lse_rows_f32(<const float*>xp, C, r0, r1, <float*>op)
            else:
                sl_lse_rows_f64(<const double*>xp, C, r0, r1, <double*>op)
    return out


def softmax(cnp.ndarray x, object row_scale, cnp.ndarray out, int n_threads=0):
    """out = softmax(x) along rows, times row_scale[i] per row when given (the lse VJP)."""
    cdef int64_t N = x.shape[0], C = x.shape[1]
    cdef int f32 = _is32(x)
    dt = x.dtype
    cdef void *xp = _ptr(x, dt, N * C, "x")
    cdef void *sp = _optr(row_scale, dt, N, "row_scale")
    cdef void *op = _ptr(out, dt, N * C, "out")
    cdef int64_t RB = _rows_per_block(C), nb = (N + RB - 1) // RB, b, r0, r1
    cdef int nt = _threads(n_threads, N * C)
    with nogil:
        for b in prange(nb, schedule='static', num_threads=nt):
            r0 = b * RB
            r1 = r0 + RB if r0 + RB < N else N
            if f32:
                sl_softmax_rows_f32(<const float*>xp, C, r0, r1, <const float*>sp, <float*>op)
            else:
                sl_softmax_rows_f64(<const double*>xp, C, r0, r1, <const double*>sp, <double*>op)
    return out


def log_softmax(cnp.ndarray x, cnp.ndarray out, int n_threads=0):
    cdef int64_t N = x.shape[0], C = x.shape[1]
    cdef int f32 = _is32(x)
    dt = x.dtype
    cdef void *xp = _ptr(x, dt, N * C, "x")
    cdef void *op = _ptr(out, dt, N * C, "out")
    cdef int64_t RB = _rows_per_block(C), nb = (N + RB - 1) // RB, b, r0, r1
    cdef int nt = _threads(n_threads, N * C)
    with nogil:
        for b in prange(nb, schedule='static', num_threads=nt):
            r0 = b * RB
            r1 = r0 + RB if r0 + RB < N else N
            if f32:
                sl_log_softmax_rows_f32(<const float*>xp, C, r0, r1, <float*>op)
            else:
                sl_log_softmax_rows_f64(<const double*>xp, C, r0, r1, <double*>op)
    return out


def softmax_vjp(cnp.ndarray y, cnp.ndarray g, cnp.ndarray out, bint log, int n_threads=0):
    """VJP from the forward output y: softmax (log=False) or log_softmax (log=True)."""
    cdef int64_t N = y.shape[0], C = y.shape[1]
    cdef int f32 = _is32(y)
    dt = y.dtype
    cdef void *yp = _ptr(y, dt, N * C, "y")
    cdef void *gp = _ptr(g, dt, N * C, "grad_output")
    cdef void *op = _ptr(out, dt, N * C, "out")
    cdef int64_t RB = _rows_per_block(C), nb = (N + RB - 1) // RB, b, r0, r1
    cdef int nt = _threads(n_threads, N * C)
    with nogil:
        for b in prange(nb, schedule='static', num_threads=nt):
            r0 = b * RB
            r1 = r0 + RB if r0 + RB < N else N
            if f32:
                if log:
                    sl_log_softmax_vjp_rows_f32(<const float*>yp, <const float*>gp, C, r0, r1, <float*>op)
                else:
                    sl_softmax_vjp_rows_f32(<const float*>yp, <const float*>gp, C, r0, r1, <float*>op)
            else:
                if log:
                    sl_log_softmax_vjp_rows_f64(<const double*>yp, <const double*>gp, C, r0, r1, <double*>op)
                else:
                    sl_softmax_vjp_rows_f64(<const double*>yp, <const double*>gp, C, r0, r1, <double*>op)
    return out


def ce_index(cnp.ndarray x, cnp.ndarray labels, object weight, double W, bint has_ignore,
             int64_t ignore_index, double eps, cnp.ndarray loss, object grad,
             double gscale, object grad_rows, int n_threads=0):
    """Softmax cross-entropy with int64 class labels; per-row losses (float64) into
    `loss`, gradient wrt x into `grad` when given. Returns (sum of losses, first bad row or -1)."""
    cdef int64_t N = x.shape[0], C = x.shape[1]
    cdef int f32 = _is32(x)
    dt = x.dtype
    cdef void *xp = _ptr(x, dt, N * C, "x")
    cdef int64_t *lp = <int64_t*>_ptr(labels, np.int64, N, "labels")
    cdef void *wp = _optr(weight, dt, C, "weight")
    cdef double *lossp = <double*>_ptr(loss, np.float64, N, "loss")
    cdef void *gp = _optr(grad, dt, N * C, "grad")
    cdef double *grp = <double*>_optr(grad_rows, np.float64, N, "grad_output")
    cdef int64_t RB = _rows_per_block(C), nb = (N + RB - 1) // RB, b, r0, r1
    cdef int nt = _threads(n_threads, N * C)
    cdef double[::1] part = np.zeros(nb, dtype=np.float64)
    cdef int64_t[::1] bad = np.full(nb, -1, dtype=np.int64)
    cdef bint tiles = C <= TINY_CLASSES and wp == NULL and eps == 0.0
    cdef double split_total
    cdef int64_t split_bad = -1
    cdef double[::1] work
    if N < nt and eps == 0.0 and C >= SPLIT_MIN_CLASSES:
        # fewer rows than threads: split each row over threads (same bits as by rows)
        work = np.empty(((N * ((C + 1023) // 1024)) * 3 + N * 6) + 1, dtype=np.float64)
        with nogil:
            if f32:
                split_total = sl_ce_index_split_f32(<const float*>xp, C, N, lp, <const float*>wp, W, has_ignore,
                                                    ignore_index, lossp, <float*>gp, gscale, grp, &split_bad,
                                                    nt, &work[0])
            else:
                split_total = sl_ce_index_split_f64(<const double*>xp, C, N, lp, <const double*>wp, W, has_ignore,
                                                    ignore_index, lossp, <double*>gp, gscale, grp, &split_bad,
                                                    nt, &work[0])
        return split_total, split_bad
    with nogil:
        for b in prange(nb, schedule='static', num_threads=nt):
            r0 = b * RB
            r1 = r0 + RB if r0 + RB < N else N
            if tiles:
                if f32:
                    part[b] = sl_ce_index_tiles_f32(<const float*>xp, C, r0, r1, lp, has_ignore, ignore_index,
                                                    lossp, <float*>gp, gscale, grp, &bad[b])
                else:
                    part[b] = sl_ce_index_tiles_f64(<const double*>xp, C, r0, r1, lp, has_ignore, ignore_index,
                                                    lossp, <double*>gp, gscale, grp, &bad[b])
            elif f32:
                part[b] = sl_ce_index_rows_f32(<const float*>xp, C, r0, r1, lp, <const float*>wp, W,
                                               has_ignore, ignore_index, eps, lossp, <float*>gp,
                                               gscale, grp, &bad[b])
            else:
                part[b] = sl_ce_index_rows_f64(<const double*>xp, C, r0, r1, lp, <const double*>wp, W,
                                               has_ignore, ignore_index, eps, lossp, <double*>gp,
                                               gscale, grp, &bad[b])
    return _ordered_sum(part), _first_bad(bad)


cdef int64_t _first_bad(int64_t[::1] bad) noexcept:
    cdef Py_ssize_t b
    for b in range(bad.shape[0]):
        if bad[b] >= 0:
            return bad[b]
    return -1


def ce_index_half(cnp.ndarray x, bint bf, cnp.ndarray labels, object weight, double W, bint has_ignore,
                  int64_t ignore_index, double eps, cnp.ndarray loss, object grad,
                  double gscale, object grad_rows, int n_threads=0):
    """ce_index for float16 (bf=False) or bfloat16 (bf=True) logits given as uint16 bits.

    No full upcast copy: each block of rows is converted into a float32 scratch of at most
    BLOCK_ELEMS elements (per thread, in cache), the float32 kernel runs on it, and the
    gradient is converted back. The per-row arithmetic, and the block
    partition, are those of the float32 call on the upcast array, so the results are
    bitwise the float32 call's results rounded to the half dtype."""
    cdef int64_t N = x.shape[0], C = x.shape[1]
    cdef uint16_t *xp = <uint16_t*>_ptr(x, np.uint16, N * C, "x")
    cdef int64_t *lp = <int64_t*>_ptr(labels, np.int64, N, "labels")
    cdef float *wp = <float*>_optr(weight, np.float32, C, "weight")
    cdef double *lossp = <double*>_ptr(loss, np.float64, N, "loss")
    cdef uint16_t *gp = <uint16_t*>_optr(grad, np.uint16, N * C, "grad")
    cdef double *grp = <double*>_optr(grad_rows, np.float64, N, "grad_output")
    if not bf and not SL_HAVE_F16:
        raise TypeError("float16 kernels are not compiled in (no _Float16 in this compiler)")
    cdef int64_t RB = _rows_per_block(C), nb = (N + RB - 1) // RB, b, r0, r1, nr
    cdef int nt = _threads(n_threads, N * C)
    cdef double[::1] part = np.zeros(nb, dtype=np.float64)
    cdef int64_t[::1] bad = np.full(nb, -1, dtype=np.int64)
    cdef bint tiles = C <= TINY_CLASSES and wp == NULL and eps == 0.0
    cdef float *xs
    cdef float *gs
    cdef int failed = 0
    with nogil:
        for b in prange(nb, schedule='static', num_threads=nt):
            r0 = b * RB
            r1 = r0 + RB if r0 + RB < N else N
            nr = r1 - r0
            xs = <float*>malloc(nr * C * sizeof(float) + 1)
            gs = <float*>malloc(nr * C * sizeof(float) + 1) if gp != NULL else NULL
            if xs == NULL or (gp != NULL and gs == NULL):
                failed += 1
            else:
                sl_cvt_half_to_f32(xp + r0 * C, nr * C, xs, bf)
                if tiles:
                    part[b] = sl_ce_index_tiles_f32(xs, C, 0, nr, lp + r0, has_ignore, ignore_index,
                                                    lossp + r0, gs, gscale,
                                                    (grp + r0) if grp != NULL else NULL, &bad[b])
                else:
                    part[b] = sl_ce_index_rows_f32(xs, C, 0, nr, lp + r0, wp, W, has_ignore, ignore_index,
                                                   eps, lossp + r0, gs, gscale,
                                                   (grp + r0) if grp != NULL else NULL, &bad[b])
                if bad[b] >= 0:
                    bad[b] = bad[b] + r0
                if gs != NULL:
                    sl_cvt_f32_to_half(gs, nr * C, gp + r0 * C, bf)
            free(xs)
            free(gs)
    if failed:
        raise MemoryError("ce_index_half: could not allocate a block's scratch")
    return _ordered_sum(part), _first_bad(bad)


def ce_prob(cnp.ndarray x, cnp.ndarray t, object weight, double eps, cnp.ndarray loss,
            object grad, object grad_labels, double gscale, object grad_rows, int n_threads=0,
            bint unit_mass=False):
    """Softmax cross-entropy with probability labels t (same shape as x). unit_mass: the
    gradient wrt x is p - w q (TensorFlow's) instead of p (sum w q) - w q."""
    cdef int64_t N = x.shape[0], C = x.shape[1]
    cdef int f32 = _is32(x)
    dt = x.dtype
    cdef void *xp = _ptr(x, dt, N * C, "x")
    cdef void *tp = _ptr(t, dt, N * C, "labels")
    cdef void *wp = _optr(weight, dt, C, "weight")
    cdef double *lossp = <double*>_ptr(loss, np.float64, N, "loss")
    cdef void *gp = _optr(grad, dt, N * C, "grad")
    cdef void *gtp = _optr(grad_labels, dt, N * C, "grad_labels")
    cdef double *grp = <double*>_optr(grad_rows, np.float64, N, "grad_output")
    cdef int64_t RB = _rows_per_block(C), nb = (N + RB - 1) // RB, b, r0, r1
    cdef int nt = _threads(n_threads, N * C)
    cdef double[::1] part = np.zeros(nb, dtype=np.float64)
    with nogil:
        for b in prange(nb, schedule='static', num_threads=nt):
            r0 = b * RB
            r1 = r0 + RB if r0 + RB < N else N
            if f32:
                part[b] = sl_ce_prob_rows_f32(<const float*>xp, <const float*>tp, C, r0, r1,
                                              <const float*>wp, eps, lossp, <float*>gp, <float*>gtp,
                                              gscale, grp, unit_mass)
            else:
                part[b] = sl_ce_prob_rows_f64(<const double*>xp, <const double*>tp, C, r0, r1,
                                              <const double*>wp, eps, lossp, <double*>gp, <double*>gtp,
                                              gscale, grp, unit_mass)
    return _ordered_sum(part)


def nll(cnp.ndarray lp, cnp.ndarray labels, object weight, bint has_ignore, int64_t ignore_index,
        cnp.ndarray loss, object grad, double gscale, object grad_rows, int n_threads=0):
    cdef int64_t N = lp.shape[0], C = lp.shape[1]
    cdef int f32 = _is32(lp)
    dt = lp.dtype
    cdef void *xp = _ptr(lp, dt, N * C, "log_probs")
    cdef int64_t *lab = <int64_t*>_ptr(labels, np.int64, N, "labels")
    cdef void *wp = _optr(weight, dt, C, "weight")
    cdef double *lossp = <double*>_ptr(loss, np.float64, N, "loss")
    cdef void *gp = _optr(grad, dt, N * C, "grad")
    cdef double *grp = <double*>_optr(grad_rows, np.float64, N, "grad_output")
    cdef int64_t RB = _rows_per_block(C), nb = (N + RB - 1) // RB, b, r0, r1
    # the forward reads one value per row: its work is N, not N*C
    cdef int nt = _threads(n_threads, N * C if gp != NULL else N)
    cdef double[::1] part = np.zeros(nb, dtype=np.float64)
    cdef int64_t[::1] bad = np.full(nb, -1, dtype=np.int64)
    with nogil:
        for b in prange(nb, schedule='static', num_threads=nt):
            r0 = b * RB
            r1 = r0 + RB if r0 + RB < N else N
            if f32:
                part[b] = sl_nll_rows_f32(<const float*>xp, C, r0, r1, lab, <const float*>wp, has_ignore,
                                          ignore_index, lossp, <float*>gp, gscale, grp, &bad[b])
            else:
                part[b] = sl_nll_rows_f64(<const double*>xp, C, r0, r1, lab, <const double*>wp, has_ignore,
                                          ignore_index, lossp, <double*>gp, gscale, grp, &bad[b])
    return _ordered_sum(part), _first_bad(bad)


cdef int _wmode(object w, int64_t n, int64_t K) except -1:
    if w is None:
        return 0
    if (<cnp.ndarray>w).size == K and K != n:
        return 1
    return 2


def bce_logits(cnp.ndarray x, cnp.ndarray z, int64_t K, object weight, object pos_weight,
               object loss, object grad, object grad_labels, double gscale, object grad_out,
               int n_threads=0, int form=0):
    """BCE with logits over all elements of x (flat), K = length of the last axis.
    weight and pos_weight: None, (K,) per column, or full size. form 0: the exact
    evaluation; 1: TensorFlow's weighted_cross_entropy_with_logits formula, as TF
    evaluates it (see sl_elem_t.h)."""
    if form < 0 or form > 1:
        raise ValueError("form must be 0 or 1")
    cdef int64_t n = x.size
    cdef int f32 = _is32(x)
    dt = x.dtype
    if K <= 0:
        K = 1
    cdef void *xp = _ptr(x, dt, n, "logits")
    cdef void *zp = _ptr(z, dt, n, "labels")
    cdef int wm = _wmode(weight, n, K)
    cdef void *wp = _optr(weight, dt, K if wm == 1 else n, "weight")
    cdef int pm = _wmode(pos_weight, n, K)
    cdef void *pp = _optr(pos_weight, dt, K if pm == 1 else n, "pos_weight")
    cdef void *lp = _optr(loss, dt, n, "loss")
    cdef void *gp = _optr(grad, dt, n, "grad")
    cdef void *gzp = _optr(grad_labels, dt, n, "grad_labels")
    cdef void *gop = _optr(grad_out, dt, n, "grad_output")
    cdef int64_t nb = (n + BLOCK_ELEMS - 1) // BLOCK_ELEMS, b, i0, i1
    cdef int nt = _threads(n_threads, n)
    cdef double[::1] part = np.zeros(nb, dtype=np.float64)
    with nogil:
        for b in prange(nb, schedule='static', num_threads=nt):
            i0 = b * BLOCK_ELEMS
            i1 = i0 + BLOCK_ELEMS if i0 + BLOCK_ELEMS < n else n
            if f32:
                part[b] = sl_bce_logits_elems_f32(<const float*>xp, <const float*>zp, i0, i1, K,
                                               <const float*>wp, wm, <const float*>pp, pm, form, <float*>lp,
                                               <float*>gp, <float*>gzp, gscale, <const float*>gop)
            else:
                part[b] = sl_bce_logits_elems_f64(<const double*>xp, <const double*>zp, i0, i1, K,
                                               <const double*>wp, wm, <const double*>pp, pm, form, <double*>lp,
                                               <double*>gp, <double*>gzp, gscale, <const double*>gop)
    return _ordered_sum(part)


def bce_probs(cnp.ndarray p, cnp.ndarray z, int64_t K, object weight, int policy, double eps,
              object loss, object grad, double gscale, object grad_out, int n_threads=0):
    cdef int64_t n = p.size
    cdef int f32 = _is32(p)
    dt = p.dtype
    if K <= 0:
        K = 1
    if policy < 0 or policy > 3:
        raise ValueError("policy code must be 0..3")
    cdef void *xp = _ptr(p, dt, n, "probs")
    cdef void *zp = _ptr(z, dt, n, "labels")
    cdef int wm = _wmode(weight, n, K)
    cdef void *wp = _optr(weight, dt, K if wm == 1 else n, "weight")
    cdef void *lp = _optr(loss, dt, n, "loss")
    cdef void *gp = _optr(grad, dt, n, "grad")
    cdef void *gop = _optr(grad_out, dt, n, "grad_output")
    cdef int64_t nb = (n + BLOCK_ELEMS - 1) // BLOCK_ELEMS, b, i0, i1
    cdef int nt = _threads(n_threads, n)
    cdef double[::1] part = np.zeros(nb, dtype=np.float64)
    with nogil:
        for b in prange(nb, schedule='static', num_threads=nt):
            i0 = b * BLOCK_ELEMS
            i1 = i0 + BLOCK_ELEMS if i0 + BLOCK_ELEMS < n else n
            if f32:
                part[b] = sl_bce_probs_elems_f32(<const float*>xp, <const float*>zp, i0, i1, K,
                                              <const float*>wp, wm, policy, eps, <float*>lp,
                                              <float*>gp, gscale, <const float*>gop)
            else:
                part[b] = sl_bce_probs_elems_f64(<const double*>xp, <const double*>zp, i0, i1, K,
                                              <const double*>wp, wm, policy, eps, <double*>lp,
                                              <double*>gp, gscale, <const double*>gop)
    return _ordered_sum(part)


def sigmoid(cnp.ndarray x, cnp.ndarray out, bint log, int n_threads=0):
    """out = sigmoid(x) (log=False) or log_sigmoid(x) (log=True), elementwise."""
    cdef int64_t n = x.size
    cdef int f32 = _is32(x)
    dt = x.dtype
    cdef void *xp = _ptr(x, dt, n, "x")
    cdef void *op = _ptr(out, dt, n, "out")
    cdef int64_t nb = (n + BLOCK_ELEMS - 1) // BLOCK_ELEMS, b, i0, i1
    cdef int nt = _threads(n_threads, n)
    with nogil:
        for b in prange(nb, schedule='static', num_threads=nt):
            i0 = b * BLOCK_ELEMS
            i1 = i0 + BLOCK_ELEMS if i0 + BLOCK_ELEMS < n else n
            if f32:
                if log:
                    sl_log_sigmoid_elems_f32(<const float*>xp, i0, i1, <float*>op)
                else:
                    sl_sigmoid_elems_f32(<const float*>xp, i0, i1, <float*>op)
            else:
                if log:
                    sl_log_sigmoid_elems_f64(<const double*>xp, i0, i1, <double*>op)
                else:
                    sl_sigmoid_elems_f64(<const double*>xp, i0, i1, <double*>op)
    return out


def sigmoid_vjp(cnp.ndarray x, object g, cnp.ndarray out, bint log, int n_threads=0):
    cdef int64_t n = x.size
    cdef int f32 = _is32(x)
    dt = x.dtype
    cdef void *xp = _ptr(x, dt, n, "x")
    cdef void *gp = _optr(g, dt, n, "grad_output")
    cdef void *op = _ptr(out, dt, n, "out")
    cdef int64_t nb = (n + BLOCK_ELEMS - 1) // BLOCK_ELEMS, b, i0, i1
    cdef int nt = _threads(n_threads, n)
    with nogil:
        for b in prange(nb, schedule='static', num_threads=nt):
            i0 = b * BLOCK_ELEMS
            i1 = i0 + BLOCK_ELEMS if i0 + BLOCK_ELEMS < n else n
            if f32:
                if log:
                    sl_log_sigmoid_vjp_elems_f32(<const float*>xp, <const float*>gp, i0, i1, <float*>op)
                else:
                    sl_sigmoid_vjp_elems_f32(<const float*>xp, <const float*>gp, i0, i1, <float*>op)
            else:
                if log:
                    sl_log_sigmoid_vjp_elems_f64(<const double*>xp, <const double*>gp, i0, i1, <double*>op)
                else:
                    sl_sigmoid_vjp_elems_f64(<const double*>xp, <const double*>gp, i0, i1, <double*>op)
    return out
