"""What a user sees: import-time warnings (serial build, a mistyped STABLELOSS_SIMD), import
cost, error messages, the mirrors' tab-completion surface and benchmarks/compare.py's report.

Import-time behaviour is tested in fresh interpreters (subprocess); a serial build is
simulated by putting a fake ``stableloss._core._build_config`` (setup.py's record of the
build, which the import-time check reads) into sys.modules before ``import stableloss``.
"""
import contextlib
import importlib
import importlib.util
import io
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import stableloss as sl
from stableloss._core import _kernels as K

ROOT = pathlib.Path(__file__).resolve().parents[1]
# the stableloss under test: src/ of a built dev tree, or site-packages when the package is
# installed (a clean clone, an unpacked sdist, a wheel test: their src/ has no extension)
SRC = str(pathlib.Path(sl.__file__).resolve().parents[1])


def _cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _run(code, env=None, script_dir=None):
    """Run `code` as a script file in a fresh interpreter (stableloss from this tree);
    returns the CompletedProcess. The script's path is in the STABLELOSS_TEST_SCRIPT env var."""
    e = {k: v for k, v in os.environ.items()
         if k not in ("STABLELOSS_SIMD", "STABLELOSS_NO_SERIAL_WARNING")}
    e["PYTHONPATH"] = SRC + os.pathsep + e.get("PYTHONPATH", "")
    e.update(env or {})
    script = pathlib.Path(script_dir) / "user_script.py"
    script.write_text(textwrap.dedent(code))
    e["STABLELOSS_TEST_SCRIPT"] = str(script)
    return subprocess.run([sys.executable, str(script)], env=e, capture_output=True, text=True, timeout=300)


# A script that (optionally) fakes the build record, imports stableloss under
# warnings.catch_warnings and prints the warnings as JSON on the last line.
_IMPORT_AND_RECORD = """
import json, os, sys, types, warnings
fake = os.environ.get("FAKE_OPENMP_BUILD")
if fake is not None:
    m = types.ModuleType("stableloss._core._build_config")
    m.OPENMP_BUILD = fake == "1"
    m.COMPILER = "fake"
    sys.modules["stableloss._core._build_config"] = m
if os.environ.get("ONE_CPU"):
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
with warnings.catch_warnings(record=True) as rec:
    warnings.simplefilter("always")
    if os.environ.get("FILTER_MESSAGE"):
        warnings.filterwarnings("ignore", message="stableloss was built without OpenMP")
    import stableloss
    import stableloss   # a second import warns nothing more
from stableloss._core import _kernels as K
print(json.dumps({"warnings": [(w.category.__name__, [c.__name__ for c in w.category.__mro__],
                               str(w.message), w.filename) for w in rec],
                  "simd_path": K.simd_path()}))
"""


def _record(tmp_path, **env):
    r = _run(_IMPORT_AND_RECORD, env=env, script_dir=tmp_path)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ serial build (no OpenMP)

needs_two_cpus = pytest.mark.skipif(_cpus() < 2, reason="the warning is for machines with more than one CPU")


@needs_two_cpus
def test_serial_build_warns_once_at_import(tmp_path):
    out = _record(tmp_path, FAKE_OPENMP_BUILD="0")
    ws = [w for w in out["warnings"] if w[0] == "SerialBuildWarning"]
    assert len(ws) == 1, out["warnings"]
    name, mro, msg, filename = ws[0]
    assert "RuntimeWarning" in mro
    assert msg.startswith("stableloss was built without OpenMP")
    # how to fix it, and how to silence it
    for part in ("libgomp", "libomp", "--force-reinstall", "--no-cache-dir", "STABLELOSS_NO_SERIAL_WARNING=1",
                 f"{_cpus()} CPUs"):
        assert part in msg, (part, msg)
    # attributed to the user's `import stableloss` line, not to stableloss or importlib
    assert filename == str(tmp_path / "user_script.py")
    assert sl.SerialBuildWarning.__name__ == "SerialBuildWarning"
    assert issubclass(sl.SerialBuildWarning, RuntimeWarning)
    assert "SerialBuildWarning" in sl.__all__


