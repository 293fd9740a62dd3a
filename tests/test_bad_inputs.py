"""The bad-input catalogue: every malformed or edge input, fed to every public entry point.

Table-driven. ``CATALOGUE`` lists the inputs (NaN/inf logits, bad labels, empty and
degenerate shapes, wrong weights, hostile layouts, wrong dtypes, ...); ``ENTRY_POINTS``
lists every public function and class -- the core (``stableloss.*``) and the mirrors
(``stableloss.torch``, ``stableloss.tf``, ``stableloss.keras``). Each entry applies to the
entry points of the families it names (index labels only make sense where there are
index labels), and every (entry, entry point) pair is one test case. Each case

1. calls the entry point and checks the outcome against the entry's expectation:
   - the core: the documented value (docs/api.md; numbers from the mpmath reference in
     ``tests/_reference.py``) or the exact exception type with a message that names the
     argument;
   - a mirror: whatever the real framework (torch, TensorFlow, Keras) gives for the same
     input -- the same value, or an exception of the same type -- checked live against
     the framework when it is installed, except for the documented differences listed
     in ``MIRROR_DIFFERENCES``; without the framework only "a value or one of the
     framework's exception types, never a crash" is checked;
   - hostile layouts (strided, Fortran, read-only, big-endian, zero-stride, ...): the same
     bits as the same call on a plain C-contiguous copy;
2. calls ``value_and_grad`` of the entry point on the same input: the same exception
   type, or the same value bit for bit;
3. asserts that no input was modified -- every array and every buffer under a view
   (the poison between strided elements included), and Python lists.

The catalogue size is printed by ``python tests/test_bad_inputs.py`` and reported in
docs/reliability.md. The > 2**31-element (64-bit indexing) test runs only with
``STABLELOSS_HUGE_TESTS=1`` (it needs about 9 GB of free memory).
"""
from __future__ import annotations

import copy
import dataclasses
import importlib
import math
import os
import re
import warnings

import numpy as np
import pytest

import stableloss as sl
import stableloss.keras as slk
import stableloss.tf as sltf
import stableloss.torch as slt

import _reference as ref
from _arrays import LAYOUTS, broadcast_cols, broadcast_rows

N, C = 4, 6
II = -100     # the ignore index used wherever an entry point takes one (torch's default)


# --------------------------------------------------------------------------------------------
# input snapshots: nothing may be written to any input
# --------------------------------------------------------------------------------------------
class Snapshot:
    """Bytes of every ndarray in the inputs and of every buffer they view (so a write
    between the elements of a strided view is caught), their flags, and deep copies of
    Python lists."""

    def __init__(self, obj):
        self.items, self.lists = [], []
        self._walk(obj, "inputs")

    def _walk(self, obj, path):
        if isinstance(obj, np.ndarray):
            chain, a, depth = [], obj, 0
            while isinstance(a, np.ndarray) and depth < 10:
                chain.append((f"{path}{'.base' * depth}", a))
                a, depth = a.base, depth + 1
            for p, arr in chain:
                self.items.append((p, arr, self._state(arr), arr.tobytes()))
        elif isinstance(obj, dict):
            for k, v in obj.items():
                self._walk(v, f"{path}.{k}")
        elif isinstance(obj, (list, tuple)):
            self.lists.append((path, obj, copy.deepcopy(obj)))

    @staticmethod
    def _state(a):
        return (a.shape, a.strides, a.dtype, a.__array_interface__["data"][0], a.flags.writeable)

    def check(self):
        for path, a, state, data in self.items:
            assert self._state(a) == state, f"{path}: layout or flags changed"
            assert a.tobytes() == data, f"{path}: contents modified by the call"
        for path, obj, saved in self.lists:
            assert repr(obj) == repr(saved), f"{path}: list modified by the call"


@pytest.fixture
def snapshot():
    snaps = []

    def take(obj):
        s = Snapshot(obj)
        snaps.append(s)
        return s

    yield take
    for s in snaps:
        s.check()


# --------------------------------------------------------------------------------------------
# canonical inputs per family
# --------------------------------------------------------------------------------------------
FAMILIES = ("rowwise", "elementwise", "index", "nll", "prob", "bin_logits", "bin_probs", "kl")
LOGIT_FAMILIES = ("rowwise", "elementwise", "index", "nll", "prob", "bin_logits", "kl")
LABELLED = ("index", "nll", "prob", "bin_logits", "bin_probs", "kl")


def _rng(seed):
    return np.random.default_rng(seed)


def _log_softmax64(x):
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def base_inputs(family):
    """Plain, valid float64 inputs of shape (N, C): {'x': first argument, 'y': labels}."""
    x = 2.0 * _rng(0).standard_normal((N, C))
    if family in ("rowwise", "elementwise"):
        return {"x": x}
    if family == "index":
        return {"x": x, "y": np.array([1, 5, 2, 0], np.int64)}
    if family == "nll":
        return {"x": _log_softmax64(x), "y": np.array([1, 5, 2, 0], np.int64)}
    q = _rng(2).random((N, C)) + 0.05
    q /= q.sum(axis=-1, keepdims=True)
    if family == "prob":
        return {"x": x, "y": q}
    if family == "kl":
        return {"x": _log_softmax64(x), "y": q}
    z = _rng(4).integers(0, 2, (N, C)).astype(np.float64)
    if family == "bin_logits":
        return {"x": x, "y": z}
    if family == "bin_probs":
        return {"x": _rng(3).uniform(0.02, 0.98, (N, C)), "y": z}
    raise AssertionError(family)


# --------------------------------------------------------------------------------------------
# entry points
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class EP:
    """A public entry point. ``build(M, cv, inp) -> (callable, args, kwargs)`` is written
    once against the framework's API: M is the stableloss mirror (or the real framework,
    for the live comparison), ``cv`` converts arrays for it. ``argnum`` is the
    differentiated argument for value_and_grad; ``names`` the (first argument, labels)
    names the core's messages use; ``takes``: the optional inputs it accepts
    ('w' class weight, 'we' element weight, 'pw' pos_weight, 'ii' ignore index)."""
    name: str
    family: str
    fw: str                  # "core", "torch", "tf", "keras"
    build: object
    argnum: int = 0
    takes: frozenset = frozenset()
    names: tuple = ("x", "labels")
    mirror_mod: object = None

    def __repr__(self):
        return self.name


def _kw(inp, cv, mapping):
    """Optional inputs present in `inp`, renamed for the entry point."""
    return {name: (cv(inp[k]) if isinstance(inp[k], np.ndarray) else inp[k])
            for k, name in mapping.items() if k in inp}


def _core(name, family, build, takes="", names=None, argnum=0):
    return EP(f"sl.{name}", family, "core", build, argnum, frozenset(takes.split()),
              names or ("x", "labels"), sl)


