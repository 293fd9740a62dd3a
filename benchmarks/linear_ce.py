"""Fused linear cross-entropy: stableloss vs torch unfused vs torch chunked.

Forward + backward of ``cross_entropy(h @ W.T + b, t)`` (mean) with the gradients of
hidden, weight and bias, float32, on the shapes of docs/linear_cross_entropy.md. Each measurement runs in a fresh
subprocess: inputs are allocated, the RSS high-water mark is reset (/proc/self/clear_refs),
one call is timed and its peak extra memory recorded as
``VmHWM - RSS(inputs) - bytes(returned gradients)``; further calls give the time (median).
Implementations are interleaved round by round, so drifting machine load hits all alike.

    python benchmarks/linear_ce.py                       # the three default shapes, 1 round
    python benchmarks/linear_ce.py --shapes 2048,1024,32000 --rounds 3 --reps 2
    python benchmarks/linear_ce.py --impls stableloss,torch_unfused --skip-big
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

SHAPES = [(2048, 1024, 32000), (4096, 2048, 128256), (8192, 512, 50257)]
IMPLS = ("stableloss", "torch_unfused", "torch_chunked")


def _rss():
    with open("/proc/self/status") as f:
        st = dict(line.split(":", 1) for line in f)
    return int(st["VmRSS"].split()[0]) * 1024, int(st["VmHWM"].split()[0]) * 1024


def _reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _child(impl, N, d, V, reps, chunk):
    import numpy as np
    rng = np.random.default_rng(0)
    h = (rng.standard_normal((N, d), dtype=np.float32) * 0.5)
    W = (rng.standard_normal((V, d), dtype=np.float32) / np.float32(d ** 0.5))
    b = rng.standard_normal(V, dtype=np.float32) * np.float32(0.1)
    t = rng.integers(0, V, N)
    if impl == "stableloss":
        sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
        import stableloss as sl
        vg = sl.value_and_grad(sl.linear_cross_entropy, argnums=(0, 1, 3))

        def run():
            loss, (gh, gw, gb) = vg(h, W, t, b, chunk_size=chunk)
            return float(loss), (gh, gw, gb)
    else:
        import torch
        import torch.nn.functional as F
        ht, Wt, bt, tt = (torch.from_numpy(x) for x in (h, W, b, t))
        ht.requires_grad_(); Wt.requires_grad_(); bt.requires_grad_()
        opts = None
        if impl == "torch_chunked":
            from torch.nn import LinearCrossEntropyOptions
            opts = LinearCrossEntropyOptions()

        def run():
            ht.grad = Wt.grad = bt.grad = None
            if opts is None:
                loss = F.cross_entropy(F.linear(ht, Wt, bt), tt)
            else:
                loss = F.linear_cross_entropy(ht, Wt, tt, linear_bias=bt, options=opts)
            loss.backward()
            return float(loss), (ht.grad, Wt.grad, bt.grad)
    rss0, _ = _rss()
    ok = _reset_peak()
    t0 = time.perf_counter()
    loss, grads = run()
    t1 = time.perf_counter() - t0
    _, hwm = _rss()
    gbytes = sum(g.numel() * g.element_size() if hasattr(g, "numel") else g.nbytes for g in grads)
    del grads
    times = [t1]
    for _ in range(reps - 1):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    print(json.dumps({"impl": impl, "shape": [N, d, V], "loss": loss, "times": times,
                      "peak_extra": (hwm - rss0 - gbytes) if ok else None,
                      "inputs": int(h.nbytes + W.nbytes + b.nbytes + t.nbytes), "grads": gbytes}))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", nargs="*", help="N,d,V (default: the three of docs/linear_cross_entropy.md)")
    ap.add_argument("--impls", default=",".join(IMPLS))
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--reps", type=int, default=1, help="calls per subprocess (the first also gives memory)")
    ap.add_argument("--chunk", type=int, default=None, help="stableloss chunk_size (default: automatic)")
    ap.add_argument("--skip-big", action="store_true", help="leave out (4096, 2048, 128256)")
    ap.add_argument("--json", help="append the raw records to this file")
    ap.add_argument("--_child", nargs=6, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._child:
        impl, N, d, V, reps, chunk = args._child
        return _child(impl, int(N), int(d), int(V), int(reps), None if chunk == "None" else int(chunk))
    shapes = [tuple(int(v) for v in s.split(",")) for s in args.shapes] if args.shapes else list(SHAPES)
    if args.skip_big:
        shapes = [s for s in shapes if s != (4096, 2048, 128256)]
    impls = args.impls.split(",")
    recs = []
    for shape in shapes:
        for r in range(args.rounds):
            for impl in impls:
                cmd = [sys.executable, __file__, "--_child", impl, *map(str, shape), str(args.reps), str(args.chunk)]
                p = subprocess.run(cmd, capture_output=True, text=True)
                if p.returncode != 0:
                    print(f"{impl} {shape}: failed\n{p.stderr[-2000:]}", file=sys.stderr)
                    continue
                rec = json.loads(p.stdout.strip().splitlines()[-1])
                rec["round"] = r
                recs.append(rec)
                print(f"  {impl:14s} {shape}  time {min(rec['times']):8.3f} s  peak extra "
                      f"{rec['peak_extra'] / 2**20:9.1f} MiB  loss {rec['loss']:.6f}", flush=True)
    if args.json:
        with open(args.json, "a") as f:
            for rec in recs:
                f.write(json.dumps(rec) + "\n")
    print("\n| (N, d, V) | impl | time (s, median of runs) | peak extra memory (MiB) |\n|---|---|---|---|")
    for shape in shapes:
        for impl in impls:
            rs = [r for r in recs if tuple(r["shape"]) == shape and r["impl"] == impl]
            if not rs:
                continue
            ts = sorted(t for r in rs for t in r["times"])
            med = ts[len(ts) // 2]
            pk = max(r["peak_extra"] for r in rs) / 2**20
            print(f"| {shape} | {impl} | {med:.2f} | {pk:.0f} |")


if __name__ == "__main__":
    sys.exit(main())
