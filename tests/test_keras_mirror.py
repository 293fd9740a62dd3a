"""Conformance of stableloss.keras.losses against the real Keras 3 (TensorFlow backend).

Expected numbers come from Keras itself (values, and gradients w.r.t. y_pred from
tf.GradientTape of the summed output) or from mpmath (tests/_reference.py) for the confident
rows where stableloss is deliberately more exact than TensorFlow (TF's dense/sparse kernels
return exactly 0 there). Skipped cleanly when keras or tensorflow is absent.
"""
import inspect
import itertools
import os
import warnings

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "tensorflow":  # pragma: no cover
    pytest.skip("Keras is not on the TensorFlow backend", allow_module_level=True)

import stableloss as sl  # noqa: E402
import stableloss.keras.losses as SL  # noqa: E402
from stableloss import _guard  # noqa: E402

import _reference as R  # noqa: E402

CLASSES = ["BinaryCrossentropy", "CategoricalCrossentropy", "SparseCategoricalCrossentropy",
           "BinaryFocalCrossentropy", "CategoricalFocalCrossentropy"]
FUNCTIONS = ["binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy",
             "binary_focal_crossentropy", "categorical_focal_crossentropy"]
REDUCTIONS = ["sum_over_batch_size", "sum", None, "none", "mean", "mean_with_sample_weight"]
KIND = dict(zip(CLASSES, ["bce", "cce", "scce", "bfce", "cfce"]))
KIND.update(zip(FUNCTIONS, ["bce", "cce", "scce", "bfce", "cfce"]))

# float32: TF computes every step in float32 (stableloss's kernels in float64, rounded once);
# differences of a few ulp per operation, so a relative 2e-5 (clip gradients reach 1e7) and an
# absolute 2e-6 (confident rows: TF 0.0 or 2.38e-7, exact 1.9e-13 / 2.0e-7).
TOL = {np.float32: (2e-5, 2e-6), np.float64: (1e-10, 1e-12)}


@pytest.fixture(autouse=True)
def _quiet_guard():
    prev = sl.set_misuse_warnings(False)   # the grid feeds logits and probabilities on purpose
    yield
    sl.set_misuse_warnings(prev)


# ---------------------------------------------------------------- signatures and configs
def _sig(f):
    """f's signature without annotations (the mirror's are typed, Keras's are not): names,
    kinds and defaults."""
    s = inspect.signature(f)
    return s.replace(parameters=[p.replace(annotation=p.empty) for p in s.parameters.values()],
                     return_annotation=s.empty)


@pytest.mark.parametrize("name", CLASSES)
def test_class_signatures(name):
    K, M = getattr(keras.losses, name), getattr(SL, name)
    assert _sig(M.__init__) == _sig(K.__init__)
    assert _sig(M.__call__) == _sig(K.__call__)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_signatures(name):
    assert _sig(getattr(SL, name)) == _sig(getattr(keras.losses, name))


def test_loss_base_signature():
    assert _sig(SL.Loss.__init__) == _sig(keras.losses.Loss.__init__)


CONFIG_ARGS = [
    ("BinaryCrossentropy", dict(from_logits=True, label_smoothing=0.1, axis=0, reduction="sum")),
    ("CategoricalCrossentropy", dict(label_smoothing=0.2, reduction=None)),
    ("SparseCategoricalCrossentropy", dict(from_logits=True, ignore_class=255, axis=-1,
                                           reduction="mean_with_sample_weight")),
    ("BinaryFocalCrossentropy", dict(apply_class_balancing=True, alpha=0.4, gamma=1.5)),
    ("CategoricalFocalCrossentropy", dict(alpha=[0.1, 0.2, 0.7], gamma=0.0, from_logits=True)),
]


@pytest.mark.parametrize("name,kw", CONFIG_ARGS)
def test_get_config_equals_keras(name, kw):
    k = getattr(keras.losses, name)(name="n1", **kw)
    m = getattr(SL, name)(name="n1", **kw)
    cfg = m.get_config()
    assert cfg == k.get_config()
    assert list(cfg) == list(k.get_config())          # key order too
    back = type(m).from_config(cfg)
    assert back.get_config() == cfg
    assert SL.serialize(m) == keras.losses.serialize(k)
    m2 = getattr(SL, name)(**kw)                       # default name
    assert m2.name == getattr(keras.losses, name)(**kw).name
    assert m.dtype == k.dtype == "float32"
    assert getattr(SL, name)(dtype="float64").dtype == getattr(keras.losses, name)(dtype="float64").dtype