_NONE = {"reduction": "none"}
REF_TORCH_INT32 = "same-as-int64"
CORE_EPS = [
    _core("logsumexp", "rowwise", lambda M, cv, i: (M.logsumexp, (i["x"],), {})),
    _core("softmax", "rowwise", lambda M, cv, i: (M.softmax, (i["x"],), {})),
    _core("log_softmax", "rowwise", lambda M, cv, i: (M.log_softmax, (i["x"],), {})),
    _core("sigmoid", "elementwise", lambda M, cv, i: (M.sigmoid, (i["x"],), {})),
    _core("log_sigmoid", "elementwise", lambda M, cv, i: (M.log_sigmoid, (i["x"],), {})),
    _core("softmax_cross_entropy[index]", "index",
          lambda M, cv, i: (M.softmax_cross_entropy, (i["x"], i["y"]),
                            dict(_NONE, **_kw(i, cv, {"w": "weight", "ii": "ignore_index"}))),
          "w ii", ("logits", "labels")),
    _core("softmax_cross_entropy[prob]", "prob",
          lambda M, cv, i: (M.softmax_cross_entropy, (i["x"], i["y"]), dict(_NONE, **_kw(i, cv, {"w": "weight"}))),
          "w", ("logits", "labels")),
    _core("nll_loss", "nll",
          lambda M, cv, i: (M.nll_loss, (i["x"], i["y"]),
                            dict(_NONE, **_kw(i, cv, {"w": "weight", "ii": "ignore_index"}))),
          "w ii", ("log_probs", "labels")),
    _core("sigmoid_cross_entropy", "bin_logits",
          lambda M, cv, i: (M.sigmoid_cross_entropy, (i["x"], i["y"]),
                            dict(_NONE, **_kw(i, cv, {"we": "weight", "pw": "pos_weight"}))),
          "we pw", ("logits", "labels")),
    _core("binary_cross_entropy", "bin_probs",
          lambda M, cv, i: (M.binary_cross_entropy, (i["x"], i["y"]), dict(_NONE, **_kw(i, cv, {"we": "weight"}))),
          "we", ("probs", "labels")),
    _core("kl_div", "kl", lambda M, cv, i: (M.kl_div, (i["x"], i["y"]), _NONE), "", ("log_probs", "target")),
    _core("sigmoid_focal_loss", "bin_logits",
          lambda M, cv, i: (M.sigmoid_focal_loss, (i["x"], i["y"]), _NONE), "", ("logits", "labels")),
]


def _torch_ep(name, family, build, takes=""):
    return EP(f"torch.{name}", family, "torch", build, 0, frozenset(takes.split()), ("input", "target"), slt)


def _F(M):
    return M.nn.functional


TORCH_EPS = [
    _torch_ep("nn.functional.softmax", "rowwise", lambda M, cv, i: (_F(M).softmax, (cv(i["x"]),), {"dim": -1})),
    _torch_ep("nn.functional.log_softmax", "rowwise",
              lambda M, cv, i: (_F(M).log_softmax, (cv(i["x"]),), {"dim": -1})),
    _torch_ep("nn.Softmax", "rowwise", lambda M, cv, i: (M.nn.Softmax(dim=-1), (cv(i["x"]),), {})),
    _torch_ep("nn.LogSoftmax", "rowwise", lambda M, cv, i: (M.nn.LogSoftmax(dim=-1), (cv(i["x"]),), {})),
    _torch_ep("logsumexp", "rowwise", lambda M, cv, i: (M.logsumexp, (cv(i["x"]),), {"dim": -1})),
    _torch_ep("nn.functional.sigmoid", "elementwise", lambda M, cv, i: (_F(M).sigmoid, (cv(i["x"]),), {})),
    _torch_ep("nn.functional.logsigmoid", "elementwise", lambda M, cv, i: (_F(M).logsigmoid, (cv(i["x"]),), {})),
    _torch_ep("nn.Sigmoid", "elementwise", lambda M, cv, i: (M.nn.Sigmoid(), (cv(i["x"]),), {})),
    _torch_ep("nn.LogSigmoid", "elementwise", lambda M, cv, i: (M.nn.LogSigmoid(), (cv(i["x"]),), {})),
    _torch_ep("nn.functional.cross_entropy[index]", "index",
              lambda M, cv, i: (_F(M).cross_entropy, (cv(i["x"]), cv(i["y"])),
                                _kw(i, cv, {"w": "weight", "ii": "ignore_index"})), "w ii"),
    _torch_ep("nn.functional.cross_entropy[prob]", "prob",
              lambda M, cv, i: (_F(M).cross_entropy, (cv(i["x"]), cv(i["y"])), _kw(i, cv, {"w": "weight"})), "w"),
    _torch_ep("nn.CrossEntropyLoss", "index",
              lambda M, cv, i: (M.nn.CrossEntropyLoss(**_kw(i, cv, {"w": "weight", "ii": "ignore_index"})),
                                (cv(i["x"]), cv(i["y"])), {}), "w ii"),
    _torch_ep("nn.functional.nll_loss", "nll",
              lambda M, cv, i: (_F(M).nll_loss, (cv(i["x"]), cv(i["y"])),
                                _kw(i, cv, {"w": "weight", "ii": "ignore_index"})), "w ii"),
    _torch_ep("nn.NLLLoss", "nll",
              lambda M, cv, i: (M.nn.NLLLoss(**_kw(i, cv, {"w": "weight", "ii": "ignore_index"})),
                                (cv(i["x"]), cv(i["y"])), {}), "w ii"),
    _torch_ep("nn.functional.binary_cross_entropy", "bin_probs",
              lambda M, cv, i: (_F(M).binary_cross_entropy, (cv(i["x"]), cv(i["y"])), _kw(i, cv, {"we": "weight"})),
              "we"),
    _torch_ep("nn.BCELoss", "bin_probs",
              lambda M, cv, i: (M.nn.BCELoss(**_kw(i, cv, {"we": "weight"})), (cv(i["x"]), cv(i["y"])), {}), "we"),
    _torch_ep("nn.functional.binary_cross_entropy_with_logits", "bin_logits",
              lambda M, cv, i: (_F(M).binary_cross_entropy_with_logits, (cv(i["x"]), cv(i["y"])),
                                _kw(i, cv, {"we": "weight", "pw": "pos_weight"})), "we pw"),
    _torch_ep("nn.BCEWithLogitsLoss", "bin_logits",
              lambda M, cv, i: (M.nn.BCEWithLogitsLoss(**_kw(i, cv, {"we": "weight", "pw": "pos_weight"})),
                                (cv(i["x"]), cv(i["y"])), {}), "we pw"),
    _torch_ep("nn.functional.kl_div", "kl",
              lambda M, cv, i: (_F(M).kl_div, (cv(i["x"]), cv(i["y"])), {"reduction": "batchmean"})),
    _torch_ep("nn.KLDivLoss", "kl",
              lambda M, cv, i: (M.nn.KLDivLoss(reduction="batchmean"), (cv(i["x"]), cv(i["y"])), {})),
    dataclasses.replace(_torch_ep("ops.sigmoid_focal_loss", "bin_logits",
                                  lambda M, cv, i: (M.ops.sigmoid_focal_loss, (cv(i["x"]), cv(i["y"])), {})),
                        names=("inputs", "targets")),
]


def _tf_ep(name, family, build, argnum=0, takes=""):
    return EP(f"tf.{name}", family, "tf", build, argnum, frozenset(takes.split()), ("logits", "labels"), sltf)


def _v1(M):
    return M.compat.v1.losses


