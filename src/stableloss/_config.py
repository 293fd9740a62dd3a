"""Build facts and the thread policy, read at call time."""
from __future__ import annotations

import os
import platform
import sys
import threading
import warnings
from types import FrameType
from typing import Any, Dict, Literal

_num_threads = 0   # 0: omp_get_max_threads() at each call (OMP_NUM_THREADS, threadpoolctl)
_forked = False    # in a child made by fork(): GNU OpenMP's thread pool did not survive it


def _after_fork_in_child():
    global _forked
    _forked = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def user_stacklevel() -> int:
    """The `stacklevel` that makes warnings.warn, called in the function that calls this,
    name the first frame outside stableloss: the user's call, or their ``import
    stableloss`` line. importlib's bootstrap frames are passed over uncounted, as
    warnings.warn itself passes over them."""
    level = 1
    f: FrameType | None = sys._getframe(1)
    while f is not None:
        fn = f.f_code.co_filename
        if not ("importlib" in fn and "_bootstrap" in fn):
            if not f.f_globals.get("__name__", "").startswith("stableloss"):
                break
            level += 1
        f = f.f_back
    return level


def warn_user(message, category):
    """warnings.warn attributed to the first frame outside stableloss."""
    warnings.warn(message, category, stacklevel=user_stacklevel())


class SerialBuildWarning(RuntimeWarning):
    """This stableloss was compiled without OpenMP: every call runs on one thread.

    Warned once, at import, on a machine with more than one CPU. Silence it with the
    environment variable STABLELOSS_NO_SERIAL_WARNING=1 (set before the import), or a
    warnings filter on its message (``"stableloss was built without OpenMP"``)."""


def openmp_build():
    """Whether the extension was compiled with OpenMP (setup.py's record; the compiled
    flag when the record is missing)."""
    try:
        from ._core import _build_config as bc
        return bool(bc.OPENMP_BUILD)
    except (ImportError, AttributeError):
        from ._core import _kernels
        return bool(_kernels.openmp_enabled())


def _usable_cpus():
    """The CPUs this process may run on."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def _cpus():
    return len(_usable_cpus())


SERIAL_BUILD_FIX = ("install an OpenMP runtime for the compiler (Linux: GCC ships libgomp; with clang "
                    "install libomp-dev; macOS: brew install libomp) and rebuild stableloss: "
                    "pip install --force-reinstall --no-cache-dir --no-binary stableloss stableloss "
                    "(from a source tree: pip install --force-reinstall --no-cache-dir .)")


def serial_build_message():
    """The warning text for a serial build, or None if this build has OpenMP."""
    if openmp_build():
        return None
    return (f"stableloss was built without OpenMP (a serial build): every call runs on one thread "
            f"although {_cpus()} CPUs are available. To use them, {SERIAL_BUILD_FIX}. "
            f"Set STABLELOSS_NO_SERIAL_WARNING=1 to silence this warning.")


def warn_if_serial_build():
    """Called once, at import: a SerialBuildWarning on a serial build when the process may
    run on more than one CPU, unless STABLELOSS_NO_SERIAL_WARNING is set (not "0")."""
    if os.environ.get("STABLELOSS_NO_SERIAL_WARNING", "0").strip() not in ("", "0"):
        return
    if _cpus() < 2:
        return
    msg = serial_build_message()
    if msg is not None:
        warn_user(msg, SerialBuildWarning)


_physical = None


def physical_cores() -> int:
    """Physical cores among the CPUs this process may run on (hyper-threads counted once)."""
    global _physical
    if _physical is None:
        cores = set()
        for c in _usable_cpus():
            try:
                with open(f"/sys/devices/system/cpu/cpu{c}/topology/thread_siblings_list") as f:
                    cores.add(f.read().strip())
            except OSError:
                cores.add(str(c))
        _physical = max(1, len(cores))
    return _physical


def get_num_threads() -> int:
    """Threads the next kernel call may use (small inputs still run on one).

    The global setting (set_num_threads) if any; else OpenMP's current maximum, which
    honours OMP_NUM_THREADS, threadpoolctl and torch.set_num_threads, capped at the
    number of physical cores unless OMP_NUM_THREADS asks for more explicitly."""
    if _forked:
        return 1
    if _num_threads:
        return _num_threads
    from ._core import _kernels
    mt = _kernels.max_threads()
    if os.environ.get("OMP_NUM_THREADS"):
        return mt
    return max(1, min(mt, physical_cores()))


# Calls in flight, across Python threads (a call nested in another, e.g. a mirror calling a
# core impl, counts once): the default thread count is shared among them, so a Python thread
# pool of k workers each calling stableloss does not run k full OpenMP teams on the cores.
_active = 0
_active_lock = threading.Lock()
_tls = threading.local()


class concurrent_call:
    """Context manager around one public call (the dispatch layer enters it)."""

    __slots__ = ()

    def __enter__(self) -> concurrent_call:
        global _active
        depth = getattr(_tls, "depth", 0)
        _tls.depth = depth + 1
        if depth == 0:
            with _active_lock:
                _active += 1
        return self

    def __exit__(self, *exc: object) -> Literal[False]:
        global _active
        _tls.depth -= 1
        if _tls.depth == 0:
            with _active_lock:
                _active -= 1
        return False


def active_calls() -> int:
    """How many stableloss calls are running now, in all Python threads."""
    return _active


def resolve_threads(n_threads: int | None, name: str = "n_threads") -> int:
    """A call's n_threads keyword: None -> the default, shared among concurrent calls;
    else a positive int, used as given.

    The default is get_num_threads() divided among the stableloss calls running at the same
    time in other Python threads (at least 1 each): k pool workers on c cores get about c/k
    threads each instead of oversubscribing the cores. Results do not depend on the thread
    count (bitwise), so this only changes speed.

    In a process forked from one that may have run OpenMP, every call runs on one thread:
    libgomp's worker threads do not exist in the child, and a parallel region there can
    hang (docs/reliability.md); use the "spawn"/"forkserver" start methods for parallel
    children."""
    n = _requested_threads(n_threads, name)       # validated in the child too
    if _forked:
        return 1
    if n_threads is None and _active > 1:
        n = max(1, n // _active)
    return n


def _requested_threads(n_threads, name):
    if n_threads is None:
        return get_num_threads()
    if isinstance(n_threads, bool) or not isinstance(n_threads, (int,)) and not hasattr(n_threads, "__index__"):
        raise TypeError(f"{name}: expected a positive integer or None, got {type(n_threads).__name__}")
    n = int(n_threads)
    if n < 1:
        raise ValueError(f"{name}: expected a positive integer or None, got {n}")
    return n


def set_num_threads(n: int) -> int:
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


def show_config(print_: bool = True) -> Dict[str, Any]:
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
        "openmp": openmp_build(),
        "default_threads": get_num_threads(),
        "omp_max_threads": _kernels.max_threads(),
        "physical_cores": physical_cores(),
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