def test_invalid_reduction_message():
    with pytest.raises(ValueError) as km:
        keras.losses.CategoricalCrossentropy(reduction="auto")
    with pytest.raises(ValueError) as mm:
        SL.CategoricalCrossentropy(reduction="auto")
    head = "Invalid value for argument `reduction`. Expected one of "
    assert str(km.value).startswith(head) and str(mm.value).startswith(head)
    assert str(mm.value).endswith("Received: reduction=auto") and str(km.value).endswith("Received: reduction=auto")


@pytest.mark.parametrize("ident", ["binary_crossentropy", "categorical_crossentropy",
                                   "sparse_categorical_crossentropy", "binary_focal_crossentropy",
                                   "categorical_focal_crossentropy", "bce", "BCE", *CLASSES])
def test_get_strings_like_keras(ident):
    k, m = keras.losses.get(ident), SL.get(ident)
    if inspect.isfunction(k):
        assert m is getattr(SL, k.__name__)
    else:
        assert type(m).__name__ == type(k).__name__
        assert {a: b for a, b in m.get_config().items() if a != "name"} == \
            {a: b for a, b in k.get_config().items() if a != "name"}


def test_get_dicts_callables_none():
    k = keras.losses.CategoricalCrossentropy(from_logits=True, name="x")
    ser = keras.losses.serialize(k)
    m = SL.get(ser)
    assert isinstance(m, SL.CategoricalCrossentropy) and m.get_config() == k.get_config()
    m = SL.get({"class_name": "SparseCategoricalCrossentropy", "config": {"ignore_class": 3}})
    assert m.ignore_class == 3
    assert SL.get(keras.losses.serialize(keras.losses.binary_crossentropy)) is SL.binary_crossentropy
    assert SL.get(None) is None and keras.losses.get(None) is None
    f = SL.categorical_crossentropy
    assert SL.get(f) is f
    inst = SL.BinaryCrossentropy()
    assert SL.get(inst) is inst
    with pytest.raises(ValueError, match="Could not interpret loss identifier: nope"):
        SL.get("nope")
    with pytest.raises(ValueError, match="Could not interpret loss identifier: nope"):
        keras.losses.get("nope")
    with pytest.raises(ValueError, match="does not mirror"):
        SL.get("mse")
    with pytest.raises(ValueError, match="Could not interpret loss identifier"):
        SL.get(42)


# ---------------------------------------------------------------- the generated grid
def _logits(rng, shape, adversarial):
    x = rng.normal(scale=3.0, size=shape)
    if adversarial and len(shape) >= 1 and x.size:
        flat = x.reshape(-1, shape[-1])
        C = shape[-1]
        for r in range(flat.shape[0]):
            k = rng.integers(6)
            if k == 0:
                flat[r] = 0.0; flat[r, rng.integers(C)] = 30.0          # confident (TF: loss 0)
            elif k == 1:
                flat[r] = rng.choice([-60.0, 60.0], size=C)             # saturated both ways
            elif k == 2:
                flat[r] = 1e4 * rng.normal(size=C)                      # huge spread
            elif k == 3:
                flat[r] = rng.uniform(0, 1, size=C)                     # logits inside [0, 1]
    return x


def _probs(rng, x, kind, axis, adversarial):
    if kind in ("bce", "bfce"):
        with np.errstate(over="ignore"):
            p = 1 / (1 + np.exp(-x))
        if adversarial:
            m = rng.random(p.shape)
            p = np.where(m < 0.1, 0.0, np.where(m < 0.2, 1.0, np.where(m < 0.25, 1e-9, p)))
    else:
        e = np.exp(x - x.max(axis=axis, keepdims=True))
        p = e / e.sum(axis=axis, keepdims=True)
        if adversarial:
            m = rng.random(p.shape)
            p = np.where(m < 0.15, 0.0, p)          # exact zeros (clip floor), rows then renormalised
    return p