TF_EPS = [
    _tf_ep("nn.softmax", "rowwise", lambda M, cv, i: (M.nn.softmax, (i["x"],), {})),
    _tf_ep("nn.log_softmax", "rowwise", lambda M, cv, i: (M.nn.log_softmax, (i["x"],), {})),
    _tf_ep("math.reduce_logsumexp", "rowwise", lambda M, cv, i: (M.math.reduce_logsumexp, (i["x"],), {"axis": -1})),
    _tf_ep("math.sigmoid", "elementwise", lambda M, cv, i: (M.math.sigmoid, (i["x"],), {})),
    _tf_ep("math.log_sigmoid", "elementwise", lambda M, cv, i: (M.math.log_sigmoid, (i["x"],), {})),
    _tf_ep("compat.v1.losses.compute_weighted_loss", "elementwise",
           lambda M, cv, i: (_v1(M).compute_weighted_loss, (i["x"],), {})),
    _tf_ep("nn.softmax_cross_entropy_with_logits", "prob",
           lambda M, cv, i: (M.nn.softmax_cross_entropy_with_logits, (i["y"], i["x"]), {}), 1),
    _tf_ep("nn.sparse_softmax_cross_entropy_with_logits", "index",
           lambda M, cv, i: (M.nn.sparse_softmax_cross_entropy_with_logits, (i["y"], i["x"]), {}), 1),
    _tf_ep("nn.sigmoid_cross_entropy_with_logits", "bin_logits",
           lambda M, cv, i: (M.nn.sigmoid_cross_entropy_with_logits, (i["y"], i["x"]), {}), 1),
    _tf_ep("nn.weighted_cross_entropy_with_logits", "bin_logits",
           lambda M, cv, i: (M.nn.weighted_cross_entropy_with_logits, (i["y"], i["x"], i.get("pw", 2.0)), {}),
           1, "pw"),
    _tf_ep("raw_ops.SoftmaxCrossEntropyWithLogits", "prob",
           lambda M, cv, i: (M.raw_ops.SoftmaxCrossEntropyWithLogits, (), {"features": i["x"], "labels": i["y"]})),
    _tf_ep("raw_ops.SparseSoftmaxCrossEntropyWithLogits", "index",
           lambda M, cv, i: (M.raw_ops.SparseSoftmaxCrossEntropyWithLogits, (),
                             {"features": i["x"], "labels": i["y"]})),
    _tf_ep("compat.v1.losses.softmax_cross_entropy", "prob",
           lambda M, cv, i: (_v1(M).softmax_cross_entropy, (i["y"], i["x"]), {}), 1),
    _tf_ep("compat.v1.losses.sparse_softmax_cross_entropy", "index",
           lambda M, cv, i: (_v1(M).sparse_softmax_cross_entropy, (i["y"], i["x"]), {}), 1),
    _tf_ep("compat.v1.losses.sigmoid_cross_entropy", "bin_logits",
           lambda M, cv, i: (_v1(M).sigmoid_cross_entropy, (i["y"], i["x"]), {}), 1),
    _tf_ep("compat.v1.losses.log_loss", "bin_probs",
           lambda M, cv, i: (_v1(M).log_loss, (i["y"], i["x"]), {}), 1),
]


def _keras_ep(name, family, build, takes=""):
    return EP(f"keras.losses.{name}", family, "keras", build, 1, frozenset(takes.split()),
              ("y_pred", "y_true"), slk)


def _kl(M):
    return M.losses


def _ignore(i):
    return {"ignore_class": i["ii"]} if "ii" in i else {}


KERAS_EPS = [
    _keras_ep("sparse_categorical_crossentropy", "index",
              lambda M, cv, i: (_kl(M).sparse_categorical_crossentropy, (i["y"], i["x"]),
                                dict(from_logits=True, **_ignore(i))), "ii"),
    _keras_ep("SparseCategoricalCrossentropy", "index",
              lambda M, cv, i: (_kl(M).SparseCategoricalCrossentropy(from_logits=True, **_ignore(i)),
                                (i["y"], i["x"]), {}), "ii"),
    _keras_ep("categorical_crossentropy", "prob",
              lambda M, cv, i: (_kl(M).categorical_crossentropy, (i["y"], i["x"]), {"from_logits": True})),
    _keras_ep("CategoricalCrossentropy", "prob",
              lambda M, cv, i: (_kl(M).CategoricalCrossentropy(from_logits=True), (i["y"], i["x"]), {})),
    _keras_ep("categorical_focal_crossentropy", "prob",
              lambda M, cv, i: (_kl(M).categorical_focal_crossentropy, (i["y"], i["x"]), {"from_logits": True})),
    _keras_ep("CategoricalFocalCrossentropy", "prob",
              lambda M, cv, i: (_kl(M).CategoricalFocalCrossentropy(from_logits=True), (i["y"], i["x"]), {})),
    _keras_ep("binary_crossentropy", "bin_logits",
              lambda M, cv, i: (_kl(M).binary_crossentropy, (i["y"], i["x"]), {"from_logits": True})),
    _keras_ep("BinaryCrossentropy", "bin_logits",
              lambda M, cv, i: (_kl(M).BinaryCrossentropy(from_logits=True), (i["y"], i["x"]), {})),
    _keras_ep("binary_focal_crossentropy", "bin_logits",
              lambda M, cv, i: (_kl(M).binary_focal_crossentropy, (i["y"], i["x"]), {"from_logits": True})),
    _keras_ep("BinaryFocalCrossentropy", "bin_logits",
              lambda M, cv, i: (_kl(M).BinaryFocalCrossentropy(from_logits=True), (i["y"], i["x"]), {})),
    _keras_ep("binary_crossentropy[probs]", "bin_probs",
              lambda M, cv, i: (_kl(M).binary_crossentropy, (i["y"], i["x"]), {})),
    _keras_ep("BinaryCrossentropy[probs]", "bin_probs",
              lambda M, cv, i: (_kl(M).BinaryCrossentropy(), (i["y"], i["x"]), {})),
]

ENTRY_POINTS = CORE_EPS + TORCH_EPS + TF_EPS + KERAS_EPS


# --------------------------------------------------------------------------------------------
# expectations
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Raises:
    """The exact exception type (or a subclass: sl.LabelError is an IndexError and a
    ValueError) and the argument its message must name: 'x' (the first argument) or
    'labels' (the second), translated to the entry point's own names; None: any message."""
    exc: type
    arg: str | None = "x"


@dataclasses.dataclass(frozen=True)
class Value:
    """A value derived by hand from the contract: fn(inp) -> float64 array."""
    fn: object


REF = "ref"            # the core: the mpmath reference of the documented formula
FRAMEWORK = "fw"       # a mirror: what the real framework gives
SAME = "same"          # bitwise what the same call gives on plain C-contiguous copies


@dataclasses.dataclass
class Entry:
    id: str
    what: str
    families: tuple
    modify: object                       # (inp, ep) -> inp (a modified copy)
    core: object = REF                   # expectation for the core (or {family: expectation})
    mirror: object = FRAMEWORK           # expectation for the mirrors (or {fw: expectation})
    needs: str = ""                      # an optional input the entry point must take

    def applies(self, ep):
        return ep.family in self.families and (not self.needs or self.needs in ep.takes)

    def expectation(self, ep):
        e = self.core if ep.fw == "core" else self.mirror
        if isinstance(e, dict):
            e = e.get(ep.family if ep.fw == "core" else ep.fw, e.get("*"))
        return e


