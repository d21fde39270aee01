#!/usr/bin/env bash
# The reference model on one GPU: both stages from the compact data pack, then the held-out validation scores.
#
#   bash experiments/gpu_recipe.sh                    # packs ../shared/data if outputs/pack is missing
#   DATA=/path/to/pack OUT_DIR=outputs/gpu bash experiments/gpu_recipe.sh
#
# Budget `gpu` of experiments/reproduce.py: the `compact` preset, 12k source steps and 4k target steps of 32
# crops of 128² (bf16 mixed precision, 6 loader workers), then experiments/validate.py on the run, the packaged
# CPU-budget weights and the classical baselines. Planned for ≤ 25 min on one H100-class GPU (docs/results.md,
# "GPU recipe"). The pack (experiments/pack_data.py, ~56 MiB) holds only what training reads, so it can travel
# with the code to a machine without the data.
#
# The steps are experiments/gpu_check.py's `recipe` and `validate`, run here without time caps; `make gpu-check`
# runs the same two under a wall-clock cap, after the GPU tests and the inference benchmark. Runs, logs,
# timings.json, validate.json and summary.json all land in OUT_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
OUT_DIR=${OUT_DIR:-outputs/reproduce_gpu}
exec "$PY" experiments/gpu_check.py --steps recipe,validate --total-minutes 0 --budget gpu \
    --pack "${DATA:-outputs/pack}" --runs "$OUT_DIR" --out "$OUT_DIR" "$@"
