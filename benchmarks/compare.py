"""Speed ratios of stableloss against NumPy and PyTorch (and TensorFlow when installed).

Softmax cross-entropy with class-index labels and mean reduction, forward+backward ("fb")
and forward only ("f"), for each shape in ``--shapes``. Everything is measured in one
process with interleaved repetitions (A, B, C, A, B, C, ... after a warm-up) and reported
as medians, next to the machine's copy bandwidth measured in the same rotation, because a
shared machine drifts by large factors between runs (docs: performance guide, section 10).
Run the script several times and quote ranges, not single numbers.

"limit" is the time the bytes that must move take at the measured copy bandwidth:
(N*C*itemsize read + N*C*itemsize written + N*8 label bytes) / copy bandwidth. A kernel at
1.0x limit is memory-bound; below 1.0x means the data partly sat in cache.

Usage (from the repository root, with stableloss built or installed)::

    python benchmarks/compare.py
    python benchmarks/compare.py --shapes 4096x1000,256x32000,65536x1000,8x128256,1000000x10
    python benchmarks/compare.py --threads 2 --repeat 21 --dtype float64
    python benchmarks/compare.py --no-torch     # stableloss without a second thread pool

This is a reporting tool: it asserts nothing about timings.
"""
import argparse
import contextlib
import io
import os
import statistics
import sys
import time

DEFAULT_SHAPES = "4096x1000"
FULL_SHAPES = "4096x1000,256x32000,65536x1000,8x128256,1000000x10"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shapes", default=DEFAULT_SHAPES,
                   help=f"comma-separated NxC list (default {DEFAULT_SHAPES}; 'full' = {FULL_SHAPES})")
    p.add_argument("--repeat", type=int, default=15,
                   help="interleaved repetitions per implementation; medians over these (default 15)")
    p.add_argument("--threads", type=int, default=None,
                   help="thread count for stableloss, torch and OpenMP (default: leave as configured)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--min-sample-ms", type=float, default=1.0,
                   help="a sample repeats a call until it lasts about this long (default 1.0)")
    p.add_argument("--no-torch", action="store_true",
                   help="do not import or time PyTorch (its thread pool can slow others down)")
    p.add_argument("--no-check", action="store_true", help="skip the correctness check")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if a.shapes == "full":
        a.shapes = FULL_SHAPES
    try:
        a.shapes = [tuple(int(v) for v in s.lower().split("x")) for s in a.shapes.split(",") if s.strip()]
    except ValueError:
        p.error(f"--shapes: expected a list like 4096x1000,256x32000, got {a.shapes!r}")
    if not a.shapes or any(len(s) != 2 or min(s) < 1 for s in a.shapes):
        p.error("--shapes: each shape is NxC with N, C >= 1")
    if a.repeat < 1:
        p.error("--repeat must be >= 1")
    if a.threads is not None and a.threads < 1:
        p.error("--threads must be >= 1")
    return a


# ---------------------------------------------------------------------------------------
# thread control: set before the libraries start their pools, then again through their APIs

def _preset_thread_env(n):
    """Environment read by OpenMP runtimes (stableloss, torch) when their pool starts."""
    os.environ["OMP_NUM_THREADS"] = str(n)


def _sl_config(sl):
    """show_config()'s dict (its printout swallowed), or {} if unavailable."""
    fn = getattr(sl, "show_config", None)
    if fn is None:
        return {}
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            cfg = fn()
    except Exception as e:  # a reporting tool: never die on the config call
        return {"error": f"{type(e).__name__}: {e}"}
    return cfg if isinstance(cfg, dict) else {}


def _find_threads(cfg):
    """The thread count in show_config()'s dict, whatever the key is called."""
    for key in ("n_threads", "num_threads", "threads", "default_threads", "max_threads"):
        v = cfg.get(key)
        if isinstance(v, int):
            return v
    for key, v in cfg.items():
        if "thread" in str(key).lower() and isinstance(v, int):
            return v
        if isinstance(v, dict):
            found = _find_threads(v)
            if found is not None:
                return found
    return None


