"""The ``implementation`` parameter: for each kernel, the callable under each name.

Forward+backward ("fb") means ``sl.value_and_grad(f)(...)``: the value and the gradient
with respect to the first argument (logits, log-probabilities or probabilities), the
default ``argnums=0``; the NumPy versions return the same pair.
"""
import stableloss as sl

from . import _numpy_ref as ref

_vg = sl.value_and_grad

KERNELS = {
    "stableloss": {
        "softmax": sl.softmax,
        "log_softmax": sl.log_softmax,
        "logsumexp": sl.logsumexp,
        # probability labels are told apart from index labels by their shape
        "ce_index_fwd": sl.softmax_cross_entropy,
        "ce_index_fb": _vg(sl.softmax_cross_entropy),
        "ce_prob_fwd": sl.softmax_cross_entropy,
        "ce_prob_fb": _vg(sl.softmax_cross_entropy),
        "nll_fwd": sl.nll_loss,
        "nll_fb": _vg(sl.nll_loss),
        "bce_logits_fwd": sl.sigmoid_cross_entropy,
        "bce_logits_fb": _vg(sl.sigmoid_cross_entropy),
        "bce_probs_fwd": sl.binary_cross_entropy,
        "bce_probs_fb": _vg(sl.binary_cross_entropy),
    },
    "numpy": {
        "softmax": ref.softmax,
        "log_softmax": ref.log_softmax,
        "logsumexp": ref.logsumexp,
        "ce_index_fwd": ref.ce_index_forward,
        "ce_index_fb": ref.ce_index_forward_backward,
        "ce_prob_fwd": ref.ce_prob_forward,
        "ce_prob_fb": ref.ce_prob_forward_backward,
        "nll_fwd": ref.nll_forward,
        "nll_fb": ref.nll_forward_backward,
        "bce_logits_fwd": ref.bce_logits_forward,
        "bce_logits_fb": ref.bce_logits_forward_backward,
        "bce_probs_fwd": ref.bce_probs_forward,
        "bce_probs_fb": ref.bce_probs_forward_backward,
    },
}


def kernel(implementation, name):
    return KERNELS[implementation][name]
