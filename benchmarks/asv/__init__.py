"""asv (airspeed velocity) benchmark suite for stableloss.

This folder is asv's ``benchmark_dir`` (see ``asv.conf.json`` at the repository root and
``docs/benchmarks.md``). asv imports every module in it, so it holds only the suite:

- ``rowwise.py``   softmax, log_softmax, logsumexp (forward)
- ``losses.py``    cross-entropy (index and probability labels), nll_loss,
                   sigmoid_cross_entropy, binary_cross_entropy: forward and forward+backward;
                   peak memory of cross-entropy forward+backward
- ``accuracy.py``  ``track_`` benchmarks: float32 error against a float64 computation
- ``_data.py``     inputs, generated once per (kind, shape, dtype) with fixed seeds
- ``_numpy_ref.py`` the plain-NumPy implementation every benchmark is compared with
- ``_impls.py``    the ``implementation`` parameter: name -> callable

Every timing benchmark takes the parameters ``(shape, dtype, implementation)`` with
``implementation`` in ("stableloss", "numpy"), so asv prints and plots both side by side.
"""
