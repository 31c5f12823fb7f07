#!/usr/bin/env bash
# Ablation of the camera-robust training recipe on the factored model (cheap enough to train four
# times): each variant adds one choice to the previous one, trains MINUTES wall minutes on
# DRIVE's training images (one thread), and is measured by the generalisation benchmark on
# DRIVE's *validation* images (clean and under every corruption) and the first HRF_N HRF
# images. Choices are made on these rows; the test set is not used.
#
#   bash scripts/ablation_recipe.sh            # ~4 x (12 min training + ~4 min benchmark)
#   MINUTES=2 HRF_N=3 bash scripts/ablation_recipe.sh   # a quick look
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${MINUTES:-12}
HRF_N=${HRF_N:-15}
DRIVE=${DRIVE:-../shared/data/DRIVE}
VF=${VF:-.venv/bin/vesselflow}
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
common=(--model factored --drive "$DRIVE" --minutes "$MINUTES" --steps 100000 --val-every 300)
aug=(--photometric camera --scale-range 0.75 1.5)
declare -A variant=(
  [abl-paper]=""
  [abl-photometric]="${aug[*]}"
  [abl-photometric-std]="${aug[*]} --input-norm fov-standardise"
  [abl-photometric-std-unet]="${aug[*]} --input-norm fov-standardise --conditioning unet"
)
order=(abl-paper abl-photometric abl-photometric-std abl-photometric-std-unet)
for name in "${order[@]}"; do
  if [[ -f runs/$name/summary.json ]]; then echo "== $name: trained, kept"; continue; fi
  echo "== $name: vesselflow train ${common[*]} ${variant[$name]}"
  # shellcheck disable=SC2086
  "$VF" train "${common[@]}" --out "runs/$name" ${variant[$name]}
done
"$PY" benchmarks/generalisation.py --models "${order[@]/#/runs/}" --drive-split val \
  --limit "$HRF_N" --out results/ablation
