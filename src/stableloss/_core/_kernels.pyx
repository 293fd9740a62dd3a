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
from cython.parallel cimport prange, parallel
from libc.stdint cimport int64_t, uint16_t
from libc.stdlib cimport malloc, free
from libc.string cimport memset
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
                                int, int64_t, double, double*, float*, double, const double*, int64_t*,
                                double, double*)
    double sl_ce_index_rows_f64(const double*, int64_t, int64_t, int64_t, const int64_t*, const double*, double,
                                int, int64_t, double, double*, double*, double, const double*, int64_t*,
                                double, double*)
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
                               double, double, float*, float*, double, const float*)
    double sl_bce_probs_elems_f64(const double*, const double*, int64_t, int64_t, int64_t, const double*, int, int,
                               double, double, double*, double*, double, const double*)
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


# Below this many elements a call runs on one thread: entering a parallel region
# costs 1.5-70 us (measured on a 2-core VM and a 16-core Xeon, depending on how long
# the threads sat idle), more than 32k elements of work take.
PARALLEL_THRESHOLD = 32768
# Rows with at most this many classes (plain CE: no class weight, no smoothing) go to
# the tiled kernel that vectorises across rows (docs/performance.md, "Many tiny rows").
TINY_CLASSES = 16
# Rows at least this wide are split across threads when there are fewer rows than
# threads (docs/performance.md, "Few huge rows").
SPLIT_MIN_CLASSES = 8192
# Work per block (elements): fixes the row blocks, and with them the order of
# the cross-row sums, from the shape alone.
cdef enum:
    BLOCK_ELEMS = 8192

SIMD_PATHS = ("baseline", "avx2", "avx512")


def available_paths():
    return tuple(sl_available().decode().split(","))


def _path_from_env():
    """The path STABLELOSS_SIMD asks for (a cap; case and spaces ignored). A value that
    names no path warns, listing the valid ones, and the automatic choice is used: a typo
    must not pass silently, nor stop the import of a library that works without it."""
    raw = os.environ.get("STABLELOSS_SIMD", "")
    want = raw.strip().lower()
    if want and want not in SIMD_PATHS:
        best = sl_select(b"").decode()
        from stableloss._config import warn_user
        warn_user(f"STABLELOSS_SIMD={raw!r} is not a SIMD path and is ignored; valid values: "
                  f"{', '.join(SIMD_PATHS)} (this CPU runs: {', '.join(available_paths())}). "
                  f"Using the automatic choice, {best}.", RuntimeWarning)
        return best
    return sl_select(want.encode()).decode()


_path = _path_from_env()


def simd_path():
    """The instruction-set path the kernels run: 'baseline', 'avx2' or 'avx512'."""
    return _path


