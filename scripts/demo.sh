#!/usr/bin/env bash
# The main demo: stage one on real data. Trains two small adapters (TREC question type and SMS
# spam) on subsamples, evaluates each on its held-out test split, and lists the store.
# Adapters already in the store are reused (--if-missing); delete runs/demo.h5 to retrain.
set -euo pipefail
cd "$(dirname "$0")/.."
AF=.build/release/afusion
STORE=runs/demo.h5
THREADS=${THREADS:-2}

$AF train-adapter --task tasks/trec.toml --store $STORE --epochs 2 --max-train 2000 --threads "$THREADS" --if-missing
$AF train-adapter --task tasks/sms_spam.toml --store $STORE --epochs 2 --max-train 2000 --threads "$THREADS" --if-missing
$AF eval --store $STORE --adapter trec --split test --threads "$THREADS"
$AF eval --store $STORE --adapter sms_spam --split test --threads "$THREADS"
printf 'What is the capital of France ?\nWho wrote Hamlet ?\n' | $AF predict --store $STORE --adapter trec
$AF inspect $STORE
