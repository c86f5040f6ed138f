#!/usr/bin/env bash
# Builds the CUDA-enabled `wowflow` binary and the wowflow-cuda test binaries (release
# profile), strips them and copies them to .gpu/ so a GPU machine can run them without a
# Rust toolchain (see crates/wowflow-cuda/GPU.md). Nothing CUDA is linked: the binaries
# load libcuda, NVRTC and cuBLAS at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .gpu
cargo build --release -p wowflow-cli --features cuda
cp target/release/wowflow .gpu/
cargo test --release -p wowflow-cuda --no-run --message-format=json 2>/dev/null |
  python3 -c 'import sys, json
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] != ["bin"]:
        print(m["executable"])' |
  while read -r exe; do cp "$exe" ".gpu/$(basename "$exe" | sed 's/-[0-9a-f]*$//')"; done
strip .gpu/*
ls -la .gpu