def _set(key, fn):
    """modify: apply fn to a copy of inp[key]."""
    def m(inp, ep):
        inp = dict(inp)
        a = np.array(inp[key], copy=True)
        r = fn(a, ep)
        inp[key] = a if r is None else r
        return inp
    return m


def _x_at(index, value):
    def f(a, ep):
        a[index] = value
    return _set("x", f)


def _all_arrays(fn):
    """modify: apply a layout to every array input."""
    def m(inp, ep):
        return {k: (fn(v) if isinstance(v, np.ndarray) and v.ndim else v) for k, v in inp.items()}
    return m


def _labels_value(value, dtype=None):
    def f(a, ep):
        if dtype is not None:
            a = a.astype(dtype)
        a[2] = value
        return a
    return _set("y", f)


def _with(**extra):
    def m(inp, ep):
        inp = dict(inp)
        for k, v in extra.items():
            inp[k] = v(inp) if callable(v) else v
        return inp
    return m


def _shape_nc(n, c):
    """Inputs of N = n rows, C = c classes, built like base_inputs."""
    def m(inp, ep):
        out = dict(inp)
        x = 2.0 * _rng(7).standard_normal((n, c))
        fam = ep.family
        if fam in ("nll", "kl"):
            x = _log_softmax64(x) if c else x
        if fam == "bin_probs":
            x = _rng(7).uniform(0.02, 0.98, (n, c))
        out["x"] = x
        if fam in ("index", "nll"):
            out["y"] = np.zeros(n, np.int64)
        elif fam in ("prob", "kl"):
            out["y"] = np.full((n, c), 1.0 / c) if c else np.zeros((n, c))
        elif fam in ("bin_logits", "bin_probs"):
            out["y"] = (_rng(8).random((n, c)) > 0.5).astype(np.float64)
        return out
    return m


def _one_d(inp, ep):
    out = {"x": inp["x"][0].copy()}
    if "y" in inp:
        out["y"] = np.array(inp["y"][0])
    return out


def _zero_d(inp, ep):
    out = {"x": np.array(inp["x"][0, 0])}
    if "y" in inp:
        out["y"] = np.array(inp["y"][0] if inp["y"].ndim == 1 else inp["y"][0, 0])
    return out


def _labels_shape(extra):
    def f(a, ep):
        if extra == "batch":
            return np.concatenate([a, a[:1]], axis=0)
        return a[..., None]
    return _set("y", f)


def _dtype(dt, keys=("x",)):
    def m(inp, ep):
        inp = dict(inp)
        for k in keys:
            inp[k] = inp[k].astype(dt)
        return inp
    return m


def _broadcast(kind):
    def m(inp, ep):
        out = dict(inp)
        for k, v in inp.items():
            if not isinstance(v, np.ndarray) or v.ndim != 2:
                continue
            out[k] = broadcast_rows(v[0], v.shape[0]) if kind == "rows" else broadcast_cols(v[:, 0], v.shape[1])
        return out
    return m


def _as_lists(inp, ep):
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in inp.items()}


BAD_LABEL = Raises(sl.LabelError, "labels")
LABEL_TYPE = Raises(TypeError, "labels")
NOT_NUMERIC = Raises(TypeError, "x")
# None, object and string arrays: torch cannot even make a tensor of them (its functions
# raise TypeError or AttributeError); Keras raises ValueError from the conversion for some and
# converts object arrays of floats silently for others. The torch and Keras mirrors raise
# TypeError naming the argument; the TF mirror does what TF does (ValueError).
NON_NUMERIC_MIRROR = {"torch": Raises(TypeError, "x"), "keras": Raises(TypeError, "x"), "tf": FRAMEWORK}