def _make_case(rng, form):
    kind = rng.choice(["bce", "cce", "scce", "bfce", "cfce"])
    rank = int(rng.choice([1, 2, 2, 3]))
    B, T = int(rng.choice([1, 3, 4])), int(rng.choice([2, 3]))
    C = int(rng.choice([2, 3, 5])) if kind != "bce" or rng.random() < 0.8 else 1
    shape = {1: (C,), 2: (B, C), 3: (B, T, C)}[rank]
    dtype = np.float64 if rng.random() < 0.3 else np.float32
    from_logits = bool(rng.random() < 0.5)
    adversarial = bool(rng.random() < 0.35)
    axis = -1
    kw = {"from_logits": from_logits}
    if kind in ("bce", "bfce", "cce", "cfce"):
        if rank >= 2 and rng.random() < 0.2:
            axis = int(rng.choice([0, 1] if rank == 3 else [0]))
        kw["axis"] = axis
        kw["label_smoothing"] = float(rng.choice([0.0, 0.0, 0.1, 0.3]))
    if kind == "bfce":
        kw["apply_class_balancing"] = bool(rng.random() < 0.5)
        kw["alpha"] = float(rng.choice([0.25, 0.6]))
        kw["gamma"] = float(rng.choice([0.0, 0.5, 2.0, 3.0]))
    if kind == "cfce":
        kw["alpha"] = rng.choice([0.25, 1.0, "list"])
        kw["alpha"] = [float(v) for v in rng.uniform(0.1, 1, C)] if kw["alpha"] == "list" else float(kw["alpha"])
        kw["gamma"] = float(rng.choice([0.0, 1.0, 2.0]))
    if kind == "scce" and rng.random() < 0.4:
        kw["ignore_class"] = int(rng.choice([0, 1, -1, 255]))
    x = _logits(rng, shape, adversarial)
    ax_n = axis % rank
    y_pred = x if from_logits else _probs(rng, x, kind, ax_n, adversarial)
    # labels
    if kind == "scce":
        lab = rng.integers(0, C, size=shape[:-1]).astype(np.float64)
        if "ignore_class" in kw and lab.size:
            lab[rng.random(lab.shape) < 0.3] = kw["ignore_class"]
        if rank >= 2 and rng.random() < 0.3:
            lab = lab[..., None]
        y_true = lab
    elif kind in ("bce", "bfce"):
        y_true = (rng.random(shape) < 0.5).astype(np.float64)
        if rng.random() < 0.2:
            y_true = rng.random(shape)                               # soft binary labels
    else:
        Cax = shape[ax_n]
        idx = rng.integers(0, Cax, size=tuple(s for i, s in enumerate(shape) if i != ax_n))
        y_true = np.moveaxis(np.eye(Cax)[idx], -1, ax_n)
        r = rng.random()
        if r < 0.2:
            y_true = np.moveaxis(_probs(rng, rng.normal(size=shape), "cce", ax_n, False), ax_n, ax_n)
        elif r < 0.3:
            y_true = 2.0 * y_true                                    # unnormalised rows (TF's softmax - y)
    case = dict(form=form, kind=kind, kw=kw, y_true=y_true, y_pred=y_pred.astype(dtype), dtype=dtype)
    if form == "class":
        case["reduction"] = REDUCTIONS[int(rng.integers(len(REDUCTIONS)))]
        ps_shape = shape[:-1] if kind == "scce" else tuple(s for i, s in enumerate(shape) if i != ax_n)
        choices = [None, "scalar", "ps"]
        if len(ps_shape) >= 1:
            choices.append("ps1")
        if len(ps_shape) == 2:
            choices.append("lead")
        sw = choices[int(rng.integers(len(choices)))]
        case["sw_kind"] = sw
        if sw == "scalar":
            case["sample_weight"] = float(rng.choice([0.5, 2.0, 0.0]))
        elif sw == "ps":
            case["sample_weight"] = rng.choice([0.0, 0.5, 1.0, 2.0], size=ps_shape)
        elif sw == "ps1":
            case["sample_weight"] = rng.choice([0.0, 1.0, 3.0], size=ps_shape + (1,))[..., :1]
        elif sw == "lead":
            case["sample_weight"] = rng.choice([0.0, 1.0, 3.0], size=(ps_shape[0], 1))
        else:
            case["sample_weight"] = None
    return case


def _desc(c):
    return (f"{c['form']} {c['kind']} {c['kw']} dtype={c['dtype'].__name__} shape={c['y_pred'].shape} "
            f"y_true{np.shape(c['y_true'])} red={c.get('reduction')} sw={c.get('sw_kind')}")


