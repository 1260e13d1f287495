#!/usr/bin/env bash
# Everything this project wants from a lent GPU, in one run of at most ~9 minutes (device tool: one call).
#   run: bash benchmarks/gpu_session.sh        (writes to $OUT, default ./gpu_out)
# 1. bench_model.py --device cuda: 3x3-conv throughput, decoding and training images/s of the paper
#    256x256 config (TF32 and bf16, several batch sizes)                      -> $OUT/gpu_bench.json
# 2. a wider, longer demo model on the phantom (width 64, 20,000 steps) and its phantom scores
#    (max-T, B = 1,000)                                                      -> $OUT/demo_gpu/, scores
# Each part has its own time limit, so a slow part cannot starve the others; partial output is kept.
# Not yet run on a GPU (no device lent so far): check the device README/KINDS.md for the packages there
# (numba, xarray, netCDF4, pygam... may have to travel as wheels) before spending device time.
set -u
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv > "$OUT/gpu.txt" 2>&1
pip install -q -e . --no-deps > "$OUT/install.log" 2>&1 || pip install -q -e '.[test]' >> "$OUT/install.log" 2>&1
timeout 180 python benchmarks/bench_model.py --device cuda --json "$OUT/gpu_bench.json" > "$OUT/gpu_bench.log" 2>&1
timeout 240 python analyses/make_demo.py --device cuda --width 64 --steps 20000 --work "$OUT/demo_gpu" \
    --no-install > "$OUT/demo_gpu.log" 2>&1
# if the time limit stopped training, encode with the best checkpoint so far (--steps 1 trains no further)
[ -f "$OUT/demo_gpu/cohort.nc" ] || timeout 60 python analyses/make_demo.py --device cuda --width 64 --steps 1 \
    --work "$OUT/demo_gpu" --no-install >> "$OUT/demo_gpu.log" 2>&1
timeout 60 python analyses/score_phantom.py --cohort "$OUT/demo_gpu/cohort.nc" \
    --decoder "$OUT/demo_gpu/train/best.pt" --truth "$OUT/demo_gpu/phantom" --out "$OUT/demo_gpu/scores" \
    > "$OUT/score.log" 2>&1
tail -n 12 "$OUT/score.log"