CATALOGUE = [
    # ---- special values in the logits / first argument
    Entry("nan_logit", "a NaN in row 1", LOGIT_FAMILIES, _x_at((1, 2), np.nan)),
    Entry("posinf_logit", "+inf in row 1", LOGIT_FAMILIES, _x_at((1, 2), np.inf)),
    Entry("neginf_logit", "one -inf (not at a target) in row 1", LOGIT_FAMILIES, _x_at((1, 3), -np.inf)),
    Entry("all_neginf_row", "row 2 all -inf", LOGIT_FAMILIES, _x_at((2, slice(None)), -np.inf)),
    Entry("neginf_at_target", "-inf at the target logit (CE +inf)", ("index", "nll"), _x_at((0, 1), -np.inf)),
    Entry("huge_logits", "|x| = 1e300 entries", LOGIT_FAMILIES,
          _set("x", lambda a, ep: a.__setitem__((3, slice(0, 3)), [1e300, -1e300, 1e300]))),
    Entry("subnormal_logits", "subnormal and signed-zero logits", LOGIT_FAMILIES,
          _set("x", lambda a, ep: a.__setitem__((0, slice(0, 3)), [5e-324, -0.0, -5e-324]))),
    # ---- probabilities (BCE on probabilities)
    Entry("probs_nan", "a NaN probability", ("bin_probs",), _x_at((1, 2), np.nan),
          core=Raises(ValueError, "x")),
    Entry("probs_above_one", "a probability 1.5", ("bin_probs",), _x_at((0, 0), 1.5), core=Raises(ValueError, "x")),
    Entry("probs_negative", "a probability -0.1", ("bin_probs",), _x_at((0, 0), -0.1), core=Raises(ValueError, "x")),
    Entry("probs_exact_ends", "probabilities exactly 0 and 1 against both labels", ("bin_probs",),
          _set("x", lambda a, ep: a.__setitem__((0, slice(0, 4)), [0.0, 1.0, 0.0, 1.0]))),
    # ---- binary / probability labels
    Entry("binary_label_two", "a binary label 2.0 (outside [0, 1])", ("bin_logits", "bin_probs"),
          _set("y", lambda a, ep: a.__setitem__((0, 0), 2.0))),
    Entry("binary_label_nan", "a NaN binary label", ("bin_logits", "bin_probs"),
          _set("y", lambda a, ep: a.__setitem__((0, 0), np.nan))),
    Entry("prob_label_negative", "a negative probability label (not checked: used as given)", ("prob", "kl"),
          _set("y", lambda a, ep: a.__setitem__((0, 0), -0.5))),
    # ---- index labels
    Entry("label_eq_C", "label == C", ("index", "nll"), _labels_value(C), core=BAD_LABEL),
    Entry("label_huge", "label 2**40", ("index", "nll"), _labels_value(2 ** 40), core=BAD_LABEL),
    Entry("label_minus_one", "label -1 (the ignore index is -100 where there is one)", ("index", "nll"),
          _labels_value(-1), core=BAD_LABEL),
    Entry("label_int64_min", "label -2**63", ("index", "nll"), _labels_value(np.iinfo(np.int64).min),
          core=BAD_LABEL),
    Entry("label_float", "float64 labels holding integers", ("index", "nll"), _dtype(np.float64, ("y",)),
          core=LABEL_TYPE),
    Entry("label_nan", "float labels with a NaN", ("index", "nll"), _labels_value(np.nan, np.float64),
          core=LABEL_TYPE),
    Entry("label_bool", "bool labels", ("index", "nll"), _dtype(bool, ("y",)), core=LABEL_TYPE),
    Entry("label_uint8", "uint8 labels (valid)", ("index", "nll"), _dtype(np.uint8, ("y",))),
    Entry("label_int32", "int32 labels (valid)", ("index", "nll"), _dtype(np.int32, ("y",))),
    Entry("label_uint64_huge", "uint64 label 2**63 + 1", ("index", "nll"),
          _labels_value(2 ** 63 + 1, np.uint64), core=BAD_LABEL),
    Entry("all_ignored", "every target is the ignore index", ("index", "nll"),
          _with(y=lambda i: np.full(N, II, np.int64), ii=II), needs="ii"),
    Entry("some_ignored_nan_row", "an ignored row holding NaN", ("index", "nll"),
          lambda inp, ep: _with(y=np.array([1, II, 2, 0]), ii=II)(_x_at((1, 0), np.nan)(inp, ep), ep), needs="ii"),
    # ---- shapes
    Entry("empty_batch", "N = 0", FAMILIES, _shape_nc(0, C)),
    Entry("one_class", "C = 1", FAMILIES, _shape_nc(N, 1)),
    Entry("zero_classes", "C = 0", FAMILIES, _shape_nc(N, 0),
          # probability labels: each row's loss is an empty sum, 0 (docs/api.md)
          core={"index": BAD_LABEL, "nll": BAD_LABEL, "prob": Value(lambda inp: np.zeros(N)), "*": REF}),
    # a labels shape that is neither the logits' shape nor the index shape is a shape error
    # whatever the dtype (docs/api.md): the message names both accepted shapes
    Entry("labels_batch_mismatch", "labels with one row too many", LABELLED, _labels_shape("batch"),
          core=Raises(ValueError, "labels")),
    Entry("labels_extra_axis", "labels with a trailing axis of 1", LABELLED, _labels_shape("axis"),
          core=Raises(ValueError, "labels")),
    Entry("one_dim_input", "1-D input (one row)", FAMILIES, _one_d),
    Entry("zero_dim_input", "0-d input", FAMILIES, _zero_d),
    # ---- weights
    Entry("weight_wrong_length", "class weight of length C + 1", ("index", "nll", "prob"),
          _with(w=np.linspace(0.5, 2.0, C + 1)), core=Raises(ValueError, "weight"), needs="w"),
    Entry("weight_negative", "negative class weights (used as given)", ("index", "nll", "prob"),
          _with(w=np.linspace(-1.0, 1.5, C)), needs="w"),
    Entry("weight_2d", "class weight of shape (1, C)", ("index", "nll", "prob"),
          _with(w=np.ones((1, C))), core=Raises(ValueError, "weight"), needs="w"),
    Entry("weight_nan", "a NaN class weight", ("index", "nll", "prob"),
          _with(w=np.array([1.0, np.nan, 1.0, 1.0, 1.0, 1.0])), needs="w"),
    Entry("elem_weight_not_broadcastable", "element weight of shape (C + 1,)", ("bin_logits", "bin_probs"),
          _with(we=np.ones(C + 1)), core=Raises(ValueError, "weight"), needs="we"),
    Entry("elem_weight_negative", "negative element weights", ("bin_logits", "bin_probs"),
          _with(we=np.linspace(-1.0, 1.0, C)), needs="we"),
    Entry("pos_weight_wrong_length", "pos_weight of length C + 1", ("bin_logits",),
          _with(pw=np.ones(C + 1)), core=Raises(ValueError, "pos_weight"), needs="pw"),
    Entry("pos_weight_negative", "negative pos_weight", ("bin_logits",),
          _with(pw=np.linspace(-2.0, 1.0, C)), needs="pw"),
    # ---- hostile layouts: the same bits as the contiguous call
    *[Entry(f"layout_{name}", f"{name} arrays", FAMILIES, _all_arrays(LAYOUTS[name]), core=SAME, mirror=SAME)
      for name in ("strided", "strided_last", "fortran", "readonly", "byteswapped", "negative_stride",
                   "swapped_axes", "misaligned", "readonly_strided")],
    Entry("zero_stride_rows", "broadcast arrays: stride 0 along the rows", FAMILIES, _broadcast("rows"),
          core=SAME, mirror=SAME),
    Entry("zero_stride_classes", "broadcast arrays: stride 0 along the classes", FAMILIES, _broadcast("cols"),
          core=SAME, mirror=SAME),
    # ---- dtypes
    Entry("object_dtype", "object array", FAMILIES, _dtype(object), core=NOT_NUMERIC, mirror=NON_NUMERIC_MIRROR),
    Entry("complex_dtype", "complex128 array", FAMILIES, _dtype(np.complex128), core=NOT_NUMERIC),
    Entry("string_dtype", "string array", FAMILIES, _dtype(str), core=NOT_NUMERIC, mirror=NON_NUMERIC_MIRROR),
    Entry("bool_input", "bool first argument (promoted to float64 by the core)", FAMILIES,
          _set("x", lambda a, ep: a > 0.5)),
    Entry("int_input", "int64 first argument (promoted to float64 by the core)", FAMILIES,
          _set("x", lambda a, ep: np.round(a * 3).astype(np.int64))),
    Entry("float16_input", "float16 arrays (every float input)", FAMILIES,
          lambda inp, ep: {k: (v.astype(np.float16) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v)
                           for k, v in inp.items()}),
    Entry("none_input", "None as the first argument", FAMILIES, _with(x=None), core=NOT_NUMERIC,
          mirror=NON_NUMERIC_MIRROR),
    Entry("python_lists", "Python lists instead of arrays", FAMILIES, _as_lists, core=SAME,
          mirror={"torch": SAME, "*": FRAMEWORK}),
]


# documented, intended differences between a mirror and its framework (docs/torch.md,
# docs/tensorflow.md, docs/keras.md): (entry id, entry point name) -> (what, expectation)
_COMPLEX = ("the mirrors have no complex kernels: TypeError naming the argument, where torch raises "
            "NotImplementedError/RuntimeError or computes a complex sigmoid/logsumexp, TF a complex "
            "sigmoid, Keras an InvalidArgumentError or a value", Raises(TypeError, "x"))
