#!/usr/bin/env bash
# The reference model on one GPU: both stages from the compact data pack, in one command.
#
#   bash experiments/gpu_recipe.sh                    # packs ../shared/data if outputs/pack is missing
#   DATA=/path/to/pack OUT_DIR=outputs/gpu bash experiments/gpu_recipe.sh
#
# Budget `gpu` of experiments/reproduce.py: the `compact` preset, 12k source steps and 4k target steps of 32
# crops of 128² (bf16 mixed precision, 6 loader workers), then the held-out validation scores. Planned for
# ≤ 25 min on one H100-class GPU (docs/results.md, "GPU recipe"). The pack (experiments/pack_data.py,
# ~56 MiB) holds only what training reads, so it can travel with the code to a machine without the data.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
DATA=${DATA:-outputs/pack}
OUT_DIR=${OUT_DIR:-outputs/reproduce_gpu}
if [ ! -d "$DATA/train/natural" ]; then
    "$PY" experiments/pack_data.py --out "$DATA"
fi
start=$(date +%s)
"$PY" experiments/reproduce.py --budget gpu --data-root "$DATA" --out "$OUT_DIR" --only main --no-results
"$PY" experiments/validate.py --data-root "$DATA" --json "$OUT_DIR/validation.json" "$OUT_DIR/ivif_stfuse_s0"
echo "gpu recipe: both stages and validation in $(( ($(date +%s) - start) / 60 )) min; timings in $OUT_DIR/timings.json"
