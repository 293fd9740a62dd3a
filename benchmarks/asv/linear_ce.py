"""Fused linear cross-entropy, forward + backward (gradients of hidden, weight and bias),
float32, mean: stableloss (chunked, no (N, V) logits) against torch's unfused path
(``F.cross_entropy(F.linear(h, W, b), t)``) and torch's chunked path
(``F.linear_cross_entropy(..., options=LinearCrossEntropyOptions())``).

Shapes are small enough for ``asv run --quick`` on 2 cores; the large shapes of
docs/linear_cross_entropy.md are in
``benchmarks/linear_ce.py`` (one subprocess per measurement, RSS high-water mark).
``peakmem_*`` is the process's peak RSS (inputs and interpreter included); the difference
between implementations is what each allocates on top.
"""
import numpy as np

from ._base import TimingDefaults

SHAPES = [(1024, 256, 8000), (512, 512, 32000)]
IMPLS = ["stableloss", "torch_unfused", "torch_chunked"]


class LinearCrossEntropy(TimingDefaults):
    params = [SHAPES, IMPLS]
    param_names = ["shape", "implementation"]
    repeat = (2, 5, 10.0)
    timeout = 600

    def setup(self, shape, implementation):
        N, d, V = shape
        rng = np.random.default_rng(0)
        h = rng.standard_normal((N, d), dtype=np.float32) * np.float32(0.5)
        W = rng.standard_normal((V, d), dtype=np.float32) / np.float32(d ** 0.5)
        b = rng.standard_normal(V, dtype=np.float32) * np.float32(0.1)
        t = rng.integers(0, V, N)
        if implementation == "stableloss":
            import stableloss as sl
            vg = sl.value_and_grad(sl.linear_cross_entropy, argnums=(0, 1, 3))
            self.fb = lambda: vg(h, W, t, b)
            return
        try:
            import torch
        except ImportError:
            raise NotImplementedError("torch is not installed")
        F = torch.nn.functional
        ht, Wt, bt, tt = (torch.from_numpy(x) for x in (h, W, b, t))
        for x in (ht, Wt, bt):
            x.requires_grad_()
        opts = torch.nn.LinearCrossEntropyOptions() if implementation == "torch_chunked" else None

        def fb():
            ht.grad = Wt.grad = bt.grad = None
            if opts is None:
                loss = F.cross_entropy(F.linear(ht, Wt, bt), tt)
            else:
                loss = F.linear_cross_entropy(ht, Wt, tt, linear_bias=bt, options=opts)
            loss.backward()
        self.fb = fb

    def time_forward_backward(self, shape, implementation):
        self.fb()

    def peakmem_forward_backward(self, shape, implementation):
        self.fb()
