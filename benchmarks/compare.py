"""Speed ratios of stableloss against NumPy and PyTorch (and TensorFlow when installed).

The default run prints, in one process, the same-run ratios of docs/performance.md:

1. Softmax cross-entropy, class-index labels, mean reduction, forward+backward ("fb") and
   forward only ("f"), for the five benchmark shapes (or ``--shapes``), with the machine's copy
   bandwidth and the bandwidth limit measured in the same interleaved rotation.
2. Extra rows (``--only extra``): softmax and log_softmax forward on the first three
   shapes, BCE with logits fwd+bwd on 4e6 elements, float64 CE fwd+bwd and probability-label
   CE fwd+bwd on (4096,1000), each against PyTorch.
3. A compact summary: one line per row with the measured ratio. ``--targets`` adds the
   project's acceptance target of each row and a PASS/MISS verdict (a development aid for
   the project's own performance goals, not a promise about any machine).

Everything is measured with interleaved repetitions (A, B, C, A, B, C, ... after a warm-up)
and reported as medians, because a shared machine drifts by large factors between runs
(docs/benchmarks.md). Run the script several times and quote ranges, not
single numbers; with ``--targets``, a MISS in one run on a noisy machine is a reason to
look, not a verdict.

"limit" is the time the bytes that must move take at the measured copy bandwidth, e.g. for
index-label CE: (N*C*itemsize read + N*C*itemsize written + N*8 label bytes) / copy bandwidth.
A kernel at 1.0x limit is memory-bound; below 1.0x means the data partly sat in cache.

Usage (from the repository root, with stableloss built or installed)::

    python benchmarks/compare.py                  # full table + extras + summary (< 4 min)
    python benchmarks/compare.py --quick          # fewer repetitions, same rows
    python benchmarks/compare.py --only ce --shapes 4096x1000,256x32000
    python benchmarks/compare.py --only extra
    python benchmarks/compare.py --threads 2 --repeat 21 --dtype float64
    python benchmarks/compare.py --no-torch       # stableloss without a second thread pool
    python benchmarks/compare.py --targets        # + the acceptance targets, PASS/MISS

This is a reporting tool: it asserts nothing about timings (the exit status is 0 on MISS).
"""
import argparse
import contextlib
import io
import os
import statistics
import sys
import time

FULL_SHAPES = "4096x1000,256x32000,65536x1000,8x128256,1000000x10"
DEFAULT_SHAPES = FULL_SHAPES