_KERAS_CLASS = dict(zip(["bce", "cce", "scce", "bfce", "cfce"], CLASSES))
_KERAS_FN = dict(zip(["bce", "cce", "scce", "bfce", "cfce"], FUNCTIONS))


def _run_keras(c):
    pt = tf.constant(c["y_pred"])
    with tf.GradientTape() as t:
        t.watch(pt)
        if c["form"] == "class":
            loss = getattr(keras.losses, _KERAS_CLASS[c["kind"]])(
                reduction=c["reduction"], dtype=np.dtype(c["dtype"]).name, **c["kw"])
            v = loss(c["y_true"], pt, sample_weight=c["sample_weight"])
        else:
            v = getattr(keras.losses, _KERAS_FN[c["kind"]])(c["y_true"], pt, **c["kw"])
        s = tf.reduce_sum(v)
    return np.asarray(v), t.gradient(s, pt).numpy()


def _run_mirror(c):
    if c["form"] == "class":
        f = getattr(SL, _KERAS_CLASS[c["kind"]])(reduction=c["reduction"], dtype=np.dtype(c["dtype"]).name,
                                                 **c["kw"])
        args, kwargs = (c["y_true"], c["y_pred"]), {"sample_weight": c["sample_weight"]}
    else:
        f = getattr(SL, _KERAS_FN[c["kind"]])
        args, kwargs = (c["y_true"], c["y_pred"]), dict(c["kw"])
    v_plain = f(*args, **kwargs)
    v, g = sl.value_and_grad(f, argnums=1)(*args, **kwargs)
    np.testing.assert_array_equal(np.asarray(v_plain), np.asarray(v))   # the value is f's, bit for bit
    return np.asarray(v), g


def _close(a, b, dtype):
    rtol, atol = TOL[dtype]
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return False, np.inf
    same_special = (np.isnan(a) == np.isnan(b)).all() and (np.isinf(a) == np.isinf(b)).all() and \
        (a[np.isinf(a)] == b[np.isinf(b)]).all()
    fin = np.isfinite(a) & np.isfinite(b)
    d = np.abs(a[fin] - b[fin])
    ok = same_special and bool((d <= atol + rtol * np.abs(b[fin])).all())
    rel = d / np.maximum(1.0, np.abs(b[fin]))         # the report's measure: |a - b| / max(1, |b|)
    return ok, (float(rel.max()) if rel.size else 0.0)


# ---------------------------------------------------------------- float32 error bound, renormalised inputs
# Probability inputs of the categorical (focal) losses are renormalised, q = p / S, and the
# gradient is g_j = (w_j - Σ_i w_i q_i) / S with w_i = ∂loss/∂q_i (0 where the clip holds q_i).
# When S is tiny (1e-13) the terms are huge (1e13) and cancel: a gradient of 4e10 out of
# terms of 6e12. A float32 evaluation carries each term's rounding, so it is only accurate
# to ~eps times the terms, not the result; two float32 evaluations (TensorFlow's, in an order
# that depends on the machine, and the mirror's) may differ by that much. For these cases the
# test compares each of them with a float64 evaluation of the formula (itself checked
# against TensorFlow's float64 run) within a first-order bound of the float32 error.
U32 = 2.0 ** -24                      # float32 unit roundoff
LO32, HI32 = float(np.float32(1e-7)), float(np.float32(1 - 1e-7))     # Keras's clip in float32


class _GivenLoss(keras.losses.Loss):
    """A Keras loss whose per-sample values are given: Keras's own reduction and sample
    weighting applied to them (to read off d total / d per-sample loss)."""

    def __init__(self, values, **kw):
        super().__init__(**kw)
        self._values = values

    def call(self, y_true, y_pred):
        return self._values


def _per_sample_cotangent(c, out_shape):
    """d(sum of the Keras output)/d(per-sample loss), in float64 (linear in the losses)."""
    if c["form"] != "class":
        return np.ones(out_shape)
    lt = tf.ones(out_shape, tf.float64)
    with tf.GradientTape() as t:
        t.watch(lt)
        v = _GivenLoss(lt, reduction=c["reduction"], dtype="float64")(
            tf.zeros(out_shape, tf.float64), tf.zeros(out_shape, tf.float64), sample_weight=c["sample_weight"])
        s = tf.reduce_sum(v)
    return t.gradient(s, lt).numpy()


