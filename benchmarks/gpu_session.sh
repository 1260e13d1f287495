#!/usr/bin/env bash
# Everything this project wants from a lent GPU, in one call of about 8 minutes (device tool: `run`).
#
#   bash benchmarks/gpu_session.sh            # on the GPU machine; results under $OUT (default ./gpu_out)
#   DRY=1 bash benchmarks/gpu_session.sh      # rehearsal on this CPU: same steps, seconds-long runs
#
# Issue #16 item 4 (decoding vs the card's conv rate, strict fp32 and TF32, and a 1,000-permutation 256x256
# sequence from a paper-size checkpoint; benchmarks/bench_gpu.py) is its own call of about 7 minutes, with
# no trainings and nothing to carry:
#   RUNS=none BENCH=gpu bash benchmarks/gpu_session.sh          # -> $OUT/bench_gpu.json, $OUT/bench_gpu.log
#   RUNS=none BENCH=gpu DRY=1 bash benchmarks/gpu_session.sh    # its rehearsal on this CPU (under a minute)
# device tool: run(command="RUNS=none BENCH=gpu bash benchmarks/gpu_session.sh", timeout_s=540) ($OUT is set there)
# (BENCH_SECONDS, default 440 for BENCH=gpu, bounds it: the script plans for 400 s and writes its JSON as it
# goes; copy the JSON to benchmarks/results/ afterwards).
#
# The trainings need, beside the repository (name them in the device tool's `carry`):
#   analyses/output/demo   the demo's phantom and its CPU-trained checkpoints (analyses/make_demo.py)
#   .cxr128                the frontal radiographs of ../shared/data/cxr at 128x128 as 8-bit PNG +
#                          metadata.csv, written by `python benchmarks/prepare_gpu_data.py` (the data do not travel)
#
# The trainings named in RUNS (default "A B C") run side by side on the one GPU (small models leave it
# mostly idle), each stopped cleanly by its --max-minutes (MINUTES, default 6; RUNS=none: no training), then
# the paper-config benchmark runs alone for BENCH_SECONDS (default 80; 0 skips it; BENCH=gpu: bench_gpu.py):
#   A  the bundled demo model (width 32) resumed from its checkpoint, batch 16   -> A_best.pt, A_last.pt
#   B  a wider demo model (width 64, batch 32) from scratch on the same phantom -> B_best.pt, B_last.pt
#   C  real radiographs at 128x128 (width 64, latent 128, batch 32)           -> C_best.pt
#   D  the demo model resumed with batch 64 (lr 1e-3)                         -> D_best.pt, D_last.pt
#   E  the demo model resumed with batch 64 and lr 2.5e-4                     -> E_best.pt, E_last.pt
#   bench_model.py --device cuda: conv throughput, decode/train images/s of the 256x256 paper config
# Encoding, phantom scores and sequences are computed afterwards on the CPU from the checkpoints.
set -u
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
REPO=$(pwd)
PY=${PYTHON:-python3}
if [ "${DRY:-0}" = 1 ]; then DEV=cpu; MIN=${MINUTES:-0.15}; THREADS=1; else DEV=cuda; MIN=${MINUTES:-6}; THREADS=4; fi
WORK=${WORK:-/tmp/seegaan_gpu}
rm -rf "$WORK"; mkdir -p "$WORK/site" "$WORK/B"
# the package without pip (nothing can be fetched there): the source tree, plus its kernels' import name
ln -s "$REPO/kernels" "$WORK/site/seegaan_kernels"
export PYTHONPATH="$WORK/site:$REPO" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=$THREADS
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  $PY -c "import torch, numpy, xarray, numba; print('torch', torch.__version__, 'numpy', numpy.__version__)"; } \
  > "$OUT/env.txt" 2>&1
RUNS=${RUNS:-A B C}
[ "$RUNS" = none ] && RUNS=
TRAIN="--device $DEV --threads $THREADS --max-minutes $MIN --train-only --steps 1000000"
demo() {  # demo() RUN OPTIONS...: the demo model resumed in $WORK/RUN (phantom shared, checkpoints copied)
  local run=$1; shift
  mkdir -p "$WORK/$run"; ln -s "$REPO/analyses/output/demo/phantom" "$WORK/$run/phantom"
  cp -r analyses/output/demo/train "$WORK/$run/train"
  $PY analyses/make_demo.py --work "$WORK/$run" $TRAIN --no-install "$@" > "$WORK/$run.log" 2>&1
}
for r in $RUNS; do
  case $r in
    A) demo A & ;;
    B) ln -s "$REPO/analyses/output/demo/phantom" "$WORK/B/phantom"
       $PY analyses/make_demo.py --work "$WORK/B" $TRAIN --no-install --width 64 --batch 32 > "$WORK/B.log" 2>&1 & ;;
    C) $PY analyses/real_cxr.py --data .cxr128 --size 128 --width 64 --latent 128 --batch 32 $TRAIN \
           --out "$WORK/C" > "$WORK/C.log" 2>&1 & ;;
    D) demo D --batch 64 & ;;
    E) demo E --batch 64 --lr 2.5e-4 & ;;
    *) echo "unknown run $r (RUNS takes A B C D E)"; exit 2 ;;
  esac
done
wait
# the device tool returns at most 8 files of 16 MiB (64 MiB in all): one tar in 15 MiB parts
# (rejoin: cat results.tar.part-* | tar x); C's last.pt (19 MB) stays behind, its best.pt comes back
mkdir -p "$WORK/pack"
for r in $RUNS; do
  cp "$WORK/$r/train/best.pt" "$WORK/pack/${r}_best.pt"
  [ "$r" = C ] || cp "$WORK/$r/train/last.pt" "$WORK/pack/${r}_last.pt"
  cp "$WORK/$r.log" "$WORK/pack/"
done
[ -n "$RUNS" ] && tar cf - -C "$WORK/pack" . | split -b 15M - "$OUT/results.tar.part-"
if [ "${BENCH:-model}" = gpu ]; then
  # bench_gpu.py plans for BENCH_SECONDS - 40 s and writes $OUT/bench_gpu.json after every part
  SECONDS_GPU=${BENCH_SECONDS:-440}
  if [ "$SECONDS_GPU" != 0 ]; then
    if [ "${DRY:-0}" = 1 ]; then ARGS="--dry"; else ARGS="--device cuda --budget $((SECONDS_GPU - 40))"; fi
    timeout -k 10 "$SECONDS_GPU" $PY benchmarks/bench_gpu.py $ARGS --json "$OUT/bench_gpu.json" 2>&1 \
      | tee "$OUT/bench_gpu.log"
  fi
elif [ "${BENCH_SECONDS:-80}" != 0 ]; then
  if [ "${DRY:-0}" = 1 ]; then BENCH="--device cpu:0 --image-size 32"; else BENCH="--device cuda"; fi
  timeout "${BENCH_SECONDS:-80}" $PY benchmarks/bench_model.py $BENCH --json "$OUT/bench.json" > "$WORK/bench.log" 2>&1
fi
(cd "$WORK" && tail -n 25 ./*.log) > "$OUT/logs.txt" 2>&1
cat "$OUT/env.txt"; for r in $RUNS; do tail -n 4 "$WORK/$r.log"; done; ls -la "$OUT"
