"""Build vitc's C core (vitc._core) from csrc/*.c against OpenBLAS.

BLAS comes from the scipy-openblas32 wheel (symbols prefixed `scipy_`) unless the environment
variable VITC_BLAS=system asks for a system OpenBLAS found with pkg-config (unprefixed symbols).
Vector kernels are compiled per function with target attributes and chosen at run time, so the
library itself is built for the baseline x86-64 CPU: never -march=native.
"""

import glob
import os
import shlex
import subprocess
import sys

import numpy as np
from setuptools import Extension, setup


def blas_build_args() -> dict:
    """Include dirs, libraries and macros for the selected OpenBLAS."""
    if os.environ.get("VITC_BLAS", "scipy-openblas32") == "system":
        def pkg(flag: str) -> list[str]:
            out = subprocess.run(["pkg-config", flag, "openblas"], check=True, capture_output=True, text=True)
            return shlex.split(out.stdout)

        cflags, libs = pkg("--cflags"), pkg("--libs")
        return dict(
            include_dirs=[f[2:] for f in cflags if f.startswith("-I")],
            library_dirs=[f[2:] for f in libs if f.startswith("-L")],
            libraries=[f[2:] for f in libs if f.startswith("-l")],
            define_macros=[("BLAS_SYMBOL_PREFIX", "")],
            runtime_library_dirs=[],
        )
    import scipy_openblas32

    return dict(
        include_dirs=[scipy_openblas32.get_include_dir()],
        library_dirs=[scipy_openblas32.get_lib_dir()],
        libraries=[scipy_openblas32.get_library()],
        define_macros=[("BLAS_SYMBOL_PREFIX", "scipy_")],
        # Installed side by side in site-packages; vitc/__init__.py also preloads the library,
        # which covers editable installs.
        runtime_library_dirs=["$ORIGIN/../scipy_openblas32/lib"],
    )


blas = blas_build_args()
extra_compile_args = ["-O3", "-std=c11", "-fno-math-errno", "-Wall", "-Wno-unused-function"]
if os.environ.get("VITC_SANITIZE"):  # ASan/UBSan build for the sanitizer script
    extra_compile_args += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-O1", "-g"]

core = Extension(
    "vitc._core",
    sources=sorted(glob.glob("csrc/*.c")),
    include_dirs=["csrc", np.get_include(), *blas["include_dirs"]],
    library_dirs=blas["library_dirs"],
    libraries=blas["libraries"] + ["m", "pthread"],
    runtime_library_dirs=blas["runtime_library_dirs"],
    define_macros=blas["define_macros"]
    + [("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION"), ("NPY_TARGET_VERSION", "NPY_2_1_API_VERSION")],
    extra_compile_args=extra_compile_args,
    extra_link_args=["-fsanitize=address,undefined"] if os.environ.get("VITC_SANITIZE") else [],
)

if sys.platform != "linux":
    core.runtime_library_dirs = []

setup(ext_modules=[core])