def set_simd_path(str want):
    """Switch paths ('baseline', 'avx2', 'avx512', '' = best; a path above what the CPU
    runs caps at the best it has); returns the active one. Another name: ValueError."""
    global _path
    if want and want not in SIMD_PATHS:
        raise ValueError(f"set_simd_path: {want!r} is not a SIMD path; expected one of "
                         f"{', '.join(SIMD_PATHS)} or '' (this CPU runs: {', '.join(available_paths())})")
    _path = sl_select(want.encode()).decode()
    return _path


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
    """Pointer to a's data after checking dtype, C-contiguity, alignment and element count."""
    if a.dtype != dtype:
        raise TypeError(f"{name}: kernel needs dtype {np.dtype(dtype)}, got {a.dtype}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name}: kernel needs a C-contiguous array")
    if not a.flags.aligned:     # a misaligned double* / int64_t* load is undefined behaviour
        raise ValueError(f"{name}: kernel needs an aligned array")
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
             double gscale, object grad_rows, int n_threads=0, double z_loss=0.0, object lse=None):
    """Softmax cross-entropy with int64 class labels; per-row losses (float64) into
    `loss`, gradient wrt x into `grad` when given (it may be x itself: in place).
    z_loss: the auxiliary z lse^2 per non-ignored row (loss and gradient); lse: a float64
    (N,) array receiving each row's logsumexp. Returns (sum of losses, first bad row or -1)."""
    cdef int64_t N = x.shape[0], C = x.shape[1]
    cdef int f32 = _is32(x)
    dt = x.dtype
    cdef void *xp = _ptr(x, dt, N * C, "x")
    cdef int64_t *lp = <int64_t*>_ptr(labels, np.int64, N, "labels")
    cdef void *wp = _optr(weight, dt, C, "weight")
    cdef double *lossp = <double*>_ptr(loss, np.float64, N, "loss")
    cdef void *gp = _optr(grad, dt, N * C, "grad")
    cdef double *grp = <double*>_optr(grad_rows, np.float64, N, "grad_output")
    cdef double *lsep = <double*>_optr(lse, np.float64, N, "lse")
    cdef int64_t RB = _rows_per_block(C), nb = (N + RB - 1) // RB, b, r0, r1
    cdef int nt = _threads(n_threads, N * C)
    cdef double[::1] part = np.zeros(nb, dtype=np.float64)
    cdef int64_t[::1] bad = np.full(nb, -1, dtype=np.int64)
    cdef bint plain = z_loss == 0.0 and lsep == NULL     # the tiled and split kernels: no z-loss, no lse
    cdef bint tiles = C <= TINY_CLASSES and wp == NULL and eps == 0.0 and plain
    cdef double split_total
    cdef int64_t split_bad = -1
    cdef double[::1] work
    if N < nt and eps == 0.0 and C >= SPLIT_MIN_CLASSES and plain:
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
                                               gscale, grp, &bad[b], z_loss, lsep)
            else:
                part[b] = sl_ce_index_rows_f64(<const double*>xp, C, r0, r1, lp, <const double*>wp, W,
                                               has_ignore, ignore_index, eps, lossp, <double*>gp,
                                               gscale, grp, &bad[b], z_loss, lsep)
    return _ordered_sum(part), _first_bad(bad)


cdef int64_t _first_bad(int64_t[::1] bad) noexcept:
    cdef Py_ssize_t b
    for b in range(bad.shape[0]):
        if bad[b] >= 0:
            return bad[b]
    return -1


# ---------------------------------------------------------------- half precision I/O
# float16 / bfloat16 arrays (given as their uint16 bits) are read and written by the
# float32 kernels through ONE mechanism: each block of units (rows, or elements for the
# elementwise kernels) -- the very blocks of the float32 call -- has its half inputs
# converted into a per-thread float32 scratch (at most max(BLOCK_ELEMS, C) elements per
# array, so it stays in cache), the float32 kernel runs on the block, and its half
# outputs are converted back. Per-row values and block sums are those of the float32
# call on the upcast array, so every result is that call's, rounded to the half dtype.

# how one kernel argument ("slot") reaches the kernel
cdef enum:
    H_NULL = 0    # absent (NULL)
    H_IN = 1      # (U, W) uint16 bits, converted to float32 scratch per block
    H_OUT = 2     # (U, W) uint16 bits, written from float32 scratch per block
    H_F32 = 3     # (U, W) float32, read or written in place
    H_UNIT = 4    # one value per unit (float32, float64 or int64), in place
    H_FIX = 5     # shared by every block (class weights), in place
    H_ONES = 6    # float32 ones (a VJP without grad_output), per-thread scratch
    H_ROT = 7     # (K,) per-column values of an elementwise call, rotated per block
    H_SLOTS = 8

ctypedef struct _HJob:
    int op, elem, wm, flag, has_ii, bf
    int64_t U, W, RB, K, ii
    double d0, d1, d2, d3
    void *p[8]
    int kind[8]
    int isz[8]
    int64_t off[8]
    int64_t nscr

