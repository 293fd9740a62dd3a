"""Shared pytest configuration: the `slow` marker (opt in with --runslow or -m slow),
hypothesis profiles (STABLELOSS_HYPOTHESIS_PROFILE=ci|thorough), and the kernel
build check."""
import os

import pytest

try:
    from hypothesis import HealthCheck, settings

    settings.register_profile("ci", max_examples=60, deadline=None,
                              suppress_health_check=[HealthCheck.too_slow])
    settings.register_profile("thorough", max_examples=5000, deadline=None,
                              suppress_health_check=[HealthCheck.too_slow])
    settings.load_profile(os.environ.get("STABLELOSS_HYPOTHESIS_PROFILE", "ci"))
except ImportError:  # pragma: no cover
    pass


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow") or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: use --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def pytest_report_header(config):
    import stableloss as sl
    info = sl.show_config(print_=False)
    return (f"stableloss {info['version']}: openmp={info['openmp']} threads={info['default_threads']} "
            f"simd={info['simd_path']} (available {info['simd_available']})")


# --- hypothesis profiles for tests/test_properties.py ---
# A no-op while the block above registers "ci"/"thorough"; keeps test_properties.py working
# (ci by default, STABLELOSS_HYPOTHESIS_PROFILE=thorough for long runs) if that block changes.
try:
    from hypothesis import HealthCheck as _HC, settings as _settings
    from hypothesis.errors import InvalidArgument as _InvalidArgument

    for _name, _n in (("ci", 60), ("thorough", 5000)):
        try:
            _settings.get_profile(_name)
        except _InvalidArgument:
            _settings.register_profile(_name, max_examples=_n, deadline=None,
                                       suppress_health_check=[_HC.too_slow])
    _settings.load_profile(os.environ.get("STABLELOSS_HYPOTHESIS_PROFILE", "ci"))
except ImportError:  # pragma: no cover
    pass
# --- end of appended block ---
