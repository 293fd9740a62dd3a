"""Input validation, hostile layouts, degenerate shapes and special rows (contract: docs/api.md).

Every expected number in this file is derived independently of stableloss: exact mathematics
(softmax of one class is 1, log of it 0, a sum over nothing is 0, ...) or a NumPy float64
evaluation of the contract's formula, stated in a comment next to it.  Layout tests compare
stableloss with *itself* on the plain C-contiguous array of the same dtype: those answers must be
bit-for-bit equal (the contract moves the class axis last and computes the same rows).
"""

from __future__ import annotations

import copy
import math
import re

import numpy as np
import pytest

import stableloss as sl

import _reference as ref
from _arrays import (
    ARRAY_LAYOUTS,
    LAYOUTS,
    broadcast_cols,
    broadcast_rows,
    layout_ok,
    make_layout,
    non_native,
)

try:  # NumPy >= 2
    from numpy.exceptions import AxisError
except ImportError:  # pragma: no cover
    AxisError = np.AxisError


PUBLIC_NAMES = [
    "logsumexp",
    "softmax",
    "log_softmax",
    "softmax_cross_entropy",
    "nll_loss",
    "sigmoid_cross_entropy",
    "binary_cross_entropy",
    "sigmoid",
    "log_sigmoid",
    "value_and_grad",
    "grad",
    "show_config",
    "LabelError",
]

ROWWISE = ["logsumexp", "softmax", "log_softmax"]
ELEMENTWISE = ["sigmoid", "log_sigmoid"]
UNARY = ROWWISE + ELEMENTWISE
LOSSES = ["softmax_cross_entropy", "nll_loss", "sigmoid_cross_entropy", "binary_cross_entropy"]
INDEX_LOSSES = ["softmax_cross_entropy", "nll_loss"]
BINARY_LOSSES = ["sigmoid_cross_entropy", "binary_cross_entropy"]
BCE_POLICIES = ["clamp", "clip", "add", "exact"]

#: name of the first (data) argument of each function, as the contract spells it
FIRST_ARG = {
    "logsumexp": "x",
    "softmax": "x",
    "log_softmax": "x",
    "sigmoid": "x",
    "log_sigmoid": "x",
    "softmax_cross_entropy": "logits",
    "nll_loss": "log_probs",
    "sigmoid_cross_entropy": "logits",
    "binary_cross_entropy": "probs",
}


def F(name):
    return getattr(sl, name)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def named(arg):
    """Regex: the argument name as a whole word (``weight`` does not match inside ``pos_weight``)."""
    return rf"(?<![A-Za-z0-9_]){re.escape(arg)}(?![A-Za-z0-9_])"


def raises_named(exc, arg):
    return pytest.raises(exc, match=named(arg))


def number(v):
    """Regex for an integer printed in a message (not part of a longer number)."""
    return rf"(?<![\d.]){re.escape(str(v))}(?![\d.])"


def call(name, mode, *args, **kwargs):
    """Call ``sl.<name>`` directly, or through ``value_and_grad`` (construction included)."""
    f = F(name)
    if mode == "call":
        return f(*args, **kwargs)
    if mode == "vg":
        return sl.value_and_grad(f)(*args, **kwargs)
    raise AssertionError(mode)


MODES = ["call", "vg"]


def rng(seed=0):
    return np.random.default_rng(seed)


def make_logits(shape=(4, 10), dtype=np.float64, seed=0):
    return (2.0 * rng(seed).standard_normal(shape)).astype(dtype)


def make_index(shape=(4,), c=10, seed=1):
    return rng(seed).integers(0, c, size=shape).astype(np.int64)


def make_prob_labels(shape=(4, 10), dtype=np.float64, seed=2):
    q = rng(seed).random(shape) + 0.05
    return (q / q.sum(axis=-1, keepdims=True)).astype(dtype)


def make_probs(shape=(4, 10), dtype=np.float64, seed=3):
    return rng(seed).uniform(0.02, 0.98, size=shape).astype(dtype)


def make_binary_labels(shape=(4, 10), dtype=np.float64, seed=4):
    z = rng(seed).integers(0, 2, size=shape).astype(dtype)
    z.flat[::3] = 0.25  # a few soft labels too
    return z


def np_log_softmax(x, axis=-1):
    """NumPy float64 reference: x - max - log(sum(exp(x - max)))."""
    x = np.asarray(x, dtype=np.float64)
    m = np.max(x, axis=axis, keepdims=True)
    return x - m - np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))


def np_log_probs(shape=(4, 10), seed=0):
    return np_log_softmax(make_logits(shape, seed=seed))


def args_for(name, shape=(4, 10), dtype=np.float64):
    """Valid positional arguments for ``sl.<name>`` (the data argument first)."""
    if name in UNARY:
        return (make_logits(shape, dtype),)
    if name == "softmax_cross_entropy":
        return (make_logits(shape, dtype), make_index(shape[:-1], shape[-1]))
    if name == "nll_loss":
        return (np_log_probs(shape).astype(dtype), make_index(shape[:-1], shape[-1]))
    if name == "sigmoid_cross_entropy":
        return (make_logits(shape, dtype), make_binary_labels(shape, dtype))
    if name == "binary_cross_entropy":
        return (make_probs(shape, dtype), make_binary_labels(shape, dtype))
    raise AssertionError(name)


def assert_same(a, b):
    """Bitwise-equal results (NaN positions included), same dtype and shape."""
    a_arr, b_arr = np.asarray(a), np.asarray(b)
    assert a_arr.dtype == b_arr.dtype, (a_arr.dtype, b_arr.dtype)
    assert a_arr.shape == b_arr.shape, (a_arr.shape, b_arr.shape)
    np.testing.assert_array_equal(a_arr, b_arr)


def assert_same_tree(a, b):
    if isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b)
        for x, y in zip(a, b):
            assert_same_tree(x, y)
    else:
        assert_same(a, b)


def f16_ulp_close(got, want32):
    """``got`` (float16) is within 1 float16 ulp of the float32 result ``want32``."""
    got = np.asarray(got)
    assert got.dtype == np.float16
    want = np.asarray(want32, dtype=np.float32).astype(np.float16)
    g64, w64 = got.astype(np.float64), want.astype(np.float64)
    both_nan = np.isnan(g64) & np.isnan(w64)
    same = (g64 == w64) | both_nan
    ulp = np.spacing(np.abs(want).astype(np.float16)).astype(np.float64)
    close = np.abs(g64 - w64) <= ulp
    assert np.all(same | close), (got, want)


# --------------------------------------------------------------------------------------------
# the public surface exists
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PUBLIC_NAMES)
def test_public_name_exists(name):
    assert hasattr(sl, name), f"stableloss.{name} missing"


def test_label_error_is_index_and_value_error():
    assert issubclass(sl.LabelError, IndexError)
    assert issubclass(sl.LabelError, ValueError)


def test_show_config_prints_and_returns_dict(capsys):
    info = sl.show_config()
    printed = capsys.readouterr().out
    assert isinstance(info, dict) and info
    assert printed.strip()
    keys = " ".join(str(k).lower() for k in info)
    for word in ("version", "openmp", "thread", "simd"):
        assert word in keys, (word, list(info))


# --------------------------------------------------------------------------------------------
# A. exceptions that name the argument
# --------------------------------------------------------------------------------------------

# ---- labels out of range -------------------------------------------------------------------


@pytest.mark.parametrize("name", INDEX_LOSSES)
@pytest.mark.parametrize("mode", MODES)
def test_label_out_of_range_message(name, mode):
    # the contract's own example: value 12 at index (3,) with 10 classes
    x = args_for(name, (5, 10))[0]
    labels = np.array([1, 2, 3, 12, 0])
    with pytest.raises(sl.LabelError) as ei:
        call(name, mode, x, labels)
    err = ei.value
    assert isinstance(err, IndexError) and isinstance(err, ValueError)
    msg = str(err)
    assert msg.startswith("labels"), msg
    assert re.search(number(12), msg), msg
    assert "(3,)" in msg, msg
    assert re.search(number(10), msg), msg


@pytest.mark.parametrize("name", INDEX_LOSSES)
@pytest.mark.parametrize(
    "bad, dtype",
    [
        (10, np.int64),  # == C
        (11, np.int64),
        (-1, np.int64),
        (-2, np.int32),
        (-100, np.int64),  # torch's default ignore_index, but ignore_index=None here
        (2**31 - 1, np.int64),
        (2**32 + 1, np.int64),  # truncated to int32 this would wrap to the valid class 1
        (-(2**63), np.int64),
        (200, np.uint8),
        (60000, np.uint16),
        (2**63 + 5, np.uint64),  # cast to int64 this would wrap negative
        (-128, np.int8),
    ],
)
def test_label_out_of_range_values(name, bad, dtype):
    x = args_for(name, (5, 10))[0]
    labels = np.array([1, 2, 0, 3, 4], dtype=dtype)
    labels[2] = bad
    with pytest.raises(sl.LabelError) as ei:
        F(name)(x, labels)
    msg = str(ei.value)
    assert msg.startswith("labels"), msg
    assert re.search(number(bad), msg), msg
    assert "(2,)" in msg, msg


@pytest.mark.parametrize("name", INDEX_LOSSES)
@pytest.mark.parametrize("ignore_index", [None, -100, 3])
def test_negative_label_other_than_ignore_index(name, ignore_index):
    x = args_for(name, (4, 10))[0]
    labels = np.array([1, -1, 0, 2])
    with pytest.raises(sl.LabelError, match=r"^labels") as ei:
        F(name)(x, labels, ignore_index=ignore_index)
    assert re.search(r"-1(?!\d)", str(ei.value))
    assert "(1,)" in str(ei.value)