# Acceptance targets (float32, class-index targets, mean reduction):
# (fb vs torch >=, f vs torch >=, fb vs numpy >=, fb time / limit <=)
CE_TARGETS = {
    (4096, 1000): (5.0, 2.5, 10.0, 1.3),
    (256, 32000): (5.0, 2.5, 10.0, 1.3),
    (65536, 1000): (10.0, 5.0, 15.0, 1.3),
    (8, 128256): (4.0, 2.5, 7.0, 1.3),
    (1000000, 10): (6.0, 3.0, 15.0, 2.0),
}
SOFTMAX_SHAPES = [(4096, 1000), (256, 32000), (65536, 1000)]
SOFTMAX_TARGET = 2.0          # softmax and log_softmax forward vs torch
BCE_SHAPE = (4000, 1000)      # 4e6 elements
BCE_TARGET = 3.0
F64_SHAPE = (4096, 1000)
F64_TARGET = 3.0
PROB_SHAPE = (4096, 1000)
PROB_TARGET = 3.0


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shapes", default=DEFAULT_SHAPES,
                   help=f"comma-separated NxC list for the CE table (default: the five benchmark "
                        f"shapes {FULL_SHAPES}; 'full' is an alias for them)")
    p.add_argument("--repeat", type=int, default=None,
                   help="interleaved repetitions per implementation, medians over these. Given: "
                        "used for every row. Default: 15 (5 with --quick), fewer for rows whose "
                        "rotation is slow so that each row takes about --row-seconds")
    p.add_argument("--quick", action="store_true",
                   help="fewer repetitions (5, at least 3) and shorter rows: a smoke run")
    p.add_argument("--only", choices=("ce", "extra", "all"), default="all",
                   help="ce: the CE table only; extra: the extra rows only (default all)")
    p.add_argument("--row-seconds", type=float, default=None,
                   help="timed seconds a row aims at when --repeat is not given "
                        "(default 6, 2 with --quick)")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="wall-time budget of the whole run when --repeat is not given: late rows "
                        "get fewer rounds, down to 3 (default 200, 90 with --quick)")
    p.add_argument("--threads", type=int, default=None,
                   help="thread count for stableloss, torch and OpenMP (default: leave as configured)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="dtype of the CE table (targets apply to float32; the extras fix their own)")
    p.add_argument("--min-sample-ms", type=float, default=1.0,
                   help="a sample repeats a call until it lasts about this long (default 1.0)")
    p.add_argument("--no-torch", action="store_true",
                   help="do not import or time PyTorch (its thread pool can slow others down)")
    p.add_argument("--no-check", action="store_true", help="skip the correctness checks")
    p.add_argument("--targets", action="store_true",
                   help="also print the project's acceptance target of each row and PASS/MISS "
                        "(default: the measured ratios only)")
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
    if a.repeat is not None and a.repeat < 1:
        p.error("--repeat must be >= 1")
    if a.threads is not None and a.threads < 1:
        p.error("--threads must be >= 1")
    if a.row_seconds is None:
        a.row_seconds = 2.0 if a.quick else 6.0
    if a.max_seconds is None:
        a.max_seconds = 90.0 if a.quick else 200.0
    # (max, min) repetitions when --repeat is not given
    a.rep_range = (5, 3) if a.quick else (15, 5)
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

class Budget:
    """Spreads the wall-time budget of the whole run over the rows still to come."""

    def __init__(self, seconds, rows):
        self.end = time.perf_counter() + seconds
        self.rows_left = max(1, rows)

    def row_share(self):
        """Seconds of timed rounds the next row may use (its warm-up costs about 3 more rounds)."""
        left = self.end - time.perf_counter()
        share = left / self.rows_left
        self.rows_left = max(1, self.rows_left - 1)
        return max(0.0, share) / 1.6  # leave room for warm-up, data and checks


def interleaved(fns, repeat, min_sample, rep_range=(15, 5), row_seconds=6.0, budget=None):
    """Medians (s per call) of interleaved samples. ``fns`` maps name -> callable.

    Warm-up: each callable runs twice, then once timed to choose how many calls make one
    sample (at least ``min_sample`` seconds, so sub-millisecond kernels are not timer noise).
    Then rounds of A, B, C, ... one sample each: ``repeat`` rounds when given, else as many
    as fit in ``row_seconds`` (estimated from the warm-up), clamped to ``rep_range`` = (max, min);
    when ``budget`` (a Budget) says the run is late, fewer (down to 3).
    Returns (medians, samples, rounds).
    """
    inner = {}
    round_s = 0.0
    for name, f in fns.items():
        f()
        f()
        t0 = time.perf_counter()
        f()
        dt = time.perf_counter() - t0
        inner[name] = max(1, min(1000, int(min_sample / max(dt, 1e-9)) + 1)) if dt < min_sample else 1
        round_s += inner[name] * dt
    if repeat is None:
        hi, lo = rep_range
        secs = row_seconds
        if budget is not None:
            share = budget.row_share()
            if share < secs:
                secs = share
                lo = min(lo, 3)
        repeat = max(lo, min(hi, int(secs / max(round_s, 1e-9))))
    samples = {name: [] for name in fns}
    for _ in range(repeat):
        for name, f in fns.items():
            k = inner[name]
            t0 = time.perf_counter()
            for _ in range(k):
                f()
            samples[name].append((time.perf_counter() - t0) / k)
    return {name: statistics.median(s) for name, s in samples.items()}, samples, repeat


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
# targets and the summary

class Summary:
    """Collects (label, measured, op, target) lines; verdict PASS/MISS (or '-' untargeted).
    The targets and verdicts are printed only with show_targets (--targets)."""

    def __init__(self, show_targets=False):
        self.rows = []
        self.show_targets = show_targets

    @staticmethod
    def verdict(measured, op, target):
        if target is None:
            return "-"
        if measured is None:
            return "n/a"
        ok = measured >= target if op == ">=" else measured <= target
        return "PASS" if ok else "MISS"

    def add(self, label, measured, op, target):
        v = self.verdict(measured, op, target)
        self.rows.append((label, measured, op, target, v))
        return v

    @staticmethod
    def fmt(measured, op, target, unit):
        m = f"{measured:.2f}{unit}" if measured is not None else "n/a"
        t = f"{op} {target:g}{unit}" if target is not None else "(no target)"
        return m, t

    def print(self, header):
        print()
        print(header)
        w = max([len(r[0]) for r in self.rows] + [6])
        if not self.show_targets:
            print(f"  {'row':<{w}}  {'measured':>9}")
            print(f"  {'-' * w}  {'-' * 9}")
            for label, m, op, tgt, v in self.rows:
                ms, _ = self.fmt(m, op, tgt, "x" if op == ">=" else "")
                print(f"  {label:<{w}}  {ms:>9}")
            print("  (one run on a shared machine: repeat before concluding; --targets adds the "
                  "project's acceptance targets)")
            return
        print(f"  {'target':<{w}}  {'measured':>9}  {'target':>11}  verdict")
        print(f"  {'-' * w}  {'-' * 9}  {'-' * 11}  -------")
        for label, m, op, tgt, v in self.rows:
            unit = "x" if op == ">=" else ""
            ms, ts = self.fmt(m, op, tgt, unit)
            print(f"  {label:<{w}}  {ms:>9}  {ts:>11}  {v}")
        n_t = sum(1 for r in self.rows if r[4] in ("PASS", "MISS", "n/a"))
        n_p = sum(1 for r in self.rows if r[4] == "PASS")
        n_m = sum(1 for r in self.rows if r[4] == "MISS")
        if n_t == 0:
            print("  no acceptance target applies to these rows (targets: float32 at the five shapes, "
                  "the extras, with PyTorch)")
            return
        print(f"  {n_p} of {n_t} targets PASS, {n_m} MISS"
              + (f", {n_t - n_p - n_m} not measured" if n_t - n_p - n_m else "")
              + " (one run on a shared machine: repeat before concluding)")


def _target_str(name, measured, op, target, verdict, show_targets=True):
    unit = "x" if op == ">=" else ""
    m = f"{measured:.2f}{unit}" if measured is not None else "n/a"
    if not show_targets:
        return f"{name} {m}"
    t = f"{op} {target:g}{unit}" if target is not None else "no target"
    return f"{name} {m} ({t}) {verdict}"


# ---------------------------------------------------------------------------------------
# stableloss's zero-allocation gradient keyword (grad_out=), detected once per function

class GradOut:
    """Whether ``sl.value_and_grad(f)(..., grad_out=g)`` is supported (TypeError -> no)."""

    def __init__(self, np):
        self.np = np
        self.cache = {}

    def supported(self, vgf, key, args, like):
        """Try once per ``key`` on small inputs ``args`` (first is the logits-like array)."""
        if key not in self.cache:
            g = self.np.empty_like(like)
            try:
                r = vgf(*args, grad_out=g)
                self.cache[key] = (True, "returns grad_out" if r[1] is g else
                                   "supported, but the returned gradient is not grad_out")
            except TypeError as e:
                self.cache[key] = (False, f"n/a: grad_out= not accepted ({e})")
            except Exception as e:  # supported but broken: report, do not time
                self.cache[key] = (False, f"n/a: grad_out= raised {type(e).__name__}: {e}")
        return self.cache[key]


def _ms(v):
    return f"{v * 1e3:.3f}" if v is not None else "n/a"


# ---------------------------------------------------------------------------------------

def main(argv=None):
    args = parse_args(argv)
    if args.threads is not None:
        _preset_thread_env(args.threads)
    t_start = time.perf_counter()

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

    print(f"stableloss {getattr(sl, '__version__', '?')} | numpy {np.__version__}"
          + (f" | torch {torch.__version__}" if torch is not None else " | torch: not used")
          + (f" | tensorflow {tf.__version__}" if tf is not None else " | tensorflow: not installed"))
    print("stableloss show_config(): "
          + (", ".join(f"{k}={v}" for k, v in cfg.items()) if cfg else "(not available)"))
    print(f"threads: requested {args.threads if args.threads is not None else '(default)'}"
          f" | torch.get_num_threads() = {torch.get_num_threads() if torch is not None else '-'}"
          f" | stableloss = {sl_threads if sl_threads is not None else '(not reported)'}"
          f" | cpus = {os.cpu_count()}" + (f" | {'; '.join(notes)}" if notes else ""))
    reps = (f"{args.repeat} interleaved rounds per row" if args.repeat is not None else
            f"{args.rep_range[1]}-{args.rep_range[0]} interleaved rounds per row (fewer for slow rows, "
            f"aiming at ~{args.row_seconds:g} s of timing per row and ~{args.max_seconds:g} s in all; "
            f"the count is printed per row)")
    print(f"medians of {reps}; ms per call; each sample repeats a call until it lasts "
          f">= {args.min_sample_ms:g} ms"
          + ("; torch runs in the same process (use --no-torch to time stableloss alone)"
             if torch is not None else ""))
    print("timed per call (inputs made once per row, outside the timing):")
    print("  stableloss fb    = sl.value_and_grad(f)(x, labels): loss + a freshly np.empty-allocated "
          "gradient (allocation included: the headline number)")
    print("  stableloss fb g= = sl.value_and_grad(f)(x, labels, grad_out=g), g preallocated once per row "
          "(no allocation); 'n/a' when the keyword is not supported")
    print("  stableloss f     = f(x, labels) (loss only)")
    if torch is not None:
        print("  torch fb         = xl.grad = None; F.<loss>(xl, labels).backward(), xl = "
              "torch.from_numpy(x).requires_grad_() made once per row (no copy); torch allocates "
              "the gradient in backward, as stableloss does")
        print("  torch f          = F.<loss>(xt, labels) under torch.no_grad(), xt = torch.from_numpy(x)")
    print("  numpy fb / f     = benchmarks/_numpy_impl.py (max-shifted log-sum-exp, one temporary; "
          "the fb gradient is allocated per call)")
    if tf is not None:
        print("  tf fb / f        = tf.nn.sparse_softmax_cross_entropy_with_logits (+ GradientTape), "
              "including the .numpy() conversion of the results")
    sys.stdout.flush()

    copier = Copier(np, nt)
    go = GradOut(np)
    summary = Summary(args.targets)
    n_rows = (len(args.shapes) if args.only in ("ce", "all") else 0) + \
        (len(SOFTMAX_SHAPES) + 3 if args.only in ("extra", "all") else 0)
    budget = Budget(args.max_seconds - (time.perf_counter() - t_start), n_rows)
    ctx = dict(np=np, sl=sl, torch=torch, F=F, tf=tf, np_f=np_f, np_fb=np_fb, copier=copier,
               go=go, summary=summary, args=args, budget=budget)

    if args.only in ("ce", "all"):
        ce_table(ctx)
    if args.only in ("extra", "all"):
        extra_targets(ctx)

    what = {"ce": f"{args.dtype} CE table", "extra": "extra rows",
            "all": f"{args.dtype} CE table + extra rows"}[args.only]
    summary.print(f"summary ({what}; threads {nt}; ratio = other's median / "
                  "stableloss's median, above 1 = stableloss faster; /limit = stableloss fb time / "
                  "bandwidth limit):")
    print(f"\ntotal wall time {time.perf_counter() - t_start:.0f} s")


# ---------------------------------------------------------------------------------------
# 1. the CE table

def ce_table(ctx):
    np, sl, torch, F, tf = ctx["np"], ctx["sl"], ctx["torch"], ctx["F"], ctx["tf"]
    args, copier, go, summary = ctx["args"], ctx["copier"], ctx["go"], ctx["summary"]
    np_f, np_fb = ctx["np_f"], ctx["np_fb"]
    dtype = np.dtype(args.dtype)
    vg = sl.value_and_grad(sl.softmax_cross_entropy)
    ce = sl.softmax_cross_entropy
    rng = np.random.default_rng(args.seed)
    go_ok, go_note = go.supported(vg, ("ce", dtype.name),
                                  (np.zeros((2, 3), dtype), np.zeros(2, np.int64)),
                                  np.zeros((2, 3), dtype))

    print()
    print(f"== softmax_cross_entropy, {dtype.name}, int64 class-index labels, reduction='mean' "
          f"(fb = forward+backward, f = forward) ==")
    print(f"   stableloss fb g= (grad_out reused): {go_note}")

    impls = ["stableloss"] + (["torch"] if torch is not None else []) + ["numpy"] + \
        (["tf"] if tf is not None else [])
    head = f"{'shape':>15} | {'sl fb':>9} {'sl fb g=':>9} {'sl f':>9}" + \
        "".join(f" {n + ' fb':>9} {n + ' f':>9}" for n in impls[1:]) + \
        f" | {'limit fb':>8} {'copy GB/s':>9} |" + \
        "".join(f" {n + '/sl fb':>11} {n + '/sl f':>10}" for n in impls[1:]) + \
        f" | {'fb/limit':>8} {'g=/limit':>8}"
    print()
    print(head)
    print("-" * len(head))

    for n, c in args.shapes:
        x = rng.standard_normal((n, c), dtype=dtype)
        x *= 3
        t = rng.integers(0, c, n, dtype=np.int64)
        g_buf = np.empty_like(x)
        g_buf[...] = 0  # touch the pages once, outside the timing
        fns = {"stableloss fb": lambda: vg(x, t)}
        if go_ok:
            fns["stableloss fb g="] = lambda: vg(x, t, grad_out=g_buf)
        fns["stableloss f"] = lambda: ce(x, t)
        fns["numpy fb"] = lambda: np_fb(x, t)
        fns["numpy f"] = lambda: np_f(x, t)
        if torch is not None:
            tt = torch.from_numpy(t)
            xt = torch.from_numpy(x)
            xl = torch.from_numpy(x).requires_grad_()  # one leaf per row, shares x's memory

            def torch_fb():
                xl.grad = None
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

        med, samples, rounds = interleaved(fns, args.repeat, args.min_sample_ms / 1e3,
                                           args.rep_range, args.row_seconds, ctx["budget"])
        bw = copier.bandwidth(med)
        limit = (2 * x.nbytes + t.nbytes) / bw
        slfb, slf, slg = med["stableloss fb"], med["stableloss f"], med.get("stableloss fb g=")
        line = f"{str((n, c)):>15} | {slfb * 1e3:9.3f} {_ms(slg):>9} {slf * 1e3:9.3f}"
        for name in impls[1:]:
            fb, f = med.get(name + " fb"), med.get(name + " f")
            line += f" {fb * 1e3:9.3f} {f * 1e3:9.3f}" if fb is not None else f" {'-':>9} {'-':>9}"
        line += f" | {limit * 1e3:8.3f} {bw / 1e9:9.1f} |"
        ratios = {}
        for name in impls[1:]:
            fb, f = med.get(name + " fb"), med.get(name + " f")
            if fb is not None:
                ratios[name] = (fb / slfb, f / slf)
                line += f" {fb / slfb:11.2f} {f / slf:10.2f}"
            else:
                line += f" {'-':>11} {'-':>10}"
        line += f" | {slfb / limit:8.2f} " + (f"{slg / limit:8.2f}" if slg is not None else f"{'n/a':>8}")
        print(line)
        spread = ", ".join(f"{k} {min(v) * 1e3:.3f}-{max(v) * 1e3:.3f}" for k, v in samples.items()
                           if k.startswith(("stableloss", "copy")))
        print(f"{'':>15}   {rounds} rounds; range (min-max ms): {spread}")

        tg = CE_TARGETS.get((n, c)) if dtype == np.float32 else None
        lbl = f"CE {dtype.name} {n}x{c}"
        items = []
        tfb, tf_, nfb, lim = tg if tg is not None else (None,) * 4
        tr = ratios.get("torch", (None, None))
        nr = ratios.get("numpy", (None, None))
        for what, m, op, target in (("fb vs torch", tr[0], ">=", tfb),
                                    ("f vs torch", tr[1], ">=", tf_),
                                    ("fb vs numpy", nr[0], ">=", nfb),
                                    ("fb time/limit", slfb / limit, "<=", lim)):
            if m is None and target is None:
                continue
            v = summary.add(f"{lbl} {what}", m, op, target)
            items.append(_target_str(what, m, op, target, v, args.targets))
        if slg is not None:
            summary.add(f"{lbl} fb g= time/limit (info)", slg / limit, "<=", None)
        print(f"{'':>15}   {'targets' if args.targets else 'ratios'}: " + "; ".join(items))
        if not args.no_check:
            print(f"{'':>15}   check: {check(np, sl, vg, ce, x, t, torch, F, g_buf if go_ok else None)}")
        sys.stdout.flush()
        del x, t, fns, g_buf
    print()
    print("X/sl = X's median time / stableloss's (above 1 = stableloss faster); sl fb g= = "
          "stableloss fb with grad_out reused;")
    print("limit fb = (N*C*itemsize read + N*C*itemsize written + N*8 label bytes) / copy bandwidth, "
          "copy bandwidth = best of the interleaved 256 MB copy medians (read+written bytes).")


def check(np, sl, vg, ce, x, t, torch, F, g_buf=None):
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
    if g_buf is not None:
        out.append(_check_grad_out(np, lambda gb: vg(x, t, grad_out=gb), v, g, g_buf))
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


def _check_grad_out(np, call, v, g, g_buf):
    """grad_out= result: same value, gradient bit-identical to the allocating call, in g_buf."""
    g_buf[...] = np.nan
    try:
        v2, g2 = call(g_buf)
    except Exception as e:
        return f"grad_out= raised {type(e).__name__}: {e}"
    same = bool(np.array_equal(np.asarray(v2), np.asarray(v))) and bool(np.array_equal(g2, g))
    return f"grad_out= bit-identical to fresh: {same}, written into grad_out: " \
           f"{g2 is g_buf or bool(np.shares_memory(g2, g_buf))}"


# ---------------------------------------------------------------------------------------
# 2. extra targets (all against PyTorch)

def extra_targets(ctx):
    np, sl, torch, F = ctx["np"], ctx["sl"], ctx["torch"], ctx["F"]
    args, copier, go, summary = ctx["args"], ctx["copier"], ctx["go"], ctx["summary"]
    rng = np.random.default_rng(args.seed + 1)
    f32 = np.float32
    print()
    print("== extra rows (each row: interleaved medians in ms, ratio torch/stableloss"
          + (", target, verdict" if args.targets else "")
          + "; limit = bytes that must move / copy bandwidth of the same rotation) ==")
    if torch is None:
        print("   (PyTorch not used: stableloss times only, ratios n/a)")
    w = 44

    def run_row(fns, nbytes):
        fns = dict(fns)
        fns.update(copier.fns())
        med, samples, rounds = interleaved(fns, args.repeat, args.min_sample_ms / 1e3,
                                           args.rep_range, args.row_seconds, ctx["budget"])
        bw = copier.bandwidth(med)
        return med, rounds, nbytes / bw, bw

    def emit(label, med, rounds, limit, bw, sl_key, torch_key, target, extra_keys=(), check_txt=None):
        s, tt = med[sl_key], med.get(torch_key)
        ratio = tt / s if tt is not None else None
        v = summary.add(label, ratio, ">=", target)
        parts = [f"sl {s * 1e3:.3f}"]
        for k, name in extra_keys:
            parts.append(f"{name} {_ms(med.get(k))}")
        parts.append(f"torch {_ms(tt)}")
        print(f"  {label:<{w}} {' | '.join(parts)} ms | limit {limit * 1e3:.3f} ms "
              f"({bw / 1e9:.1f} GB/s), sl/limit {s / limit:.2f} | {rounds} rounds | "
              + _target_str("torch/sl", ratio, ">=", target, v, args.targets))
        if check_txt is not None and not args.no_check:
            print(f"  {'':<{w}} check: {check_txt}")
        sys.stdout.flush()

    # --- softmax and log_softmax forward
    for n, c in SOFTMAX_SHAPES:
        x = rng.standard_normal((n, c), dtype=f32)
        x *= 3
        fns = {"sl softmax": lambda: sl.softmax(x), "sl log_softmax": lambda: sl.log_softmax(x)}
        if torch is not None:
            xt = torch.from_numpy(x)

            def t_sm():
                with torch.no_grad():
                    return torch.softmax(xt, -1)

            def t_lsm():
                with torch.no_grad():
                    return torch.log_softmax(xt, -1)
            fns["torch softmax"] = t_sm
            fns["torch log_softmax"] = t_lsm
        med, rounds, limit, bw = run_row(fns, 2 * x.nbytes)
        chk = {}
        if not args.no_check:
            for name, slf, tf_ in (("softmax", sl.softmax, "softmax"),
                                   ("log_softmax", sl.log_softmax, "log_softmax")):
                a = slf(x)
                if torch is not None:
                    with torch.no_grad():
                        b = getattr(torch, tf_)(xt, -1).numpy()
                    chk[name] = f"max|sl - torch| {float(np.abs(a - b).max()):.2e}, " \
                                f"dtype {a.dtype}, shape ok {a.shape == x.shape}"
                else:
                    chk[name] = f"dtype {a.dtype}, shape ok {a.shape == x.shape}"
        for name in ("softmax", "log_softmax"):
            emit(f"{name} f32 {n}x{c} f", med, rounds, limit, bw, f"sl {name}", f"torch {name}",
                 SOFTMAX_TARGET, check_txt=chk.get(name))
        del x, fns

    # --- float16 softmax forward (information, no target): the direct half read against the
    # upcast it replaced (float32 copy, float32 softmax, cast back) and torch in float16
    n, c = SOFTMAX_SHAPES[0]
    if sl._core._kernels.half_supported():
        x = (rng.standard_normal((n, c), dtype=f32) * 3).astype(np.float16)
        fns = {"sl softmax": lambda: sl.softmax(x),
               "sl upcast": lambda: sl.softmax(x.astype(f32)).astype(np.float16)}
        if torch is not None:
            xt16 = torch.from_numpy(x)

            def t_sm16():
                with torch.no_grad():
                    return torch.softmax(xt16, -1)
            fns["torch softmax"] = t_sm16
        med, rounds, limit, bw = run_row(fns, 2 * x.nbytes)
        emit(f"softmax f16 {n}x{c} f", med, rounds, limit, bw, "sl softmax", "torch softmax", None,
             extra_keys=(("sl upcast", "sl upcast"),))
        del x, fns

    # --- fb rows: (label, stableloss function, x, labels, torch fb callable factory, nbytes)
    def fb_row(label, f, x, lab, torch_loss, nbytes, target, key):
        vgf = sl.value_and_grad(f)
        g_buf = np.empty_like(x)
        g_buf[...] = 0
        ok, note = go.supported(vgf, key, (x[:2, :3].copy(), lab[:2, :3].copy() if lab.ndim == 2
                                           else lab[:2].copy() % 3), x[:2, :3])
        fns = {"sl fb": lambda: vgf(x, lab)}
        if ok:
            fns["sl fb g="] = lambda: vgf(x, lab, grad_out=g_buf)
        if torch is not None:
            xl = torch.from_numpy(x).requires_grad_()
            lt = torch.from_numpy(lab)

            def t_fb():
                xl.grad = None
                torch_loss(xl, lt).backward()
                return xl.grad
            fns["torch fb"] = t_fb
        med, rounds, limit, bw = run_row(fns, nbytes)
        chk = None
        if not args.no_check:
            v, g = vgf(x, lab)
            parts = [f"grad dtype {g.dtype}"]
            if ok:
                parts.append(_check_grad_out(np, lambda gb: vgf(x, lab, grad_out=gb), v, g, g_buf))
            if torch is not None:
                xl2 = torch.from_numpy(x).requires_grad_()
                loss = torch_loss(xl2, torch.from_numpy(lab))
                loss.backward()
                tg = xl2.grad.numpy()
                gm = float(np.abs(g).max()) or 1.0
                dg = float(np.abs(g - tg).max())
                parts.append(f"vs torch: |dloss| {abs(float(v) - loss.item()):.2e}, max|dgrad| {dg:.2e} "
                             f"(rel to max|g| {dg / gm:.1e})")
            chk = "; ".join(parts)
        emit(label, med, rounds, limit, bw, "sl fb", "torch fb", target,
             extra_keys=(("sl fb g=", "sl g="),),
             check_txt=None if chk is None else chk if ok else f"{chk}; grad_out: {note}")
        if ok:
            summary.add(f"{label} g= vs torch (info)",
                        med["torch fb"] / med["sl fb g="] if "torch fb" in med else None, ">=", None)

    # BCE with logits, 4e6 elements, labels 0/1 as float32
    x = rng.standard_normal(BCE_SHAPE, dtype=f32)
    x *= 3
    z = (rng.random(BCE_SHAPE, dtype=f32) < 0.5).astype(f32)
    bce_t = (lambda a, b: F.binary_cross_entropy_with_logits(a, b)) if torch is not None else None
    fb_row(f"BCE-logits f32 {BCE_SHAPE[0]}x{BCE_SHAPE[1]} fb", sl.sigmoid_cross_entropy, x, z, bce_t,
           3 * x.nbytes, BCE_TARGET, ("bce", "float32"))
    del x, z

    # float64 CE, class-index labels
    n, c = F64_SHAPE
    x = rng.standard_normal((n, c)) * 3
    t = rng.integers(0, c, n, dtype=np.int64)
    ce_t = (lambda a, b: F.cross_entropy(a, b)) if torch is not None else None
    fb_row(f"CE f64 {n}x{c} fb", sl.softmax_cross_entropy, x, t, ce_t,
           2 * x.nbytes + t.nbytes, F64_TARGET, ("ce", "float64"))
    del x, t

    # probability-label CE: labels = softmax of random numbers, same shape as the logits
    n, c = PROB_SHAPE
    x = rng.standard_normal((n, c), dtype=f32)
    x *= 3
    q = rng.standard_normal((n, c), dtype=f32)
    q = np.exp(q - q.max(1, keepdims=True))
    q /= q.sum(1, keepdims=True)
    fb_row(f"CE f32 prob-labels {n}x{c} fb", sl.softmax_cross_entropy, x, q, ce_t,
           3 * x.nbytes, PROB_TARGET, ("ce-prob", "float32"))
    del x, q
    print()
    print("softmax rows: f = forward only, sl = sl.softmax(x) / sl.log_softmax(x) (output allocated "
          "per call), torch = torch.softmax / torch.log_softmax(xt, -1) under no_grad (same);")
    print("softmax f16 row: sl upcast = sl.softmax(x.astype(float32)).astype(float16), the path "
          "the direct half read replaced; limit bytes 2*N*C*2;")
    print("fb rows: sl = value_and_grad(f)(x, labels) with a fresh gradient, sl g= = with grad_out "
          "reused, torch = xl.grad = None; loss(xl, labels).backward() on one leaf per row;")
    print("limit bytes: softmax 2*N*C*4, BCE 3*N*4 (logits, labels read; gradient written), f64 CE "
          "2*N*C*8 + N*8, prob-label CE 3*N*C*4.")


if __name__ == "__main__":
    main()
