"""Write the seed corpora for the fuzz targets: small valid files made by transformers, torch and vitc,
and every hand-made hostile file of tests/test_hostile_files.py (the tables in tests/hostile_cases.py).

    python tools/fuzz/seeds.py OUT_DIR   # creates OUT_DIR/{safetensors,torch_bin,sharded,vitc}/

Not a test: the files are inputs the fuzzer mutates. The model is tiny (hidden 8, 1 layer, 4x4 image,
patch 2) so every valid seed fits in the targets' -max_len; the few hostile files that are larger
(nesting bombs) are truncated by libFuzzer when loaded.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import ViTConfig, ViTForImageClassification, ViTModel

from vitc.convert import convert as convert_to_vitc

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from hostile_cases import SHARD_SEPARATOR, seed_files  # noqa: E402

TINY = dict(
    image_size=4,
    patch_size=2,
    num_channels=3,
    hidden_size=8,
    num_hidden_layers=1,
    num_attention_heads=2,
    intermediate_size=8,
    num_labels=2,
)


def tiny_models() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    cls = ViTForImageClassification(ViTConfig(**TINY)).eval()
    bare = ViTModel(ViTConfig(**TINY), add_pooling_layer=True).eval()
    return {"cls": cls, "bare": bare}


def main(out: Path) -> None:
    dirs = {k: out / k for k in ("safetensors", "torch_bin", "sharded", "vitc")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for kind, model in tiny_models().items():
            folder = tmp / kind
            model.save_pretrained(folder)
            st = (folder / "model.safetensors").read_bytes()
            (dirs["safetensors"] / f"{kind}.safetensors").write_bytes(st)
            sd = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
            torch.save(sd, tmp / "x.bin")
            (dirs["torch_bin"] / f"{kind}.bin").write_bytes((tmp / "x.bin").read_bytes())
            for dtype in ("float32", "bfloat16", "int8"):  # reduced files hold packed tensors
                vitc_path = convert_to_vitc(folder, tmp / f"{kind}-{dtype}.vitc", dtype=dtype, progress=False)
                (dirs["vitc"] / f"{kind}-{dtype}.vitc").write_bytes(vitc_path.read_bytes())
        # Small odd-but-valid tensors: half types, shared storage views, empty tensors, OrderedDict.
        base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
        odd = {
            "half": torch.ones(3, dtype=torch.float16),
            "bf16": torch.ones(2, 2, dtype=torch.bfloat16),
            "t": base.t(),
            "row": base[1],
            "empty": torch.empty(0, 3),
            "i64": torch.arange(3),
        }
        torch.save(odd, tmp / "odd.bin")
        (dirs["torch_bin"] / "odd.bin").write_bytes((tmp / "odd.bin").read_bytes())
        save_file({k: v.contiguous() for k, v in odd.items()}, tmp / "odd.safetensors")
        (dirs["safetensors"] / "odd.safetensors").write_bytes((tmp / "odd.safetensors").read_bytes())
        # Sharded: the index names one shard; the shard's bytes follow the separator.
        for name, shard in (("s.safetensors", tmp / "odd.safetensors"), ("s.bin", tmp / "odd.bin")):
            index = {"metadata": {}, "weight_map": {k: name for k in odd}}
            data = json.dumps(index).encode() + SHARD_SEPARATOR + shard.read_bytes()
            (dirs["sharded"] / f"{name}.seed").write_bytes(data)
    # The hand-made hostile files, the .vitc ones as mutations of each valid .vitc seed.
    good_vitc = {p.name: p.read_bytes() for p in sorted(dirs["vitc"].iterdir())}
    for target, files in seed_files(good_vitc).items():
        for name, data in files.items():
            (dirs[target] / name).write_bytes(data)
    for k, d in dirs.items():
        print(f"{k}: {len(list(d.iterdir()))} seeds, largest {max(p.stat().st_size for p in d.iterdir())} bytes")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "tools/fuzz/corpus"))
