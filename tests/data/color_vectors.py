"""Prints the cases of ColorAugment.AdjustmentsArePillowsPixelForPixel (tests/data/color_augment_test.cpp): the CRC-32
of the RGB bytes that torchvision's ColorJitter and Grayscale give on PIL images (their functions written out below, as
torchvision's _functional_pil has them: ImageEnhance for brightness, contrast and saturation, an 8-bit hue shift in
Pillow's HSV) for a synthetic noise image (the test's pattern_image kind 0) and the shared H&E tiles. Needs Pillow and
numpy.

usage: python3 tests/data/color_vectors.py [SHARED_DATA_DIR]
"""
import glob
import os
import sys
import zlib

import numpy as np
from PIL import Image, ImageEnhance


def pattern_image(h, w):
    y, x, c = np.meshgrid(np.arange(h), np.arange(w), np.arange(3), indexing="ij")
    return (((y * 73856093) ^ (x * 19349663) ^ (c * 83492791)) >> 7 & 255).astype(np.uint8)


def adjust_hue(img, hue_factor):
    h, s, v = img.convert("HSV").split()
    np_h = np.array(h, dtype=np.uint8)
    np_h += np.array(hue_factor * 255).astype(np.uint8)  # wraps, as torchvision means it to
    return Image.merge("HSV", (Image.fromarray(np_h, "L"), s, v)).convert("RGB")


OPS = {
    "brightness": lambda img, f: ImageEnhance.Brightness(img).enhance(f),
    "contrast": lambda img, f: ImageEnhance.Contrast(img).enhance(f),
    "saturation": lambda img, f: ImageEnhance.Color(img).enhance(f),
    "hue": adjust_hue,
    "gray": lambda img, f: Image.fromarray(np.dstack([np.array(img.convert("L"))] * 3), "RGB"),
}
CASES = [("brightness", 0.6), ("brightness", 1.37), ("contrast", 0.55), ("contrast", 1.4), ("saturation", 0.0),
         ("saturation", 0.62), ("saturation", 1.33), ("hue", -0.5), ("hue", -0.1), ("hue", 0.037), ("hue", 0.1),
         ("hue", 0.5), ("gray", 0.0)]

shared = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../../../shared/data")
images = [("pattern", Image.fromarray(pattern_image(31, 23), "RGB"))]
images += [(os.path.basename(p), Image.open(p).convert("RGB")) for p in sorted(glob.glob(shared + "/tiles/he_*.png"))]
for name, img in images:
    for op, factor in CASES:
        out = np.ascontiguousarray(np.array(OPS[op](img, factor), dtype=np.uint8))
        print('      {"%s", "%s", %r, 0x%08xu},' % (name, op, factor, zlib.crc32(out.tobytes())))