MIRROR_DIFFERENCES = {
    **{("complex_dtype", ep.name): _COMPLEX for ep in ENTRY_POINTS
       if ep.fw in ("torch", "keras")},
    **{("complex_dtype", ep.name): ("TF's math ops refuse complex with InvalidArgumentError",
                                    Raises(sltf.errors.InvalidArgumentError, None))
       for ep in ENTRY_POINTS if ep.name == "tf.math.sigmoid"},
    # docs/torch.md: any integer dtype is accepted for class-index targets (torch: int64/uint8),
    # and then range-checked (IndexError, as torch's out-of-bounds target)
    **{(e, ep.name): ("any integer target dtype accepted", exp)
       for ep in TORCH_EPS if ep.family in ("index", "nll")
       for e, exp in (("label_int32", REF_TORCH_INT32), ("label_uint64_huge", Raises(IndexError, None)))},
    # torch divides a probability-target mean by numel / C, 0/0 at C = 0; the mirror by N
    ("zero_classes", "torch.nn.functional.cross_entropy[prob]"):
        ("C = 0 probability targets: the mirror's mean over 4 empty rows is 0, torch's is NaN",
         Value(lambda inp: np.float64(0.0))),
    # a 0-d input: Keras and tf.compat.v1's sparse loss fail inside with IndexError (an
    # internal 'tuple index out of range'); the mirrors raise a ValueError saying why
    **{("zero_dim_input", ep.name): ("0-d input: ValueError with a message instead of an internal "
                                     "IndexError / InvalidArgumentError", Raises(ValueError, None))
       for ep in KERAS_EPS + [e for e in TF_EPS if e.name == "tf.compat.v1.losses.sparse_softmax_cross_entropy"]},
    # strings: TF makes a string tensor; most ops refuse it by their type check
    # (InvalidArgumentError), a few fail later in a Cast (UnimplementedError); the mirror
    # refuses every string input with the InvalidArgumentError
    **{("string_dtype", ep.name): ("strings: InvalidArgumentError where TF may raise UnimplementedError",
                                   Raises(sltf.errors.InvalidArgumentError, None)) for ep in TF_EPS},
    # nested Python lists: Keras's sparse loss fails inside tf.nest (ValueError, 'Structures
    # don't have the same nested structure') or with a shape error; the mirror converts them
    **{("python_lists", ep.name): ("Python lists converted as arrays (float32 y_pred, as Keras's "
                                   "other losses)", "lists-as-float32") for ep in KERAS_EPS},
    # docs/keras.md: out-of-range sparse labels raise sl.LabelError (Keras: TF's
    # InvalidArgumentError; both are ValueErrors)
    **{(e, ep.name): ("out-of-range sparse labels: sl.LabelError", Raises(sl.LabelError, None))
       for ep in KERAS_EPS if ep.family == "index"
       for e in ("label_eq_C", "label_huge", "label_minus_one", "label_int64_min", "label_nan",
                 "label_uint64_huge", "zero_classes")},
    # tf.raw_ops' eager wrapper converts NumPy labels to the default Tlabels (int64) whatever
    # their dtype; the mirror applies the op's type check (as tf.nn's function does)
    **{(e, "tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits"):
       ("non-integer labels refused by the op's Tlabels check", Raises(sltf.errors.InvalidArgumentError, None))
       for e in ("label_float", "label_bool", "label_uint8")},
}


def _cases():
    out = []
    for e in CATALOGUE:
        for ep in ENTRY_POINTS:
            if e.applies(ep):
                out.append(pytest.param(e, ep, id=f"{e.id}-{ep.name}"))
    return out


CASES = _cases()


# --------------------------------------------------------------------------------------------
# running and comparing
# --------------------------------------------------------------------------------------------
def _arg_names(ep):
    return {"x": ep.names[0], "labels": ep.names[1]}


def named(arg):
    return rf"(?<![A-Za-z0-9_]){re.escape(arg)}(?![A-Za-z0-9_])"


def _ident(a):
    return a


