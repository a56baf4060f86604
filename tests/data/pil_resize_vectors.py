"""Prints the cases of Image.ResizeIsPilBicubicBitForBit (tests/data/image_test.cpp): the CRC-32 of the RGB bytes
PIL's Image.resize(..., BICUBIC) gives for synthetic images (the same formulas as the test's pattern_image) and for
the shared H&E tiles. Needs Pillow and numpy.

usage: python3 tests/data/pil_resize_vectors.py [SHARED_DATA_DIR]
"""
import glob
import os
import sys
import zlib

import numpy as np
from PIL import Image


def pattern_image(h, w, kind):
    y, x, c = np.meshgrid(np.arange(h), np.arange(w), np.arange(3), indexing="ij")
    if kind == 0:  # noise: every overshoot PIL clips between its two passes
        return (((y * 73856093) ^ (x * 19349663) ^ (c * 83492791)) >> 7 & 255).astype(np.uint8)
    return np.where((x // 5 + y // 7 + c) % 2 == 1, 255, 0).astype(np.uint8)  # hard edges


def crc(image, oh, ow):
    return zlib.crc32(np.ascontiguousarray(np.array(image.resize((ow, oh), Image.BICUBIC))).tobytes())


SYNTHETIC = [(256, 256, 224, 224), (37, 53, 16, 20), (20, 24, 45, 31), (9, 7, 9, 14), (300, 200, 224, 149),
             (1000, 3, 5, 200), (1, 1, 3, 2)]
SIZES = [(224, 224), (336, 336), (100, 150)]

shared = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data")
for kind in (0, 1):
    for h, w, oh, ow in SYNTHETIC:
        print(f"    {{{kind}, {h}, {w}, {oh}, {ow}, 0x{crc(Image.fromarray(pattern_image(h, w, kind)), oh, ow):08X}u}},")
for path in sorted(glob.glob(os.path.join(shared, "tiles", "*.png"))):
    for oh, ow in SIZES:
        print(f'    {{"{os.path.basename(path)}", {oh}, {ow}, 0x{crc(Image.open(path).convert("RGB"), oh, ow):08X}u}},')
