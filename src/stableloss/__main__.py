"""``python -m stableloss``: build configuration, a stability demo and a quick speed check.

Needs only stableloss and NumPy; uses mpmath (exact reference values) and PyTorch (speed
comparison) when they are installed. Runs in a few seconds.
"""
import math
import statistics
import textwrap
import time
from typing import Optional

import numpy as np

import stableloss as sl


# ---------------------------------------------------------------------------------------
# references

def _naive_ce(x, y):
    """Textbook softmax-then-log cross-entropy of one row, as often written by hand."""
    with np.errstate(all="ignore"):
        e = np.exp(x)
        p = e / e.sum()
        return -np.log(p[y]), p - (np.arange(x.size) == y)


def _true_ce(x, y):
    """Loss and gradient of one row to full float64 accuracy (as Python floats).

    With mpmath: 60 significant digits, then rounded. Without it, by hand in float64: with
    m = max x and k an index holding it,
        loss = lse(x) - x_y = (m - x_y) + log1p(S),   S = sum_{j != k} exp(x_j - m) (math.fsum),
    which keeps the digits that lse - x_y would cancel (S is tiny when the row is confident;
    when y == k the loss is log1p(S) exactly as it should be, not 0). The gradient is
    p_j = exp(x_j - m) / (1 + S) for j != y and p_y - 1 = -(sum_{j != y} p_j), again summed
    with fsum so no 1 - p_y cancellation occurs. Every term is within a few ulps.
    """
    xs = [float(v) for v in x]
    c = len(xs)
    try:
        import mpmath
    except ImportError:
        mpmath = None
    if mpmath is not None:
        with mpmath.workdps(60):
            xm = [mpmath.mpf(v) if math.isfinite(v) else None for v in xs]  # None = -inf
            m = max(v for v in xm if v is not None)
            ex = [mpmath.exp(v - m) if v is not None else mpmath.mpf(0) for v in xm]
            s = mpmath.fsum(ex)
            loss = m + mpmath.log(s) - xm[y]
            p = [v / s for v in ex]
            grad = [p[j] - (1 if j == y else 0) for j in range(c)]
            # p_y - 1 computed as -(sum of the others): no cancellation at 60 digits either way
            grad[y] = -mpmath.fsum(p[j] for j in range(c) if j != y)
            return float(loss), [float(g) for g in grad]
    m = max(xs)
    k = xs.index(m)
    ex = [math.exp(v - m) for v in xs]  # exp(-inf) = 0.0
    s_others = math.fsum(ex[j] for j in range(c) if j != k)
    loss = (m - xs[y]) + math.log1p(s_others)
    p = [v / (1.0 + s_others) for v in ex]
    grad = [p[j] for j in range(c)]
    grad[y] = -math.fsum(p[j] for j in range(c) if j != y)
    return loss, grad


def _rel_err(got, true):
    got = float(got)
    if math.isnan(got):
        return math.nan
    if true == 0.0:
        return 0.0 if got == 0.0 else math.inf
    if math.isinf(got) or math.isinf(true):
        return 0.0 if got == true else math.inf
    return abs(got - true) / abs(true)


def _max_rel_err(got, true):
    errs = [_rel_err(g, t) for g, t in zip(got, true)]
    return math.nan if any(math.isnan(e) for e in errs) else max(errs)


def _fmt_err(e):
    if math.isnan(e):
        return "nan"
    if math.isinf(e):
        return "inf"
    return "0" if e == 0 else f"{e:.1e}"


# ---------------------------------------------------------------------------------------

