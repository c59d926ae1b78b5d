"""ImageNet-1k class names, index -> "tench, Tinca tinca" style, as in transformers' class table
(src/transformers/utils/imagenet_classes.py) and the kakaobrain config.json. The table is data
(WordNet lemmas of the ILSVRC-2012 synsets in index order), stored in tests/data."""

import json
from pathlib import Path

IMAGENET_ID2LABEL = {
    int(k): v for k, v in json.loads((Path(__file__).parent / "data" / "imagenet_id2label.json").read_text()).items()
}
