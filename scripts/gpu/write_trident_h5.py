#!/usr/bin/env python3
"""Writes K per-slide feature .h5 files exactly as TRIDENT does, a slide CSV manifest listing them, and a JSON of
every value written, so a C++ reader (data::SlideBagDataset) can be checked against h5py-written files.

Usage:
  python3 scripts/gpu/write_trident_h5.py OUT [--slides 3] [--dim 16] [--dtype float16|float32] [--seed 0]

Writes:
  OUT/features/<slide>.h5   TRIDENT IO.save_h5: `features` [N,D] (chunks (1, D); attrs name, savetodir, encoder)
                            and `coords` int64 [N,2] (attrs patch_size, patch_size_level0, level0_magnification,
                            target_magnification, overlap, name, savetodir, level0_width, level0_height)
  OUT/slides.csv            slide_id,features,report,label (relative paths; reports with commas, quotes, newlines)
  OUT/expected.json         {"dim": D, "dtype": ..., "slides": [{"slide_id", "report", "label", "features" (as
                            float32 lists, the stored values), "coords"}]}
"""
import argparse
import csv
import json
import os

import h5py
import numpy as np


def write_slide(path, name, features, coords, savetodir):
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("features", data=features, chunks=(1, features.shape[1]))
        ds.attrs.update({"name": name, "savetodir": savetodir, "encoder": "conch_v15"})
        ds = f.create_dataset("coords", data=coords)
        ds.attrs.update({"patch_size": 512, "patch_size_level0": 1024, "level0_magnification": 40,
                         "target_magnification": 20, "overlap": 0, "name": name, "savetodir": savetodir,
                         "level0_width": 120000, "level0_height": 90000})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--slides", type=int, default=3)
    ap.add_argument("--dim", type=int, default=16)
    ap.add_argument("--dtype", choices=["float16", "float32"], default="float16")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    os.makedirs(os.path.join(a.out, "features"), exist_ok=True)
    expected = {"dim": a.dim, "dtype": a.dtype, "slides": []}
    rows = []
    for k in range(a.slides):
        name = f"TCGA-{k:02d}"
        n = 5 + 7 * k
        features = rng.standard_normal((n, a.dim)).astype(a.dtype)
        coords = (np.stack([np.arange(n) % 10, np.arange(n) // 10], axis=1) * 1024).astype(np.int64)
        write_slide(os.path.join(a.out, "features", name + ".h5"), name, features, coords, a.out)
        report = f'Slide {k}: carcinoma, grade {k % 3 + 1}.\n"Margins" clear.'
        label = ["BRCA", "LUAD", "KIRC"][k % 3]
        rows.append([name, f"features/{name}.h5", report, label])
        expected["slides"].append({"slide_id": name, "report": report, "label": label,
                                   "features": features.astype(np.float32).tolist(), "coords": coords.tolist()})
    with open(os.path.join(a.out, "slides.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["slide_id", "features", "report", "label"])
        w.writerows(rows)
    with open(os.path.join(a.out, "expected.json"), "w") as f:
        json.dump(expected, f)
    print(f"wrote {a.slides} TRIDENT slides ({a.dtype}, D={a.dim}) to {a.out}")


if __name__ == "__main__":
    main()
