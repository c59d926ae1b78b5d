"""Build vitc's C core (vitc._core) from csrc/**/*.c against OpenBLAS.

BLAS comes from the scipy-openblas32 wheel (symbols prefixed `scipy_`) unless the environment
variable VITC_BLAS=system asks for a system OpenBLAS found with pkg-config (unprefixed symbols).
Vector kernels are compiled per function with target attributes and chosen at run time, so the
library itself is built for the baseline x86-64 CPU: never -march=native.
"""

import glob
import hashlib
import os
import shlex
import shutil
import subprocess
import sys

import numpy as np
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

BLAS_CHOICES = ("scipy-openblas32", "system")


def blas_choice() -> str:
    """VITC_BLAS, checked: unset (or empty) means the scipy-openblas32 wheel."""
    choice = os.environ.get("VITC_BLAS") or "scipy-openblas32"
    if choice not in BLAS_CHOICES:
        raise RuntimeError(
            f"VITC_BLAS: expected unset, 'scipy-openblas32' or 'system', got {choice!r}"
        )
    return choice


def pkg_config_openblas(flag: str) -> list[str]:
    """`pkg-config <flag> openblas`, with an error that says what to install instead of a traceback."""
    exe = shutil.which("pkg-config")
    if exe is None:
        raise RuntimeError(
            "VITC_BLAS=system: pkg-config was not found on PATH; install pkg-config and OpenBLAS "
            "with its openblas.pc (e.g. apt-get install pkg-config libopenblas-dev), or unset "
            "VITC_BLAS to build against the scipy-openblas32 wheel"
        )
    out = subprocess.run([exe, flag, "openblas"], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(
            f"VITC_BLAS=system: `pkg-config {flag} openblas` failed (is openblas.pc installed and on "
            f"PKG_CONFIG_PATH?): {out.stderr.strip()}"
        )
    return shlex.split(out.stdout)


def blas_build_args(choice: str) -> dict:
    """Include dirs, libraries, macros and rpath for the selected OpenBLAS."""
    if choice == "system":
        cflags, libs = pkg_config_openblas("--cflags"), pkg_config_openblas("--libs")
        library_dirs = [f[2:] for f in libs if f.startswith("-L")]
        return dict(
            include_dirs=[f[2:] for f in cflags if f.startswith("-I")],
            library_dirs=library_dirs,
            libraries=[f[2:] for f in libs if f.startswith("-l")],
            define_macros=[("BLAS_SYMBOL_PREFIX", "")],
            # An OpenBLAS outside the loader's default path (a prefix, a multiarch subdirectory
            # such as openblas-pthread/) is then still found at import without LD_LIBRARY_PATH.
            runtime_library_dirs=library_dirs,
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


class BuildExt(build_ext):
    """build_ext that resolves the BLAS when building (not when setup.py is merely read, so an
    sdist or metadata step needs no pkg-config) and rebuilds when the build choice changed.

    distutils skips an extension whose output is newer than its sources and depends; it cannot
    see that VITC_BLAS or VITC_SANITIZE changed, and would keep an object built for the other
    BLAS. A stamp file per output path in build_temp records the last choice; a different one
    forces the rebuild.
    """

    def run(self):
        choice = blas_choice()
        sanitize = bool(os.environ.get("VITC_SANITIZE"))
        blas = blas_build_args(choice)
        for ext in self.extensions:
            configure(ext, blas, sanitize)
        stamp_text = f"VITC_BLAS={choice}\nVITC_SANITIZE={int(sanitize)}\nblas={sorted(blas.items())}\n"
        stamps = [self.stamp_path(ext) for ext in self.extensions]
        if any(read_text(stamp) != stamp_text for stamp in stamps):
            self.force = True
        super().run()
        for stamp in stamps:  # written only after a successful build
            os.makedirs(os.path.dirname(stamp), exist_ok=True)
            with open(stamp, "w") as f:
                f.write(stamp_text)

    def stamp_path(self, ext) -> str:
        # In-place and wheel builds share build_temp but not their output: one stamp per output.
        out = os.path.abspath(self.get_ext_fullpath(ext.name))
        return os.path.join(self.build_temp, f"build-choice-{hashlib.sha1(out.encode()).hexdigest()[:12]}.txt")


def read_text(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return None


def configure(ext: Extension, blas: dict, sanitize: bool) -> None:
    ext.include_dirs = ["csrc", np.get_include(), *blas["include_dirs"]]
    ext.library_dirs = list(blas["library_dirs"])
    ext.libraries = blas["libraries"] + ["m", "pthread"]
    ext.runtime_library_dirs = list(blas["runtime_library_dirs"]) if sys.platform == "linux" else []
    ext.define_macros = blas["define_macros"] + [
        ("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION"),
        ("NPY_TARGET_VERSION", "NPY_2_1_API_VERSION"),
    ]
    ext.extra_compile_args = ["-O3", "-std=c11", "-fno-math-errno", "-Wall", "-Wno-unused-function"]
    ext.extra_link_args = []
    if sanitize:  # ASan/UBSan build for the sanitizer script
        ext.extra_compile_args += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-O1", "-g"]
        ext.extra_link_args += ["-fsanitize=address,undefined"]


core = Extension(
    "vitc._core",
    sources=sorted(glob.glob("csrc/**/*.c", recursive=True)),
    # Headers too: editing one rebuilds the extension (distutils compares these with the output).
    depends=sorted(glob.glob("csrc/**/*.h", recursive=True) + glob.glob("csrc/**/*.inc", recursive=True)),
)

setup(ext_modules=[core], cmdclass={"build_ext": BuildExt})
