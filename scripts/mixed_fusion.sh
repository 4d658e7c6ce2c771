#!/usr/bin/env bash
# A fusion of three kinds of members against the all-bottleneck fusion of the demo, on the same
# target (sentence sentiment intensity from 500 sentences) and the same source data:
#   fusion-recipes/demo_fusion.fuse   fuse(sms_spam, sentiment, sentiment_score)          bottleneck ×3
#   fusion-recipes/mixed_fusion.fuse  fuse(sms_spam_prefix, sentiment_lora, sentiment_score)  prefix, LoRA, bottleneck
# Reuses whatever runs/demo.h5 holds (--if-missing). Prints both test Pearsons, predictions and
# the mixed fusion's attention per layer.
set -euo pipefail
cd "$(dirname "$0")/.."
AF=.build/release/afusion
STORE=runs/demo.h5
T=(--threads "${THREADS:-2}")

$AF train-adapter --task tasks/sentiment_score.toml --store $STORE --epochs 6 --patience 6 --max-train 500 --max-dev 500 "${T[@]}" --if-missing
$AF train-adapter --task tasks/sms_spam.toml --store $STORE --epochs 2 --max-train 2000 "${T[@]}" --if-missing
$AF train-adapter --task tasks/sentiment.toml --store $STORE --epochs 2 --max-train 2000 --max-dev 500 "${T[@]}" --if-missing
$AF train-adapter --task tasks/sms_spam.toml --store $STORE --name sms_spam_prefix --method prefix --epochs 2 --max-train 2000 \
    "${T[@]}" --if-missing
$AF train-adapter --task tasks/sentiment.toml --store $STORE --name sentiment_lora --method lora --epochs 2 --max-train 2000 \
    --max-dev 500 "${T[@]}" --if-missing

for recipe in fusion-recipes/demo_fusion.fuse fusion-recipes/mixed_fusion.fuse; do
    $AF check $recipe
    $AF train-fusion $recipe "${T[@]}" --if-missing
done
echo "== sentiment intensity, test split"
$AF eval --store $STORE --adapter sentiment_score --split test "${T[@]}" | head -1
$AF eval --recipe fusion-recipes/demo_fusion.fuse --split test "${T[@]}" | head -1
$AF eval --recipe fusion-recipes/mixed_fusion.fuse --split test "${T[@]}" | head -1
printf 'What a wonderful, moving film.\nThe meeting is at noon.\n' | $AF predict --recipe fusion-recipes/mixed_fusion.fuse
$AF inspect $STORE --fusion mixed_score_fusion --attention --max 300 "${T[@]}"