# op name -> (code, slot roles). Roles: i big input (None: absent), g big input (None:
# ones), o big output, w elementwise weight (wm 1: per column, 2: big input), k per
# column, r/D/L one float32/float64/int64 per unit, f float32 shared (W values).
_HOPS = {
    "lse": (0, "ir"), "softmax": (1, "iro"), "log_softmax": (2, "io"),
    "softmax_vjp": (3, "igoo"),        # x, grad_output, y, grad: forward and VJP fused
    "ce_index": (4, "iLfDoDD"), "ce_prob": (5, "iifDooD"), "nll": (6, "iLfDoD"),
    "bce_logits": (7, "iiwkoooi"), "bce_probs": (8, "iiwooi"),
    "sigmoid": (9, "io"), "sigmoid_vjp": (10, "iio"),
}


cdef double _hkernel(_HJob *j, void **q, int64_t n, int64_t *bad) noexcept nogil:
    """The float32 kernel of j.op on one block of n units (local indices 0..n)."""
    cdef int64_t W = j.W
    cdef const float *x = <const float*>q[0]
    if j.op == 0:
        sl_lse_rows_f32(x, W, 0, n, <float*>q[1])
    elif j.op == 1:
        sl_softmax_rows_f32(x, W, 0, n, <const float*>q[1], <float*>q[2])
    elif j.op == 2:
        sl_log_softmax_rows_f32(x, W, 0, n, <float*>q[1])
    elif j.op == 3:
        if j.flag:
            sl_log_softmax_rows_f32(x, W, 0, n, <float*>q[2])
            sl_log_softmax_vjp_rows_f32(<const float*>q[2], <const float*>q[1], W, 0, n, <float*>q[3])
        else:
            sl_softmax_rows_f32(x, W, 0, n, NULL, <float*>q[2])
            sl_softmax_vjp_rows_f32(<const float*>q[2], <const float*>q[1], W, 0, n, <float*>q[3])
    elif j.op == 4:
        if j.flag:
            return sl_ce_index_tiles_f32(x, W, 0, n, <const int64_t*>q[1], j.has_ii, j.ii, <double*>q[3],
                                         <float*>q[4], j.d1, <const double*>q[5], bad)
        return sl_ce_index_rows_f32(x, W, 0, n, <const int64_t*>q[1], <const float*>q[2], j.d2, j.has_ii,
                                    j.ii, j.d0, <double*>q[3], <float*>q[4], j.d1, <const double*>q[5], bad,
                                    j.d3, <double*>q[6])
    elif j.op == 5:
        return sl_ce_prob_rows_f32(x, <const float*>q[1], W, 0, n, <const float*>q[2], j.d0, <double*>q[3],
                                   <float*>q[4], <float*>q[5], j.d1, <const double*>q[6], j.flag)
    elif j.op == 6:
        return sl_nll_rows_f32(x, W, 0, n, <const int64_t*>q[1], <const float*>q[2], j.has_ii, j.ii,
                               <double*>q[3], <float*>q[4], j.d1, <const double*>q[5], bad)
    elif j.op == 7:
        return sl_bce_logits_elems_f32(x, <const float*>q[1], 0, n, j.K, <const float*>q[2], j.wm,
                                       <const float*>q[3], 1 if q[3] != NULL else 0, 0, <float*>q[4],
                                       <float*>q[5], <float*>q[6], j.d1, <const float*>q[7])
    elif j.op == 8:
        return sl_bce_probs_elems_f32(x, <const float*>q[1], 0, n, j.K, <const float*>q[2], j.wm, j.flag,
                                      j.d0, j.d2, <float*>q[3], <float*>q[4], j.d1, <const float*>q[5])
    elif j.op == 9:
        if j.flag:
            sl_log_sigmoid_elems_f32(x, 0, n, <float*>q[1])
        else:
            sl_sigmoid_elems_f32(x, 0, n, <float*>q[1])
    elif j.op == 10:
        if j.flag:
            sl_log_sigmoid_vjp_elems_f32(x, <const float*>q[1], 0, n, <float*>q[2])
        else:
            sl_sigmoid_vjp_elems_f32(x, <const float*>q[1], 0, n, <float*>q[2])
    return 0.0