def _renormalised_reference(c):
    """Gradient wrt y_pred of Keras's categorical_crossentropy / categorical_focal_crossentropy
    (from_logits=False) in float64, a bound on the error of a float32 evaluation of it, and a
    mask of the elements whose clip decisions cannot differ between float32 and float64.

    First-order rounding analysis (u = 2^-24; every quantity below is >= 0 except the two
    gradient terms): S = Σ p has relative error <= (n-1)u, q = p/S <= n·u; y' = y(1-ls) + ls/C
    <= 4u (labels, two constants, product, sum); the per-sample cotangent
    (N losses: a sum of N weights, a division, a product) (N+2)u; 1/o and the products and sum
    of the chain rule 6u; for γ > 0 two float32 pow/log calls (budget 4 ulp each), fl(1 - o)
    u + n·u·o/(1-o) raised to γ, log o n·u·o/|log o|. So each w_i carries ε_i·|w_i|. The
    backward pass adds T = (3n+3)u per term (S twice, p/S/S, the product, the n-term sum and
    the final subtraction). Bound: (|w_j|(ε_j + T) + Σ_i |w_i| q_i (ε_i + T)) / S."""
    kw = c["kw"]
    p = np.asarray(c["y_pred"], np.float64)
    ax = kw["axis"] % p.ndim
    n = p.shape[ax]
    y = np.asarray(c["y_true"], np.float64)
    if kw["label_smoothing"]:
        y = y * (1 - kw["label_smoothing"]) + kw["label_smoothing"] / y.shape[-1]
    if c["kind"] == "cfce":
        alpha, gamma = np.asarray(kw["alpha"], np.float32).astype(np.float64), kw["gamma"]   # floatx, as Keras
    else:
        alpha, gamma = np.float64(1.0), 0.0
    out_shape = p.shape[:ax] + p.shape[ax + 1:]
    G = np.expand_dims(_per_sample_cotangent(c, out_shape), ax)
    N = max(1, int(np.prod(out_shape)))
    with np.errstate(all="ignore"):
        S = p.sum(axis=ax, keepdims=True)
        q = p / S
        o = np.clip(q, LO32, HI32)
        m = (q >= LO32) & (q <= HI32)
        cce = -y * np.log(o)
        term = alpha * (1 - o) ** gamma * y / o                                 # -∂/∂o of W·cce, first part
        if gamma:
            term = term + alpha * gamma * (1 - o) ** (gamma - 1) * cce          # second part (same sign)
        w = np.where(m, -term * G, 0.0)
        g = w / S - np.sum(w * q, axis=ax, keepdims=True) / S
        eps = (13 + n + N + 2) * U32 + np.zeros_like(o)
        if gamma:
            eps = eps + 8 * U32 + gamma * (U32 + n * U32 * o / (1 - o)) + n * U32 * o / np.abs(np.log(o))
        a = np.abs(w) * (eps + (3 * n + 3) * U32)
        bound = a / S + np.sum(a * q, axis=ax, keepdims=True) / S
        # clip decisions: q within 4n·u of a bound (float32's or float64's) may fall either side
        near = np.zeros(q.shape, bool)
        for b in (LO32, 1e-7, HI32, 1 - 1e-7):
            near |= np.abs(q - b) <= 4 * n * U32 * b
        clear = ~np.any(near | ~np.isfinite(q), axis=ax, keepdims=True) & np.isfinite(S) & (S > 0)
    clear = np.broadcast_to(clear, p.shape) & np.isfinite(g)
    return g, np.broadcast_to(bound, p.shape), clear


BOUND_USE = {"mirror": 0.0, "keras": 0.0, "elements": 0}     # max |error| / bound seen (report)


