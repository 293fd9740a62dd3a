"""Print the worst per-row error of softmax_cross_entropy (loss and gradient) against the
60-digit mpmath reference on every adversarial family (tests/_families.py), as tabulated
in docs/numerics.md. Strict measures, no allowance for input rounding:
  loss: max over rows with true loss >= 1e-30 of |l - l_ref| / |l_ref|
  grad: max over rows of max_j |g_j - g_ref_j| / max_j |g_ref_j|, with g_ref rounded to the
        output dtype (a float32 gradient of 7e-218 is correctly 0; rows whose whole rounded
        reference gradient is 0 must be exactly 0)
Usage: python tools/accuracy_report.py [--slow]   (--slow adds C = 32000)
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import _families as fam  # noqa: E402
import _reference as ref  # noqa: E402

import stableloss as sl  # noqa: E402


def main():
    cs = fam.DEFAULT_CS + (fam.SLOW_CS if "--slow" in sys.argv else ())
    worst = {}
    print(f"{'family':<12} {'dtype':<8} {'C':>6} {'rows':>5} {'max rel err loss':>17} {'max grad err/max|g|':>20} {'min true loss':>14} non-finite")
    for family in fam.FAMILIES:
        for dt in fam.DTYPES:
            for C in cs:
                x, y = fam.make_family(family, dt, C)
                b = ref.softmax_bundle(x, y)
                loss, g = sl.value_and_grad(sl.softmax_cross_entropy)(x, y, reduction="none")
                lr = b["loss"]
                with np.errstate(over="ignore", under="ignore"):
                    gr = b["grad"].astype(dt).astype(np.float64)
                fin = np.isfinite(lr)
                bad_nf = int(np.sum(fin & ~np.isfinite(loss)) + np.sum(np.isfinite(gr) & ~np.isfinite(g)))
                sel = fin & (np.abs(lr) >= 1e-30)
                with np.errstate(invalid="ignore", divide="ignore"):
                    le = np.max(np.abs(loss[sel].astype(np.float64) - lr[sel]) / np.abs(lr[sel])) if sel.any() else 0.0
                    scale = np.max(np.abs(np.where(np.isfinite(gr), gr, 0)), axis=1)
                    ge_rows = np.max(np.abs(np.where(np.isfinite(gr), g.astype(np.float64) - gr, 0)), axis=1)
                    ge = float(np.max(np.where(scale > 0, ge_rows / np.where(scale > 0, scale, 1), ge_rows)))
                minl = float(np.min(lr[sel])) if sel.any() else float("nan")
                key = np.dtype(dt).name
                w = worst.setdefault(key, [0.0, 0.0, 0])
                w[0], w[1], w[2] = max(w[0], le), max(w[1], ge), w[2] + bad_nf
                print(f"{family:<12} {key:<8} {C:>6} {x.shape[0]:>5} {le:>17.3e} {ge:>20.3e} {minl:>14.3e} {bad_nf}")
    print()
    for k, (le, ge, nf) in worst.items():
        print(f"WORST {k}: loss rel err {le:.3e}, grad err/max|g| {ge:.3e}, non-finite where finite: {nf}")


if __name__ == "__main__":
    main()
