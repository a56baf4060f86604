"""PIL's own resize for Image.ResizeMatchesPillowOnFuzzedImages (tests/data/image_test.cpp).

usage: python3 tests/data/pil_resize.py CASES.json PIXELS.u8 OUT.u8
CASES.json lists {"h", "w", "oh", "ow", "filter": "bicubic" | "bilinear"}; PIXELS.u8 holds each case's uint8 RGB input
[h, w, 3] in turn; OUT.u8 receives each case's Image.resize((ow, oh), filter) output [oh, ow, 3] in turn.
"""
import json
import sys

import numpy as np
from PIL import Image

FILTERS = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}

cases = json.load(open(sys.argv[1]))
pixels = np.fromfile(sys.argv[2], dtype=np.uint8)
out, at = [], 0
for c in cases:
    size = c["h"] * c["w"] * 3
    image = Image.fromarray(pixels[at:at + size].reshape(c["h"], c["w"], 3))
    at += size
    out.append(np.asarray(image.resize((c["ow"], c["oh"]), FILTERS[c["filter"]])).reshape(-1))
assert at == pixels.size, "PIXELS.u8 is longer than its cases"
np.concatenate(out).tofile(sys.argv[3])
