#!/usr/bin/env bash
# The decode benchmarks on a lent GPU machine (the `device` tool), as one prepared script of
# at most ~9 minutes (each step has its own timeout, so a slow step cannot eat the rest):
#   1. the roofline table (bench/roofline.ts): bytes, bandwidth floor, workgroups per decode
#      kernel for OPT-125m and OPT-1.3b shapes at batch 1/8/32, the floor on this GPU's
#      measured copy bandwidth, and measured GPU time per kernel family (tiny model);
#   2. old GPU kernels against new, interleaved (bench/kernels_ab_bench.ts): v3_storage_tiled
#      vs v4_storage_gemv decode tokens/s, OPT-125m and OPT-1.3b shaped random checkpoints
#      (model/fixture.ts, generated there), batch 1/8/32;
#   3. where the time goes per kernel family (bench/decode_profile.ts, OPT-125m shape);
#   4. the decode table side by side with PyTorch eager, CUDA when /usr/bin/python3 has torch
#      with CUDA (else PyTorch on the CPU cores, else no PyTorch column).
#
# Here, once (from the project root; needs apt and npm, writes the ignored .device/):
#   bash ../shared/tools/device-prep.sh
# Then call the device tool's run with
#   carry: [".device"], timeout_s: 600,
#   command: source .device/enter.sh && bash bench/device_bench.sh
# The tables print to stdout and land in $OUT (roofline.md, kernels_ab.json, decode.md,
# decode.json, profile.txt).
set -uo pipefail
out=${OUT:-/tmp/out}; mkdir -p "$out"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}; chmod 700 "$XDG_RUNTIME_DIR"
# the reference GPU of the roofline: this machine's card when known (bandwidth GB/s, SMs)
gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
case "$gpu_name" in
  *H200*) export SKIPDECODE_REF_GPU="H200:4800:132" ;;
  *H100*) export SKIPDECODE_REF_GPU="H100:3350:132" ;;
  *A100*) export SKIPDECODE_REF_GPU="A100:2039:108" ;;
esac
torch_device=cpu
if /usr/bin/python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  torch_device=cuda
elif ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  echo "note: /usr/bin/python3 has no torch here: the PyTorch column will say skipped"
fi
echo "GPU: ${gpu_name:-none found by nvidia-smi}; PyTorch device: $torch_device; cores: $(nproc)"
R="--allow-read=.,../shared --allow-write=./out,./.cache --allow-env=XDG_RUNTIME_DIR,SKIPDECODE_REF_GPU,SKIPDECODE_KERNELS"

echo "== 1. roofline"
timeout 90 deno run $R --allow-sys=loadavg bench/roofline.ts --shapes opt-125m,opt-1.3b \
  --batches 1,8,32 2>&1 | tee "$out/roofline.md" | tail -80

echo "== 2. old GPU kernels (v3 tiled) vs new (v4 GEMV), interleaved"
timeout 240 deno run $R bench/kernels_ab_bench.ts --shapes opt-125m,opt-1.3b --batches 1,8,32 \
  --tokens 32 --repeats 3 --json "$out/kernels_ab.json" 2>&1 | tail -12

echo "== 3. decode profile (OPT-125m shape, GPU kernels)"
timeout 60 deno run $R --allow-sys=loadavg bench/decode_profile.ts --batches 1,8,32 \
  2>&1 | tee "$out/profile.txt" | tail -12

echo "== 4. decode table beside PyTorch ($torch_device)"
timeout 150 deno run $R --allow-sys=loadavg --allow-run=/usr/bin/python3 \
  cli/bench.ts --backend webgpu --skip-kernels --threads "$(nproc)" \
  --torch-device "$torch_device" --out out/bench-gpu 2>&1 | tail -40
cp out/bench-gpu/decode.md out/bench-gpu/decode.json "$out"/ 2>/dev/null || true
