"""Bitwise comparison of two builds of the stableloss extension (e.g. GCC and clang).

Usage (from the repository root)::

    python tools/compare_builds.py BUILD_A BUILD_B [--simd baseline,avx2,avx512]
                                   [--threads 1,2] [--max-ulp 0] [--quick]

BUILD_A / BUILD_B: a built ``_kernels*.so`` (``.pyd``) or a directory holding one (an
in-place build's ``src/stableloss/_core``, an installed ``site-packages/stableloss``, ...).
Each build is imported in a fresh subprocess, from a temporary copy of this checkout's
``src/stableloss`` Python package with that extension dropped in, once per SIMD path
(``STABLELOSS_SIMD=<path>``, read by the dispatch at import; paths the CPU lacks are
skipped). Every worker evaluates the same battery -- values and gradients of every
public core function (logsumexp, softmax, log_softmax, softmax_cross_entropy with index
and probability labels and their options, nll_loss, sigmoid_cross_entropy,
binary_cross_entropy for each policy, sigmoid, log_sigmoid, kl_div, sigmoid_focal_loss,
linear_cross_entropy) on random, large-range and adversarial inputs (special rows: all
-inf, -inf/NaN/+inf mixtures, ties at the maximum, signed zeros, subnormals, +-max
finite), in float32, float64, float16 and bfloat16 (ml_dtypes), with 1 and 2 threads
and shapes that reach the tiled (C <= 16), row and split-row (N < threads, C >= 8192)
kernels -- and the results are compared byte for byte (NaN payloads included; an
exception must be the same exception with the same message).

Reports each differing result with the largest distance in ulps (ordered bit patterns);
--max-ulp N accepts differences up to N ulps (default 0: bits must agree). Results equal
but for the sign/payload of NaNs are listed as "nan-only" and do not fail the run unless
--strict-nan is given. Exit status:
0 when everything agrees, 1 when a result differs beyond --max-ulp, 2 on a usage error.
"""
import argparse
import glob
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile

_NP_SCALAR = re.compile(r"np\.(?:float16|float32|bfloat16)\(")
HERE = os.path.dirname(os.path.abspath(__file__))
PKG = os.path.join(os.path.dirname(HERE), "src", "stableloss")


