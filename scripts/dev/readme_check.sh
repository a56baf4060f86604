#!/usr/bin/env bash
# The README as a new user follows it: every ```bash block from "## Using it" on, in order, as written, in a fresh
# copy of this working tree placed next to the shared data folder (the README's `../shared/data/...` paths).
# Blocks fenced ```sh need a GPU or a SLURM cluster and are not run. Stops at the first failing command and names
# it with its README line; prints each block's time.
#
#   scripts/dev/readme_check.sh [--bin PATH]     # --bin: a built pathvlm to use (default: build one in the copy)
#
# About 15 minutes on 2 cores with --bin (the README's training runs); not in CI, which runs the same commands
# piecewise (SlideCli.ReadmeWholeSlideCommandsTileEverySlide, InstructCli.*, SlideDemo.*) and checks every README
# command against the program's options (ReadmeCommands.*).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=
while [ $# -gt 0 ]; do
  case $1 in
    --bin) BIN=$(realpath "$2"); shift 2 ;;
    *) echo "usage: scripts/dev/readme_check.sh [--bin PATH]" >&2; exit 1 ;;
  esac
done
SHARED=$(realpath "$ROOT/../shared")

WORK=$(mktemp -d /tmp/pathvlm-readme.XXXXXX)
mkdir "$WORK/repo"
ln -s "$SHARED" "$WORK/shared"
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$WORK/repo")
cd "$WORK/repo"
if [ -n "$BIN" ]; then
  mkdir -p build/release && ln -s "$BIN" build/release/pathvlm
else
  scripts/setup.sh build/release pathvlm
fi

# One script of every ```bash block after "## Using it": each block announces itself and its README line, each
# command is echoed before it runs, and the first failure names its line.
python3 - README.md > "$WORK/readme.sh" <<'EOF'
import sys
lines = open(sys.argv[1]).read().splitlines()
start = lines.index("## Using it")
print("set -eEuo pipefail")
print('trap \'echo "readme_check: FAILED at README line $README_LINE: $BASH_COMMAND" >&2\' ERR')
print("SECONDS=0")
block, continued = None, False
for number, line in enumerate(lines[start:], start + 1):
    if block is None and line == "```bash":
        block = number
        print(f'README_LINE={number}; echo "== README block at line {number} (${{SECONDS}}s so far)"')
    elif block is not None and line == "```":
        block = None
    elif block is not None:
        if line.strip() and not line.startswith((" ", "#")) and not continued:
            print(f"README_LINE={number}")
        print(line)
        continued = line.endswith("\\")
print('echo "readme_check: every README command ran (${SECONDS}s)"')
EOF
echo "readme_check: running the README's commands in $WORK/repo (script: $WORK/readme.sh)"
bash -v "$WORK/readme.sh"