def stability_demo() -> None:
    cases = [
        # (label, logits, target, dtype)
        ("huge logits [1000, 0, -1000], y=1", [1000.0, 0.0, -1000.0], 1, np.float64),
        ("confident-correct [60, 0, 0], y=0", [60.0, 0.0, 0.0], 0, np.float64),
        ("half -inf [800, -inf, 790, -inf], y=2", [800.0, -math.inf, 790.0, -math.inf], 2, np.float64),
        ("offset 1e4 [1e4+1, 1e4, 1e4-1], y=1", [1e4 + 1, 1e4, 1e4 - 1], 1, np.float64),
        ("float32 [100, 0], y=1", [100.0, 0.0], 1, np.float32),
        ("float32 confident [30, 0, 0], y=0", [30.0, 0.0, 0.0], 0, np.float32),
    ]
    vg = sl.value_and_grad(sl.softmax_cross_entropy)
    print("Stability: one-row cross-entropy, naive NumPy log(exp(x)/sum(exp(x)))[y] vs stableloss")
    print(f"(true values: {'mpmath, 60 digits' if _has('mpmath') else 'float64 log1p/fsum formula'};"
          " err = relative error; grad err = worst element)")
    w = 40
    print(f"{'row':<{w}} {'true loss':>12} | {'naive':>11} {'err':>7} {'grad err':>8} |"
          f" {'stableloss':>11} {'err':>7} {'grad err':>8}")
    for label, row, y, dt in cases:
        x = np.array(row, dtype=dt)
        true_l, true_g = _true_ce(x, y)
        nl, ng = _naive_ce(x, y)
        try:
            sv, sg = vg(x[None, :], np.array([y]))
            sv, sg = float(sv), sg[0]  # type: ignore[assignment]
            s_cols = f" {sv:11.4g} {_fmt_err(_rel_err(sv, true_l)):>7} {_fmt_err(_max_rel_err(sg, true_g)):>8}"
        except Exception as e:  # keep the demo going; the message is the finding
            s_cols = f" raised {type(e).__name__}: {e}"
        print(f"{label:<{w}} {true_l:12.4g} | {float(nl):11.4g} {_fmt_err(_rel_err(nl, true_l)):>7}"
              f" {_fmt_err(_max_rel_err(ng, true_g)):>8} |" + s_cols)
    print("(a relative error near 1 means every digit is lost; the confident rows' true loss is "
          "about (C-1)*exp(-d), which the naive form rounds to 0)")


def _has(mod):
    try:
        __import__(mod)
        return True
    except ImportError:
        return False


def _np_ce_fb(x, t):
    """NumPy max-shifted cross-entropy, mean reduction: (loss, gradient)."""
    n = x.shape[0]
    rows = np.arange(n)
    m = x.max(axis=1, keepdims=True)
    g = np.subtract(x, m)
    np.exp(g, out=g)
    s = g.sum(axis=1, keepdims=True)
    loss = (m[:, 0] + np.log(s[:, 0]) - x[rows, t]).mean(dtype=np.float64)
    g *= (1.0 / (s * n)).astype(x.dtype)
    g[rows, t] -= x.dtype.type(1.0 / n)
    return x.dtype.type(loss), g


def speed_demo(n: int = 4096, c: int = 1000, rounds: int = 9) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c), dtype=np.float32)
    x *= 3
    t = rng.integers(0, c, n)
    vg = sl.value_and_grad(sl.softmax_cross_entropy)
    fns = {"stableloss": lambda: vg(x, t), "numpy": lambda: _np_ce_fb(x, t)}
    try:
        import torch
        import torch.nn.functional as F
        tt = torch.from_numpy(t)

        def torch_fb():
            xl = torch.from_numpy(x).requires_grad_()
            F.cross_entropy(xl, tt).backward()
            return xl.grad
        fns["torch"] = torch_fb
        threads = f"torch threads {torch.get_num_threads()}"
    except ImportError:
        threads = "torch not installed"
    for f in fns.values():  # warm-up
        f()
        f()
    times = {k: [] for k in fns}  # type: ignore[var-annotated]
    for _ in range(rounds):  # interleaved: A, B, C, A, B, C, ...
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"Speed: cross-entropy forward+backward, float32 ({n}, {c}), mean; "
          f"median of {rounds} interleaved runs ({threads})")
    for k, v in med.items():
        ratio = "" if k == "stableloss" else f"   {k}/stableloss = {v / med['stableloss']:.2f}"
        print(f"  {k:<11} {v * 1e3:8.2f} ms{ratio}")
    print("  (one run on a possibly busy machine; benchmarks/compare.py measures properly)")


def serial_build_banner() -> Optional[str]:
    """The loud lines for a build without OpenMP (None when it has OpenMP)."""
    from stableloss._config import SERIAL_BUILD_FIX, openmp_build
    if openmp_build():
        return None
    text = ("SERIAL BUILD: stableloss was compiled without OpenMP; every call runs on ONE thread. "
            f"To fix, {SERIAL_BUILD_FIX}.")
    lines = textwrap.wrap(text, width=74, break_on_hyphens=False, break_long_words=False)
    return "\n".join(["!" * 78] + [f"!! {ln}" for ln in lines] + ["!" * 78])


def main() -> None:
    print("=" * 78)
    sl.show_config()
    banner = serial_build_banner()
    if banner:
        print(banner)
    print("=" * 78)
    stability_demo()
    print("=" * 78)
    speed_demo()


if __name__ == "__main__":
    main()
