"""The cross-entropy family, forward and forward+backward, reduction "mean" (the default).

- ``time_forward``: ``f(input, labels)``.
- ``time_forward_backward``: ``sl.value_and_grad(f)(input, labels)``: the loss and its
  gradient with respect to the first argument, from one fused call (NumPy: one function
  returning both).
- ``peakmem_forward_backward`` (cross-entropy with index labels): peak resident memory of
  the benchmark process, inputs (~N*C*itemsize) and interpreter included, after one
  forward+backward call; the difference between the two implementations is what each
  allocates on top of its inputs (stableloss: the gradient; NumPy: the gradient plus
  temporaries).
- ``CrossEntropyIndexAllocations.track_forward_backward_alloc``: the same question
  answered exactly by ``tracemalloc`` (bytes allocated through NumPy/Python at the peak of
  one call); memory a compiled kernel takes with ``malloc`` is not seen there.
"""
import tracemalloc

from ._base import ElementwiseGrid, RowwiseGrid, TimingDefaults, check_skip
from ._data import (
    DTYPES, IMPLEMENTATIONS, ROW_SHAPES, binary_labels, index_labels, log_probs, logits,
    prob_labels, probs,
)
from ._impls import kernel


class _Loss:
    """setup() resolves the two kernels ``<prefix>_fwd`` / ``<prefix>_fb`` and the inputs."""
    prefix = None

    def make_args(self, shape, dtype):
        raise NotImplementedError

    def setup(self, shape, dtype, implementation):
        check_skip(shape, dtype, implementation)
        self.args = self.make_args(shape, dtype)
        self.fwd = kernel(implementation, self.prefix + "_fwd")
        self.fb = kernel(implementation, self.prefix + "_fb")

    def time_forward(self, shape, dtype, implementation):
        self.fwd(*self.args)

    def time_forward_backward(self, shape, dtype, implementation):
        self.fb(*self.args)


class CrossEntropyIndex(_Loss, RowwiseGrid):
    """softmax_cross_entropy(logits (N, C), int64 class indices (N,))."""
    prefix = "ce_index"

    def make_args(self, shape, dtype):
        return logits(shape, dtype), index_labels(shape)

    def peakmem_forward_backward(self, shape, dtype, implementation):
        self.fb(*self.args)


class CrossEntropyProb(_Loss, RowwiseGrid):
    """softmax_cross_entropy(logits (N, C), probability labels (N, C)); gradient wrt logits."""
    prefix = "ce_prob"

    def make_args(self, shape, dtype):
        return logits(shape, dtype), prob_labels(shape, dtype)


class NLLLoss(_Loss, RowwiseGrid):
    """nll_loss(log-probabilities (N, C), int64 class indices (N,))."""
    prefix = "nll"

    def make_args(self, shape, dtype):
        return log_probs(shape, dtype), index_labels(shape)


class SigmoidCrossEntropy(_Loss, ElementwiseGrid):
    """sigmoid_cross_entropy(logits, binary labels): BCE with logits; gradient wrt logits."""
    prefix = "bce_logits"

    def make_args(self, shape, dtype):
        return logits(shape, dtype), binary_labels(shape, dtype)


class BinaryCrossEntropy(_Loss, ElementwiseGrid):
    """binary_cross_entropy(probabilities, binary labels), policy "clamp"; gradient wrt probs."""
    prefix = "bce_probs"

    def make_args(self, shape, dtype):
        return probs(shape, dtype), binary_labels(shape, dtype)


class CrossEntropyIndexAllocations(TimingDefaults):
    """Bytes allocated (tracemalloc) at the peak of one cross-entropy forward+backward call.

    Exact and repeatable, unlike RSS: the gradient alone is N*C*itemsize bytes, so the
    ratio to that number is the count of full-size buffers a call needs.
    """
    params = [ROW_SHAPES, DTYPES, IMPLEMENTATIONS]
    param_names = ["shape", "dtype", "implementation"]
    unit = "bytes"

    def setup(self, shape, dtype, implementation):
        check_skip(shape, dtype, implementation)
        self.args = logits(shape, dtype), index_labels(shape)
        self.fb = kernel(implementation, "ce_index_fb")

    def track_forward_backward_alloc(self, shape, dtype, implementation):
        tracemalloc.start()
        try:
            result = self.fb(*self.args)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        del result
        return peak