def _close_renormalised(c, mg, kg):
    """(ok, report measure) for a float32 probability-input cce / cfce gradient: the mirror and
    Keras each within the float32 error bound of the float64 reference on the elements with
    settled clip decisions; elsewhere the mirror against Keras as in _close."""
    ref, bound, clear = _renormalised_reference(c)
    _, k64 = _run_keras(dict(c, y_pred=c["y_pred"].astype(np.float64), dtype=np.float64))
    # the reference is TensorFlow's float64 computation up to float64 rounding of the same terms
    assert (np.abs(ref - k64)[clear] <= 2 * bound[clear] * (2.0 ** -53 / U32)).all(), \
        f"float64 reference disagrees with Keras's float64 run: {_desc(c)}\n{ref}\n{k64}"
    ok, rel = _close(np.where(clear, 0.0, mg), np.where(clear, 0.0, kg), c["dtype"])   # specials, unclear
    for who, got in (("mirror", mg), ("keras", kg)):
        err = np.abs(np.asarray(got, np.float64) - ref)[clear]
        ok = ok and bool((err <= bound[clear]).all())
        if err.size:
            BOUND_USE[who] = max(BOUND_USE[who], float(np.max(err / np.maximum(bound[clear], 1e-300))))
    BOUND_USE["elements"] += int(clear.sum())
    d = (np.abs(np.asarray(mg, np.float64) - ref) / np.maximum(1.0, np.abs(ref)))[clear]
    return ok, max(rel, float(d.max()) if d.size else 0.0)


N_BATCHES, PER_BATCH = 12, 100
MAXDIFF = {}
COUNT = {"cases": 0}


def _cases(batch):
    rng = np.random.default_rng(1000 + batch)
    return [_make_case(rng, "class" if i % 4 else "function") for i in range(PER_BATCH)]


@pytest.mark.parametrize("batch", range(N_BATCHES))
def test_grid_vs_keras(batch):
    bad = []
    for c in _cases(batch):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kv, kg = _run_keras(c)
            mv, mg = _run_mirror(c)
        okv, dv = _close(mv, kv, c["dtype"])
        kg_ref = kg
        if c["kind"] == "scce" and not c["kw"]["from_logits"] and c["dtype"] is np.float32:
            # TF's float32 sparse kernel returns softmax(log c) - onehot, which loses the small
            # target entry (c_other / Σc, e.g. 1e-7 / 0.015) to cancellation before the 1/c chain
            # rule magnifies it (0.7 % off); stableloss gets it exactly. The oracle for the
            # gradient is TF's own float64 computation on the same float32 inputs.
            _, kg_ref = _run_keras(dict(c, y_pred=c["y_pred"].astype(np.float64), dtype=np.float64))
        if c["kind"] in ("cce", "cfce") and not c["kw"]["from_logits"] and c["dtype"] is np.float32:
            okg, dg = _close_renormalised(c, mg, kg)      # float32 error bound vs a float64 reference
        else:
            okg, dg = _close(mg, kg_ref, c["dtype"])
        assert mg.dtype == kg.dtype and np.asarray(mv).dtype == kv.dtype, _desc(c)
        key = (c["form"], str(c["kind"]), np.dtype(c["dtype"]).name)
        old = MAXDIFF.get(key, (0.0, 0.0))
        MAXDIFF[key] = (max(old[0], dv), max(old[1], dg))
        COUNT["cases"] += 1
        if not (okv and okg):
            bad.append(f"{_desc(c)}: value ok={okv} (rel {dv:.3g}), grad ok={okg} (rel {dg:.3g})")
    assert not bad, f"{len(bad)} mismatches, e.g.\n" + "\n".join(bad[:5])


def test_grid_case_count_and_report():
    """Runs after the grid (file order): at least 1,000 generated cases were compared."""
    if COUNT["cases"] < N_BATCHES * PER_BATCH:
        pytest.skip("run the whole module to count the grid")
    assert COUNT["cases"] >= 1000
    lines = [f"{k}: value {v[0]:.3g}, grad {v[1]:.3g}" for k, v in sorted(MAXDIFF.items())]
    lines.append(f"float32 renormalised cce/cfce gradients: {BOUND_USE['elements']} elements, max |error| / bound "
                 f"mirror {BOUND_USE['mirror']:.3g}, keras {BOUND_USE['keras']:.3g}")
    print(f"\nkeras grid: {COUNT['cases']} cases; max |a - b| / max(1, |b|) per (form, loss, dtype):\n" + "\n".join(lines))


# ---------------------------------------------------------------- targeted behaviours
def _kv(loss, y, p, **kw):
    return np.asarray(loss(y, tf.constant(p), **kw))


