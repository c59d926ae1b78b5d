"""vitc: Vision Transformer inference on the CPU with a C core.

The kernels of a ViT layer are NumPy ufuncs (``vitc.gelu``, ``vitc.layer_norm``, ``vitc.linear``,
``vitc.attention``, ...); ``vitc.ViT`` runs Hugging Face ViT checkpoints with the same outputs as
transformers.
"""

from __future__ import annotations

import ctypes
import os


def _preload_openblas() -> None:
    # The extension links libscipy_openblas.so by soname with an rpath into site-packages;
    # loading it here first also covers editable installs, where that rpath points nowhere.
    try:
        import scipy_openblas32
    except ImportError:  # built against a system OpenBLAS (VITC_BLAS=system)
        return
    lib = os.path.join(scipy_openblas32.get_lib_dir(), scipy_openblas32.get_library(fullname=True))
    ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)


_preload_openblas()

try:
    from vitc import _core  # noqa: E402
except ImportError as exc:
    import glob

    if glob.glob(os.path.join(os.path.dirname(__file__), "_core.*")):
        raise  # built, but cannot load (a missing BLAS library, an ABI mismatch): the error says why
    # The source tree without its built extension, e.g. imported from inside a checkout.
    raise ImportError(
        f"vitc's C extension (vitc._core) is not built in {os.path.dirname(__file__)}: install vitc "
        "with 'pip install .' and import it from outside the source tree, or build it in place with "
        f"'pip install -e .' ({exc})"
    ) from exc
from vitc import testing  # noqa: E402
from vitc._core import attention, gelu, gelu_tanh, layer_norm, linear, mlp, softmax  # noqa: E402
from vitc.config import ViTConfig  # noqa: E402
from vitc.convert import convert  # noqa: E402
from vitc.default_model import load_default_model, sample_images  # noqa: E402
from vitc.eval import EvalResult, evaluate, merge  # noqa: E402
from vitc.eval.output import OutputFileError, OutputInUseError  # noqa: E402
from vitc.io.hub import ModelNotFoundError  # noqa: E402
from vitc.io.vitc_file import ChecksumError  # noqa: E402
from vitc.model import ViT, ViTOutput  # noqa: E402
from vitc.predict import Prediction, Predictions, attention_rollout  # noqa: E402
from vitc.preprocess import ImageLoadError, ImageMissingError, ImageProcessor  # noqa: E402
from vitc.runtime import __version__, get_num_threads, set_num_threads, show_config  # noqa: E402

__all__ = [
    "__version__",
    "attention",
    "gelu",
    "gelu_tanh",
    "layer_norm",
    "linear",
    "mlp",
    "softmax",
    "get_num_threads",
    "set_num_threads",
    "show_config",
    "ViTConfig",
    "convert",
    "load_default_model",
    "sample_images",
    "ImageProcessor",
    "ViT",
    "ViTOutput",
    "Prediction",
    "Predictions",
    "attention_rollout",
    "EvalResult",
    "evaluate",
    "merge",
    # errors worth catching by name
    "ChecksumError",
    "ImageLoadError",
    "ImageMissingError",
    "ModelNotFoundError",
    "OutputFileError",
    "OutputInUseError",
]
