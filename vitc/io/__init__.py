"""Reading model files: Hugging Face checkpoints and vitc's own ``.vitc`` format.

- checkpoint.py: the HF weights files (safetensors, PyTorch zip ``.bin``, sharded indexes) as NumPy
  arrays, without torch and without executing pickles.
- hf.py: an HF model folder (config.json, preprocessor_config.json, weights) and the table from HF
  tensor names to vitc's.
- vitc_file.py: the ``.vitc`` format (header and tensor checksums, write, memory-mapped or private read).
- load.py: one entry for any path (``load_any``).
- atomic.py: the one atomic file writer (temporary file, fsync, rename), and the check that an output
  never replaces an input.

Files are opened through vitc/files.py (regular files only, one JSON policy).

Nothing here runs a model; vitc/weights.py says what the tensors are.
"""

from vitc.io.checkpoint import load_state_dict, read_safetensors, read_torch_bin
from vitc.io.hf import convert_state_dict, load_hf_folder
from vitc.io.load import load_any, load_stored
from vitc.io.vitc_file import ChecksumError, NoChecksumsWarning, is_converted_file, load_converted, read_metadata

__all__ = [
    "ChecksumError",
    "NoChecksumsWarning",
    "convert_state_dict",
    "is_converted_file",
    "load_any",
    "load_converted",
    "load_hf_folder",
    "load_state_dict",
    "load_stored",
    "read_metadata",
    "read_safetensors",
    "read_torch_bin",
]
