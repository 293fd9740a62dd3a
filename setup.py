"""Build of the stableloss extension.

pyproject.toml declares the build requirements (setuptools, Cython 3, NumPy); this file
only assembles the Extension and probes for OpenMP.

Switches (environment variables):
  STABLELOSS_FAIL_NO_OPENMP=1   the OpenMP probe must pass (CI), else the build fails
  STABLELOSS_NO_OPENMP=1        build serial on purpose
  STABLELOSS_DEBUG_CYTHON=1     Cython bounds/wraparound/initialisation checks on
  STABLELOSS_ANNOTATE=1         cythonize(annotate=True): HTML next to the .pyx
  STABLELOSS_SANITIZE=address   build with -fsanitize=address,undefined,float-cast-overflow
                                -O1 -g, no recovery (tools/sanitize.sh builds and runs it)
  STABLELOSS_DEBUG=1            keep debug info (-g). Otherwise (GCC/Clang, no sanitizer) the
                                extension is compiled with -g0 and, on Linux, linked with
                                -Wl,--strip-debug: what wheels ship (about 1/4 of the size)
No tuning to the build machine (-march), no -ffast-math: wider vectors come from runtime dispatch
(src/stableloss/_core/include/sl_dispatch.h), and NaN/inf semantics must hold.
"""
import os
import sys
import tempfile
import textwrap

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
CORE = os.path.join("src", "stableloss", "_core")


def _probe(compiler, code, cflags, lflags, run=False):
    """Compile and link `code` with the flags; True when that works."""
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "probe.c")
        with open(src, "w") as f:
            f.write(code)
        try:
            objs = compiler.compile([src], output_dir=d, extra_postargs=cflags)
            compiler.link_executable(objs, "probe", output_dir=d, extra_postargs=lflags)
        except Exception:
            return False
        if run:
            import subprocess
            exe = os.path.join(d, "probe")
            return subprocess.run([exe], capture_output=True).returncode == 0
        return True


OMP_CODE = textwrap.dedent("""
    #include <omp.h>
    #include <stdio.h>
    int main(void) {
      int n = 0;
      #pragma omp parallel reduction(+:n)
      n += 1;
      printf("%d\\n", n);
      return n < 1;
    }""")


def openmp_flags(compiler):
    if os.environ.get("STABLELOSS_NO_OPENMP"):
        return [], []
    if compiler.compiler_type == "msvc":
        # /openmp:llvm: the kernels use `omp simd` (OpenMP 4.0),
        # beyond plain /openmp's OpenMP 2.0; its runtime is libomp140 (shipped with MSVC)
        cand = (["/openmp:llvm"], [])
    elif sys.platform == "darwin":
        cand = (["-Xpreprocessor", "-fopenmp"], ["-lomp"])
    else:
        cand = (["-fopenmp"], ["-fopenmp"])
    if _probe(compiler, OMP_CODE, *cand, run=True):
        return cand
    msg = ("stableloss: the compiler does not build OpenMP programs; building SERIAL "
           "(every call runs on one thread). Install an OpenMP runtime (libgomp/libomp) "
           "for threads.")
    if os.environ.get("STABLELOSS_FAIL_NO_OPENMP"):
        raise RuntimeError(msg)
    print("\n" + "*" * 78 + "\n" + msg + "\n" + "*" * 78 + "\n", file=sys.stderr)
    return [], []


