"""pytest configuration for the docstring examples of the package.

``python -m pytest --doctest-modules src/stableloss`` (or ``--doctest-modules --pyargs
stableloss`` for an installed copy) runs every ``>>>`` example of the modules. The modules
that import PyTorch or TensorFlow when imported are left out when that framework is not
installed; every other module runs with NumPy alone.
"""
import importlib.util

collect_ignore: list[str] = []
if importlib.util.find_spec("torch") is None:
    collect_ignore.append("torch/autograd.py")
if importlib.util.find_spec("tensorflow") is None:
    collect_ignore.append("tf/bridge.py")
