# The one place the version is written: pyproject.toml reads it (dynamic = ["version"],
# [tool.setuptools.dynamic]) and stableloss.__version__ imports it. No imports here, so
# setuptools can evaluate it without the compiled extension.
__version__ = "0.1.0"
