#!/usr/bin/env bash
# The decode benchmark on a lent GPU machine (the `device` tool), side by side with PyTorch
# CUDA eager when that machine's /usr/bin/python3 has torch with CUDA (else PyTorch on its
# CPU cores, else no PyTorch column). Prepared to fit one call of a few minutes.
#
# Here, once (from the project root; needs apt and npm, writes the ignored .device/):
#   bash ../shared/tools/device-prep.sh
# Then call the device tool's run with
#   carry: [".device"], timeout_s: 560,
#   command: source .device/enter.sh && bash bench/device_bench.sh
# The OPT-125m-shaped random model (239 MB, over the 64 MiB carry limit) is generated there
# from its seed by the benchmark itself (.cache/bench/opt-125m-random), the tiny model comes
# from bundled/. It prints the adapter and the side-by-side table; decode.md and
# decode.json come back from $OUT.
set -uo pipefail
out=${OUT:-/tmp/out}; mkdir -p "$out"
torch_device=cpu
if /usr/bin/python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  torch_device=cuda
elif ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  echo "note: /usr/bin/python3 has no torch here: the PyTorch column will say skipped"
fi
echo "PyTorch device: $torch_device"
nproc; nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || true
# the full table (OPT-125m-shaped random model, batches 1, 8, 32; tiny model too), no kernel
# micro-benchmark; the CPU backend is left out (it is the slow oracle)
timeout 500 deno run --allow-read=.,../shared --allow-env=XDG_RUNTIME_DIR,SKIPDECODE_* \
  --allow-sys=loadavg --allow-write=./out,./.cache --allow-run=/usr/bin/python3 \
  cli/bench.ts --backend webgpu --skip-kernels --threads "$(nproc)" \
  --torch-device "$torch_device" --out out/bench-gpu 2>&1 | tail -60
cp out/bench-gpu/decode.md out/bench-gpu/decode.json "$out"/ 2>/dev/null || true