def outcome(fn):
    """('value', result) or ('raise', exception)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            try:
                return "value", fn()
            except Exception as exc:      # noqa: BLE001 - the outcome is compared below
                return "raise", exc


def run_mirror(ep, inp, mode="call"):
    fn, args, kw = ep.build(ep.mirror_mod, _ident, inp)
    if mode == "call":
        return outcome(lambda: fn(*args, **kw))
    return outcome(lambda: sl.value_and_grad(fn, argnums=ep.argnum)(*args, **kw))


def _arrays(v):
    """A result as a tuple of float arrays (tensors converted)."""
    if isinstance(v, tuple):
        return tuple(a for x in v for a in _arrays(x))
    if hasattr(v, "detach"):
        v = v.detach()
    if hasattr(v, "numpy") and not isinstance(v, (np.ndarray, np.generic)):
        v = v.numpy()
    return (np.asarray(v),)


def assert_bits_equal(a, b, what):
    a, b = _arrays(a), _arrays(b)
    assert len(a) == len(b), what
    for u, v in zip(a, b):
        assert u.shape == v.shape and u.dtype == v.dtype, (what, u.shape, v.shape, u.dtype, v.dtype)
        assert np.asarray(u).tobytes() == np.asarray(v).tobytes(), (what, u, v)


def _tol(dtype):
    dt = np.dtype(dtype)
    if dt.itemsize <= 2:
        return 2e-3, 1e-3
    return (2e-5, 1e-6) if dt.itemsize == 4 else (1e-9, 1e-12)


def assert_values_close(got, want, what, tol_dtype=None):
    got, want = _arrays(got), _arrays(want)
    if any(np.iscomplexobj(a) for a in got + want):
        got = tuple(p for a in got for p in (np.real(a), np.imag(a)))
        want = tuple(p for a in want for p in (np.real(a), np.imag(a)))
    assert len(got) == len(want), what
    for g, w in zip(got, want):
        assert g.shape == w.shape, (what, g.shape, w.shape)
        assert g.dtype == w.dtype, (what, g.dtype, w.dtype)
        rtol, atol = _tol(tol_dtype or g.dtype)
        g64, w64 = g.astype(np.float64), w.astype(np.float64)
        np.testing.assert_array_equal(np.isnan(g64), np.isnan(w64), err_msg=f"{what}: NaN positions")
        np.testing.assert_array_equal(np.isposinf(g64), np.isposinf(w64), err_msg=f"{what}: +inf positions")
        np.testing.assert_array_equal(np.isneginf(g64), np.isneginf(w64), err_msg=f"{what}: -inf positions")
        fin = np.isfinite(g64) & np.isfinite(w64)
        np.testing.assert_allclose(g64[fin], w64[fin], rtol=rtol, atol=atol, err_msg=what)


# ---- the core's documented values, from the mpmath reference ------------------------------
def _f64(a):
    return np.asarray(a, dtype=np.float64)


def _ref_bce_logits(x, z, w=None, pw=None):
    """The mpmath reference, with the limits at infinite logits the core documents
    (x = -inf: 0 where L z = 0, else +inf; x = +inf: 0 where 1 - z = 0, else +inf; times w)."""
    x = _f64(x)
    inf = np.isinf(x)
    v = ref.sigmoid_cross_entropy(np.where(inf, 0.0, x), z, weight=w, pos_weight=pw)[0]
    if inf.any():
        zb = np.broadcast_to(_f64(z), x.shape)
        wb = np.broadcast_to(_f64(1.0 if w is None else w), x.shape)
        L = 1 + (np.broadcast_to(_f64(1.0 if pw is None else pw), x.shape) - 1) * zb
        coef = np.where(x < 0, L * zb, 1 - zb)
        with np.errstate(all="ignore"):
            lim = np.where(coef == 0, 0.0, np.inf * np.sign(coef)) * wb
        v = np.where(inf, lim, v)
    return v


def _ref_focal(x, z, alpha=0.25, gamma=2.0):
    ce = _ref_bce_logits(x, z)
    s, sn = ref.sigmoid(x)[0], ref.sigmoid(-_f64(x))[0]
    z = _f64(z)
    with np.errstate(all="ignore"):
        u = s * (1 - z) + sn * z
        at = alpha * z + (1 - alpha) * (1 - z)
        return at * ce * u ** gamma


def _ref_kl(x, t):
    x, t = _f64(x), _f64(t)
    with np.errstate(all="ignore"):
        v = t * (np.log(t) - x)
        return np.where(t == 0, -(t * x) + 0.0, v)


def core_reference(ep, inp):
    """The documented value of a core call (reduction='none'), float64."""
    x = inp["x"]
    x = np.asarray(x, dtype=np.float64 if np.asarray(x).dtype.kind in "biu" else None)
    y = inp.get("y")
    w, we, pw = inp.get("w"), inp.get("we"), inp.get("pw")
    ii = inp.get("ii")
    name = ep.name[3:]
    if x.ndim == 0:      # a 0-d input is one row of one element (docs/api.md)
        one = dict(inp, x=x.reshape(1), **({"y": np.asarray(y).reshape(-1 if name.endswith("[index]")
                                                                       or name == "nll_loss" else 1)}
                                          if y is not None else {}))
        return np.asarray(core_reference(ep, one)).reshape(())
    if name == "logsumexp":
        return ref.logsumexp(x)
    if name in ("softmax", "log_softmax"):
        return getattr(ref, name)(x)
    if name in ("sigmoid", "log_sigmoid"):
        return getattr(ref, name)(x)[0]
    if name == "softmax_cross_entropy[index]" and np.shape(y) == x.shape:   # the shape decides
        return ref.prob_cross_entropy(x, y, weight=w)[0]
    if name == "softmax_cross_entropy[index]":
        return ref.softmax_cross_entropy(x, y, weight=w, ignore_index=ii)[0]
    if name == "softmax_cross_entropy[prob]":
        return ref.prob_cross_entropy(x, y, weight=w)[0]
    if name == "nll_loss":
        return ref.nll_loss(x, y, weight=w, ignore_index=ii)[0]
    if name == "sigmoid_cross_entropy":
        return _ref_bce_logits(x, y, we, pw)
    if name == "binary_cross_entropy":
        return ref.binary_cross_entropy(x, y, weight=we)[0]
    if name == "kl_div":
        return _ref_kl(x, y)
    if name == "sigmoid_focal_loss":
        return _ref_focal(x, y)
    raise AssertionError(name)


def _result_dtype(x):
    dt = np.asarray(x).dtype
    if dt.kind in "biu":
        return np.dtype(np.float64)
    return dt.newbyteorder("=")


# ---- the real frameworks ---------------------------------------------------------------------
_FW_CACHE = {}


def framework(fw):
    """(module, array converter) of the real framework, or None when it is not installed."""
    if fw in _FW_CACHE:
        return _FW_CACHE[fw]
    got = None
    try:
        if fw == "torch":
            torch = importlib.import_module("torch")

            class _T:
                nn = torch.nn
                logsumexp = staticmethod(torch.logsumexp)
                try:
                    ops = importlib.import_module("torchvision.ops")
                except ImportError:
                    ops = None

            def cv(a):
                if isinstance(a, np.ndarray):
                    return torch.from_numpy(np.array(a))
                return a
            got = (_T, cv)
        elif fw == "tf":
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
            got = (importlib.import_module("tensorflow"), _ident)
        elif fw == "keras":
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
            importlib.import_module("tensorflow")
            got = (importlib.import_module("keras"), _ident)
    except ImportError:
        got = None
    _FW_CACHE[fw] = got
    return got


def run_framework(ep, inp):
    fwk = framework(ep.fw)
    if fwk is None:
        return None
    M, cv = fwk
    if ep.name == "torch.ops.sigmoid_focal_loss" and M.ops is None:
        return None                          # torchvision is not installed
    try:
        fn, args, kw = ep.build(M, cv, inp)
    except Exception as exc:                 # noqa: BLE001 - e.g. torch cannot hold the dtype
        return "raise", exc
    return outcome(lambda: fn(*args, **kw))


def _exc_matches(mine, theirs):
    """The mirror raised the framework's type: same name somewhere in the mirror's MRO
    (sl.tf.errors.InvalidArgumentError for tf.errors.InvalidArgumentError)."""
    return type(theirs).__name__ in {c.__name__ for c in type(mine).__mro__}


_FALLBACK_TYPES = (ValueError, TypeError, IndexError, RuntimeError, NotImplementedError)


# --------------------------------------------------------------------------------------------
# the test
# --------------------------------------------------------------------------------------------
def _canonical(inp):
    """Plain native-order C-contiguous copies (lists become arrays)."""
    return {k: (np.array(np.asarray(v), dtype=np.asarray(v).dtype.newbyteorder("="), order="C")
                if isinstance(v, (np.ndarray, list)) else v) for k, v in inp.items()}


def check_expectation(entry, ep, inp, got):
    exp = entry.expectation(ep)
    key = (entry.id, ep.name)
    if key in MIRROR_DIFFERENCES:
        exp = MIRROR_DIFFERENCES[key][1]
    kind, val = got
    if isinstance(exp, Raises):
        assert kind == "raise", f"expected {exp.exc.__name__}, got a value {val!r}"
        assert isinstance(val, exp.exc), f"expected {exp.exc.__name__}, got {type(val).__name__}: {val}"
        if exp.arg is not None:
            arg = _arg_names(ep).get(exp.arg, exp.arg)
            assert re.search(named(arg), str(val)), f"message does not name {arg!r}: {val}"
        return
    if isinstance(exp, Value):
        assert kind == "value", f"unexpected {type(val).__name__}: {val}"
        want = np.asarray(exp.fn(inp), dtype=np.float64).astype(_result_dtype(inp["x"]))
        assert_values_close(val, want, "the documented value")
        return
    if exp == "lists-as-float32":
        want = run_mirror(ep, {k: (np.asarray(v, np.float32) if isinstance(v, list) and k == "x" else
                                   np.asarray(v)) if isinstance(v, list) else v for k, v in inp.items()})
        assert kind == want[0]
        if kind == "value":
            assert_bits_equal(val, want[1], "lists vs float32 arrays")
        return
    if exp == REF_TORCH_INT32:
        want = run_mirror(ep, dict(inp, y=inp["y"].astype(np.int64)))
        assert kind == want[0] == "value"
        assert_bits_equal(val, want[1], "int32 labels vs int64")
        return
    if exp == SAME:
        want = run_mirror(ep, _canonical(inp))
        assert want[0] == kind, (want, got)
        if kind == "raise":
            assert type(val) is type(want[1]) and str(val) == str(want[1])
        else:
            assert_bits_equal(val, want[1], "layout vs contiguous")
        return
    if exp == REF:
        ref_raises = None
        try:
            with np.errstate(all="ignore"):
                want = core_reference(ep, inp)
        except Exception as exc:          # noqa: BLE001
            ref_raises = exc
        if ref_raises is not None:
            assert kind == "raise", f"the reference raised {ref_raises!r}; stableloss gave {val!r}"
            return
        assert kind == "value", f"unexpected {type(val).__name__}: {val}"
        rd = _result_dtype(inp["x"])
        want = np.asarray(want, dtype=np.float64).astype(rd)
        assert_values_close(val, want, "core vs the mpmath reference")
        return
    assert exp == FRAMEWORK, exp
    theirs = run_framework(ep, inp)
    if theirs is None:       # no framework here: a defined outcome, never a crash
        assert kind == "value" or isinstance(val, _FALLBACK_TYPES), repr(val)
        return
    tkind, tval = theirs
    if tkind == "raise":
        assert kind == "raise", f"{ep.fw} raised {type(tval).__name__}: {tval}; the mirror gave {val!r}"
        assert _exc_matches(val, tval), (f"{ep.fw} raised {type(tval).__name__}: {tval}; the mirror raised "
                                         f"{type(val).__name__}: {val}")
        return
    assert kind == "value", f"{ep.fw} gave {tval!r}; the mirror raised {type(val).__name__}: {val}"
    # tf.compat.v1.losses weight and reduce in float32 whatever the input dtype (as TF)
    assert_values_close(val, tval, f"mirror vs {ep.fw}",
                        np.float32 if ep.name.startswith("tf.compat.v1.") else None)


@pytest.mark.parametrize("entry,ep", CASES)
def test_catalogue(entry, ep, snapshot):
    inp = entry.modify(base_inputs(ep.family), ep)
    snapshot(inp)
    got = run_mirror(ep, inp, "call")
    check_expectation(entry, ep, inp, got)
    vg = run_mirror(ep, inp, "vg")
    if got[0] == "raise":
        assert vg[0] == "raise", f"the call raised {got[1]!r}; value_and_grad returned"
        assert type(vg[1]) is type(got[1]), (got[1], vg[1])
    else:
        if vg[0] == "raise":
            # the only legitimate reason: the differentiated argument is not differentiable
            # in this configuration (e.g. integer input to a mirror whose framework refuses)
            pytest.fail(f"value_and_grad raised {type(vg[1]).__name__}: {vg[1]} where the call returned")
        value, grad = vg[1]
        assert_bits_equal(value, got[1], "value_and_grad value vs the call")
        xin = inp["x"]
        assert np.shape(grad) == np.shape(xin), (np.shape(grad), np.shape(xin))


def test_catalogue_size():
    """At least 40 distinct entries, each applied to at least one entry point, and every
    entry point reached by at least 30 entries."""
    used = {c.values[0].id for c in CASES}
    assert len(CATALOGUE) >= 40 and used == {e.id for e in CATALOGUE}
    per_ep = {ep.name: 0 for ep in ENTRY_POINTS}
    for c in CASES:
        per_ep[c.values[1].name] += 1
    assert min(per_ep.values()) >= 30, per_ep


def catalogue_counts():
    return len(CATALOGUE), len(ENTRY_POINTS), len(CASES)


# --------------------------------------------------------------------------------------------
# labels are checked before any kernel reads with them
# --------------------------------------------------------------------------------------------
def test_labels_checked_before_the_kernels(monkeypatch):
    """A bad label never reaches a kernel: the kernels are replaced by a trap."""
    from stableloss import _dispatch as D

    def trap(*a, **k):
        raise AssertionError("a kernel ran with unchecked labels")

    for name in ("ce_index", "ce_index_half", "nll", "half_run"):
        monkeypatch.setattr(D.K, name, trap)
    x = np.zeros((3, 4))
    for bad in (4, -1, 2 ** 40, np.iinfo(np.int64).min):
        y = np.array([0, bad, 1])
        for f in (sl.softmax_cross_entropy, sl.nll_loss, sl.value_and_grad(sl.softmax_cross_entropy)):
            with pytest.raises(sl.LabelError, match="labels"):
                f(x, y)
        with pytest.raises(sl.LabelError, match="labels"):
            sl.softmax_cross_entropy(x.astype(np.float16), y)
        with pytest.raises(IndexError):
            slt.nn.functional.cross_entropy(x, y)
        with pytest.raises(sltf.errors.InvalidArgumentError):
            sltf.nn.sparse_softmax_cross_entropy_with_logits(y, x)


def test_bfloat16_is_not_refused_as_a_void_dtype():
    """ml_dtypes' bfloat16 has NumPy kind 'V' (as structured arrays do): the mirrors' checks
    that refuse void/object/string inputs must let it through."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = np.array([[1.0, 2.0, 3.0]], dtype=ml_dtypes.bfloat16)
    want = sl.softmax(x)
    for got in (sltf.nn.softmax(x), slt.nn.functional.softmax(x, dim=-1), sltf.math.sigmoid(x)):
        assert got.dtype == x.dtype
    assert_bits_equal(sltf.nn.softmax(x), want, "tf")
    assert_bits_equal(slt.nn.functional.softmax(x, dim=-1), want, "torch")


