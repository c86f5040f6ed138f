#!/usr/bin/env bash
# Runs on the GPU machine (the `device` tool), from the repository root, with .gpu/ built by
# scripts/gpu-build.sh: CPU-vs-CUDA agreement tests, then the benchmarks. Logs go to $OUT
# (or ./gpu-out when $OUT is unset).
set -uo pipefail
out="${OUT:-gpu-out}"
mkdir -p "$out"
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/usr/local/nvidia/lib64:${LD_LIBRARY_PATH:-}
if ! ls /usr/local/cuda/lib64 2>/dev/null | grep -q libnvrtc.so.13; then
  wheel=$(python3 -c 'import nvidia, os; print(os.path.dirname(nvidia.__path__[0]))' 2>/dev/null || true)
  [ -n "$wheel" ] && export LD_LIBRARY_PATH="$wheel/nvidia/cu13/lib:$LD_LIBRARY_PATH"
fi
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  ls /usr/local/cuda/lib64 2>/dev/null | grep -E 'libnvrtc.so|libcublas.so|libcublasLt.so'
  lscpu | grep -E 'Model name|^CPU\(s\)'
} 2>&1 | tee "$out/machine.txt"
status=0
for t in agreement device_flow ptx errors wowflow_cuda; do
  [ -x ".gpu/$t" ] || continue
  echo "== $t" | tee -a "$out/tests.log"
  ".gpu/$t" --nocapture --test-threads=1 2>&1 | tee -a "$out/tests.log" || status=1
done
# The CLI end to end: a resident flow, the same run interrupted at step 150 and resumed
# (must give identical bytes), and the CPU flow on the same data (a different random
# stream: losses must be close, not equal).
smoke() {
  local dir="$out/smoke"
  mkdir -p "$dir"
  for side in source:0:1 target:1:2; do
    IFS=: read -r name shift seed <<<"$side"
    awk -v s="$shift" -v seed="$seed" 'BEGIN { srand(seed); for (i = 0; i < 300; i++) {
      c = i % 3; printf "%d", c; for (k = 0; k < 8; k++) printf ",%.6f", s + c + rand(); print "" } }' \
      > "$dir/$name.csv"
  done
  local common=(--source "$dir/source.csv" --target "$dir/target.csv" --lr 0.1 --momentum 0.9
    --projections 100 --seed 4)
  .gpu/wowflow flow "${common[@]}" --device cuda --steps 300 --save-every 100 --out "$dir/gpu.npz" &&
  .gpu/wowflow flow "${common[@]}" --device cuda --steps 150 --checkpoint-every 150 --out "$dir/half.npz" &&
  .gpu/wowflow flow "${common[@]}" --device cuda --steps 300 --resume "$dir/half.ckpt.npz" --out "$dir/resumed.npz" &&
  .gpu/wowflow flow "${common[@]}" --device cpu --steps 300 --out "$dir/cpu.npz" || return 1
  if cmp -s "$dir/gpu_loss.csv" "$dir/resumed_loss.csv"; then
    echo "smoke: resumed run identical to the uninterrupted one"
  else
    echo "smoke: RESUMED RUN DIFFERS"; return 1
  fi
  tail -n 1 "$dir/gpu_loss.csv" "$dir/cpu_loss.csv"
}
smoke 2>&1 | tee "$out/smoke.log" || status=1

if [ "${1:-}" != "--tests-only" ]; then
  .gpu/wowflow bench --device cuda --config all --tf32 --reps "${REPS:-50}" 2>&1 | tee "$out/bench_cuda.txt"
  .gpu/wowflow bench --device cpu --config da --reps 5 2>&1 | tee "$out/bench_cpu.txt"
fi
exit $status
