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
