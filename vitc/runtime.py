"""Run-time settings: the thread count, and a report of how vitc was built (version, BLAS, kernels)."""

from __future__ import annotations

import operator
import sys

from vitc import _core

# The package version (vitc.__version__ re-exports it; pyproject.toml states it for packaging).
__version__ = "0.1.0"


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in vitc's kernels and in its BLAS (default: all cores).

    ``n`` is any integer (Python or NumPy), 1 <= n <= 4096; a bool is rejected as a likely mistake.
    """
    if isinstance(n, bool):
        raise TypeError("set_num_threads: expected an int, got bool")
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"set_num_threads: expected an int, got {type(n).__name__}") from None
    _core.set_num_threads(n)


def get_num_threads() -> int:
    """Threads vitc and its BLAS use."""
    return _core.get_num_threads()


def config_dict() -> dict:
    """What :func:`show_config` prints, as a dict."""
    blas = _core.blas_info()
    version = blas["config"].split()[1] if blas["config"].startswith("OpenBLAS") else "unknown"
    return {
        "vitc": __version__,
        "blas": {
            "library": "OpenBLAS",
            "version": version,
            "config": blas["config"],
            "core_type": blas["corename"],
        },
        "num_threads": get_num_threads(),
        "cpu_features": _core.cpu_features(),
        "tier": _core.tier(),
        "supported_tiers": list(_core.supported_tiers()),
        "kernels": _core.kernels(),
    }


def show_config(file=None) -> None:
    """Print the vitc version, the BLAS (library, version, core type), threads, CPU features, the
    kernel tier and, per op, the code that runs at it."""
    file = file or sys.stdout
    c = config_dict()
    print(f"vitc {c['vitc']}", file=file)
    print(f"BLAS: {c['blas']['library']} {c['blas']['version']} (core: {c['blas']['core_type']})", file=file)
    print(f"  config: {c['blas']['config']}", file=file)
    print(f"threads: {c['num_threads']}", file=file)
    print(f"CPU features: {' '.join(c['cpu_features']) or 'none detected'}", file=file)
    print(f"tier: {c['tier']} (supported here: {', '.join(c['supported_tiers'])}; VITC_TIER caps it)", file=file)
    print("kernels: " + ", ".join(f"{k}: {v}" for k, v in c["kernels"].items()), file=file)
