#!/usr/bin/env bash
# GPU checks of edgessl pretrain (run on a CUDA machine from the repository root):
# every method trains on CUDA with bf16 autocast and channels-last, torch.compile works, the
# online kNN runs on the GPU, and the throughput table is measured on the GPU.
#   DATA=path/to/cifar10-subset OUT=results/ bash benchmarks/gpu_check.sh
set -uo pipefail
export PYTHONUNBUFFERED=1 EDGESSL_PROGRESS=0
DATA=${DATA:?set DATA to an image folder with train/ and test/ or val/}
OUT=${OUT:-/tmp/edgessl-gpu}
mkdir -p "$OUT"
run() { echo "== $*"; "$@" > /tmp/edgessl-gpu-step.log 2>&1; rc=$?; tail -n 3 /tmp/edgessl-gpu-step.log; echo "rc=$rc"; }
nvidia-smi -L
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0), 'bf16', torch.cuda.is_bf16_supported())"
for m in simclr moco byol vicreg dino; do
  run python3 -m edgessl pretrain "$DATA" --method $m --backbone resnet_tiny_s2 --epochs 1 \
      --device cuda --eval-data "$DATA" --out /tmp/gpu-$m --force
  python3 -c "import json; c=json.load(open('/tmp/gpu-$m/card.json'))['training']; print({k: c[k] for k in ('device','precision','channels_last','knn_top1','seconds')})"
done
run python3 -m edgessl pretrain "$DATA" --method mae --backbone vit_tiny --epochs 1 --device cuda \
    --eval-data "$DATA" --out /tmp/gpu-mae --force
run python3 -m edgessl pretrain "$DATA" --method simclr --backbone resnet_tiny_s2 --epochs 1 \
    --device cuda --compile --out /tmp/gpu-compile --force
run python3 benchmarks/pretrain_throughput.py --device cuda --steps 5 --warmup 2 \
    --backbones resnet_tiny_s2 vit_tiny --out "$OUT"
cat "$OUT/pretrain_throughput.md"