# --------------------------------------------------------------------------------------------
# > 2**31 elements: 64-bit indexing (STABLELOSS_HUGE_TESTS=1; about 9 GB)
# --------------------------------------------------------------------------------------------
HUGE = os.environ.get("STABLELOSS_HUGE_TESTS", "") not in ("", "0")


@pytest.mark.skipif(not HUGE, reason="set STABLELOSS_HUGE_TESTS=1 (needs about 9 GB of free memory)")
def test_huge_rows_64bit_indexing():
    """N x C > 2**31 float32 logits: the last rows (past element 2**31) give their own
    values, and the in-place gradient is right there too. Expected values by hand: a
    row of zeros with one entry a has lse = log(C - 1 + e^a)."""
    Cn = 1024
    Nn = (2 ** 31) // Cn + 3                  # 2**31 + 3 * 1024 elements
    x = np.zeros((Nn, Cn), np.float32)
    y = np.zeros(Nn, np.int64)
    rows = [Nn - 1, Nn - 2, 2 ** 21 - 1, 0]    # the last rows lie past 2**31 elements
    for k, r in enumerate(rows):
        x[r, 7 + k] = 5.0 + k
        y[r] = 7 + k
    lse = sl.logsumexp(x)
    for k, r in enumerate(rows):
        want = math.log(Cn - 1 + math.exp(5.0 + k))
        assert abs(float(lse[r]) - want) <= 1e-6 * want, (r, lse[r], want)
    assert float(lse[1]) == pytest.approx(math.log(Cn), rel=1e-6)
    loss = sl.softmax_cross_entropy(x, y, reduction="none")
    for k, r in enumerate(rows):
        want = math.log(Cn - 1 + math.exp(5.0 + k)) - (5.0 + k)
        assert abs(float(loss[r]) - want) <= 1e-5 * want, (r, loss[r], want)
    del lse, loss
    total, g = sl.value_and_grad(sl.softmax_cross_entropy)(x, y, reduction="sum", grad_out=x)
    assert g is x
    r = Nn - 1
    p = math.exp(5.0) / (Cn - 1 + math.exp(5.0))
    assert float(g[r, 7]) == pytest.approx(p - 1, rel=1e-5)
    assert float(g[r, 0]) == pytest.approx((1 - p) / (Cn - 1), rel=1e-5)
    del g, x
    # one row longer than 2**31 elements (the within-row index)
    big = np.zeros(2 ** 31 + 5, np.float32)
    big[-1] = 3.0
    want = math.log(2 ** 31 + 4 + math.exp(3.0))
    assert float(sl.logsumexp(big)) == pytest.approx(want, rel=1e-6)


if __name__ == "__main__":      # python tests/test_bad_inputs.py: the catalogue's size
    e, p, c = catalogue_counts()
    print(f"{e} catalogue entries x {p} entry points -> {c} applicable cases "
          f"(each: the call, value_and_grad, the input snapshot)")
