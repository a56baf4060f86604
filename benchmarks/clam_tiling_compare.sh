#!/usr/bin/env bash
# pathvlm `tile --grid clam` against CLAM's own create_patches_fp.py on the same slides and parameters: wall time of
# each, and whether the coords are the same (values and order). Prints a markdown row for benchmarks/RESULTS.md.
#
#   benchmarks/clam_tiling_compare.sh CLAM_DIR [PATHVLM] [COUNT] [WIDTH] [HEIGHT]
#
# CLAM_DIR is a checkout of mahmoodlab/CLAM; its python ($PYTHON, else python3) needs openslide-python, opencv-python, h5py, pandas, numpy
# (matplotlib and tqdm are stood in for when missing). The slides are `pathvlm synth slides` (JPEG tiles, 5 levels);
# segmentation on the level OpenSlide picks for downsample 64, 256 px tiles at level 0, four_pt, padding on; both
# save a picture of the segmentation per slide (CLAM's mask, pathvlm's QA thumbnail).
set -euo pipefail
clam=$(realpath "$1")
pathvlm=$(realpath "${2:-build/release/pathvlm}")
count=${3:-4}
width=${4:-8192}
height=${5:-6144}
python=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$pathvlm" synth slides --out "$work/synth" --count "$count" --width "$width" --height "$height" --levels 5 \
  --seed 1 > /dev/null
mkdir -p "$work/slides" && mv "$work"/synth/*.tiff "$work/slides/"  # CLAM opens every file of its --source
# A preset with CLAM's defaults except the areas (a_t 100 reference tiles is sized for 100k px slides). CLAM's
# create_patches_fp keeps only their integer part (its process list stores them as integers).
mkdir -p "$work/presets"
cat > "$work/presets/bench.csv" <<'CSV'
seg_level,sthresh,mthresh,close,use_otsu,a_t,a_h,max_n_holes,vis_level,line_thickness,white_thresh,black_thresh,use_padding,contour_fn,keep_ids,exclude_ids
-1,8,7,4,False,1,1,8,-1,250,5,50,True,four_pt,none,none
CSV
mkdir -p "$clam/presets"
cp "$work/presets/bench.csv" "$clam/presets/pathvlm_bench.csv"
mkdir -p "$work/shim"
"$python" -c "import tqdm" 2>/dev/null || echo "def tqdm(x=None, *a, **k): return x" > "$work/shim/tqdm.py"
if ! "$python" -c "import matplotlib.pyplot" 2>/dev/null; then
  mkdir -p "$work/shim/matplotlib" && touch "$work/shim/matplotlib/__init__.py" "$work/shim/matplotlib/pyplot.py"
fi

start=$(date +%s.%N)
(cd "$clam" && PYTHONPATH="$work/shim" "$python" create_patches_fp.py --source "$work/slides" --save_dir "$work/clam" \
  --patch_size 256 --step_size 256 --seg --patch --preset pathvlm_bench.csv > "$work/clam.log" 2>&1) ||
  { tail -20 "$work/clam.log"; exit 1; }
clam_s=$(echo "$(date +%s.%N) - $start" | bc)
rm -f "$clam/presets/pathvlm_bench.csv"

start=$(date +%s.%N)
"$pathvlm" tile --slides "$work/slides" --out "$work/pathvlm" --grid clam --magnification 40 --patch-size 256 \
  --workers "$(nproc)" tissue.a_t=1 tissue.a_h=1 > "$work/pathvlm.log" 2>&1
pathvlm_s=$(echo "$(date +%s.%N) - $start" | bc)

"$python" - "$work" "$clam_s" "$pathvlm_s" "$count" "$width" "$height" <<'PY'
import glob, os, sys
import h5py
work, clam_s, pathvlm_s = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
same, tiles = 0, 0
files = sorted(glob.glob(os.path.join(work, 'pathvlm', 'patches', '*.h5')))
for ours in files:
    theirs = os.path.join(work, 'clam', 'patches', os.path.basename(ours))
    a = h5py.File(ours, 'r')['coords'][:].tolist()
    b = h5py.File(theirs, 'r')['coords'][:].tolist() if os.path.exists(theirs) else []
    same += a == b
    tiles += len(a)
print('| %s x %sx%s synthetic slides, %d tiles | CLAM create_patches_fp %.1f s; pathvlm tile --grid clam %.2f s '
      '(%.0fx); coords identical on %d of %d slides |'
      % (sys.argv[4], sys.argv[5], sys.argv[6], tiles, clam_s, pathvlm_s, clam_s / pathvlm_s, same, len(files)))
PY
