#!/usr/bin/env python3
"""Check that TensorBoard reads back every scalar pathvlm wrote.

pathvlm encodes its TensorBoard event files itself (src/core/tensorboard.cpp). This loads a run
directory's event file(s) with TensorBoard's own EventAccumulator and checks that every scalar in
metrics.jsonl is there, at the same step, with the same value (float32, as TensorBoard stores it).

  python3 scripts/gpu/check_tensorboard.py runs/<name>
  # without a training run: let the C++ test write a run directory first
  python3 scripts/gpu/check_tensorboard.py --test-binary build/tests/test_core /tmp/pathvlm_tb_check

Exit status 0 when everything matches; 1 with a list of the differences otherwise.
"""
import argparse
import glob
import json
import math
import os
import subprocess
import sys

import numpy as np


def load_jsonl(path):
    records = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if line:
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as e:
                    sys.exit(f"{path}:{n}: not JSON: {e}")
    return records


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="run directory holding metrics.jsonl and events.out.tfevents.*")
    parser.add_argument("--test-binary", help="first run this test_core binary to write run_dir "
                        "(gtest Metrics.WritesJsonlAndTensorBoardWithTheSameScalars with PATHVLM_METRICS_OUT)")
    args = parser.parse_args()

    if args.test_binary:
        os.makedirs(args.run_dir, exist_ok=True)
        for old in glob.glob(os.path.join(args.run_dir, "*")):
            os.remove(old)
        env = dict(os.environ, PATHVLM_METRICS_OUT=args.run_dir)
        subprocess.run([args.test_binary, "--gtest_filter=Metrics.WritesJsonlAndTensorBoardWithTheSameScalars"],
                       env=env, check=True)

    from tensorboard import version as tb_version
    from tensorboard.backend.event_processing import event_accumulator

    jsonl = os.path.join(args.run_dir, "metrics.jsonl")
    if not os.path.exists(jsonl):
        sys.exit(f"{jsonl}: not found")
    event_files = sorted(glob.glob(os.path.join(args.run_dir, "events.out.tfevents.*")))
    if not event_files:
        sys.exit(f"{args.run_dir}: no events.out.tfevents.* file")

    # One accumulator per file (a resumed run has several); the size guidance 0 keeps every event.
    scalars = {}  # tag -> {step: [values]}
    for path in event_files:
        acc = event_accumulator.EventAccumulator(path, size_guidance={event_accumulator.SCALARS: 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            for ev in acc.Scalars(tag):
                scalars.setdefault(tag, {}).setdefault(ev.step, []).append(ev.value)

    problems, checked = [], 0
    for n, record in enumerate(load_jsonl(jsonl), 1):
        step = record["step"]
        for tag, value in record.items():
            if tag in ("step", "time"):
                continue
            got = scalars.get(tag, {}).get(step)
            if not got:
                problems.append(f"metrics.jsonl:{n}: {tag} at step {step} is missing from the event file")
                continue
            want = float("nan") if value is None else float(np.float32(value))
            if not any((math.isnan(want) and math.isnan(g)) or g == want for g in got):
                problems.append(f"metrics.jsonl:{n}: {tag} at step {step}: TensorBoard has {got}, jsonl has {value}")
            checked += 1

    print(f"tensorboard {tb_version.VERSION}: {len(event_files)} event file(s), {len(scalars)} tags, "
          f"{checked} scalars checked against metrics.jsonl")
    if checked == 0:
        problems.append("metrics.jsonl holds no scalars")
    for p in problems:
        print("MISMATCH", p)
    print("OK" if not problems else f"FAILED: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
