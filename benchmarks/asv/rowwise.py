"""softmax, log_softmax and logsumexp over the last axis of (N, C) logits: forward only.

Each timed call allocates its result, as a user's call would (no ``out=``).
"""
from ._base import RowwiseGrid, check_skip
from ._data import logits
from ._impls import kernel


class _Rowwise(RowwiseGrid):
    kernel_name = None

    def setup(self, shape, dtype, implementation):
        check_skip(shape, dtype, implementation)
        self.x = logits(shape, dtype)
        self.f = kernel(implementation, self.kernel_name)


class Softmax(_Rowwise):
    kernel_name = "softmax"

    def time_softmax(self, shape, dtype, implementation):
        self.f(self.x)


class LogSoftmax(_Rowwise):
    kernel_name = "log_softmax"

    def time_log_softmax(self, shape, dtype, implementation):
        self.f(self.x)


class LogSumExp(_Rowwise):
    kernel_name = "logsumexp"

    def time_logsumexp(self, shape, dtype, implementation):
        self.f(self.x)