cdef double _hblock(_HJob *j, int64_t b, float *buf, int64_t *bad) noexcept nogil:
    """Block b: convert its half inputs into buf, run the kernel, convert its half outputs back."""
    cdef int64_t u0 = b * j.RB
    cdef int64_t n = (u0 + j.RB if u0 + j.RB < j.U else j.U) - u0
    cdef int64_t ne = n * j.W, e0 = u0 * j.W, t, col, nr
    cdef void *q[8]
    cdef float *s
    cdef int k
    cdef double part
    for k in range(H_SLOTS):
        s = buf + j.off[k]
        if j.kind[k] == H_IN:
            sl_cvt_half_to_f32(<const uint16_t*>j.p[k] + e0, ne, s, j.bf)
            q[k] = s
        elif j.kind[k] == H_OUT or j.kind[k] == H_ONES:
            q[k] = s
        elif j.kind[k] == H_F32:
            q[k] = <float*>j.p[k] + e0
        elif j.kind[k] == H_UNIT:
            q[k] = <char*>j.p[k] + u0 * j.isz[k]
        elif j.kind[k] == H_FIX:
            q[k] = j.p[k]
        elif j.kind[k] == H_ROT:   # s[t] = p[(e0 + t) % K]: local column t % K is global column
            nr = ne if ne < j.K else j.K
            col = e0 % j.K
            for t in range(nr):
                s[t] = (<const float*>j.p[k])[col]
                col += 1
                if col == j.K:
                    col = 0
            q[k] = s
        else:
            q[k] = NULL
    part = _hkernel(j, q, ne if j.elem else n, bad)
    if bad[0] >= 0:
        bad[0] += u0
    for k in range(H_SLOTS):
        if j.kind[k] == H_OUT:
            sl_cvt_f32_to_half(buf + j.off[k], ne, <uint16_t*>j.p[k] + e0, j.bf)
    return part