@pytest.mark.parametrize("name", INDEX_LOSSES)
def test_label_error_multidim_index(name):
    # logits (2, 3, 10), class axis last: labels (2, 3); the bad label sits at labels[1, 2]
    x = args_for(name, (2, 3, 10))[0]
    labels = make_index((2, 3), 10)
    labels[1, 2] = 17
    with pytest.raises(sl.LabelError, match=r"^labels") as ei:
        F(name)(x, labels)
    msg = str(ei.value)
    assert re.search(number(17), msg) and re.search(r"\(1, ?2\)", msg), msg


@pytest.mark.parametrize("name", INDEX_LOSSES)
def test_label_error_index_is_in_label_coordinates_with_axis(name):
    # logits (2, 10, 3) with axis=1: labels (2, 3); the index reported is labels' own (1, 2)
    x = np.moveaxis(args_for(name, (2, 3, 10))[0], -1, 1)
    labels = make_index((2, 3), 10)
    labels[1, 2] = 10
    with pytest.raises(sl.LabelError, match=r"^labels") as ei:
        F(name)(x, labels, axis=1)
    msg = str(ei.value)
    assert re.search(r"\(1, ?2\)", msg), msg


@pytest.mark.parametrize("name", INDEX_LOSSES)
def test_label_error_value_and_index_agree(name):
    # two bad labels: whichever is reported, its value and its index must belong together
    x = args_for(name, (6, 10))[0]
    labels = np.array([0, 1, 42, 3, -7, 5])
    with pytest.raises(sl.LabelError) as ei:
        F(name)(x, labels)
    msg = str(ei.value)
    ok = (re.search(number(42), msg) and "(2,)" in msg) or (
        re.search(r"-7(?!\d)", msg) and "(4,)" in msg
    )
    assert ok, msg


@pytest.mark.parametrize("name", INDEX_LOSSES)
def test_ignore_index_value_is_accepted(name):
    x = args_for(name, (4, 10))[0]
    for ii, labels in [(-100, [1, -100, 0, 2]), (-1, [1, -1, 0, 2]), (3, [1, 3, 0, 2])]:
        r = F(name)(x, np.array(labels), ignore_index=ii, reduction="none")
        assert r.shape == (4,)
        assert r[1] == 0.0  # an ignored row contributes exactly 0


# ---- labels of the wrong kind ----------------------------------------------------------------


@pytest.mark.parametrize("name", INDEX_LOSSES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "labels",
    [
        np.array([1.0, 2.0, 0.0, 3.0]),
        np.array([1.0, 2.0, 0.0, 3.0], dtype=np.float32),
        np.array([1.0, 2.0, 0.0, 3.0], dtype=np.float16),
        np.array([1.0, np.nan, 0.0, 3.0]),
        np.array([True, False, True, False]),
        [1.0, 2.0, 0.0, 3.0],
        np.array([1 + 0j, 2, 0, 3]),
        np.array([1, 2, 0, 3], dtype=object),
        np.array(["1", "2", "0", "3"]),
    ],
    ids=["f64", "f32", "f16", "nan", "bool", "list_float", "complex", "object", "str"],
)
def test_non_integer_index_labels_raise_type_error(name, mode, labels):
    x = args_for(name, (4, 10))[0]
    with raises_named(TypeError, "labels"):
        call(name, mode, x, labels)


# ---- shapes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", INDEX_LOSSES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "lshape", [(5,), (3,), (4, 1), (1, 4), (4, 11), (4, 9), (), (2, 2)], ids=str
)
def test_index_labels_wrong_shape(name, mode, lshape):
    x = args_for(name, (4, 10))[0]
    labels = np.zeros(lshape, dtype=np.int64)
    with raises_named(ValueError, "labels"):
        call(name, mode, x, labels)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("lshape", [(4, 11), (4, 9), (5, 10), (1, 10), (10,)], ids=str)
def test_probability_labels_wrong_shape(mode, lshape):
    # float labels whose shape differs from the logits' are (refused) index labels
    x = make_logits((4, 10))
    labels = np.full(lshape, 0.1)
    with raises_named((TypeError, ValueError), "labels"):
        call("softmax_cross_entropy", mode, x, labels)