def _set_threads(n, sl, torch, notes):
    if torch is not None:
        torch.set_num_threads(n)
    for name in ("set_num_threads", "set_n_threads"):
        fn = getattr(sl, name, None)
        if callable(fn):
            try:
                fn(n)
                notes.append(f"stableloss.{name}({n})")
            except Exception as e:
                notes.append(f"stableloss.{name} failed: {type(e).__name__}: {e}")
            break
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        notes.append("threadpoolctl not installed; OMP_NUM_THREADS set before import")
        return None
    # kept alive for the whole run; limits every OpenMP runtime loaded in the process
    limiter = threadpool_limits(limits=n, user_api="openmp")
    notes.append(f"threadpoolctl openmp limit {n}")
    return limiter


# ---------------------------------------------------------------------------------------
# timing

def interleaved(fns, repeat, min_sample):
    """Medians (s per call) of interleaved samples. ``fns`` maps name -> callable.

    Warm-up: each callable runs twice, then once timed to choose how many calls make one
    sample (at least ``min_sample`` seconds, so sub-millisecond kernels are not timer noise).
    Then ``repeat`` rounds of A, B, C, ... one sample each.
    """
    inner = {}
    for name, f in fns.items():
        f()
        f()
        t0 = time.perf_counter()
        f()
        dt = time.perf_counter() - t0
        inner[name] = max(1, min(1000, int(min_sample / max(dt, 1e-9)) + 1)) if dt < min_sample else 1
    samples = {name: [] for name in fns}
    for _ in range(repeat):
        for name, f in fns.items():
            k = inner[name]
            t0 = time.perf_counter()
            for _ in range(k):
                f()
            samples[name].append((time.perf_counter() - t0) / k)
    return {name: statistics.median(s) for name, s in samples.items()}, samples


