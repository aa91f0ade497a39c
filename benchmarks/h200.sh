#!/usr/bin/env bash
# The GPU figures of issues 10 and 11 in one run on a lent NVIDIA H200, for a session whose task
# draws a device (the only way to measure them; CI never has a GPU). From this machine:
#
#   make gpu-data     # copies BlazingText's corpus and WS-353 out of gensim's wheel
#   device run: command "bash benchmarks/h200.sh", carry ["benchmarks/.data-text"], timeout_s 600
#
# The device's own python3 runs everything (torch with CUDA, torchvision, numpy, pillow, scipy,
# pandas are there; nothing can be installed): opensage runs from src/, nothing else of ours is
# imported. Each part runs under its own time limit, so one that fails or hangs leaves the others'
# figures; the logs and the updated RESULTS.md come back in $OUT. About 6 minutes in all.
set -uo pipefail
export PYTHONPATH=src:benchmarks PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/h200-out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"

# BlazingText's compiled CPU loop, for the CPU run that the GPU's mean_rho is held against (the
# .so built by pip install on the development machine is for another Python; git ignores it).
include=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
suffix=$(python3 -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
gcc -O3 -std=c11 -pthread -shared -fPIC -I"$include" \
    src/opensage/algorithms/blazingtext/_fasttext.c \
    -o "src/opensage/algorithms/blazingtext/_fasttext$suffix" \
    || echo "the compiled loop did not build: the CPU run uses the PyTorch path"

# Issue 10: BlazingText words/s on the GPU, mean_rho against the CPU run (about 2 minutes).
timeout 240 python3 benchmarks/bench_blazingtext.py --device cuda --repeats 3 --epochs 20 \
    --corpus-repeat 20 --data benchmarks/.data-text --write 2>&1 | tee "$OUT/blazingtext.log"

# Issue 11: our vision trainers against torchvision at the same batch and precision (about 3).
timeout 300 python3 benchmarks/bench_vision_gpu.py --write 2>&1 | tee "$OUT/vision.log"

cp benchmarks/RESULTS.md "$OUT/"