@pytest.mark.parametrize("name", BINARY_LOSSES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("lshape", [(4, 11), (5, 10), (10,), (4, 1), (2, 4, 10), ()], ids=str)
def test_binary_labels_wrong_shape(name, mode, lshape):
    x = args_for(name, (4, 10))[0]
    labels = np.full(lshape, 0.0)
    with raises_named(ValueError, "labels"):
        call(name, mode, x, labels)


@pytest.mark.parametrize("name", INDEX_LOSSES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("wshape", [(9,), (11,), (4,), (4, 10), (1, 10)], ids=str)
def test_class_weight_wrong_length(name, mode, wshape):
    x, labels = args_for(name, (4, 10))
    with raises_named(ValueError, "weight"):
        call(name, mode, x, labels, weight=np.ones(wshape))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("wshape", [(9,), (11,), (4, 10)], ids=str)
def test_class_weight_wrong_length_probability_labels(mode, wshape):
    x = make_logits((4, 10))
    with raises_named(ValueError, "weight"):
        call("softmax_cross_entropy", mode, x, make_prob_labels((4, 10)), weight=np.ones(wshape))


@pytest.mark.parametrize("name", BINARY_LOSSES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("wshape", [(4,), (11,), (3, 10), (2, 4, 10), (4, 10, 1)], ids=str)
def test_binary_weight_not_broadcastable(name, mode, wshape):
    x, z = args_for(name, (4, 10))
    with raises_named(ValueError, "weight"):
        call(name, mode, x, z, weight=np.ones(wshape))


@pytest.mark.parametrize("name", BINARY_LOSSES)
@pytest.mark.parametrize("wshape", [(), (10,), (1, 10), (4, 1), (4, 10)], ids=str)
def test_binary_weight_broadcastable_accepted(name, wshape):
    # weight broadcast to the logits: w * loss elementwise, checked against weight=None
    x, z = args_for(name, (4, 10))
    w = rng(9).uniform(0.5, 2.0, size=wshape)
    got = F(name)(x, z, weight=w, reduction="none")
    base = F(name)(x, z, reduction="none")
    np.testing.assert_allclose(got, np.broadcast_to(w, (4, 10)) * base, rtol=1e-14)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("pshape", [(4,), (11,), (9,), (3, 10), (2, 4, 10), (4, 2)], ids=str)
def test_pos_weight_not_broadcastable(mode, pshape):
    x, z = args_for("sigmoid_cross_entropy", (4, 10))
    with raises_named(ValueError, "pos_weight"):
        call("sigmoid_cross_entropy", mode, x, z, pos_weight=np.ones(pshape))


@pytest.mark.parametrize("pshape", [(), (1,), (10,), (1, 10), (1, 1), (4, 1), (4, 10)], ids=str)
def test_pos_weight_broadcastable_accepted(pshape):
    x, z = args_for("sigmoid_cross_entropy", (4, 10))
    pw = np.full(pshape, 1.0)
    # pos_weight = 1 is the unweighted loss (L = 1)
    assert_same(
        sl.sigmoid_cross_entropy(x, z, pos_weight=pw, reduction="none"),
        sl.sigmoid_cross_entropy(x, z, reduction="none"),
    )
    # any right-aligned broadcast (as torch), checked elementwise against the reference
    pw = rng(5).uniform(0.5, 3.0, size=pshape)
    full = np.broadcast_to(pw, (4, 10))
    np.testing.assert_allclose(
        sl.sigmoid_cross_entropy(x, z, pos_weight=pw, reduction="none"),
        ref.sigmoid_cross_entropy(x, z, pos_weight=full)[0], rtol=1e-13)


# ---- reduction, label_smoothing, axis -----------------------------------------------------


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("reduction", ["avg", "", "batchmean", "elementwise_mean", "means"])
def test_unknown_reduction(name, mode, reduction):
    with raises_named(ValueError, "reduction"):
        call(name, mode, *args_for(name), reduction=reduction)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("eps", [-0.1, -1e-12, 1.0 + 1e-9, 1.5, np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("kind", ["index", "prob"])
def test_label_smoothing_out_of_range(mode, eps, kind):
    x = make_logits((4, 10))
    labels = make_index((4,), 10) if kind == "index" else make_prob_labels((4, 10))
    with raises_named(ValueError, "label_smoothing"):
        call("softmax_cross_entropy", mode, x, labels, label_smoothing=eps)


@pytest.mark.parametrize("eps", [0.0, 1.0, 0.5])
def test_label_smoothing_bounds_accepted(eps):
    x = make_logits((4, 10))
    r = sl.softmax_cross_entropy(x, make_index((4,), 10), label_smoothing=eps)
    assert np.isfinite(r)


@pytest.mark.parametrize("name", ROWWISE + INDEX_LOSSES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("axis", [2, -3, 5])
def test_axis_out_of_range(name, mode, axis):
    args = args_for(name, (4, 10))
    with pytest.raises((AxisError, ValueError, IndexError), match=named("axis")):
        call(name, mode, *args, axis=axis)


def test_axis_error_is_numpy_axis_error_for_softmax():
    # numpy.exceptions.AxisError subclasses both ValueError and IndexError; preferred type
    with pytest.raises((AxisError, ValueError, IndexError), match=named("axis")):
        sl.softmax(make_logits((4, 10)), axis=2)


# ---- dtypes that are refused ---------------------------------------------------------------

BAD_DTYPES = {
    "complex128": lambda a: a.astype(np.complex128),
    "complex64": lambda a: a.astype(np.complex64),
    "object": lambda a: a.astype(object),
    "str": lambda a: a.astype(str),
    "bytes": lambda a: a.astype("S8"),
    "list_str": lambda a: [[str(v) for v in row] for row in a.tolist()],
}


@pytest.mark.parametrize("name", UNARY + LOSSES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bad", list(BAD_DTYPES))
def test_bad_dtype_first_argument(name, mode, bad):
    args = list(args_for(name, (3, 4)))
    args[0] = BAD_DTYPES[bad](args[0])
    with raises_named(TypeError, FIRST_ARG[name]):
        call(name, mode, *args)


@pytest.mark.parametrize("name", ["softmax_cross_entropy"] + BINARY_LOSSES)
@pytest.mark.parametrize("bad", ["complex128", "object", "str"])
def test_bad_dtype_real_labels(name, bad):
    # probability labels (CE) and binary labels: any real dtype, but not complex/object/str
    x = args_for(name, (3, 4))[0]
    z = make_prob_labels((3, 4)) if name == "softmax_cross_entropy" else make_binary_labels((3, 4))
    with raises_named(TypeError, "labels"):
        F(name)(x, BAD_DTYPES[bad](z))


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("bad", ["complex128", "object", "str"])
def test_bad_dtype_weight(name, bad):
    args = args_for(name, (3, 4))
    w = np.ones(4) if name in INDEX_LOSSES else np.ones((3, 4))
    with raises_named(TypeError, "weight"):
        F(name)(*args, weight=BAD_DTYPES[bad](w))


@pytest.mark.parametrize("bad", ["complex128", "object", "str"])
def test_bad_dtype_pos_weight(bad):
    with raises_named(TypeError, "pos_weight"):
        sl.sigmoid_cross_entropy(*args_for("sigmoid_cross_entropy", (3, 4)), pos_weight=BAD_DTYPES[bad](np.ones(4)))


# ---- binary_cross_entropy: probs, policy, epsilon ---------------------------------------


@pytest.mark.parametrize("policy", BCE_POLICIES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bad", [-1e-3, -1e-300, 1.0 + 1e-12, 2.0, np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bce_probs_outside_unit_interval(policy, mode, bad, dtype):
    p, z = args_for("binary_cross_entropy", (4, 10), dtype)
    p = p.copy()
    if dtype == np.float32 and bad in (-1e-300, 1.0 + 1e-12):
        pytest.skip("not representable in float32")
    p[2, 7] = bad
    with raises_named(ValueError, "probs"):
        call("binary_cross_entropy", mode, p, z, policy=policy)


@pytest.mark.parametrize("policy", BCE_POLICIES)
def test_bce_probs_closed_interval_accepted(policy):
    # p = 0 and p = 1 lie in [0, 1]; with matching labels every policy gives a finite loss
    p = np.array([0.0, 1.0, 0.5, 1.0, 0.0])
    z = np.array([0.0, 1.0, 1.0, 1.0, 0.0])
    r = sl.binary_cross_entropy(p, z, policy=policy, reduction="none")
    assert r.shape == (5,) and np.all(np.isfinite(r))
    # the middle element: -log(0.5) = log 2 for clamp/clip/exact; -log(0.5 + 1e-7) for add
    want = -math.log(0.5 + 1e-7) if policy == "add" else math.log(2.0)
    np.testing.assert_allclose(r[2], want, rtol=1e-15)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("policy", ["clipping", "torch", "", "none", "keras"])
def test_bce_unknown_policy(mode, policy):
    with raises_named(ValueError, "policy"):
        call("binary_cross_entropy", mode, *args_for("binary_cross_entropy"), policy=policy)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("policy", ["clip", "add"])
@pytest.mark.parametrize("eps", [-1e-7, -1.0, -np.inf])
def test_bce_negative_epsilon(mode, policy, eps):
    with raises_named(ValueError, "epsilon"):
        call("binary_cross_entropy", mode, *args_for("binary_cross_entropy"), policy=policy, epsilon=eps)


# ---- value_and_grad / grad ------------------------------------------------------------------


def _user_fn(x):
    return sl.softmax(x)


@pytest.mark.parametrize("maker", ["value_and_grad", "grad"])
@pytest.mark.parametrize(
    "f",
    [np.sum, np.exp, _user_fn, lambda x: x, "show_config", "value_and_grad", 42, None],
    ids=["np.sum", "np.exp", "user_fn", "lambda", "show_config", "value_and_grad", "int", "None"],
)
def test_value_and_grad_unregistered(maker, f):
    if isinstance(f, str):
        f = F(f)
    x = make_logits((3, 4))
    with pytest.raises(TypeError):
        g = getattr(sl, maker)(f)
        g(x)


@pytest.mark.parametrize(
    "name, argnums, kind",
    [
        ("softmax", 1, None),
        ("log_softmax", 1, None),
        ("logsumexp", 1, None),
        ("sigmoid", 1, None),
        ("log_sigmoid", (0, 1), None),
        ("softmax", -5, None),
        ("softmax_cross_entropy", 1, "index"),
        ("softmax_cross_entropy", (0, 1), "index"),
        ("softmax_cross_entropy", 2, "prob"),
        ("softmax_cross_entropy", 3, "index"),
        ("nll_loss", 1, None),
        ("nll_loss", (0, 1), None),
        ("sigmoid_cross_entropy", 2, None),
        ("sigmoid_cross_entropy", (0, 2), None),
        ("binary_cross_entropy", 1, None),
        ("binary_cross_entropy", (0, 1), None),
    ],
)
@pytest.mark.parametrize("maker", ["value_and_grad", "grad"])
def test_argnums_not_differentiable(name, argnums, kind, maker):
    args = args_for(name, (3, 4))
    if kind == "prob":
        args = (args[0], make_prob_labels((3, 4)))
    with pytest.raises((TypeError, ValueError), match=r"(?i)argnums|labels|differentiab|argument") as ei:
        g = getattr(sl, maker)(F(name), argnums=argnums)
        g(*args)
    assert str(ei.value).strip()


@pytest.mark.parametrize(
    "name, argnums", [("softmax_cross_entropy", (0, 1)), ("sigmoid_cross_entropy", (0, 1))]
)
def test_argnums_tuple_accepted(name, argnums):
    if name == "softmax_cross_entropy":
        args = (make_logits((3, 4)), make_prob_labels((3, 4)))
    else:
        args = args_for(name, (3, 4))
    v, g = sl.value_and_grad(F(name), argnums=argnums)(*args)
    assert isinstance(g, tuple) and len(g) == 2
    assert g[0].shape == (3, 4) and g[1].shape == (3, 4)
    g2 = sl.grad(F(name), argnums=argnums)(*args)
    assert_same_tree(g2, g)


@pytest.mark.parametrize(
    "name, kw, gshape",
    [
        ("softmax", {}, (3, 10)),
        ("softmax", {}, (4, 9)),
        ("logsumexp", {}, (5,)),
        ("logsumexp", {"keepdims": True}, (3, 1)),
        ("softmax_cross_entropy", {"reduction": "none"}, (5,)),
        ("softmax_cross_entropy", {"reduction": "mean"}, (4,)),
        ("sigmoid_cross_entropy", {"reduction": "none"}, (4, 9)),
        ("binary_cross_entropy", {"reduction": "sum"}, (4, 10)),
    ],
    ids=str,
)
def test_grad_output_wrong_shape(name, kw, gshape):
    with raises_named(ValueError, "grad_output"):
        sl.value_and_grad(F(name))(*args_for(name, (4, 10)), grad_output=np.ones(gshape), **kw)


# ---- out= that cannot be written ------------------------------------------------------------


def _out_spec(name, shape, dtype):
    """(args, kwargs, result shape) for an ``out=`` call of ``sl.<name>``."""
    args = args_for(name, shape, dtype)
    if name in LOSSES:
        kw = {"reduction": "none"}
        rshape = shape[:-1] if name in INDEX_LOSSES else shape
    else:
        kw = {}
        rshape = shape[:-1] if name == "logsumexp" else shape
    return args, kw, rshape


@pytest.mark.parametrize("name", UNARY + LOSSES)
@pytest.mark.parametrize(
    "what",
    ["shape_short", "shape_long", "shape_extra_dim", "dtype_f32", "dtype_int", "readonly", "list"],
)
def test_bad_out(name, what):
    args, kw, rshape = _out_spec(name, (4, 10), np.float64)
    if what == "shape_short":
        out = np.empty(rshape[:-1] + (rshape[-1] - 1,))
    elif what == "shape_long":
        out = np.empty(rshape[:-1] + (rshape[-1] + 1,))
    elif what == "shape_extra_dim":
        out = np.empty(rshape + (1,))
    elif what == "dtype_f32":
        out = np.empty(rshape, np.float32)
    elif what == "dtype_int":
        out = np.empty(rshape, np.int64)
    elif what == "readonly":
        out = np.empty(rshape)
        out.flags.writeable = False
    else:
        out = np.empty(rshape).tolist()
    exc = (ValueError, TypeError) if what == "list" else ValueError
    with raises_named(exc, "out"):
        F(name)(*args, out=out, **kw)


@pytest.mark.parametrize("name", UNARY + LOSSES)
def test_bad_out_float32_input_float64_out(name):
    args, kw, rshape = _out_spec(name, (4, 10), np.float32)
    with raises_named(ValueError, "out"):
        F(name)(*args, out=np.empty(rshape, np.float64), **kw)


@pytest.mark.parametrize("name", UNARY + LOSSES)
def test_bad_out_float16_input_float32_out(name):
    args, kw, rshape = _out_spec(name, (4, 10), np.float16)
    with raises_named(ValueError, "out"):
        F(name)(*args, out=np.empty(rshape, np.float32), **kw)


def test_bad_out_logsumexp_keepdims_mismatch():
    x = make_logits((4, 10))
    with raises_named(ValueError, "out"):
        sl.logsumexp(x, out=np.empty((4, 1)))
    with raises_named(ValueError, "out"):
        sl.logsumexp(x, keepdims=True, out=np.empty((4,)))


# --------------------------------------------------------------------------------------------
# B. inputs are never modified
# --------------------------------------------------------------------------------------------


class Snapshot:
    """Copies of every ndarray in ``objs`` (and the buffers they view) plus their flags."""

    def __init__(self, objs):
        self.items = []
        for path, a in _arrays_in(objs, "args"):
            chain = [(path, a)]
            base = a.base
            depth = 0
            while isinstance(base, np.ndarray) and depth < 8:
                depth += 1
                chain.append((f"{path}.base^{depth}", base))
                base = base.base
            for p, arr in chain:
                self.items.append((p, arr, self._state(arr), arr.tobytes()))

    @staticmethod
    def _state(a):
        return dict(
            shape=a.shape,
            strides=a.strides,
            dtype=a.dtype,
            data=a.__array_interface__["data"][0],
            writeable=a.flags.writeable,
            aligned=a.flags.aligned,
            c=a.flags.c_contiguous,
            f=a.flags.f_contiguous,
        )

    def check(self):
        for path, a, state, data in self.items:
            assert self._state(a) == state, f"{path}: flags/layout changed"
            assert a.tobytes() == data, f"{path}: contents modified by the call"


def _arrays_in(obj, path):
    if isinstance(obj, np.ndarray):
        yield path, obj
    elif isinstance(obj, (list, tuple)):
        for i, o in enumerate(obj):
            yield from _arrays_in(o, f"{path}[{i}]")
    elif isinstance(obj, dict):
        for k, o in obj.items():
            yield from _arrays_in(o, f"{path}.{k}")


def _x_special(shape=(4, 6)):
    """Logits with hazards: a -inf, a large value, an all-equal row."""
    x = make_logits(shape)
    x[0, 1] = -np.inf
    x[1, :] = 3.0
    x[2, 4] = 60.0
    return x


def _p_special(shape=(4, 6)):
    p = make_probs(shape)
    p[0, 0], p[0, 1], p[1, 2], p[2, 3] = 0.0, 1.0, 1.0, 0.0  # the ends a policy must handle
    return p


def _imm_cases():
    """(id, function name, build(dtype) -> (args, kwargs), result shape, argnums)."""
    N, C = 4, 6
    cases = []

    def add(cid, name, build, rshape, argnums=0):
        cases.append((cid, name, build, rshape, argnums))

    add("logsumexp", "logsumexp", lambda v: ((v(_x_special()),), {}), (N,))
    add("logsumexp_ax0_keep", "logsumexp", lambda v: ((v(_x_special()),), {"axis": 0, "keepdims": True}), (1, C))
    add("softmax", "softmax", lambda v: ((v(_x_special()),), {}), (N, C))
    add("softmax_ax0", "softmax", lambda v: ((v(_x_special()),), {"axis": 0}), (N, C))
    add("log_softmax", "log_softmax", lambda v: ((v(_x_special()),), {}), (N, C))
    add("sigmoid", "sigmoid", lambda v: ((v(_x_special()),), {}), (N, C))
    add("log_sigmoid", "log_sigmoid", lambda v: ((v(_x_special()),), {}), (N, C))

    def ce_index(v):
        y = np.array([1, -100, 5, 0], dtype=np.int32)  # includes the ignore_index
        return (v(_x_special()), y), {
            "weight": v(np.linspace(0.5, 2.0, C)),
            "ignore_index": -100,
            "label_smoothing": 0.1,
            "reduction": "none",
        }

    add("ce_index", "softmax_cross_entropy", ce_index, (N,))

    def ce_index_ax0(v):
        y = np.array([1, 0, 3, 2, 0, 1], dtype=np.int64)
        return (v(_x_special()), y), {"axis": 0, "reduction": "none"}

    add("ce_index_ax0", "softmax_cross_entropy", ce_index_ax0, (C,))

    def ce_prob(v):
        return (v(_x_special()), v(make_prob_labels((N, C)))), {
            "weight": v(np.linspace(0.5, 2.0, C)),
            "label_smoothing": 0.2,
            "reduction": "none",
        }

    add("ce_prob", "softmax_cross_entropy", ce_prob, (N,), (0, 1))

    def nll(v):
        lp = np_log_softmax(make_logits((N, C)))
        return (v(lp), np.array([2, 5, -1, 0])), {
            "weight": v(np.linspace(2.0, 0.5, C)),
            "ignore_index": -1,
            "reduction": "none",
        }

    add("nll", "nll_loss", nll, (N,))

    def sce(v):
        return (v(_x_special()), v(make_binary_labels((N, C)))), {
            "weight": v(np.linspace(0.5, 2.0, N)[:, None]),
            "pos_weight": v(np.linspace(1.0, 3.0, C)),
            "reduction": "none",
        }

    add("sigmoid_ce", "sigmoid_cross_entropy", sce, (N, C), (0, 1))

    for policy in BCE_POLICIES:
        def bce(v, policy=policy):
            kw = {"weight": v(np.linspace(0.5, 2.0, C)), "policy": policy, "reduction": "none"}
            if policy in ("clip", "add"):
                kw["epsilon"] = 1e-3
            return (v(_p_special()), v(make_binary_labels((N, C)))), kw

        add(f"bce_{policy}", "binary_cross_entropy", bce, (N, C))
    return cases


IMM_CASES = _imm_cases()

#: input variants: dtype conversion / layout applied to every floating input
IMM_VARIANTS = {
    "f64": lambda a: np.ascontiguousarray(a, np.float64),
    "f32": lambda a: np.ascontiguousarray(a, np.float32),
    "f16": lambda a: np.ascontiguousarray(a, np.float16),
    "f8_swapped": lambda a: np.asarray(a, np.float64).astype(non_native(np.float64)),
    "fortran": lambda a: np.asfortranarray(np.asarray(a, np.float64)),
    "strided_f32": lambda a: make_layout(np.asarray(a, np.float32), "strided"),
}
IMM_RESULT_DTYPE = {"f64": np.float64, "f32": np.float32, "f16": np.float16,
                    "f8_swapped": np.float64, "fortran": np.float64, "strided_f32": np.float32}


@pytest.mark.parametrize("variant", list(IMM_VARIANTS))
@pytest.mark.parametrize("mode", ["call", "call_out", "vg", "vg_out", "grad"])
@pytest.mark.parametrize("case", IMM_CASES, ids=[c[0] for c in IMM_CASES])
def test_inputs_not_modified(case, mode, variant):
    cid, name, build, rshape, argnums = case
    args, kw = build(IMM_VARIANTS[variant])
    rdtype = IMM_RESULT_DTYPE[variant]
    f = F(name)
    extra = {}
    if mode in ("call_out", "vg_out"):
        extra["out"] = np.full(rshape, np.nan, dtype=rdtype)
    if mode in ("vg", "vg_out", "grad"):
        extra["grad_output"] = np.linspace(0.5, 1.5, int(np.prod(rshape))).reshape(rshape).astype(rdtype)
    snap = Snapshot((args, kw, extra.get("grad_output")))
    if mode == "call":
        f(*args, **kw)
    elif mode == "call_out":
        r = f(*args, **kw, **extra)
        assert np.shares_memory(r, extra["out"])
    elif mode in ("vg", "vg_out"):
        v, g = sl.value_and_grad(f, argnums=argnums)(*args, **kw, **extra)
        if mode == "vg_out":
            assert np.shares_memory(v, extra["out"])
        assert_same(v, f(*args, **kw))  # the value is bit-for-bit f(...)
    else:
        sl.grad(f, argnums=argnums)(*args, **kw, **extra)
    snap.check()


# --------------------------------------------------------------------------------------------
# C. hostile layouts give the contiguous answer
# --------------------------------------------------------------------------------------------

FLOATS = [np.float64, np.float32]


def _layout_params(dtypes=FLOATS, names=None):
    names = list(LAYOUTS) if names is None else names
    out = []
    for dt in dtypes:
        for ln in names:
            if ln == "list" and np.dtype(dt) != np.float64:
                continue
            out.append(pytest.param(dt, ln, id=f"{np.dtype(dt).name}-{ln}"))
    return out


def _vg(name, *args, **kw):
    return sl.value_and_grad(F(name))(*args, **kw)


@pytest.mark.parametrize("dtype, layout", _layout_params())
@pytest.mark.parametrize("name", UNARY)
@pytest.mark.parametrize("shape", [(5, 7), (2, 3, 5)], ids=str)
def test_layout_unary(name, dtype, layout, shape):
    x = _x_special((5, 7)) if shape == (5, 7) else make_logits(shape)
    x = x.astype(dtype)
    h = make_layout(x, layout)
    assert_same(F(name)(h), F(name)(x))
    assert_same_tree(_vg(name, h), _vg(name, x))


@pytest.mark.parametrize("dtype, layout", _layout_params())
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("name", ROWWISE)
def test_layout_rowwise_axis(name, dtype, layout, axis):
    x = make_logits((6, 5), dtype)
    h = make_layout(x, layout)
    assert_same(F(name)(h, axis=axis), F(name)(x, axis=axis))
    assert_same_tree(_vg(name, h, axis=axis), _vg(name, x, axis=axis))


@pytest.mark.parametrize("dtype, layout", _layout_params())
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("which", ["logits", "labels", "weight"])
def test_layout_softmax_ce_index(dtype, layout, reduction, which):
    x = _x_special((6, 7)).astype(dtype)
    y = np.array([0, 6, 3, -100, 2, 2])
    w = np.linspace(0.5, 2.0, 7).astype(dtype)
    kw = dict(weight=w, ignore_index=-100, label_smoothing=0.05, reduction=reduction)
    ref = sl.softmax_cross_entropy(x, y, **kw)
    ref_vg = _vg("softmax_cross_entropy", x, y, **kw)
    if which == "logits":
        args, kw2 = (make_layout(x, layout), y), kw
    elif which == "labels":
        args, kw2 = (x, make_layout(y, layout)), kw  # int64 labels: every layout applies
    else:
        args, kw2 = (x, y), dict(kw, weight=make_layout(w, layout))
    assert_same(sl.softmax_cross_entropy(*args, **kw2), ref)
    assert_same_tree(_vg("softmax_cross_entropy", *args, **kw2), ref_vg)


@pytest.mark.parametrize("dtype, layout", _layout_params())
@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize("which", ["logits", "labels", "weight"])
def test_layout_softmax_ce_prob(dtype, layout, reduction, which):
    x = _x_special((6, 7)).astype(dtype)
    q = make_prob_labels((6, 7), dtype)
    w = np.linspace(0.5, 2.0, 7).astype(dtype)
    kw = dict(weight=w, label_smoothing=0.1, reduction=reduction)
    hx, hq, hw = x, q, w
    if which == "logits":
        hx = make_layout(x, layout)
    elif which == "labels":
        hq = make_layout(q, layout)
    else:
        hw = make_layout(w, layout)
    assert_same(sl.softmax_cross_entropy(hx, hq, **dict(kw, weight=hw)), sl.softmax_cross_entropy(x, q, **kw))
    vg = sl.value_and_grad(sl.softmax_cross_entropy, argnums=(0, 1))
    assert_same_tree(vg(hx, hq, **dict(kw, weight=hw)), vg(x, q, **kw))


@pytest.mark.parametrize("dtype, layout", _layout_params())
@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize("which", ["log_probs", "labels", "weight"])
def test_layout_nll(dtype, layout, reduction, which):
    lp = np_log_softmax(make_logits((6, 7))).astype(dtype)
    y = np.array([0, 6, 3, -100, 2, 2])
    w = np.linspace(0.5, 2.0, 7).astype(dtype)
    kw = dict(weight=w, ignore_index=-100, reduction=reduction)
    hlp, hy, hw = lp, y, w
    if which == "log_probs":
        hlp = make_layout(lp, layout)
    elif which == "labels":
        hy = make_layout(y, layout)
    else:
        hw = make_layout(w, layout)
    assert_same(sl.nll_loss(hlp, hy, **dict(kw, weight=hw)), sl.nll_loss(lp, y, **kw))
    assert_same_tree(_vg("nll_loss", hlp, hy, **dict(kw, weight=hw)), _vg("nll_loss", lp, y, **kw))


@pytest.mark.parametrize("dtype, layout", _layout_params())
@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize("which", ["logits", "labels", "weight", "pos_weight"])
def test_layout_sigmoid_ce(dtype, layout, reduction, which):
    x = _x_special((5, 6)).astype(dtype)
    z = make_binary_labels((5, 6), dtype)
    w = np.linspace(0.5, 2.0, 30).reshape(5, 6).astype(dtype)
    pw = np.linspace(1.0, 3.0, 6).astype(dtype)
    base = dict(logits=x, labels=z, weight=w, pos_weight=pw)
    hostile = dict(base)
    hostile[which] = make_layout(base[which], layout)

    def run(d, fn):
        return fn(d["logits"], d["labels"], weight=d["weight"], pos_weight=d["pos_weight"], reduction=reduction)

    assert_same(run(hostile, sl.sigmoid_cross_entropy), run(base, sl.sigmoid_cross_entropy))
    vg = sl.value_and_grad(sl.sigmoid_cross_entropy, argnums=(0, 1))
    assert_same_tree(run(hostile, vg), run(base, vg))


@pytest.mark.parametrize("dtype, layout", _layout_params())
@pytest.mark.parametrize("policy", BCE_POLICIES)
@pytest.mark.parametrize("which", ["probs", "labels", "weight"])
def test_layout_bce(dtype, layout, policy, which):
    p = _p_special((5, 6)).astype(dtype)
    z = make_binary_labels((5, 6), dtype)
    z[0, 0], z[0, 1], z[1, 2], z[2, 3] = 0.0, 1.0, 1.0, 0.0  # keep the ends finite for "exact"
    w = np.linspace(0.5, 2.0, 6).astype(dtype)
    base = dict(probs=p, labels=z, weight=w)
    hostile = dict(base)
    hostile[which] = make_layout(base[which], layout)

    def run(d, fn):
        return fn(d["probs"], d["labels"], weight=d["weight"], policy=policy, reduction="none")

    assert_same(run(hostile, sl.binary_cross_entropy), run(base, sl.binary_cross_entropy))
    assert_same_tree(run(hostile, sl.value_and_grad(sl.binary_cross_entropy)),
                     run(base, sl.value_and_grad(sl.binary_cross_entropy)))


@pytest.mark.parametrize("label_dtype", [np.int8, np.int16, np.int32, np.uint8, np.uint16, np.uint32,
                                         np.uint64, ">i8", ">i4", "<i8"])
@pytest.mark.parametrize("name", INDEX_LOSSES)
def test_label_integer_dtypes(name, label_dtype):
    x = args_for(name, (6, 7))[0]
    y = np.array([0, 6, 3, 1, 2, 2])
    ref = F(name)(x, y, reduction="none")
    assert_same(F(name)(x, y.astype(label_dtype), reduction="none"), ref)
    assert_same_tree(_vg(name, x, y.astype(label_dtype), reduction="sum"), _vg(name, x, y, reduction="sum"))


# ---- zero-stride (broadcast) inputs ------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("kind", ["rows", "cols"])
@pytest.mark.parametrize("name", UNARY)
def test_zero_stride_unary(name, kind, dtype):
    if kind == "rows":
        h = broadcast_rows(make_logits((7,), dtype), 5)
    else:
        h = broadcast_cols(make_logits((5,), dtype), 7)
    c = np.ascontiguousarray(h)
    assert_same(F(name)(h), F(name)(c))
    assert_same(F(name)(h, **({"axis": 0} if name in ROWWISE else {})),
                F(name)(c, **({"axis": 0} if name in ROWWISE else {})))
    assert_same_tree(_vg(name, h), _vg(name, c))


def test_zero_stride_softmax_uniform_row():
    # every row constant -> softmax exactly 1/C? not exactly representable: compare with 1/7
    h = broadcast_cols(np.array([-3.0, 0.0, 40.0]), 7)
    np.testing.assert_allclose(sl.softmax(h), np.full((3, 7), 1 / 7), rtol=1e-15)
    # logsumexp of 7 equal values v is v + log 7
    np.testing.assert_allclose(sl.logsumexp(h), np.array([-3.0, 0.0, 40.0]) + math.log(7), rtol=1e-15)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_zero_stride_losses(name, dtype, reduction):
    x, z = args_for(name, (1, 6), dtype)
    hx = broadcast_rows(x[0], 5)
    if name in INDEX_LOSSES:
        y = np.array([0, 5, 2, 2, 1])
        hy, cy = y, y
        zz = broadcast_rows(np.array(3), 5)  # zero-stride index labels too
        assert_same(F(name)(hx, zz, reduction=reduction), F(name)(np.ascontiguousarray(hx), np.full(5, 3), reduction=reduction))
    else:
        hy = broadcast_rows(z[0], 5)
        cy = np.ascontiguousarray(hy)
    cx = np.ascontiguousarray(hx)
    assert_same(F(name)(hx, hy, reduction=reduction), F(name)(cx, cy, reduction=reduction))
    assert_same_tree(_vg(name, hx, hy, reduction=reduction), _vg(name, cx, cy, reduction=reduction))
    if name in BINARY_LOSSES:
        w = broadcast_rows(np.linspace(0.5, 1.5, 6), 5)
        assert_same(F(name)(cx, cy, weight=w, reduction=reduction),
                    F(name)(cx, cy, weight=np.ascontiguousarray(w), reduction=reduction))


# ---- axis against moving the axis by hand ---------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(
    "shape, axis", [((6, 5), 0), ((6, 5), 1), ((6, 5), -2), ((2, 3, 5), 0), ((2, 3, 5), 1),
                    ((2, 3, 5), 2), ((2, 3, 5), -2), ((2, 3, 5), -3), ((2, 3, 5), np.int64(1))],
    ids=str,
)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_axis_matches_moveaxis_softmax(name, shape, axis, dtype):
    x = make_logits(shape, dtype)
    moved = np.ascontiguousarray(np.moveaxis(x, axis, -1))
    assert_same(F(name)(x, axis=axis), np.moveaxis(F(name)(moved), -1, axis))
    go = make_logits(shape, dtype, seed=7)
    v, g = _vg(name, x, axis=axis, grad_output=go)
    vm, gm = _vg(name, moved, grad_output=np.ascontiguousarray(np.moveaxis(go, axis, -1)))
    assert_same(v, np.moveaxis(vm, -1, axis))
    assert_same(g, np.moveaxis(gm, -1, axis))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize(
    "shape, axis", [((6, 5), 0), ((6, 5), 1), ((2, 3, 5), 0), ((2, 3, 5), 1), ((2, 3, 5), -1), ((2, 3, 5), -3)],
    ids=str,
)
def test_axis_matches_moveaxis_logsumexp(shape, axis, keepdims, dtype):
    x = make_logits(shape, dtype)
    moved = np.ascontiguousarray(np.moveaxis(x, axis, -1))
    want = sl.logsumexp(moved)
    if keepdims:
        want = np.expand_dims(want, axis)
    got = sl.logsumexp(x, axis=axis, keepdims=keepdims)
    assert_same(got, want)
    v, g = _vg("logsumexp", x, axis=axis, keepdims=keepdims)
    vm, gm = _vg("logsumexp", moved)
    assert_same(g, np.moveaxis(gm, -1, axis))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("shape, axis", [((6, 5), 0), ((2, 5, 3), 1), ((5, 2, 3), 0), ((2, 3, 5), -1), ((2, 5, 3), -2)], ids=str)
@pytest.mark.parametrize("name", INDEX_LOSSES)
def test_axis_matches_moveaxis_index_losses(name, shape, axis, reduction, dtype):
    x = make_logits(shape, dtype)
    if name == "nll_loss":
        x = np_log_softmax(x, axis=axis).astype(dtype)
    C = shape[axis]
    lshape = tuple(s for i, s in enumerate(shape) if i != axis % len(shape))
    y = make_index(lshape, C)
    y.flat[1] = -100
    w = np.linspace(0.5, 2.0, C).astype(dtype)
    kw = dict(weight=w, ignore_index=-100, reduction=reduction)
    moved = np.ascontiguousarray(np.moveaxis(x, axis, -1))
    got = F(name)(x, y, axis=axis, **kw)
    want = F(name)(moved, y, **kw)
    if reduction == "none":
        assert_same(got, want)
    else:
        assert np.asarray(got).dtype == np.asarray(want).dtype
        np.testing.assert_allclose(got, want, rtol=4 * np.finfo(dtype).eps, atol=0)
    _, g = _vg(name, x, y, axis=axis, **kw)
    _, gm = _vg(name, moved, y, **kw)
    if reduction == "none":
        assert_same(g, np.moveaxis(gm, -1, axis))
    else:
        np.testing.assert_allclose(g, np.moveaxis(gm, -1, axis), rtol=4 * np.finfo(dtype).eps, atol=0)


@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_axis_matches_moveaxis_prob_labels(reduction):
    x = make_logits((3, 5, 4))
    q = np.moveaxis(make_prob_labels((3, 4, 5)), -1, 1)
    got = sl.softmax_cross_entropy(x, q, axis=1, reduction=reduction)
    want = sl.softmax_cross_entropy(np.ascontiguousarray(np.moveaxis(x, 1, -1)),
                                    np.ascontiguousarray(np.moveaxis(q, 1, -1)), reduction=reduction)
    np.testing.assert_allclose(got, want, rtol=4e-16, atol=0)
    assert np.shape(got) == np.shape(want)


# ---- Python lists and scalars ------------------------------------------------------------


def test_python_lists_and_scalars():
    xl = [[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]]
    xa = np.array(xl)
    for name in UNARY:
        assert_same(F(name)(xl), F(name)(xa))
    assert_same(sl.softmax_cross_entropy(xl, [2, 0], reduction="none"),
                sl.softmax_cross_entropy(xa, np.array([2, 0]), reduction="none"))
    assert_same(sl.nll_loss(xl, [2, 0]), sl.nll_loss(xa, np.array([2, 0])))
    assert_same(sl.sigmoid_cross_entropy(xl, [[0, 1, 1], [1, 0, 0]]),
                sl.sigmoid_cross_entropy(xa, np.array([[0.0, 1, 1], [1, 0, 0]])))
    assert_same(sl.binary_cross_entropy([[0.25, 0.5]], [[1.0, 0.0]]),
                sl.binary_cross_entropy(np.array([[0.25, 0.5]]), np.array([[1.0, 0.0]])))


def test_one_dim_logits_scalar_label():
    # 1-D logits (C,) with a 0-d label: loss_n = logsumexp(x) - x[y]  (NumPy float64 reference)
    x = np.array([1.0, 2.0, 3.0])
    want = -np_log_softmax(x)[2]
    r = sl.softmax_cross_entropy(x, 2, reduction="none")
    assert np.shape(r) == ()
    np.testing.assert_allclose(r, want, rtol=1e-15)
    np.testing.assert_allclose(sl.softmax_cross_entropy(x, np.int64(2)), want, rtol=1e-15)
    np.testing.assert_allclose(sl.softmax_cross_entropy([1, 2, 3], 2), want, rtol=1e-15)


@pytest.mark.parametrize("x", [0.0, np.float64(0.0), np.array(0.0), np.float32(0.0), 0], ids=repr)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_zero_dim(name, x):
    # elementwise functions keep the input's shape, 0-d included
    r = F(name)(x)
    assert np.shape(r) == (), (name, repr(r))
    want_dtype = np.float32 if np.asarray(x).dtype == np.float32 else np.float64
    assert np.asarray(r).dtype == want_dtype
    # sigmoid(0) = 1/2 exactly; log_sigmoid(0) = -log 2
    want = 0.5 if name == "sigmoid" else -math.log(2.0)
    np.testing.assert_allclose(np.asarray(r, np.float64).reshape(()), want, rtol=1e-7 if want_dtype == np.float32 else 1e-15)
    v, g = _vg(name, x)
    assert np.shape(v) == () and np.shape(g) == ()


@pytest.mark.parametrize("name", BINARY_LOSSES)
def test_binary_losses_zero_dim(name):
    # one element, 0-d logits/probs and label: "none" has shape ()
    # sigmoid CE at x = 0: log1p(exp(0)) = log 2 whatever z; BCE at p = 1/2: -log(1/2) = log 2
    x = 0.0 if name == "sigmoid_cross_entropy" else 0.5
    r = F(name)(x, 1.0, reduction="none")
    assert np.shape(r) == (), repr(r)
    np.testing.assert_allclose(np.asarray(r).reshape(()), math.log(2.0), rtol=1e-15)
    np.testing.assert_allclose(F(name)(np.array(x), np.array(1.0)), math.log(2.0), rtol=1e-15)


# --------------------------------------------------------------------------------------------
# D. degenerate shapes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_zero_rows_unary(dtype):
    x = np.empty((0, 5), dtype)
    for name in ["softmax", "log_softmax", "sigmoid", "log_sigmoid"]:
        r = F(name)(x)
        assert r.shape == (0, 5) and r.dtype == dtype, name
        v, g = _vg(name, x)
        assert g.shape == (0, 5) and g.dtype == dtype
    r = sl.logsumexp(x)
    assert r.shape == (0,) and r.dtype == dtype
    assert sl.logsumexp(x, keepdims=True).shape == (0, 1)
    # along axis 0 there are 5 empty rows: log(sum over nothing) = log 0 = -inf
    r0 = sl.logsumexp(x, axis=0)
    assert r0.shape == (5,) and np.all(r0 == -np.inf)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
@pytest.mark.parametrize("name", LOSSES)
def test_zero_rows_losses(name, dtype):
    C = 5
    x = np.empty((0, C), dtype)
    if name in INDEX_LOSSES:
        y = np.empty((0,), np.int64)
        none_shape = (0,)
    else:
        y = np.empty((0, C), dtype)
        none_shape = (0, C)
    mean = F(name)(x, y)  # 0 / 0
    assert isinstance(mean, np.generic) and mean.dtype == dtype
    assert np.isnan(mean)
    s = F(name)(x, y, reduction="sum")  # empty sum
    assert isinstance(s, np.generic) and s.dtype == dtype
    assert s == 0.0
    n = F(name)(x, y, reduction="none")
    assert n.shape == none_shape and n.dtype == dtype
    for red in ["mean", "sum", "none"]:
        v, g = _vg(name, x, y, reduction=red)
        assert g.shape == (0, C) and g.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_zero_rows_prob_labels(dtype):
    x = np.empty((0, 4), dtype)
    assert np.isnan(sl.softmax_cross_entropy(x, np.empty((0, 4), dtype)))
    assert sl.softmax_cross_entropy(x, np.empty((0, 4), dtype), reduction="sum") == 0.0


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_one_class(dtype):
    x = np.array([[-3.5], [0.0], [1e4 if dtype != np.float16 else 6e4], [-50.0]], dtype)
    # one class: softmax is exactly 1, log_softmax exactly 0, logsumexp exactly x
    assert_same(sl.softmax(x), np.ones((4, 1), dtype))
    assert_same(sl.log_softmax(x), np.zeros((4, 1), dtype))
    assert_same(sl.logsumexp(x), x[:, 0])
    y = np.zeros(4, np.int64)
    for eps in (0.0, 0.3, 1.0):
        for red, want in [("none", np.zeros(4, dtype)), ("sum", dtype(0)), ("mean", dtype(0))]:
            r = sl.softmax_cross_entropy(x, y, label_smoothing=eps, reduction=red)
            assert_same(r, want)
            v, g = _vg("softmax_cross_entropy", x, y, label_smoothing=eps, reduction=red,
                       weight=np.array([2.0], dtype))
            np.testing.assert_array_equal(g, np.zeros((4, 1), dtype))  # p - onehot = 1 - 1
            assert g.dtype == dtype
    # softmax gradient: d softmax / dx with one class is 0 whatever the cotangent
    _, g = _vg("softmax", x, grad_output=np.full((4, 1), 3.0, dtype))
    np.testing.assert_array_equal(g, np.zeros((4, 1), dtype))
    # log_softmax gradient: go - p * sum(go) = go - go = 0
    _, g = _vg("log_softmax", x, grad_output=np.full((4, 1), 3.0, dtype))
    np.testing.assert_array_equal(g, np.zeros((4, 1), dtype))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_zero_classes(dtype):
    x = np.empty((3, 0), dtype)
    r = sl.logsumexp(x)  # log of an empty sum: log 0 = -inf
    assert r.shape == (3,) and r.dtype == dtype and np.all(r == -np.inf)
    assert sl.logsumexp(x, keepdims=True).shape == (3, 1)
    for name in ["softmax", "log_softmax"]:
        r = F(name)(x)
        assert r.shape == (3, 0) and r.dtype == dtype
    for name in INDEX_LOSSES:
        with pytest.raises(sl.LabelError, match=r"^labels"):
            F(name)(x, np.zeros(3, np.int64))
        with pytest.raises(sl.LabelError, match=r"^labels"):
            _vg(name, x, np.zeros(3, np.int64))
    assert sl.logsumexp(np.empty((0, 0), dtype)).shape == (0,)


# --------------------------------------------------------------------------------------------
# E. special rows (as PyTorch)
# --------------------------------------------------------------------------------------------


def _special_x(dtype):
    x = make_logits((6, 5), dtype)
    x[1, 2] = np.nan                       # NaN row
    x[2, :] = -np.inf                      # all -inf row
    x[3, 4] = np.inf                       # row containing +inf
    x[4, 0], x[4, 3] = np.inf, -np.inf     # +inf and -inf together
    x[5, 1], x[5, 3] = np.nan, np.inf      # NaN and +inf: NaN wins
    return x


NORMAL_ROWS = [0]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_special_rows_softmax_family(dtype):
    x = _special_x(dtype)
    with np.errstate(all="ignore"):
        sm, lsm, lse = sl.softmax(x), sl.log_softmax(x), sl.logsumexp(x)
    for r in (1, 2, 3, 4, 5):
        assert np.all(np.isnan(sm[r])), (r, sm[r])
        assert np.all(np.isnan(lsm[r])), (r, lsm[r])
    assert np.isnan(lse[1]) and np.isnan(lse[5])
    assert lse[2] == -np.inf
    assert lse[3] == np.inf and lse[4] == np.inf
    # the ordinary row is untouched by its neighbours
    # (compared with a tolerance: a one-row call may take another kernel path)
    tol = 4 * np.finfo(dtype).eps
    np.testing.assert_allclose(sm[0], sl.softmax(x[0:1])[0], rtol=tol, atol=0)
    np.testing.assert_allclose(lse[0:1], sl.logsumexp(x[0:1]), rtol=tol, atol=0)
    np.testing.assert_allclose(lsm[0], np_log_softmax(x[0]), rtol=1e-6 if dtype == np.float32 else 1e-14)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_special_rows_cross_entropy(dtype):
    x = _special_x(dtype)
    y = np.array([1, 0, 3, 2, 1, 4])
    with np.errstate(all="ignore"):
        loss = sl.softmax_cross_entropy(x, y, reduction="none")
        v, g = _vg("softmax_cross_entropy", x, y, reduction="sum")
        mean = sl.softmax_cross_entropy(x, y)
    assert np.isfinite(loss[0])
    for r in (1, 2, 3, 4, 5):
        assert np.isnan(loss[r]), (r, loss[r])
    assert np.isnan(mean) and np.isnan(v)
    for r in (1, 2, 5):  # NaN rows and the all -inf row: gradient row NaN
        assert np.all(np.isnan(g[r])), (r, g[r])
    assert np.all(np.isfinite(g[0]))
    # the ordinary row equals the same row alone (rows are independent)
    _, g0 = _vg("softmax_cross_entropy", x[0:1], y[0:1], reduction="sum")
    np.testing.assert_allclose(g[0], g0[0], rtol=4 * np.finfo(dtype).eps, atol=4 * np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
def test_minus_inf_at_target(dtype, weighted):
    x = make_logits((3, 4), dtype)
    x[1, 2] = -np.inf  # the target of row 1
    x[2, 0] = -np.inf  # a non-target of row 2
    y = np.array([0, 2, 3])
    w = np.array([1.0, 2.0, 0.5, 1.5], dtype) if weighted else None
    loss = sl.softmax_cross_entropy(x, y, weight=w, reduction="none")
    assert loss[1] == np.inf
    assert np.all(np.isfinite(loss[[0, 2]]))
    # NumPy float64 reference for row 2: -lp[3] with lp = log_softmax (exp(-inf) = 0)
    wy = 1.0 if w is None else float(w[3])
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(loss[2], -wy * np_log_softmax(x[2].astype(np.float64))[3], rtol=tol)
    _, g = _vg("softmax_cross_entropy", x, y, weight=w, reduction="sum")
    assert np.all(np.isfinite(g))
    # gradient of row 1: w_y * (p - onehot); p from NumPy float64, p[2] = 0 exactly
    p = np.exp(np_log_softmax(x[1].astype(np.float64)))
    wy1 = 1.0 if w is None else float(w[2])  # row 1's target is class 2
    want = wy1 * (p - np.eye(4)[2])
    np.testing.assert_allclose(g[1], want, rtol=tol, atol=tol)
    assert g[1, 2] == -wy1  # exactly -w_y: p_y = 0
    assert g[2, 0] == 0.0  # exp(-inf) = 0 exactly


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("C", [2, 3, 4, 5, 8, 17, 64])
@pytest.mark.parametrize("where", ["first", "last", "middle"])
def test_single_minus_inf_entry_is_not_special(dtype, C, where):
    # one -inf among finite logits is an ordinary row: exp(-inf) = 0 contributes nothing
    x = make_logits((3, C), dtype)
    j = {"first": 0, "last": C - 1, "middle": C // 2}[where]
    x[:, j] = -np.inf
    y = np.array([(j + 1) % C] * 3)
    ref = np_log_softmax(x.astype(np.float64))  # NumPy float64 reference
    tol = 2e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(sl.logsumexp(x), np.log(np.exp(x.astype(np.float64)).sum(-1)), rtol=tol)
    lsm = sl.log_softmax(x)
    assert np.all(lsm[:, j] == -np.inf)
    keep = np.arange(C) != j
    np.testing.assert_allclose(lsm[:, keep], ref[:, keep], rtol=tol, atol=tol)
    np.testing.assert_allclose(sl.softmax(x), np.exp(ref), rtol=tol, atol=tol)
    np.testing.assert_allclose(sl.softmax_cross_entropy(x, y, reduction="none"), -ref[np.arange(3), y], rtol=tol)
    _, g = _vg("softmax_cross_entropy", x, y, reduction="sum")
    np.testing.assert_allclose(g, np.exp(ref) - np.eye(C)[y], rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_special_rows_nll(dtype):
    lp = np_log_softmax(make_logits((4, 5))).astype(dtype)
    lp[1, 2] = -np.inf
    lp[2, 0] = np.nan
    y = np.array([0, 2, 0, 1])
    loss = sl.nll_loss(lp, y, reduction="none")
    assert loss[1] == np.inf
    assert np.isnan(loss[2])
    # loss_n = -lp[n, y]: exact negation
    assert loss[0] == -lp[0, 0] and loss[3] == -lp[3, 1]


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_special_values_sigmoid(dtype):
    x = np.array([-np.inf, np.inf, np.nan, 0.0], dtype)
    s = sl.sigmoid(x)
    ls = sl.log_sigmoid(x)
    assert s.dtype == dtype and ls.dtype == dtype
    # sigmoid(-inf) = 0, sigmoid(inf) = 1, sigmoid(0) = 1/2 (all exact)
    assert s[0] == 0.0 and s[1] == 1.0 and np.isnan(s[2]) and s[3] == 0.5
    # log sigmoid(-inf) = -inf, log sigmoid(inf) = log 1 = 0
    assert ls[0] == -np.inf and ls[1] == 0.0 and np.isnan(ls[2])


# --------------------------------------------------------------------------------------------
# F. ignored targets
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
@pytest.mark.parametrize("name", INDEX_LOSSES)
@pytest.mark.parametrize("ignore_index", [-100, -1, 2])
@pytest.mark.parametrize("extra", [{}, {"weight": "w"}, {"label_smoothing": 0.2}], ids=["plain", "weight", "smooth"])
def test_all_targets_ignored(name, dtype, ignore_index, extra):
    if name == "nll_loss" and "label_smoothing" in extra:
        pytest.skip("nll_loss has no label_smoothing")
    x = args_for(name, (4, 5), dtype)[0]
    y = np.full(4, ignore_index)
    kw = dict(extra)
    if kw.get("weight") == "w":
        kw["weight"] = np.linspace(0.5, 2.0, 5).astype(dtype)
    m = F(name)(x, y, ignore_index=ignore_index, **kw)
    assert isinstance(m, np.generic) and m.dtype == dtype and np.isnan(m)  # 0 / 0
    s = F(name)(x, y, ignore_index=ignore_index, reduction="sum", **kw)
    assert isinstance(s, np.generic) and s.dtype == dtype and s == 0.0
    n = F(name)(x, y, ignore_index=ignore_index, reduction="none", **kw)
    assert_same(n, np.zeros(4, dtype))
    for red in ("mean", "sum", "none"):
        _, g = _vg(name, x, y, ignore_index=ignore_index, reduction=red, **kw)
        assert g.dtype == dtype
        np.testing.assert_array_equal(g, np.zeros((4, 5), dtype), err_msg=red)


@pytest.mark.parametrize("name", INDEX_LOSSES)
def test_ignore_index_in_range_class(name):
    # ignore_index = 3 is a real class: rows labelled 3 are dropped from the loss and the mean
    x = args_for(name, (6, 5))[0]
    y = np.array([3, 0, 3, 4, 1, 3])
    keep = y != 3
    lp = np_log_softmax(x) if name == "softmax_cross_entropy" else x  # NumPy float64 reference
    per_row = -lp[np.arange(6), y]
    want_none = np.where(keep, per_row, 0.0)
    np.testing.assert_allclose(F(name)(x, y, ignore_index=3, reduction="none"), want_none, rtol=1e-14, atol=0)
    np.testing.assert_allclose(F(name)(x, y, ignore_index=3), per_row[keep].mean(), rtol=1e-14)
    np.testing.assert_allclose(F(name)(x, y, ignore_index=3, reduction="sum"), per_row[keep].sum(), rtol=1e-14)
    _, g = _vg(name, x, y, ignore_index=3, reduction="sum")
    np.testing.assert_array_equal(g[~keep], 0.0)
    # with ignore_index=None, class 3 is an ordinary target
    np.testing.assert_allclose(F(name)(x, y, ignore_index=None, reduction="sum"), per_row.sum(), rtol=1e-14)


@pytest.mark.parametrize("name", INDEX_LOSSES)
def test_zero_target_weights_mean_nan(name):
    # weight 0 on every present target: the "mean" denominator sum(v * w_y) is 0 -> NaN
    x = args_for(name, (4, 5))[0]
    y = np.array([0, 1, 0, 1])
    w = np.array([0.0, 0.0, 1.0, 1.0, 1.0])
    assert np.isnan(F(name)(x, y, weight=w))
    assert F(name)(x, y, weight=w, reduction="sum") == 0.0


def test_probability_labels_are_not_checked():
    # probability labels are used as given: negative / >1 / NaN entries raise nothing
    x = make_logits((3, 4))
    q = np.array([[1.5, -0.5, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25], [np.nan, 0.0, 1.0, 0.0]])
    r = sl.softmax_cross_entropy(x, q, reduction="none")
    want = -(q * np_log_softmax(x)).sum(axis=-1)  # NumPy float64: -sum_c q_c lp_c
    np.testing.assert_allclose(r[:2], want[:2], rtol=1e-14)
    assert np.isnan(r[2])


def test_integer_onehot_is_probability_labels():
    # labels.shape == logits.shape selects probability labels, for an integer dtype too
    x = make_logits((4, 4))
    y = np.array([2, 0, 3, 3])
    onehot = np.eye(4, dtype=np.int64)[y]
    want = -np_log_softmax(x)[np.arange(4), y]  # NumPy float64
    np.testing.assert_allclose(sl.softmax_cross_entropy(x, onehot, reduction="none"), want, rtol=1e-14)
    np.testing.assert_allclose(sl.softmax_cross_entropy(x, y, reduction="none"), want, rtol=1e-14)


# --------------------------------------------------------------------------------------------
# G. out=
# --------------------------------------------------------------------------------------------


OUT_CASES = [
    ("logsumexp", {}, lambda s: s[:-1]),
    ("logsumexp", {"keepdims": True}, lambda s: s[:-1] + (1,)),
    ("logsumexp", {"axis": 0}, lambda s: s[1:]),
    ("softmax", {}, lambda s: s),
    ("softmax", {"axis": 0}, lambda s: s),
    ("log_softmax", {}, lambda s: s),
    ("sigmoid", {}, lambda s: s),
    ("log_sigmoid", {}, lambda s: s),
    ("softmax_cross_entropy", {"reduction": "none"}, lambda s: s[:-1]),
    ("nll_loss", {"reduction": "none"}, lambda s: s[:-1]),
    ("sigmoid_cross_entropy", {"reduction": "none"}, lambda s: s),
    ("binary_cross_entropy", {"reduction": "none"}, lambda s: s),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
@pytest.mark.parametrize("name, kw, rshape", OUT_CASES, ids=[f"{c[0]}-{c[1]}" for c in OUT_CASES])
def test_out_is_written_and_returned(name, kw, rshape, dtype):
    shape = (4, 6)
    args = args_for(name, shape, dtype)
    want = F(name)(*args, **kw)
    out = np.full(rshape(shape), np.nan, dtype)
    r = F(name)(*args, out=out, **kw)
    assert r is out
    assert np.shares_memory(r, out)
    assert_same(out, want)


@pytest.mark.parametrize("layout", ["strided", "fortran", "negative_stride", "misaligned"])
@pytest.mark.parametrize("name, kw, rshape", OUT_CASES, ids=[f"{c[0]}-{c[1]}" for c in OUT_CASES])
def test_out_non_contiguous(name, kw, rshape, layout):
    # an awkward out= is either written correctly or refused with a ValueError naming out;
    # what must never happen is a silent write into a temporary
    shape = (4, 6)
    args = args_for(name, shape)
    want = F(name)(*args, **kw)
    out = make_layout(np.full(rshape(shape), np.nan), layout)
    try:
        r = F(name)(*args, out=out, **kw)
    except ValueError as e:
        assert re.search(named("out"), str(e)), str(e)
        return
    assert np.shares_memory(r, out)
    assert_same(out, want)


@pytest.mark.parametrize("name, kw, rshape", OUT_CASES[:8], ids=[f"{c[0]}-{c[1]}" for c in OUT_CASES[:8]])
def test_out_with_value_and_grad(name, kw, rshape):
    shape = (4, 6)
    args = args_for(name, shape)
    out = np.full(rshape(shape), np.nan)
    v, g = sl.value_and_grad(F(name))(*args, out=out, **kw)
    assert np.shares_memory(v, out)
    assert_same(out, F(name)(*args, **kw))


# --------------------------------------------------------------------------------------------
# H. dtypes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", UNARY)
def test_float16_unary(name):
    x16 = make_logits((5, 7), np.float16)
    r = F(name)(x16)
    assert r.dtype == np.float16
    # read as float32, computed in float32, returned as float16
    f16_ulp_close(r, F(name)(x16.astype(np.float32)))
    v, g = _vg(name, x16)
    assert v.dtype == np.float16 and g.dtype == np.float16
    _, g32 = _vg(name, x16.astype(np.float32))
    f16_ulp_close(g, g32)


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_float16_losses(name, reduction):
    args16 = args_for(name, (5, 7), np.float16)
    args32 = tuple(a.astype(np.float32) if a.dtype == np.float16 else a for a in args16)
    r = F(name)(*args16, reduction=reduction)
    assert np.asarray(r).dtype == np.float16
    if reduction != "none":
        assert isinstance(r, np.float16)
    f16_ulp_close(r, F(name)(*args32, reduction=reduction))
    v, g = _vg(name, *args16, reduction=reduction)
    assert np.asarray(v).dtype == np.float16 and g.dtype == np.float16
    _, g32 = _vg(name, *args32, reduction=reduction)
    f16_ulp_close(g, g32)


@pytest.mark.parametrize("idtype", [np.int8, np.int32, np.int64, np.uint8, bool])
@pytest.mark.parametrize("name", UNARY)
def test_integer_input_promoted_to_float64(name, idtype):
    xi = (np.arange(12).reshape(3, 4) % 5 - 2).astype(idtype)
    r = F(name)(xi)
    assert r.dtype == np.float64
    assert_same(r, F(name)(xi.astype(np.float64)))
    _, g = _vg(name, xi)
    assert g.dtype == np.float64


@pytest.mark.parametrize("idtype", [np.int16, np.int64, bool])
@pytest.mark.parametrize("name", LOSSES)
def test_integer_input_promoted_losses(name, idtype):
    if name == "softmax_cross_entropy":
        x = (np.arange(12).reshape(3, 4) % 5 - 2).astype(idtype)
        other = np.array([0, 3, 1])
    elif name == "nll_loss":
        x = np.zeros((3, 4), bool) if idtype is bool else -(np.arange(12).reshape(3, 4) % 3).astype(idtype)
        other = np.array([0, 3, 1])
    elif name == "sigmoid_cross_entropy":
        x = (np.arange(12).reshape(3, 4) % 5 - 2).astype(idtype)
        other = (np.arange(12).reshape(3, 4) % 2).astype(idtype)
    else:  # probabilities and labels in {0, 1}
        x = (np.arange(12).reshape(3, 4) % 2).astype(idtype)
        other = (np.arange(12).reshape(3, 4) % 2).astype(idtype)
    for red in ("mean", "none"):
        r = F(name)(x, other, reduction=red)
        assert np.asarray(r).dtype == np.float64
        if red == "mean":
            assert isinstance(r, np.float64)
        other_f = other if name in INDEX_LOSSES else other.astype(np.float64)
        assert_same(r, F(name)(x.astype(np.float64), other_f, reduction=red))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_reduced_loss_is_numpy_scalar(name, dtype, reduction):
    r = F(name)(*args_for(name, (5, 7), dtype), reduction=reduction)
    assert isinstance(r, np.generic) and not isinstance(r, np.ndarray)
    assert r.dtype == dtype
    v, g = _vg(name, *args_for(name, (5, 7), dtype), reduction=reduction)
    assert isinstance(v, np.generic) and v.dtype == dtype
    assert g.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", LOSSES)
def test_none_loss_dtype_and_shape(name, dtype):
    r = F(name)(*args_for(name, (2, 3, 7), dtype), reduction="none")
    assert r.dtype == dtype
    assert r.shape == ((2, 3) if name in INDEX_LOSSES else (2, 3, 7))