class Copier:
    """256 MB array copy: single-threaded np.copyto, and the same split over ``nt`` Python
    threads (np.copyto releases the GIL), since one core may not saturate memory."""

    def __init__(self, np, nt, nbytes=256 * 2**20):
        self.np = np
        self.a = np.ones(nbytes // 4, np.float32)
        self.b = np.empty_like(self.a)
        self.b[...] = 0  # touch every page: a first write to fresh memory runs at page-fault speed
        self.nbytes = 2 * self.a.nbytes  # read + written
        self.nt = nt
        self.pool = None
        if nt > 1:
            from concurrent.futures import ThreadPoolExecutor
            self.pool = ThreadPoolExecutor(nt)
            n = self.a.size
            bounds = [(i * n // nt, (i + 1) * n // nt) for i in range(nt)]
            self.parts = [(self.a[lo:hi], self.b[lo:hi]) for lo, hi in bounds]

    def copy1(self):
        self.np.copyto(self.b, self.a)

    def _part(self, ab):
        self.np.copyto(ab[1], ab[0])

    def copyn(self):
        list(self.pool.map(self._part, self.parts))

    def fns(self):
        d = {"copy 1 thread": self.copy1}
        if self.pool is not None:
            d[f"copy {self.nt} threads"] = self.copyn
        return d

    def bandwidth(self, med):
        """Best of the copy medians in bytes/s (read+written)."""
        return max(self.nbytes / t for name, t in med.items() if name.startswith("copy"))


# ---------------------------------------------------------------------------------------

def main(argv=None):
    args = parse_args(argv)
    if args.threads is not None:
        _preset_thread_env(args.threads)

    import numpy as np
    import stableloss as sl

    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)
    from _numpy_impl import ce_forward as np_f, ce_forward_backward as np_fb

    torch = F = None
    if not args.no_torch:
        try:
            import torch
            import torch.nn.functional as F
        except ImportError:
            torch = F = None
    tf = None
    try:  # optional, silently skipped when absent
        import tensorflow as tf  # noqa: F401
    except Exception:
        tf = None

    notes = []
    limiter = None
    if args.threads is not None:
        limiter = _set_threads(args.threads, sl, torch, notes)  # noqa: F841 (kept alive)
    cfg = _sl_config(sl)
    # stableloss's explicit setting (set_num_threads) wins; 0 / absent means OpenMP's default
    sl_threads = getattr(sl, "get_num_threads", lambda: 0)() or None
    if sl_threads is None:
        sl_threads = _find_threads(cfg)
    nt = args.threads or (torch.get_num_threads() if torch is not None else None) or sl_threads \
        or os.cpu_count() or 1

    dtype = np.dtype(args.dtype)
    print(f"stableloss {getattr(sl, '__version__', '?')} | numpy {np.__version__}"
          + (f" | torch {torch.__version__}" if torch is not None else " | torch: not used")
          + (f" | tensorflow {tf.__version__}" if tf is not None else ""))
    print("stableloss show_config(): "
          + (", ".join(f"{k}={v}" for k, v in cfg.items()) if cfg else "(not available)"))
    print(f"threads: requested {args.threads if args.threads is not None else '(default)'}"
          f" | torch.get_num_threads() = {torch.get_num_threads() if torch is not None else '-'}"
          f" | stableloss = {sl_threads if sl_threads is not None else '(not reported)'}"
          f" | cpus = {os.cpu_count()}" + (f" | {'; '.join(notes)}" if notes else ""))
    print(f"softmax_cross_entropy, {dtype.name}, int64 class-index labels, reduction='mean'; "
          f"median of {args.repeat} interleaved samples, ms per call"
          + ("; torch runs in the same process (use --no-torch to time stableloss alone)"
             if torch is not None else ""))
    sys.stdout.flush()

    copier = Copier(np, nt)
    vg = sl.value_and_grad(sl.softmax_cross_entropy)
    ce = sl.softmax_cross_entropy
    rng = np.random.default_rng(args.seed)

    impls = ["stableloss"] + (["torch"] if torch is not None else []) + ["numpy"] + (["tf"] if tf is not None else [])
    head = f"{'shape':>15} |" + "".join(f" {n + ' fb':>13} {n + ' f':>12}" for n in impls) + \
        f" | {'limit fb':>8} {'copy GB/s':>9} |" + \
        "".join(f" {n + '/sl fb':>12} {n + '/sl f':>11}" for n in impls[1:]) + f" | {'sl fb/limit':>11}"
    rows = []

    for n, c in args.shapes:
        x = rng.standard_normal((n, c), dtype=dtype)
        x *= 3
        t = rng.integers(0, c, n, dtype=np.int64)
        fns = {"stableloss fb": lambda: vg(x, t), "stableloss f": lambda: ce(x, t),
               "numpy fb": lambda: np_fb(x, t), "numpy f": lambda: np_f(x, t)}
        if torch is not None:
            tt = torch.from_numpy(t)
            xt = torch.from_numpy(x)

            def torch_fb():
                xl = torch.from_numpy(x).requires_grad_()  # fresh leaf each call, no copy
                F.cross_entropy(xl, tt).backward()
                return xl.grad

            def torch_f():
                with torch.no_grad():
                    return F.cross_entropy(xt, tt)
            fns["torch fb"] = torch_fb
            fns["torch f"] = torch_f
        if tf is not None:
            try:
                xtf = tf.constant(x)
                ttf = tf.constant(t)

                def tf_f():
                    return tf.reduce_mean(
                        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=ttf, logits=xtf)).numpy()

                def tf_fb():
                    with tf.GradientTape() as tape:
                        tape.watch(xtf)
                        loss = tf.reduce_mean(
                            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=ttf, logits=xtf))
                    return loss.numpy(), tape.gradient(loss, xtf).numpy()
                tf_fb()
                fns["tf fb"] = tf_fb
                fns["tf f"] = tf_f
            except Exception as e:
                print(f"  (tensorflow skipped: {type(e).__name__}: {e})")
        fns.update(copier.fns())

        med, samples = interleaved(fns, args.repeat, args.min_sample_ms / 1e3)
        bw = copier.bandwidth(med)
        limit = (2 * x.nbytes + t.nbytes) / bw
        slfb, slf = med["stableloss fb"], med["stableloss f"]
        line = f"{str((n, c)):>15} |"
        for name in impls:
            fb, f = med.get(name + " fb"), med.get(name + " f")
            line += f" {fb * 1e3:13.3f} {f * 1e3:12.3f}" if fb is not None else f" {'-':>13} {'-':>12}"
        line += f" | {limit * 1e3:8.3f} {bw / 1e9:9.1f} |"
        for name in impls[1:]:
            fb, f = med.get(name + " fb"), med.get(name + " f")
            line += f" {fb / slfb:12.2f} {f / slf:11.2f}" if fb is not None else f" {'-':>12} {'-':>11}"
        line += f" | {slfb / limit:11.2f}"
        rows.append(line)
        if len(rows) == 1:
            print()
            print(head)
            print("-" * len(head))
        print(line)
        spread = ", ".join(f"{k} {min(v) * 1e3:.3f}-{max(v) * 1e3:.3f}" for k, v in samples.items()
                           if k.startswith(("stableloss", "copy")))
        print(f"{'':>15}   range (min-max ms): {spread}")
        if not args.no_check:
            print(f"{'':>15}   check: {check(np, sl, vg, ce, x, t, torch, F)}")
        sys.stdout.flush()
        del x, t, fns
    print()
    print("fb = forward+backward (value and gradient wrt logits), f = forward only; "
          "X/sl = X's median time / stableloss's (above 1 = stableloss faster);")
    print("limit fb = (N*C*itemsize read + N*C*itemsize written + N*8 label bytes) / copy bandwidth, "
          "copy bandwidth = best of the interleaved 256 MB copy medians (read+written bytes).")


