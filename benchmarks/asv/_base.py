"""Parameter grids and timing defaults shared by the benchmark classes.

The defaults keep a full ``asv run`` affordable on a 2-core machine: one process per
parameter combination (``rounds = 1``), one call per sample (asv forces that anyway when
a benchmark has a ``setup``), 3 to 25 samples within about 1.5 s, a short warm-up. The
warm-up matters: the first call in a process pays page faults on fresh output arrays and
wakes the OpenMP pool. Override from the command line, e.g.
``asv run -a repeat=50 -a rounds=2``.
"""
from ._data import DTYPES, ELEMENTWISE_SHAPES, IMPLEMENTATIONS, ROW_SHAPES

# (shape, dtype, implementation) combinations that setup() reports as skipped (asv shows
# them as "n/a"). Empty: the whole grid runs in a few minutes with --quick. Put entries
# here (or raise NotImplementedError in a setup) if a machine cannot afford some of them.
SKIP = frozenset()


class TimingDefaults:
    rounds = 1
    number = 1
    repeat = (3, 25, 1.5)
    warmup_time = 0.05
    min_run_count = 2
    # the NumPy version of a (65536, 1000) float64 forward+backward takes about 1.5 s on a
    # 2-core machine; setup (data generation) and the process start count towards this
    timeout = 300


class RowwiseGrid(TimingDefaults):
    """Softmax-family kernels: logits (N, C) with N x C in ROW_SHAPES."""
    params = [ROW_SHAPES, DTYPES, IMPLEMENTATIONS]
    param_names = ["shape", "dtype", "implementation"]


class ElementwiseGrid(TimingDefaults):
    """Elementwise losses (BCE): 4e6 elements as (4000, 1000), and (1000000, 10)."""
    params = [ELEMENTWISE_SHAPES, DTYPES, IMPLEMENTATIONS]
    param_names = ["shape", "dtype", "implementation"]


def check_skip(shape, dtype, implementation):
    if (shape, dtype, implementation) in SKIP:
        raise NotImplementedError(f"{implementation} {shape} {dtype}: skipped (see _base.SKIP)")
