"""Build facts and the thread policy, read at call time."""
from __future__ import annotations

import os
import platform
import sys

_num_threads = 0   # 0: omp_get_max_threads() at each call (OMP_NUM_THREADS, threadpoolctl)


def get_num_threads():
    """Threads the next kernel call may use; 0 means OpenMP's current default."""
    return _num_threads


def set_num_threads(n):
    """Set the threads stableloss kernels use (None or 0: OpenMP's default, read per call).

    Returns the previous setting. Small inputs run on one thread regardless."""
    global _num_threads
    prev = _num_threads
    if n is None:
        n = 0
    n = int(n)
    if n < 0:
        from ._core import _kernels
        n = max(1, _kernels.max_threads() + 1 + n)
    _num_threads = n
    return prev


def show_config(print_=True):
    """Print (and return as a dict) the version, OpenMP state, threads and SIMD path."""
    import numpy as np

    from . import __version__
    from ._core import _kernels
    try:
        from ._core import _build_config as bc
        compiler = bc.COMPILER
    except ImportError:  # pragma: no cover - built without setup.py's hook
        compiler = "unknown"
    info = {
        "version": __version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "platform": f"{platform.system()} {platform.machine()}",
        "compiler": compiler,
        "openmp": _kernels.openmp_enabled(),
        "default_threads": _kernels.max_threads(),
        "threads_setting": _num_threads or "auto (OpenMP default at call time)",
        "simd_path": _kernels.simd_path(),
        "simd_available": ",".join(_kernels.available_paths()),
        "simd_env": os.environ.get("STABLELOSS_SIMD", ""),
        "parallel_threshold_elements": _kernels.PARALLEL_THRESHOLD,
    }
    if print_:
        w = max(map(len, info))
        print("stableloss build configuration")
        for k, v in info.items():
            print(f"  {k:<{w}} : {v}")
    return info