def check(np, sl, vg, ce, x, t, torch, F):
    """One-line comparison of stableloss with torch (same dtype) and a float64 reference."""
    out = []
    try:
        v, g = vg(x, t)
        f = ce(x, t)
    except Exception as e:
        return f"stableloss raised {type(e).__name__}: {e}"
    v = np.asarray(v)
    out.append(f"value_and_grad value == softmax_cross_entropy: {bool(np.array_equal(v, np.asarray(f)))}"
               f" (dtypes {v.dtype}/{np.asarray(f).dtype}/{g.dtype})")
    if g.shape != x.shape or g.dtype != x.dtype:
        out.append(f"GRAD SHAPE/DTYPE {g.shape} {g.dtype} != {x.shape} {x.dtype}")
        return "; ".join(out)
    gmax = float(np.abs(g).max()) or 1.0
    if torch is not None:
        xl = torch.from_numpy(x).requires_grad_()
        loss = F.cross_entropy(xl, torch.from_numpy(t))
        loss.backward()
        tl, tg = loss.item(), xl.grad.numpy()
        dg = float(np.abs(g - tg).max())
        out.append(f"vs torch: |dloss| {abs(float(v) - tl):.2e} (rel {abs(float(v) - tl) / abs(tl):.1e}),"
                   f" max|dgrad| {dg:.2e} (rel to max|g| {dg / gmax:.1e})")
    if x.dtype == np.float32 and x.size <= 2**27:  # float64 reference: 2 more arrays of 8 B/elt
        x64 = x.astype(np.float64)
        m = x64.max(1, keepdims=True)
        e = np.exp(x64 - m)
        s = e.sum(1, keepdims=True)
        rows = np.arange(len(t))
        rl = float(np.mean(m[:, 0] + np.log(s[:, 0]) - x64[rows, t]))
        e /= s * len(t)
        e[rows, t] -= 1.0 / len(t)
        ref = f"vs float64: stableloss loss rel {abs(float(v) - rl) / abs(rl):.1e}," \
              f" grad max|d|/max|g| {float(np.abs(g - e).max()) / gmax:.1e}"
        if torch is not None:
            ref += f"; torch loss rel {abs(tl - rl) / abs(rl):.1e}," \
                   f" grad {float(np.abs(tg - e).max()) / gmax:.1e}"
        out.append(ref)
    return "; ".join(out)


if __name__ == "__main__":
    main()
