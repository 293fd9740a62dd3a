"""The logits/probabilities misuse guard (stableloss._guard)."""
import warnings

import numpy as np
import pytest

import stableloss as sl
from stableloss import _guard as G


@pytest.fixture(autouse=True)
def fresh():
    G.reset_misuse_warnings()
    prev = sl.set_misuse_warnings(True)
    yield
    sl.set_misuse_warnings(prev)
    G.reset_misuse_warnings()


def _probs(call, **kw):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        call(**kw)
    return [x for x in w if issubclass(x.category, sl.MisuseWarning)]


def test_out_of_range_probabilities_warn_once_naming_the_fix():
    x = np.array([[2.0, -1.0, 0.5]])
    w = _probs(G.check_probabilities, p=x, argument="y_pred", caller="f", fix="pass from_logits=True")
    assert len(w) == 1 and "outside [0, 1]" in str(w[0].message) and "from_logits=True" in str(w[0].message)
    assert _probs(G.check_probabilities, p=x, argument="y_pred", caller="f", fix="x") == []   # once


def test_rows_not_summing_to_one_warn_for_categorical_only():
    x = np.array([[0.2, 0.2, 0.2]])
    assert _probs(G.check_probabilities, p=x, argument="p", caller="g", fix="z") == []   # binary: fine
    w = _probs(G.check_probabilities, p=x, argument="p", caller="g", fix="z", axis=-1)
    assert len(w) == 1 and "do not sum to 1" in str(w[0].message)


def test_softmax_output_given_as_logits_warns():
    p = sl.softmax(np.random.default_rng(0).normal(size=(8, 5)))
    w = _probs(G.check_logits, x=p, argument="logits", caller="h", fix="pass the logits")
    assert len(w) == 1 and "softmax output" in str(w[0].message)


@pytest.mark.parametrize("x", [
    np.random.default_rng(1).uniform(0, 1, size=(16, 4)),        # logits that happen to lie in [0, 1]
    np.random.default_rng(2).normal(size=(16, 4)),
    np.array([[1.0]]),                                            # one class: always sums to 1
    np.zeros((0, 3)),
])
def test_no_false_alarm_on_legitimate_logits(x):
    assert _probs(G.check_logits, x=x, argument="logits", caller="k", fix="f") == []


def test_legitimate_probabilities_do_not_warn():
    p = sl.softmax(np.random.default_rng(3).normal(size=(16, 7)).astype(np.float32))
    assert _probs(G.check_probabilities, p=p, argument="p", caller="m", fix="f", axis=-1) == []
    assert _probs(G.check_probabilities, p=np.array([0.0, 1.0, 0.3]), argument="p", caller="m", fix="f") == []


def test_switch_silences_and_input_untouched():
    sl.set_misuse_warnings(False)
    x = np.array([[3.0, -2.0]])
    before = x.copy()
    assert _probs(G.check_probabilities, p=x, argument="p", caller="n", fix="f", axis=-1) == []
    np.testing.assert_array_equal(x, before)
