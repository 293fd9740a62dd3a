"""The misuse guard in stableloss.keras.losses (no Keras needed): each trigger warns with a
message naming the fix, legitimate inputs never warn, the switch silences it, the math is
unchanged either way."""
import warnings

import numpy as np
import pytest

import stableloss as sl
import stableloss.keras.losses as SL
from stableloss import _guard

LOGITS = np.array([[2.0, -1.0, 0.5], [0.3, 3.0, -2.0]], np.float32)
PROBS = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]], np.float32)
ONEHOT = np.array([[1.0, 0, 0], [0, 1, 0]])
IDX = np.array([0, 1])
IN01_NOT_ROWS = np.array([[0.9, 0.8, 0.7], [0.2, 0.1, 0.6]], np.float32)   # logits inside [0, 1]
BIN_P = np.array([[0.2, 0.9], [0.6, 0.4]], np.float32)
BIN_Y = np.array([[0.0, 1.0], [1.0, 0.0]])


@pytest.fixture(autouse=True)
def _fresh_guard():
    prev = sl.set_misuse_warnings(True)
    _guard.reset_misuse_warnings()
    yield
    _guard.reset_misuse_warnings()
    sl.set_misuse_warnings(prev)


def _warns(call, match):
    with pytest.warns(sl.MisuseWarning, match=match) as rec:
        out = call()
    assert rec[0].filename == __file__          # points at the caller's line
    return out


def _silent(call):
    with warnings.catch_warnings():
        warnings.simplefilter("error", sl.MisuseWarning)
        return call()


TRIGGERS = [
    # (name, call, fix in the message)
    ("cce fn: logits as probabilities", lambda: SL.categorical_crossentropy(ONEHOT, LOGITS), "from_logits=True"),
    ("cce class: logits as probabilities", lambda: SL.CategoricalCrossentropy()(ONEHOT, LOGITS), "from_logits=True"),
    ("cce: rows in [0,1] not summing to 1", lambda: SL.categorical_crossentropy(ONEHOT, IN01_NOT_ROWS),
     "do not sum to 1.*from_logits=True"),
    ("cce: softmax output as logits", lambda: SL.categorical_crossentropy(ONEHOT, PROBS, from_logits=True),
     "softmax output.*from_logits=False"),
    ("scce: logits as probabilities", lambda: SL.sparse_categorical_crossentropy(IDX, LOGITS), "from_logits=True"),
    ("scce class: softmax output as logits",
     lambda: SL.SparseCategoricalCrossentropy(from_logits=True)(IDX, PROBS), "from_logits=False"),
    ("bce: logits as probabilities", lambda: SL.binary_crossentropy(BIN_Y, np.array([[2.0, -3.0], [0.5, 1.5]])),
     "outside \\[0, 1\\].*from_logits=True"),
    ("bfce: logits as probabilities", lambda: SL.BinaryFocalCrossentropy()(BIN_Y, np.array([[2.0, -3.0], [0.5, 1.5]])),
     "from_logits=True"),
    ("cfce: logits as probabilities", lambda: SL.categorical_focal_crossentropy(ONEHOT, LOGITS), "from_logits=True"),
    ("cfce: softmax output as logits", lambda: SL.CategoricalFocalCrossentropy(from_logits=True)(ONEHOT, PROBS),
     "from_logits=False"),
]


@pytest.mark.parametrize("name,call,fix", TRIGGERS, ids=[t[0] for t in TRIGGERS])
def test_each_trigger_warns_with_the_fix(name, call, fix):
    warned = _warns(call, fix)
    _guard.reset_misuse_warnings()
    sl.set_misuse_warnings(False)
    quiet = _silent(call)
    np.testing.assert_array_equal(np.asarray(warned), np.asarray(quiet))   # the math is unchanged


NO_ALARM = [
    ("cce probabilities", lambda: SL.categorical_crossentropy(ONEHOT, PROBS)),
    ("cce logits", lambda: SL.CategoricalCrossentropy(from_logits=True)(ONEHOT, LOGITS)),
    ("cce logits inside [0,1]", lambda: SL.categorical_crossentropy(ONEHOT, IN01_NOT_ROWS, from_logits=True)),
    ("scce probabilities", lambda: SL.SparseCategoricalCrossentropy()(IDX, PROBS)),
    ("scce logits inside [0,1]", lambda: SL.sparse_categorical_crossentropy(IDX, IN01_NOT_ROWS, from_logits=True)),
    ("bce probabilities", lambda: SL.BinaryCrossentropy()(BIN_Y, BIN_P)),
    ("bce logits inside [0,1]", lambda: SL.binary_crossentropy(BIN_Y, np.array([[0.5, 0.5], [0.2, 0.8]]),
                                                              from_logits=True)),
    ("bce exact 0 and 1", lambda: SL.binary_crossentropy(BIN_Y, np.array([[0.0, 1.0], [1.0, 0.0]]))),
    ("bfce logits", lambda: SL.binary_focal_crossentropy(BIN_Y, np.array([[3.0, -2.0], [0.4, 0.6]]), from_logits=True)),
    ("cfce probabilities", lambda: SL.categorical_focal_crossentropy(ONEHOT, PROBS)),
    ("cfce logits inside [0,1]", lambda: SL.categorical_focal_crossentropy(ONEHOT, IN01_NOT_ROWS, from_logits=True)),
    ("scce ignored rows hold anything", lambda: SL.sparse_categorical_crossentropy(
        np.array([0, 5]), np.array([[0.7, 0.2, 0.1], [9.0, -3.0, 4.0]], np.float32), ignore_class=5)),
]


@pytest.mark.parametrize("name,call", NO_ALARM, ids=[t[0] for t in NO_ALARM])
def test_no_false_alarm(name, call):
    _silent(call)


def test_switch_and_value_and_grad_path():
    sl.set_misuse_warnings(False)
    _silent(lambda: SL.categorical_crossentropy(ONEHOT, LOGITS))
    sl.set_misuse_warnings(True)
    _warns(lambda: sl.value_and_grad(SL.CategoricalCrossentropy(), argnums=1)(ONEHOT, LOGITS),
           "from_logits=True")


def test_warns_once_per_kind():
    _warns(lambda: SL.categorical_crossentropy(ONEHOT, LOGITS), "from_logits=True")
    _silent(lambda: SL.categorical_crossentropy(ONEHOT, LOGITS))