def test_rank1_trap_bce():
    y, p, w = np.array([0., 1, 1]), np.array([.3, .6, .9], np.float32), np.array([1., 0, 2])
    for red in (None, "sum_over_batch_size"):
        k = _kv(keras.losses.BinaryCrossentropy(reduction=red), y, p, sample_weight=w)
        m = SL.BinaryCrossentropy(reduction=red)(y, p, sample_weight=w)
        np.testing.assert_allclose(m, k, rtol=1e-6)
    np.testing.assert_allclose(SL.BinaryCrossentropy()(y, p, sample_weight=w), 0.32428703, rtol=1e-6)
    np.testing.assert_allclose(SL.BinaryCrossentropy()(y[:, None], p[:, None], sample_weight=w),
                               0.18913202, rtol=1e-6)


def test_three_renormalisations_disagree_like_keras():
    p = np.array([[0.1, 1.9, 0.0]], np.float32)       # 2·[.05, .95, 0]
    y = np.array([[0., 1, 0]])
    cce = SL.categorical_crossentropy(y, p)
    scce = SL.sparse_categorical_crossentropy(np.array([1]), p)
    bce = SL.binary_crossentropy(y, np.clip(p, 0, 1))
    np.testing.assert_allclose(cce, keras.losses.categorical_crossentropy(y, p).numpy(), rtol=1e-6)
    np.testing.assert_allclose(scce, keras.losses.sparse_categorical_crossentropy(np.array([1]), p).numpy(),
                               rtol=1e-6)
    np.testing.assert_allclose(bce, keras.losses.binary_crossentropy(y, np.clip(p, 0, 1)).numpy(), rtol=1e-6)
    np.testing.assert_allclose([cce[0], scce[0]], [0.051293306, 0.09531031], rtol=1e-6)


def test_clip_special_values_exact():
    # float32 bounds [1e-7, 0.99999988]: -log(eps) = 16.118095, -log(1 - 0.99999988) = 15.942385
    m = SL.binary_crossentropy(np.array([[1., 0, 1, 0]]), np.array([[0., 1, 1, 0]], np.float32))
    k = keras.losses.binary_crossentropy(np.array([[1., 0, 1, 0]]), np.array([[0., 1, 1, 0]], np.float32))
    np.testing.assert_allclose(m, k.numpy(), rtol=1e-7)
    el = [16.118095, 15.942385, 1.1920929e-07, 1.1920929e-07]
    np.testing.assert_allclose(m, np.float32(np.mean(np.float32(el))), rtol=1e-7)
    # gradient exactly 0 outside [eps, 1 - eps]
    _, g = sl.value_and_grad(SL.binary_crossentropy, argnums=1)(np.array([1., 0]), np.array([0., 1], np.float32))
    assert (g == 0).all()


def test_cce_gradient_is_softmax_minus_y_for_unnormalised_labels():
    y, x = np.array([[2., 0, 0]]), np.array([[1., 2, 3]], np.float32)
    _, g = sl.value_and_grad(SL.CategoricalCrossentropy(from_logits=True, reduction="sum"), argnums=1)(y, x)
    np.testing.assert_allclose(g, [[-1.9099694, 0.24472848, 0.66524094]], rtol=1e-6)


def test_ignore_class_reduction():
    x = np.array([[1., 2, 3], [3, 1, 0], [0, 0, 9]], np.float32)
    y = np.array([1, -1, 0])
    k = _kv(keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1), y, x)
    m = SL.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1)(y, x)
    np.testing.assert_allclose(m, k, rtol=1e-6)
    m0 = SL.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1)(np.array([-1, -1, -1]), x)
    assert m0 == 0.0


def test_empty_batch_returns_empty_like_keras():
    y, p = np.zeros((0, 3)), np.zeros((0, 3), np.float32)
    for red in ("sum_over_batch_size", "sum"):
        k = _kv(keras.losses.CategoricalCrossentropy(reduction=red), y, p)
        m = SL.CategoricalCrossentropy(reduction=red)(y, p)
        assert m.shape == k.shape == (0,)


def test_scce_errors():
    with pytest.raises(ValueError, match="Only axis=-1 is currently supported. Received: axis=0"):
        SL.sparse_categorical_crossentropy(np.array([0, 1]), np.ones((2, 3)) / 3, axis=0)
    with pytest.raises(TypeError):
        SL.SparseCategoricalCrossentropy(label_smoothing=0.1)
    with pytest.raises(sl.LabelError):          # Keras: tf InvalidArgumentError (documented)
        SL.sparse_categorical_crossentropy(np.array([0, 3]), np.ones((2, 3), np.float32) / 3)


