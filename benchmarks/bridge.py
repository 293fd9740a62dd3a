"""The autograd bridge against torch's own, in one run (interleaved medians).

    python benchmarks/bridge.py                 # (4096,1000) float32, CE fwd+bwd
    python benchmarks/bridge.py --shape 256x32000 --threads 2

Rows: torch ``F.cross_entropy(x, t).backward()``, the bridged
``stableloss.torch.autograd.cross_entropy(x, t).backward()``, and, for reference, the NumPy
mirror ``value_and_grad(stableloss.torch.nn.functional.cross_entropy)``. Ratios are
torch / stableloss measured in the same run (these machines are noisy: never compare absolute
times across runs).
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", default="4096x1000")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--repeat", type=int, default=15)
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    args = p.parse_args(argv)
    import numpy as np
    import torch
    import torch.nn.functional as F

    import stableloss as sl
    import stableloss.torch.autograd as B
    from stableloss.torch.nn import functional as SF
    from compare import interleaved

    nt = args.threads or sl.get_num_threads()
    torch.set_num_threads(nt)
    sl.set_num_threads(nt)
    N, C = (int(v) for v in args.shape.split("x"))
    dt = getattr(torch, args.dtype)
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(N, C, generator=g) * 3).to(dt).requires_grad_(True)
    t = torch.randint(0, C, (N,), generator=g)
    xn, tn = x.detach().numpy(), t.numpy()

    def run_torch():
        x.grad = None
        F.cross_entropy(x, t).backward()

    def run_bridge():
        x.grad = None
        B.cross_entropy(x, t).backward()

    def run_mirror():
        sl.value_and_grad(SF.cross_entropy)(xn, tn)

    # the two agree before anything is timed
    run_torch(); gt = x.grad.clone(); run_bridge()
    err = float((x.grad - gt).abs().max())
    med, _, rounds = interleaved({"torch": run_torch, "bridge": run_bridge, "mirror": run_mirror},
                                 args.repeat, 2e-3)
    print(f"CE fwd+bwd {args.shape} {args.dtype}, {nt} threads, {rounds} interleaved rounds "
          f"(max |grad diff| bridge vs torch {err:.2e})")
    for k in ("torch", "bridge", "mirror"):
        print(f"  {k:7s} {med[k] * 1e3:8.3f} ms   torch/{k} = {med['torch'] / med[k]:5.2f}")


if __name__ == "__main__":
    main()