# --------------------------------------------------------------------------- worker
def _battery(quick):
    """name -> zero-argument callable; every callable returns an array, a tuple of arrays,
    or raises."""
    import numpy as np
    import stableloss as sl
    try:
        import ml_dtypes
        half = [np.float16, ml_dtypes.bfloat16]
    except ImportError:                                     # pragma: no cover
        half = [np.float16]
    vg = sl.value_and_grad
    dtypes = [np.float32, np.float64] + half
    threads = THREADS
    rng = np.random.default_rng(20240607)
    cases = {}

    def special_rows(C, dt):
        inf, nan = np.inf, np.nan
        fin = np.finfo(np.float32 if dt in half else dt)
        rows = [np.full(C, -inf), np.full(C, nan), np.full(C, inf), np.zeros(C), -np.zeros(C),
                np.full(C, fin.max), np.full(C, -fin.max), np.full(C, fin.tiny / 4)]
        r = rng.standard_normal(C) * 3
        for k, v in enumerate([-inf, nan, inf]):
            t = r.copy(); t[k % C] = v; rows.append(t)
        t = np.full(C, -inf); t[C // 2] = 1.5; rows.append(t)            # one finite entry
        t = np.full(C, -inf); t[0] = nan; rows.append(t)                   # -inf and NaN
        t = np.full(C, -inf); t[-1] = inf; rows.append(t)                  # -inf and +inf
        t = r.copy(); t[::2] = -inf; rows.append(t)
        t = r.copy(); t[:] = t.max(); rows.append(t)                       # all tied
        t = r.copy(); t[0] = 0.0; t[-1] = -0.0; t[1:-1] = -5; rows.append(t)  # +-0 at the max
        t = r.copy(); t[-1] = -0.0; t[0] = 0.0; t[1:-1] = -5; rows.append(t)
        t = r.copy(); t[0] = 200.0; rows.append(t)                          # one dominant
        t = r * 1e4; rows.append(t)                                         # huge range
        t = r * 1e-30; rows.append(t)
        return np.stack(rows).astype(dt)

    def mats(dt):
        out = {}
        shapes = [(7, 1000), (64, 10), (33, 3), (5, 17), (3, 1), (300, 16), (4, 3000), (1, 9000)]
        if quick:
            shapes = [(7, 1000), (64, 10), (5, 17), (1, 9000)]
        for N, C in shapes:
            out[f"rand{N}x{C}"] = (rng.standard_normal((N, C)) * 3).astype(dt)
            out[f"wide{N}x{C}"] = (rng.standard_normal((N, C)) * 60).astype(dt)
        for C in ([3, 10, 16, 17, 1000, 9000] if not quick else [3, 17, 1000]):
            out[f"special{C}"] = special_rows(C, dt)
        return out

    for dt in dtypes:
        dn = np.dtype(dt).name
        for xn, x in mats(dt).items():
            N, C = x.shape
            g = rng.standard_normal(x.shape).astype(dt)
            gr = rng.standard_normal(N).astype(dt)
            xf = np.nan_to_num(x.astype(np.float64), nan=0.0, posinf=1e30, neginf=-1e30)
            lab = rng.integers(0, C, N)
            lab_max = np.argmax(xf, axis=1)                                 # the exact path
            labi = lab.copy(); labi[::3] = -100
            w = rng.uniform(0.5, 2, C).astype(dt)
            t = rng.random(x.shape); t /= t.sum(1, keepdims=True); t = t.astype(dt)
            for nt in threads:
                k = f"{dn}/{xn}/t{nt}"
                cases[f"logsumexp/{k}"] = lambda x=x, gr=gr, nt=nt: vg(sl.logsumexp)(x, grad_output=gr, n_threads=nt)
                cases[f"softmax/{k}"] = lambda x=x, g=g, nt=nt: vg(sl.softmax)(x, grad_output=g, n_threads=nt)
                cases[f"log_softmax/{k}"] = lambda x=x, g=g, nt=nt: vg(sl.log_softmax)(x, grad_output=g, n_threads=nt)
                ce = sl.softmax_cross_entropy
                cases[f"ce/{k}"] = lambda x=x, l=lab, nt=nt: vg(ce)(x, l, n_threads=nt)
                cases[f"ce_none/{k}"] = lambda x=x, l=lab, gr=gr, nt=nt: vg(ce)(
                    x, l, reduction="none", grad_output=gr, n_threads=nt)
                cases[f"ce_atmax/{k}"] = lambda x=x, l=lab_max, nt=nt: vg(ce)(x, l, reduction="sum", n_threads=nt)
                cases[f"ce_inplace/{k}"] = lambda x=x, l=lab_max, nt=nt: (lambda c: vg(ce)(c, l, grad_out=c, n_threads=nt))(x.copy())
                cases[f"ce_w_ignore/{k}"] = lambda x=x, l=labi, w=w, nt=nt: vg(ce)(
                    x, l, weight=w, ignore_index=-100, n_threads=nt)
                cases[f"ce_smooth/{k}"] = lambda x=x, l=lab, w=w, nt=nt: vg(ce)(
                    x, l, weight=w, label_smoothing=0.1, n_threads=nt)
                cases[f"ce_zloss_lse/{k}"] = lambda x=x, l=lab, nt=nt: vg(ce)(
                    x, l, z_loss=1e-3, return_lse=True, reduction="none", n_threads=nt)
                cases[f"ce_prob/{k}"] = lambda x=x, t=t, nt=nt: vg(ce, argnums=(0, 1))(x, t, n_threads=nt)
                cases[f"ce_prob_w_smooth/{k}"] = lambda x=x, t=t, w=w, nt=nt: vg(ce, argnums=(0, 1))(
                    x, t, weight=w, label_smoothing=0.05, reduction="none", n_threads=nt)
                cases[f"nll/{k}"] = lambda x=x, l=labi, w=w, nt=nt: vg(sl.nll_loss)(
                    sl.log_softmax(x, n_threads=nt), l, weight=w, ignore_index=-100, n_threads=nt)
                if C in (10, 1000, 17) and xn.startswith(("rand", "special")):
                    z = rng.random(x.shape).astype(dt)
                    zb = (rng.random(x.shape) < 0.5).astype(dt)
                    pw = rng.uniform(0.5, 3, C).astype(dt)
                    p = sl.sigmoid(x)
                    sce = sl.sigmoid_cross_entropy
                    cases[f"sce/{k}"] = lambda x=x, z=z, nt=nt: vg(sce, argnums=(0, 1))(x, z, n_threads=nt)
                    cases[f"sce_w_pw/{k}"] = lambda x=x, z=zb, w=w, pw=pw, nt=nt: vg(sce, argnums=(0, 1))(
                        x, z, weight=w, pos_weight=pw, reduction="none", n_threads=nt)
                    for pol, eps in [("clamp", None), ("clip", 1e-7), ("add", 1e-7), ("exact", None)]:
                        cases[f"bce_{pol}/{k}"] = lambda p=p, z=zb, pol=pol, eps=eps, nt=nt: vg(sl.binary_cross_entropy)(
                            p, z, policy=pol, epsilon=eps, n_threads=nt)
                    cases[f"sigmoid/{k}"] = lambda x=x, g=g, nt=nt: vg(sl.sigmoid)(x, grad_output=g, n_threads=nt)
                    cases[f"sigmoid_ones/{k}"] = lambda x=x, nt=nt: vg(sl.sigmoid)(x, n_threads=nt)
                    cases[f"log_sigmoid/{k}"] = lambda x=x, g=g, nt=nt: vg(sl.log_sigmoid)(x, grad_output=g, n_threads=nt)
                    cases[f"log_sigmoid_ones/{k}"] = lambda x=x, nt=nt: vg(sl.log_sigmoid)(x, n_threads=nt)
                    cases[f"kl_div/{k}"] = lambda x=x, t=t, nt=nt: vg(sl.kl_div)(
                        sl.log_softmax(x), t, n_threads=nt)
                    cases[f"kl_div_log/{k}"] = lambda x=x, t=t, nt=nt: vg(sl.kl_div)(
                        sl.log_softmax(x), np.log(t.astype(np.float64)).astype(t.dtype), log_target=True, n_threads=nt)
                    cases[f"focal/{k}"] = lambda x=x, z=zb, nt=nt: vg(sl.sigmoid_focal_loss)(x, z, n_threads=nt)
        for nt in threads:
            h = (rng.standard_normal((24, 32)) * 2).astype(dt)
            W = (rng.standard_normal((300, 32)) * 0.5).astype(dt)
            b = rng.standard_normal(300).astype(dt)
            lab = rng.integers(0, 300, 24); lab[::5] = -100
            cases[f"linear_ce/{dn}/t{nt}"] = lambda h=h, W=W, b=b, l=lab, nt=nt: vg(
                sl.linear_cross_entropy, argnums=(0, 1, 3))(h, W, l, b, ignore_index=-100, z_loss=1e-4,
                                                          chunk_size=64, n_threads=nt)
    return cases


def _run_worker(out_path, quick):
    import numpy as np
    from stableloss._core import _kernels as K
    res = {"_meta": {"simd": K.simd_path(), "compiler": _compiler()}}

    def enc(v):
        if isinstance(v, tuple):
            return ("tuple", [enc(u) for u in v])
        a = np.asarray(v)
        return ("array", a.dtype.name, a.shape, a.tobytes())

    for name, f in _battery(quick).items():
        try:
            with np.errstate(all="ignore"):
                res[name] = enc(f())
        except Exception as e:                  # the same error on both builds is agreement
            res[name] = ("error", f"{type(e).__name__}: {e}")
    if K.simd_path() == "baseline":             # the scalar exp/log helpers themselves
        x = np.concatenate([np.linspace(-110, 95, 20001), [np.nan, np.inf, -np.inf, 0.0, -0.0]]).astype(np.float32)
        for fn in ("expf", "expf_bounded", "logf", "log1pf"):
            try:
                xx = np.abs(x) if fn.startswith("log") else x
                res[f"_math_eval/{fn}"] = enc(K._math_eval(fn, xx))
            except Exception as e:
                res[f"_math_eval/{fn}"] = ("error", f"{type(e).__name__}: {e}")
    with open(out_path, "wb") as f:
        pickle.dump(res, f)


def _compiler():
    try:
        from stableloss._core import _build_config as B
        return B.COMPILER
    except Exception:
        return "?"


# --------------------------------------------------------------------------- driver
def _find_so(p):
    if os.path.isfile(p):
        return p
    hits = [h for pat in ("_kernels*.so", "_kernels*.pyd", "_core/_kernels*.so", "_core/_kernels*.pyd",
                          "stableloss/_core/_kernels*.so", "src/stableloss/_core/_kernels*.so")
            for h in glob.glob(os.path.join(p, pat))]
    if len(hits) != 1:
        sys.exit(f"compare_builds: expected one _kernels extension under {p}, found {hits}")
    return hits[0]


def _stage(so, dest):
    shutil.copytree(PKG, os.path.join(dest, "stableloss"),
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__", "_build_config.py"))
    core = os.path.join(dest, "stableloss", "_core")
    shutil.copy(so, core)
    cfg = os.path.join(os.path.dirname(so), "_build_config.py")
    if os.path.exists(cfg):
        shutil.copy(cfg, core)


def _decode(v):
    import numpy as np
    if v[0] == "tuple":
        return [_decode(u) for u in v[1]]
    if v[0] == "error":
        return v
    _, dt, shape, raw = v
    try:
        dtype = np.dtype(dt)
    except TypeError:
        import ml_dtypes  # noqa: F401  (registers bfloat16)
        dtype = np.dtype(getattr(ml_dtypes, dt))
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def _flat(v):
    if isinstance(v, list):
        return [u for w in v for u in _flat(w)]
    return [v]


def _ulps(a, b):
    """Largest distance in ulps between two float arrays of one dtype (ordered bit keys);
    NaN against NaN with another payload counts 0 here (it is still a bit difference)."""
    import numpy as np
    ib = {2: np.int16, 4: np.int32, 8: np.int64}[a.dtype.itemsize]
    ka = a.view(ib).astype(np.int64); kb = b.view(ib).astype(np.int64)
    mag = (1 << (8 * a.dtype.itemsize - 1)) - 1
    ka = np.where(ka < 0, -(ka & mag), ka); kb = np.where(kb < 0, -(kb & mag), kb)
    d = np.abs(ka - kb)
    both_nan = np.isnan(a.astype(np.float64)) & np.isnan(b.astype(np.float64))
    one_nan = np.isnan(a.astype(np.float64)) ^ np.isnan(b.astype(np.float64))
    d = np.where(both_nan, 0, d)
    return (np.inf if one_nan.any() else int(d.max()) if d.size else 0), int((a.view(ib) != b.view(ib)).sum())


def _compare(ra, rb, max_ulp, strict_nan):
    import numpy as np
    bad, within, notes, nanonly = [], [], [], []
    for name in sorted(set(ra) | set(rb)):
        if name == "_meta":
            continue
        if name not in ra or name not in rb:
            bad.append((name, "missing in one build"))
            continue
        la, lb = _flat(_decode(ra[name])), _flat(_decode(rb[name]))
        if len(la) != len(lb):
            bad.append((name, "different structure")); continue
        for i, (a, b) in enumerate(zip(la, lb)):
            tag = f"{name}[{i}]" if len(la) > 1 else name
            if isinstance(a, tuple) or isinstance(b, tuple):
                if a == b:
                    continue
                # the same exception whose message quotes the offending value as
                # np.float16(...) on one build and np.float32(...) on the other (a build
                # without _Float16 upcasts half inputs before validating): not a value
                # difference, reported as a note
                if (isinstance(a, tuple) and isinstance(b, tuple)
                        and _NP_SCALAR.sub("np.float(", a[1]) == _NP_SCALAR.sub("np.float(", b[1])):
                    notes.append((tag, f"message quotes {_NP_SCALAR.findall(a[1])} vs {_NP_SCALAR.findall(b[1])}"))
                else:
                    bad.append((tag, f"{a!r} vs {b!r}"))
                continue
            if a.dtype != b.dtype or a.shape != b.shape:
                bad.append((tag, f"{a.dtype}{a.shape} vs {b.dtype}{b.shape}")); continue
            if a.tobytes() == b.tobytes():
                continue
            if a.dtype.kind in "iub":
                bad.append((tag, "integer results differ")); continue
            u, n = _ulps(a, b)
            an, bn = np.isnan(a.astype(np.float64)), np.isnan(b.astype(np.float64))
            if not strict_nan and (an == bn).all() and a[~an].tobytes() == b[~bn].tobytes():
                nanonly.append((tag, f"{n} of {a.size} NaNs differ in sign/payload"))
                continue
            (within if u <= max_ulp else bad).append((tag, f"{n} of {a.size} elements differ, max {u} ulp"))
    return bad, within, notes, nanonly


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build_a"); ap.add_argument("build_b")
    ap.add_argument("--simd", default="baseline,avx2,avx512",
                    help="comma-separated SIMD paths to check (default: all three)")
    ap.add_argument("--threads", default="1,2", help="thread counts (default 1,2)")
    ap.add_argument("--max-ulp", type=float, default=0, help="accepted distance in ulps (default 0)")
    ap.add_argument("--quick", action="store_true", help="fewer shapes (a smoke run)")
    ap.add_argument("--strict-nan", action="store_true",
                    help="count results that differ only in the sign/payload of NaNs as differences "
                         "(default: reported as 'nan-only', not a failure -- IEEE 754 leaves which "
                         "NaN an operation propagates open, and the documented values are 'NaN')")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    global THREADS
    THREADS = [int(t) for t in args.threads.split(",")]
    if args.worker:
        _run_worker(args.worker, args.quick)
        return 0
    so = [_find_so(args.build_a), _find_so(args.build_b)]
    tmp = tempfile.mkdtemp(prefix="sl_compare_")
    failed = False
    try:
        for i, s in enumerate(so):
            _stage(s, os.path.join(tmp, f"b{i}"))
        for path in args.simd.split(","):
            res = []
            for i in range(2):
                out = os.path.join(tmp, f"r{i}_{path}.pkl")
                env = {**os.environ, "STABLELOSS_SIMD": path, "PYTHONPATH": os.path.join(tmp, f"b{i}")}
                cmd = [sys.executable, os.path.abspath(__file__), "x", "x", "--worker", out,
                       "--threads", args.threads] + (["--quick"] if args.quick else [])
                p = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True)
                if p.returncode != 0:
                    print(p.stdout, p.stderr, sep="\n")
                    sys.exit(f"compare_builds: the worker for {so[i]} ({path}) failed")
                with open(out, "rb") as f:
                    res.append(pickle.load(f))
            ma, mb = res[0]["_meta"], res[1]["_meta"]
            if ma["simd"] != path or mb["simd"] != path:
                print(f"[{path}] skipped: the CPU runs {ma['simd']} / {mb['simd']}")
                continue
            bad, within, notes, nanonly = _compare(res[0], res[1], args.max_ulp, args.strict_nan)
            n = len(res[0]) - 1
            print(f"[{path}] A: {ma['compiler']}  B: {mb['compiler']}  {n} results: "
                  f"{n - len(bad) - len(within) - len(nanonly)} bitwise equal, {len(nanonly)} equal but for "
                  f"NaN sign/payload, {len(within)} within {args.max_ulp:g} ulp, {len(bad)} differ")
            for tag, msg in nanonly:
                print(f"    nan-only: {tag}: {msg}")
            if notes:
                print(f"    note: {len(notes)} equal errors whose messages quote the value's dtype "
                      f"differently, e.g. {notes[0][0]}: {notes[0][1]}")
            for tag, msg in within:
                print(f"    within: {tag}: {msg}")
            for tag, msg in bad:
                print(f"    DIFFER: {tag}: {msg}")
            failed |= bool(bad)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("compare_builds:", "FAIL" if failed else "OK")
    return 1 if failed else 0


THREADS = [1, 2]

if __name__ == "__main__":
    sys.exit(main())
