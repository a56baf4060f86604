"""Writes the images of Image.DecodesAsPilDoes (tests/data/image_test.cpp) into tests/data/decode/ and prints the
CRC-32 of the RGB bytes Pillow + transformers give for each: Image.open(path), then convert_to_rgb (an image that is
not RGB is converted to RGBA and composited onto white). Needs Pillow and numpy.

usage: python3 tests/data/decode_vectors.py [OUT_DIR]
JPEG: CMYK with Adobe's inverted samples, as Pillow and Photoshop write them, without and with Pillow's chroma
subsampling (the first component sampled 2x2, the others 1x1: libturbojpeg 2.1's header reader refused that layout);
a progressive gray JPEG; a colour JPEG with junk bytes before its end-of-image marker (libjpeg warns, Pillow decodes).
TIFF (NCT-CRC-HE-100K's tiles are TIFFs): RGB with LZW and JPEG compression, each with an orientation tag (Pillow
turns the image by it: 180 degrees, and 90 with width and height swapped); gray + unassociated alpha (packbits); a
palette (deflate); CMYK; bilevel; two pages (the first is the image).
WebP (img2dataset's and WebDataset shards' other format): lossy and lossless, each without and with alpha.
"""
import os
import sys
import zlib

import numpy as np
from PIL import Image


def pattern(h, w, channels):
    y, x, c = np.meshgrid(np.arange(h), np.arange(w), np.arange(channels), indexing="ij")
    smooth = (x * 255 // (w - 1) + y * 97 // (h - 1) + c * 60) % 256
    noise = ((y * 73856093) ^ (x * 19349663) ^ (c * 83492791)) >> 7 & 31
    return np.clip(smooth + noise - 16, 0, 255).astype(np.uint8)


def convert_to_rgb(image):
    if image.mode == "RGB":
        return image
    rgba = image.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255)), rgba).convert("RGB")


out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "decode")
os.makedirs(out, exist_ok=True)
path = lambda name: os.path.join(out, name)

cmyk = Image.fromarray(pattern(20, 28, 4), "CMYK")
cmyk.save(path("cmyk.jpg"), quality=90, subsampling=0)
cmyk.save(path("cmyk_subsampled.jpg"), quality=75, subsampling=2)
Image.fromarray(pattern(19, 23, 1)[..., 0], "L").save(path("gray_progressive.jpg"), quality=85, progressive=True)
Image.fromarray(pattern(17, 30, 3), "RGB").save(path("rgb_junk_before_eoi.jpg"), quality=80)
data = open(path("rgb_junk_before_eoi.jpg"), "rb").read()
assert data[-2:] == b"\xff\xd9"
open(path("rgb_junk_before_eoi.jpg"), "wb").write(data[:-2] + b"\x01\x02\x03" + data[-2:])

rgb = Image.fromarray(pattern(21, 26, 3), "RGB")
rgb.save(path("rgb_lzw.tif"), compression="tiff_lzw", tiffinfo={274: 3})  # Orientation: rotated 180 degrees
rgb.save(path("rgb_jpeg.tif"), compression="jpeg", quality=80, tiffinfo={274: 6})  # rotated 90 degrees clockwise
Image.fromarray(pattern(18, 24, 2), "LA").save(path("gray_alpha.tif"), compression="packbits")
rgb.convert("P", palette=Image.ADAPTIVE, colors=16).save(path("palette.tif"), compression="tiff_adobe_deflate")
Image.fromarray(pattern(15, 22, 4), "CMYK").save(path("cmyk.tif"))
rgb.convert("1").save(path("bilevel.tif"))
rgb.save(path("two_pages.tif"), save_all=True, append_images=[Image.fromarray(pattern(9, 9, 3), "RGB")])

Image.fromarray(pattern(19, 27, 3), "RGB").save(path("rgb_lossy.webp"), quality=80)
Image.fromarray(pattern(22, 17, 4), "RGBA").save(path("rgba_lossy.webp"), quality=70)
Image.fromarray(pattern(18, 25, 3), "RGB").save(path("rgb_lossless.webp"), lossless=True)
Image.fromarray(pattern(16, 21, 4), "RGBA").save(path("rgba_lossless.webp"), lossless=True)

for name in sorted(os.listdir(out)):
    image = Image.open(path(name))
    image.load()  # before its size is read: loading a TIFF turns it by its orientation
    pixels = np.ascontiguousarray(np.array(convert_to_rgb(image)))
    print(f'    {{"{name}", {pixels.shape[0]}, {pixels.shape[1]}, 0x{zlib.crc32(pixels.tobytes()):08X}u}},')
