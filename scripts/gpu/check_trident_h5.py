#!/usr/bin/env python3
"""Reads pathvlm's per-slide .h5 files with h5py the way CLAM / TRIDENT / TITAN users do, and checks them.

Usage:
  python3 scripts/gpu/check_trident_h5.py TILE_OUT [EMBED_OUT]

TILE_OUT is a `pathvlm tile --out` folder (patches/*.h5), EMBED_OUT a `pathvlm embed --out` folder
(features/*.h5, shards/manifest.json). Both can be made anywhere (the GPU machine has no OpenSlide), e.g.:
  pathvlm synth slides --out /tmp/s --count 2
  pathvlm tile --slides /tmp/s --out /tmp/t --patch-size 128
  pathvlm embed --coords /tmp/t --encoder CLIP_DIR --out /tmp/e --tokens --reports /tmp/s/reports.csv
Exits non-zero with a message on the first file a TRIDENT user could not read as expected.
"""
import glob
import json
import os
import sys

import h5py
import numpy as np


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def check_coords(path, f):
    if "coords" not in f:
        fail(f"{path}: no 'coords' dataset")
    ds = f["coords"]
    coords = ds[:]
    if coords.dtype != np.int64 or coords.ndim != 2 or coords.shape[1] != 2:
        fail(f"{path}: coords is {coords.dtype} {coords.shape}, TRIDENT writes int64 (N, 2)")
    attrs = dict(ds.attrs)
    # What TRIDENT's readers, TITAN and patch-level feature extraction read from the coords attributes.
    for key in ["patch_size", "patch_size_level0", "level0_magnification", "target_magnification", "overlap",
                "name", "level0_width", "level0_height"]:
        if key not in attrs:
            fail(f"{path}: coords attribute '{key}' is missing (has {sorted(attrs)})")
    patch_size = int(attrs["patch_size"])
    ps0 = int(attrs["patch_size_level0"])
    ratio = float(attrs["level0_magnification"]) / float(attrs["target_magnification"])
    if ps0 != round(patch_size * ratio):
        fail(f"{path}: patch_size_level0 {ps0} != patch_size {patch_size} x {ratio}")
    # CLAM's Whole_Slide_Bag_FP reads patch_size px at patch_level: the same level-0 footprint as TRIDENT.
    for key in ["patch_level", "downsample", "target_patch_size", "magnification"]:
        if key not in attrs:
            fail(f"{path}: coords attribute '{key}' is missing (has {sorted(attrs)})")
    downsample = np.atleast_1d(attrs["downsample"]).astype(float)
    if abs(patch_size * downsample[0] - ps0) > 0.5:
        fail(f"{path}: CLAM would read {patch_size} px at downsample {downsample[0]}, not the {ps0} px footprint")
    if not isinstance(attrs["name"], str):
        fail(f"{path}: the 'name' attribute reads as {type(attrs['name'])}, not str")
    w, h = int(attrs["level0_width"]), int(attrs["level0_height"])
    if len(coords):
        if coords.min() < 0 or (coords[:, 0] + ps0).max() > w or (coords[:, 1] + ps0).max() > h:
            fail(f"{path}: coords fall outside the {w}x{h} level-0 image")
        # TITAN puts features on a grid of coords // patch_size_level0: cells must not collide.
        grid = coords // int(attrs.get("step_size_level0", ps0))
        if len(np.unique(grid, axis=0)) != len(grid):
            fail(f"{path}: two tiles share one grid cell")
    return coords, attrs


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        sys.exit(2)
    tile_out = sys.argv[1]
    patches = sorted(glob.glob(os.path.join(tile_out, "patches", "*.h5")))
    if not patches:
        fail(f"no {tile_out}/patches/*.h5")
    for p in patches:
        with h5py.File(p, "r") as f:
            coords, attrs = check_coords(p, f)
        print(f"ok coords {os.path.basename(p)}: {len(coords)} tiles, patch {attrs['patch_size']} "
              f"(level 0: {attrs['patch_size_level0']}), mpp {attrs.get('mpp')}")
    if len(sys.argv) < 3:
        print("PASS")
        return
    embed_out = sys.argv[2]
    feats = sorted(glob.glob(os.path.join(embed_out, "features", "*.h5")))
    if not feats:
        fail(f"no {embed_out}/features/*.h5")
    for p in feats:
        with h5py.File(p, "r") as f:
            if "features" not in f:
                fail(f"{p}: no 'features' dataset")
            features = f["features"][:]
            coords, _ = check_coords(p, f)
            if features.ndim != 2 or features.shape[0] != coords.shape[0]:
                fail(f"{p}: features {features.shape} do not match coords {coords.shape}")
            if features.dtype not in (np.float32, np.float16):
                fail(f"{p}: features are {features.dtype}")
            if not np.isfinite(features).all():
                fail(f"{p}: non-finite features")
            enc = f["features"].attrs.get("encoder")
            if not isinstance(enc, str):
                fail(f"{p}: features attribute 'encoder' reads as {type(enc)}")
            # The same tiles as the coords file the slide was tiled with.
            patch_file = os.path.join(tile_out, "patches", os.path.basename(p))
            if os.path.exists(patch_file):
                with h5py.File(patch_file, "r") as g:
                    if not np.array_equal(g["coords"][:], coords):
                        fail(f"{p}: coords differ from {patch_file}")
        print(f"ok features {os.path.basename(p)}: {features.shape} {features.dtype}")
    manifest_path = os.path.join(embed_out, "shards", "manifest.json")
    manifest = json.load(open(manifest_path))
    if manifest.get("pathvlm_manifest") != "slides/1":
        fail(f"{manifest_path}: not a slides/1 manifest")
    n = 0
    for s in manifest["shards"]:
        with h5py.File(os.path.join(embed_out, "shards", s["file"]), "r") as f:
            if f.attrs["pathvlm_schema"] != "slides/1":
                fail(f"{s['file']}: pathvlm_schema is {f.attrs['pathvlm_schema']!r}")
            for sid, g in f["slides"].items():
                if g["features"].shape[0] != g["coords"].shape[0]:
                    fail(f"{s['file']}: slide {sid} features/coords rows differ")
                for key in ["patch_size", "patch_size_level0", "mpp", "magnification", "encoder"]:
                    if key not in g.attrs:
                        fail(f"{s['file']}: slide {sid} lacks attribute {key}")
                n += 1
            if "reports" in f:
                ids = [x.decode() if isinstance(x, bytes) else x for x in f["reports/slide_id"][:]]
                if not set(ids) <= set(f["slides"].keys()):
                    fail(f"{s['file']}: reports name slides that are not in the shard")
    if n != manifest["records"]:
        fail(f"manifest lists {manifest['records']} slides, shards hold {n}")
    print(f"ok shards: {len(manifest['shards'])} files, {n} slides")
    print("PASS")


if __name__ == "__main__":
    main()