class BuildExt(build_ext):
    def build_extensions(self):
        cflags, lflags = openmp_flags(self.compiler)
        self._write_build_config(bool(cflags))
        extra = []
        if self.compiler.compiler_type == "msvc":
            # C23 typeof (sl_dispatch.h) and _Pragma need a C11+ mode; /fp:precise keeps
            # IEEE semantics (no contraction across statements, NaN/inf honoured)
            extra = ["/O2", "/std:clatest", "/fp:precise"]
        else:
            # -O3: GCC 12's -O2 does not vectorise these loops; the two "no" flags
            # are required for if-conversion of the exp clamps and for no libm errno.
            # -ffp-contract=off: which products a contraction pass fuses into FMAs is the
            # compiler's choice (GCC and clang fuse different ones, and so give different
            # bits); the exp/log polynomials, where fusing doubles the speed, use explicit
            # fused multiply-adds in the FMA regions instead (include/sl_math_t.h), so GCC
            # and clang builds give the same bits (tools/compare_builds.py checks).
            extra = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-std=gnu11",
                     "-ffp-contract=off"]
            if not cflags and _probe(self.compiler, "int main(void){return 0;}", ["-fopenmp-simd"], []):
                extra.append("-fopenmp-simd")   # `omp simd` reductions without the runtime
            extra += ["-Wno-unused-function", "-Wno-unknown-pragmas"]
        san = os.environ.get("STABLELOSS_SANITIZE")
        sl = []
        if san:
            # tools/sanitize.sh: -O1 (after the -O3 above, so it wins) keeps the stack
            # traces readable; float-cast-overflow (float -> int out of range) is UB but
            # not in GCC's "undefined" group; no recovery: the first report aborts.
            san_flags = [f"-fsanitize={san},undefined,float-cast-overflow",
                         "-fno-sanitize-recover=undefined,float-cast-overflow"]
            extra += san_flags + ["-fno-omit-frame-pointer", "-g", "-O1"]
            sl = san_flags
        # --- packaging: no debug info in shipped binaries --------------------------------
        # Python's own CFLAGS carry -g; -g0 (last wins) drops it, and --strip-debug removes
        # any DWARF that linked-in objects bring (the symbol table stays, for profilers).
        # Kept for sanitizer builds and with STABLELOSS_DEBUG=1 (gdb, valgrind line numbers).
        if self.compiler.compiler_type != "msvc" and not san:
            if os.environ.get("STABLELOSS_DEBUG"):
                extra += ["-g"]
            else:
                extra += ["-g0"]
                if sys.platform.startswith("linux"):
                    sl = sl + ["-Wl,--strip-debug"]
        # -----------------------------------------------------------------------------------
        for ext in self.extensions:
            ext.extra_compile_args += extra + cflags
            ext.extra_link_args += lflags + sl
        super().build_extensions()

    def _write_build_config(self, openmp):
        """Record the build facts next to the extension (in-place or in build_lib), so
        show_config() can report them from an installed wheel."""
        import subprocess
        cc = getattr(self.compiler, "compiler", None) or [self.compiler.compiler_type]
        try:
            ver = subprocess.run([cc[0], "--version"], capture_output=True, text=True,
                                 timeout=20).stdout.splitlines()[0]
        except Exception:
            ver = cc[0]
        # build_lib (what wheels get) and the source tree (in-place builds: setuptools
        # builds in build_lib and copies only the .so back; the file is git-ignored)
        targets = {os.path.dirname(self.get_ext_fullpath("stableloss._core._kernels")),
                   os.path.join(HERE, CORE)}
        for target in targets:
            os.makedirs(target, exist_ok=True)
            with open(os.path.join(target, "_build_config.py"), "w") as f:
                f.write("# generated by setup.py at build time\n")
                f.write(f"OPENMP_BUILD = {openmp!r}\n")
                f.write(f"COMPILER = {ver!r}\n")


directives = {
    "language_level": 3,
    "boundscheck": False,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": False,
}
if os.environ.get("STABLELOSS_DEBUG_CYTHON"):
    directives.update(boundscheck=True, wraparound=True, initializedcheck=True)

ext = Extension(
    "stableloss._core._kernels",
    [os.path.join(CORE, "_kernels.pyx")],
    include_dirs=[os.path.join(CORE, "include"), np.get_include()],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")],
    depends=[os.path.join(CORE, "include", h) for h in
             ("sl_math.h", "sl_math_t.h", "sl_dispatch.h", "sl_kernels_impl.h", "sl_rows_t.h", "sl_elem_t.h", "sl_omp.h")],
)

setup(
    ext_modules=cythonize([ext], compiler_directives=directives,
                          annotate=bool(os.environ.get("STABLELOSS_ANNOTATE"))),
    cmdclass={"build_ext": BuildExt},
)
