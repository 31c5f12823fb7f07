#!/usr/bin/env bash
# Ship a vessel model trained with the camera-robust recipe and measure it: the a-priori threshold,
# uncertainty and quality references (scripts/ship_model.py), DRIVE test with 100 samples, and
# the test metrics attached to the shipped card. Run once per model (one thread each when two
# run at once), then the benchmarks:
#
#   OMP_NUM_THREADS=1 bash scripts/ship_recipe.sh runs/cnf-recipe cnf-drive &
#   OMP_NUM_THREADS=1 bash scripts/ship_recipe.sh runs/factored-recipe factored-drive &
#   wait
#   python benchmarks/generalisation.py && python benchmarks/review_flags.py
#   python scripts/results_table.py
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=$1
NAME=$2
DRIVE=${DRIVE:-../shared/data/DRIVE}
PY=${PY:-.venv/bin/python}
VF=${VF:-.venv/bin/vesselflow}
"$PY" scripts/ship_model.py --run "$RUN" --name "$NAME" --drive "$DRIVE"
"$VF" evaluate --model "$NAME" --drive "$DRIVE" --samples 100 --no-biomarkers \
  --out "results/$NAME"
"$PY" scripts/ship_model.py --shipped --name "$NAME" --eval "results/$NAME" --drive "$DRIVE"