def test_categorical_c1_syntax_warning():
    with pytest.warns(SyntaxWarning, match="Consider using 'binary_crossentropy'"):
        SL.categorical_crossentropy(np.ones((2, 1)), np.ones((2, 1), np.float32))


def test_dtype_rules():
    p64 = np.array([[0.2, 0.8]])
    assert SL.categorical_crossentropy(np.array([[0., 1]]), p64).dtype == np.float64      # function: y_pred's
    assert SL.CategoricalCrossentropy()(np.array([[0., 1]]), p64).dtype == np.float32     # class: loss dtype
    v = SL.CategoricalCrossentropy(dtype="float64")(np.array([[0., 1]]), p64)
    k = keras.losses.CategoricalCrossentropy(dtype="float64")(np.array([[0., 1]]), p64)
    assert v.dtype == np.float64 and v == np.asarray(k)


def test_epsilon_read_at_call_time():
    from stableloss.keras import config
    old = config.epsilon()
    try:
        config.set_epsilon(1e-3)
        keras.config.set_epsilon(1e-3)
        y, p = np.array([[1., 0]]), np.array([[0., 1.]], np.float32)
        np.testing.assert_allclose(SL.binary_crossentropy(y, p), keras.losses.binary_crossentropy(y, p).numpy(),
                                   rtol=1e-6)
    finally:
        config.set_epsilon(old)
        keras.config.set_epsilon(old)


# ---------------------------------------------------------------- confident rows vs mpmath
@pytest.mark.parametrize("dtype,d", [(np.float32, 30.0), (np.float32, 17.0), (np.float64, 50.0)])
def test_confident_rows_are_exact_not_tf_zero(dtype, d):
    """TF's kernels return exactly 0 here; stableloss returns the exact
    value, so these rows are checked against mpmath rather than Keras."""
    x = np.array([[d, 0.0, 0.0]], dtype)
    exact, exact_g = R.softmax_cross_entropy(x, np.array([0]), reduction="none")
    for f, y in ((SL.categorical_crossentropy, np.array([[1., 0, 0]])),
                 (SL.sparse_categorical_crossentropy, np.array([0]))):
        v = f(y, x, from_logits=True)
        np.testing.assert_allclose(v, exact, rtol=4 * np.finfo(dtype).eps)
        assert v[0] > 0
        _, g = sl.value_and_grad(f, argnums=1)(y, x, from_logits=True)
        np.testing.assert_allclose(g, exact_g, rtol=8 * np.finfo(dtype).eps, atol=0)
    k = keras.losses.categorical_crossentropy(np.array([[1., 0, 0]]), x, from_logits=True).numpy()
    assert k[0] == 0.0        # what TF gives: documented difference


def test_keras_logits_shortcut_has_no_numpy_analogue():
    """Keras reads `_keras_logits` off keras.ops.softmax outputs; a NumPy array carries
    no such record, so the mirror always follows `from_logits` (docs/keras.md)."""
    x = np.array([[30., 0, 0]], np.float32)
    p_keras = keras.ops.softmax(x)
    k = keras.losses.categorical_crossentropy(np.array([[1., 0, 0]]), p_keras).numpy()
    m = SL.categorical_crossentropy(np.array([[1., 0, 0]]), np.asarray(p_keras))
    assert k[0] == 0.0
    np.testing.assert_allclose(m, [1.1920929e-07], rtol=1e-6)    # -log(float32(1 - 1e-7))


def test_unreduced_grad_output_and_argnums():
    loss = SL.CategoricalCrossentropy(reduction=None)
    y = np.eye(3)[[0, 2]]
    p = np.array([[.7, .2, .1], [.3, .3, .4]], np.float32)
    go = np.array([2.0, -1.0])
    _, g = sl.value_and_grad(loss, argnums=1)(y, p, grad_output=go)
    pt = tf.constant(p)
    with tf.GradientTape() as t:
        t.watch(pt)
        v = keras.losses.CategoricalCrossentropy(reduction=None)(y, pt)
        s = tf.reduce_sum(v * go.astype(np.float32))
    np.testing.assert_allclose(g, t.gradient(s, pt).numpy(), rtol=1e-6)
    with pytest.raises(TypeError, match="not differentiable"):
        sl.value_and_grad(loss, argnums=0)