def half_run(str op, bint bf, int64_t U, int64_t W, tuple arrays, double d0=0.0, double d1=0.0,
             double d2=0.0, double d3=0.0, bint has_ignore=False, int64_t ignore_index=0, int flag=0, int wm=0,
             int64_t K=1, int n_threads=0):
    """Run kernel `op` (a key of _HOPS) over U units of W elements with half-precision
    arrays (uint16 bits; bf: bfloat16, else float16) read and written block by block.

    `arrays` holds the op's arguments in its kernel's order (roles in _HOPS): big arrays
    (U*W elements) are uint16 half bits or float32, the others their kernel dtype.
    Elementwise ops take U elements, W = 1, K the last-axis length. bce_probs: d0 = eps,
    d2 = the upper clip bound (negative: 1 - eps).
    Returns (sum of the block totals in block order, first bad unit or -1)."""
    if op not in _HOPS:
        raise ValueError(f"unknown op {op!r}")
    code, roles = _HOPS[op]
    if len(arrays) != len(roles):
        raise ValueError(f"{op}: expected {len(roles)} arrays, got {len(arrays)}")
    cdef _HJob j
    memset(&j, 0, sizeof(j))
    j.op, j.bf, j.U, j.W, j.flag, j.wm = code, bf, U, W, flag, wm
    j.elem = code >= 7
    j.K = K if K > 0 else 1
    j.has_ii, j.ii, j.d0, j.d1, j.d2, j.d3 = has_ignore, ignore_index, d0, d1, d2, d3
    j.RB = BLOCK_ELEMS if j.elem else _rows_per_block(W)
    cdef int64_t blk = (j.RB if j.RB < U else U) * W, size
    cdef int k, half = 0
    j.nscr = 0
    for k, (role, a) in enumerate(zip(roles, arrays)):
        name = f"{op} argument {k}"
        if role == "w":
            role = "k" if wm == 1 else ("i" if wm == 2 else "-")
        if a is None:
            if role == "o" and code == 3:
                raise ValueError(f"{name}: the forward output is required")
            j.kind[k] = H_ONES if role == "g" else H_NULL
        elif role in "igo":
            if (<cnp.ndarray>a).dtype == np.uint16:
                j.kind[k] = H_OUT if role == "o" else H_IN
                half = 1
                j.p[k] = _ptr(a, np.uint16, U * W, name)
            else:
                j.kind[k] = H_F32
                j.p[k] = _ptr(a, np.float32, U * W, name)
        elif role in "rDL":
            j.kind[k], j.isz[k] = H_UNIT, (4 if role == "r" else 8)
            j.p[k] = _ptr(a, np.float32 if role == "r" else (np.float64 if role == "D" else np.int64), U, name)
        elif role == "f":
            j.kind[k], j.p[k] = H_FIX, _ptr(a, np.float32, W, name)
        elif role == "k":
            j.kind[k], j.p[k] = H_ROT, _ptr(a, np.float32, j.K, name)
        else:
            raise ValueError(f"{name}: not used with wm={wm}")
        if j.kind[k] in (H_IN, H_OUT, H_ONES, H_ROT):
            j.off[k] = j.nscr
            size = blk if j.kind[k] != H_ROT else (blk if blk < j.K else j.K)
            j.nscr += (size + 15) // 16 * 16
    if half and not bf and not SL_HAVE_F16:
        raise TypeError("float16 kernels are not compiled in (no _Float16 in this compiler)")
    cdef int64_t nb = (U + j.RB - 1) // j.RB if j.RB > 0 else 0, b, t
    # nll without a gradient reads one value per row: its work is U, not U*W
    cdef int nt = _threads(n_threads, U if (code == 6 and arrays[4] is None) else U * W)
    cdef double[::1] part = np.zeros(nb, dtype=np.float64)
    cdef int64_t[::1] bad = np.full(nb, -1, dtype=np.int64)
    cdef float *buf
    cdef int failed = 0
    if nb == 0:
        return 0.0, -1
    with nogil, parallel(num_threads=nt):
        buf = <float*>malloc(j.nscr * sizeof(float) + 64)
        if buf != NULL:
            for k in range(H_SLOTS):
                if j.kind[k] == H_ONES:
                    for t in range(blk):
                        buf[j.off[k] + t] = 1.0
        for b in prange(nb, schedule='static'):
            if buf == NULL:
                failed += 1
            else:
                part[b] = _hblock(&j, b, buf, &bad[b])
        free(buf)
    if failed:
        raise MemoryError(f"{op}: could not allocate a thread's block scratch")
    return _ordered_sum(part), _first_bad(bad)


def ce_index_half(cnp.ndarray x, bint bf, cnp.ndarray labels, object weight, double W, bint has_ignore,
                  int64_t ignore_index, double eps, cnp.ndarray loss, object grad,
                  double gscale, object grad_rows, int n_threads=0, double z_loss=0.0, object lse=None):
    """ce_index for float16 (bf=False) or bfloat16 (bf=True) logits given as uint16 bits,
    through half_run: results bitwise the float32 call's, rounded to the half dtype."""
    cdef int64_t C = x.shape[1]
    tiles = C <= TINY_CLASSES and weight is None and eps == 0.0 and z_loss == 0.0 and lse is None
    return half_run("ce_index", bf, x.shape[0], C, (x, labels, weight, loss, grad, grad_rows, lse), d0=eps,
                    d1=gscale, d2=W, d3=z_loss, has_ignore=has_ignore, ignore_index=ignore_index, flag=tiles,
                    n_threads=n_threads)


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
              object loss, object grad, double gscale, object grad_out, int n_threads=0,
              double hi=-1.0):
    """policy 1 clips to [eps, hi]; hi < 0 means 1 - eps."""
    if hi < 0:
        hi = 1.0 - eps
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
                                              <const float*>wp, wm, policy, eps, hi, <float*>lp,
                                              <float*>gp, gscale, <const float*>gop)
            else:
                part[b] = sl_bce_probs_elems_f64(<const double*>xp, <const double*>zp, i0, i1, K,
                                              <const double*>wp, wm, policy, eps, hi, <double*>lp,
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