@needs_two_cpus
@pytest.mark.parametrize("env", [
    dict(FAKE_OPENMP_BUILD="0", STABLELOSS_NO_SERIAL_WARNING="1"),     # switched off
    dict(FAKE_OPENMP_BUILD="0", FILTER_MESSAGE="1"),                   # a warnings filter
    dict(FAKE_OPENMP_BUILD="0", ONE_CPU="1"),                          # nothing lost on one CPU
    dict(FAKE_OPENMP_BUILD="1"),                                       # an OpenMP build
], ids=["env-var", "filter", "one-cpu", "openmp-build"])
def test_serial_build_warning_conditions(tmp_path, env):
    out = _record(tmp_path, **env)
    assert not [w for w in out["warnings"] if w[0] == "SerialBuildWarning"], out["warnings"]


@needs_two_cpus
def test_serial_build_warning_env_var_zero_does_not_silence(tmp_path):
    out = _record(tmp_path, FAKE_OPENMP_BUILD="0", STABLELOSS_NO_SERIAL_WARNING="0")
    assert [w for w in out["warnings"] if w[0] == "SerialBuildWarning"]


def test_this_build_does_not_warn(tmp_path):
    """The real build record: no SerialBuildWarning when the extension has OpenMP."""
    if not K.openmp_enabled():
        pytest.skip("this is a serial build")
    out = _record(tmp_path)
    assert not [w for w in out["warnings"] if w[0] == "SerialBuildWarning"]


