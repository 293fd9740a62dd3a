"""Thread scaling of the fused CE forward+backward against PyTorch, same process,
interleaved medians. For the 16-core machine: python benchmarks/scaling.py 1 4 16
Prints per shape and thread count: stableloss ms, torch ms, torch/stableloss, and
stableloss's parallel efficiency t(1) / (n * t(n)).
"""
import statistics
import sys
import time

import numpy as np

import stableloss as sl

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover
    torch = None


def interleaved(fns, rounds):
    for f in fns:
        f()
    ts = [[] for _ in fns]
    for _ in range(rounds):
        for i, f in enumerate(fns):
            t0 = time.perf_counter()
            f()
            ts[i].append(time.perf_counter() - t0)
    return [statistics.median(t) * 1e3 for t in ts]


def main():
    threads = [int(a) for a in sys.argv[1:]] or [1, 2]
    shapes = [(4096, 1000), (65536, 1000), (8, 128256), (256, 32000), (1000000, 10)]
    rng = np.random.default_rng(0)
    info = sl.show_config(print_=False)
    print(f"stableloss simd={info['simd_path']} openmp={info['openmp']} physical_cores={info['physical_cores']}"
          f" torch={torch.__version__ if torch else 'absent'}")
    print(f"{'shape':>14} {'thr':>4} | {'sl fb ms':>9} {'sl g= ms':>9} {'torch fb':>9} | {'torch/sl':>8} {'sl eff':>7}")
    for N, C in shapes:
        x = (rng.standard_normal((N, C)) * 3).astype(np.float32)
        t = rng.integers(0, C, N)
        g = np.empty_like(x)
        vg = sl.value_and_grad(sl.softmax_cross_entropy)
        base = None
        for nt in threads:
            fns = [lambda: vg(x, t, n_threads=nt), lambda: vg(x, t, n_threads=nt, grad_out=g)]
            if torch is not None:
                torch.set_num_threads(nt)
                xl = torch.from_numpy(x).requires_grad_()
                tt = torch.from_numpy(t)

                def tfb():
                    xl.grad = None
                    F.cross_entropy(xl, tt).backward()
                fns.append(tfb)
            rounds = 7 if N * C >= 6e7 else 15
            r = interleaved(fns, rounds)
            if base is None:
                base = (nt, r[1])
            eff = base[1] * base[0] / (nt * r[1])
            tr = f"{r[2]:9.3f} | {r[2] / r[0]:8.2f}" if len(r) > 2 else f"{'-':>9} | {'-':>8}"
            print(f"{str((N, C)):>14} {nt:>4} | {r[0]:9.3f} {r[1]:9.3f} {tr} {eff:7.2f}", flush=True)


if __name__ == "__main__":
    main()