def test_python_m_stableloss_says_serial_build_loudly(tmp_path):
    code = """
    import sys, types
    m = types.ModuleType("stableloss._core._build_config")
    m.OPENMP_BUILD, m.COMPILER = False, "fake"
    sys.modules["stableloss._core._build_config"] = m
    import stableloss.__main__ as M
    M.stability_demo = M.speed_demo = lambda: None     # the configuration part only
    M.main()
    """
    r = _run(code, env={"STABLELOSS_NO_SERIAL_WARNING": "1"}, script_dir=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "SERIAL BUILD" in r.stdout and "ONE thread" in r.stdout
    flat = " ".join(r.stdout.split())                  # the banner is wrapped
    assert "libgomp" in flat and "pip install --force-reinstall --no-cache-dir" in flat
    # and an OpenMP build prints no banner
    r2 = _run(code.replace("m.OPENMP_BUILD, m.COMPILER = False", "m.OPENMP_BUILD, m.COMPILER = True"),
              script_dir=tmp_path)
    assert r2.returncode == 0, r2.stderr
    assert "SERIAL BUILD" not in r2.stdout and "openmp" in r2.stdout


# ------------------------------------------------------------------ STABLELOSS_SIMD

def test_mistyped_simd_env_var_warns_and_uses_the_automatic_choice(tmp_path):
    best = K.available_paths()[-1]           # what an unset variable selects
    out = _record(tmp_path, STABLELOSS_SIMD="avx3")
    ws = [w for w in out["warnings"] if "STABLELOSS_SIMD" in w[2]]
    assert len(ws) == 1, out["warnings"]
    name, mro, msg, filename = ws[0]
    assert name == "RuntimeWarning"
    assert "'avx3'" in msg and "baseline, avx2, avx512" in msg
    assert f"this CPU runs: {', '.join(K.available_paths())}" in msg
    assert filename == str(tmp_path / "user_script.py")
    assert out["simd_path"] == best


@pytest.mark.parametrize("value", ["baseline", "avx2", "avx512", "", " AVX2 ", "Baseline"])
def test_valid_simd_env_values_do_not_warn(tmp_path, value):
    out = _record(tmp_path, STABLELOSS_SIMD=value)
    assert not [w for w in out["warnings"] if "STABLELOSS_SIMD" in w[2]], out["warnings"]
    want = value.strip().lower()
    avail = K.available_paths()
    # a cap: the requested path if this CPU runs it, else the best below it
    expect = avail[-1] if not want else want if want in avail else avail[-1]
    assert out["simd_path"] == expect


def test_set_simd_path_rejects_unknown_names():
    before = K.simd_path()
    with pytest.raises(ValueError, match=r"'avx3' is not a SIMD path.*baseline, avx2, avx512"):
        K.set_simd_path("avx3")
    assert K.simd_path() == before


# ------------------------------------------------------------------ import cost

def test_import_does_not_import_scipy(tmp_path):
    pytest.importorskip("scipy")     # without SciPy installed the test proves nothing
    code = """
    import sys
    import stableloss
    assert not [m for m in sys.modules if m == "scipy" or m.startswith("scipy.")], "scipy imported"
    import numpy as np
    from stableloss import _dispatch as D
    rng = np.random.default_rng(0)
    h, W, t = rng.standard_normal((6, 4)), rng.standard_normal((9, 4)), rng.integers(0, 9, 6)
    stableloss.value_and_grad(stableloss.linear_cross_entropy, argnums=(0, 1))(h, W, t)
    # the gradient pass imported SciPy's BLAS on first use (the fused path still uses it)
    assert "scipy.linalg" in sys.modules and D._scipy_blas is not None and D._USE_SCIPY_BLAS
    print("ok")
    """
    r = _run(code, script_dir=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


# ------------------------------------------------------------------ label shape messages

@pytest.mark.parametrize("shape", [(4, 2), (3, 3), (3,), (4, 3, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_wrong_label_shape_names_both_forms(shape, dtype):
    x = np.zeros((4, 3))
    y = np.zeros(shape, dtype)
    with pytest.raises(ValueError) as e:
        sl.softmax_cross_entropy(x, y)
    msg = str(e.value)
    assert f"shape {shape}" in msg
    assert "integer class indices of shape (4,)" in msg
    assert "probabilities of the logits' shape (4, 3)" in msg
    assert "astype" not in msg


def test_wrong_label_shape_other_axis_and_nll():
    x = np.zeros((2, 5, 7))
    with pytest.raises(ValueError, match=r"integer class indices of shape \(2, 7\) or probabilities "
                                         r"of the logits' shape \(2, 5, 7\)"):
        sl.softmax_cross_entropy(x, np.zeros((2, 5), np.float32), axis=1)
    # nll_loss has no probability form: only the index shape is named
    with pytest.raises(ValueError) as e:
        sl.nll_loss(np.zeros((4, 3)), np.zeros((4, 2)))
    assert "integer class indices of shape (4,)" in str(e.value) and "probabilities" not in str(e.value)


def test_float_labels_of_the_index_shape_still_get_the_cast_hint():
    with pytest.raises(TypeError, match=r"cast with labels.astype\(np.int64\)"):
        sl.softmax_cross_entropy(np.zeros((4, 3)), np.zeros(4))


# ------------------------------------------------------------------ mirror modules: public names

def _real(path):
    """The framework object at dotted `path` ('torch.nn.functional', 'tf.raw_ops', ...)."""
    head, *rest = path.split(".")
    if head == "tf":
        mod = pytest.importorskip("tensorflow")
    elif head == "keras":
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        mod = pytest.importorskip("keras")
    else:
        mod = pytest.importorskip(head)
    for r in rest:
        mod = getattr(mod, r)
    return mod


def _optional(path):
    try:
        return [_real(path)]
    except pytest.skip.Exception:
        return []


# mirror module -> (the framework modules it mirrors, documented names they lack)
MIRRORS = {
    "stableloss.torch": (["torch"], set()),
    "stableloss.torch.nn": (["torch.nn"], set()),
    "stableloss.torch.nn.functional": (["torch.nn.functional"], set()),
    # docs/torch.md: ops.sigmoid_focal_loss mirrors torchvision.ops.sigmoid_focal_loss
    "stableloss.torch.ops": (["torchvision.ops?"], {"sigmoid_focal_loss"}),
    # docs/torch.md: torch.autograd.Function versions of the functions above
    "stableloss.torch.autograd": (["torch.nn.functional", "torch", "torchvision.ops?"], {"sigmoid_focal_loss"}),
    # stableloss.tf re-exports errors.InvalidArgumentError (tf.errors.InvalidArgumentError)
    "stableloss.tf": (["tf"], {"InvalidArgumentError"}),
    "stableloss.tf.nn": (["tf.nn"], set()),
    "stableloss.tf.math": (["tf.math"], set()),
    "stableloss.tf.compat": (["tf.compat"], set()),
    "stableloss.tf.compat.v1": (["tf.compat.v1"], set()),
    "stableloss.tf.compat.v1.losses": (["tf.compat.v1.losses"], set()),
    "stableloss.tf.raw_ops": (["tf.raw_ops"], set()),
    "stableloss.tf.errors": (["tf.errors"], set()),
    "stableloss.tf.keras": (["keras"], set()),
    "stableloss.tf.bridge": (["tf.nn"], set()),     # docs/tensorflow.md: the tf.nn cross-entropies as ops
    "stableloss.keras": (["keras"], set()),
    "stableloss.keras.losses": (["keras.losses"], set()),
    "stableloss.keras.config": (["keras.config"], set()),
}


@pytest.mark.parametrize("name", sorted(MIRRORS))
def test_mirror_module_dir_is_the_mirrored_names(name):
    reals, extras = MIRRORS[name]
    if name.startswith(("stableloss.torch.autograd",)):
        pytest.importorskip("torch")
    if name == "stableloss.tf.bridge":
        pytest.importorskip("tensorflow")
    mod = importlib.import_module(name)
    public = {n for n in dir(mod) if not (n.startswith("__") and n.endswith("__"))}
    assert public == set(mod.__all__), sorted(public ^ set(mod.__all__))
    frameworks = []
    for r in reals:
        frameworks += _optional(r[:-1]) if r.endswith("?") else [_real(r)]
    missing = sorted(n for n in public if n not in extras and not any(hasattr(f, n) for f in frameworks))
    assert not missing, f"{name}: not in {reals}: {missing}"


def test_torch_functional_helpers_hidden():
    from stableloss.torch.nn import functional as F
    for helper in ("check_int", "size_str", "np", "D", "V", "Args", "torch_name", "warnings"):
        assert helper not in dir(F)
    assert "cross_entropy" in dir(F)


# ------------------------------------------------------------------ torch target checks: torch's order

def _outcome(f, *args):
    try:
        f(*args)
    except Exception as e:  # noqa: BLE001 - the exception is the result compared
        return type(e).__name__, str(e)
    return "ok", ""


def _torch_F():
    torch = pytest.importorskip("torch")
    return torch, torch.nn.functional


# (input shape, target shape, target dtype): wrong batch, rank, shape and dtype together, so
# that the order of the checks decides the error. (A 0-d target with a batched input is left
# out: torch reads its batch size out of bounds.)
TARGET_CASES = [
    ((4, 3), (3,), "float32"), ((4, 3), (3, 7), "float32"), ((4, 3), (3, 2), "float32"),
    ((4, 3), (4,), "float32"), ((4, 3), (4, 2), "float32"), ((4, 3), (4, 2, 2), "bool"),
    ((4, 3), (3,), "int64"), ((4, 3), (4, 2), "int64"), ((4, 3), (4,), "uint8"),
    ((3,), (2,), "float32"), ((3,), (1, 1), "int64"), ((3,), (1, 1), "float32"), ((3,), (2,), "int64"),
    ((4, 3, 5), (4, 6), "float32"), ((4, 3, 5), (4,), "float16"), ((4, 3, 5), (4, 5), "float32"),
    ((4, 3, 5, 6), (4, 5), "float32"), ((4, 3, 5, 6), (4, 5, 7), "float32"), ((4, 3, 5, 6), (4, 5, 7), "int64"),
    ((4, 3, 5, 6), (4, 5, 6, 1), "int64"), ((4, 3, 2, 2, 2), (4, 2, 2), "bool"),
]


@pytest.mark.parametrize("xs,ts,tdtype", TARGET_CASES)
@pytest.mark.parametrize("fn", ["cross_entropy", "nll_loss"])
def test_torch_index_target_checks_match_torch(fn, xs, ts, tdtype):
    torch, TF = _torch_F()
    from stableloss.torch.nn import functional as SF
    rng = np.random.default_rng(2)
    x = rng.standard_normal(xs, dtype=np.float32)
    t = np.zeros(ts, tdtype)
    want = _outcome(getattr(TF, fn), torch.from_numpy(x), torch.from_numpy(t))
    assert _outcome(getattr(SF, fn), x, t) == want


@pytest.mark.parametrize("xs", [(4, 3, 5), (4, 3, 5, 6)])
def test_torch_nll_loss_target_of_the_input_shape_matches_torch(xs):
    torch, TF = _torch_F()
    from stableloss.torch.nn import functional as SF
    x, t = np.zeros(xs, np.float32), np.zeros(xs, np.int64)
    assert _outcome(SF.nll_loss, x, t) == _outcome(TF.nll_loss, torch.from_numpy(x), torch.from_numpy(t))


@pytest.mark.parametrize("xs,ts,tdtype", [c for c in TARGET_CASES if len(c[0]) <= 2])
def test_torch_linear_cross_entropy_target_checks_match_torch(xs, ts, tdtype):
    torch, TF = _torch_F()
    if not hasattr(TF, "linear_cross_entropy"):
        pytest.skip("torch without linear_cross_entropy")
    from stableloss.torch.nn import functional as SF
    rng = np.random.default_rng(3)
    # input (..., 5) and linear_weight (C, 5): the logits have the shape xs
    x, W = rng.standard_normal(xs[:-1] + (5,), dtype=np.float32), rng.standard_normal((xs[-1], 5), dtype=np.float32)
    t = np.zeros(ts, tdtype)
    want = _outcome(TF.linear_cross_entropy, torch.from_numpy(x), torch.from_numpy(W), torch.from_numpy(t))
    assert _outcome(SF.linear_cross_entropy, x, W, t) == want


# ------------------------------------------------------------------ benchmarks/compare.py

def _compare_module():
    spec = importlib.util.spec_from_file_location("_sl_compare", ROOT / "benchmarks" / "compare.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_compare_prints_ratios_not_targets_by_default():
    cmp = _compare_module()
    assert cmp.parse_args([]).targets is False
    assert cmp.parse_args(["--targets"]).targets is True

    def report(show):
        s = cmp.Summary(show)
        s.add("CE float32 4096x1000 fb vs torch", 3.25, ">=", 5.0)
        s.add("softmax f32 4096x1000 f", 2.5, ">=", 2.0)
        s.add("CE float32 4096x1000 fb time/limit", 1.1, "<=", 1.3)
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            s.print("summary:")
        return buf.getvalue(), cmp._target_str("fb vs torch", 3.25, ">=", 5.0, "MISS", show)

    plain, row = report(False)
    assert "3.25x" in plain and "2.50x" in plain and "1.10" in plain
    for word in ("PASS", "MISS", ">= 5", "<= 1.3", "verdict"):
        assert word not in plain, word
    assert row == "fb vs torch 3.25x"
    full, row_t = report(True)
    assert "MISS" in full and "PASS" in full and ">= 5x" in full
    assert row_t == "fb vs torch 3.25x (>= 5x) MISS"
