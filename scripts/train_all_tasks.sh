#!/usr/bin/env bash
# Every shipped task in tasks/ trains for one epoch on a seeded sample and is scored on its test
# split: a smoke test of every task's data, reader and labels (README "Shipped tasks").
# Fetches the data sources the tasks need first (pinned, sha256-checked).
# Usage: [MAX_TRAIN=1000] [MAX_DEV=500] [MAX_TEST=1000] [THREADS=2] scripts/train_all_tasks.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
AF=.build/release/afusion
OUT=${1:-runs/all_tasks}
STORE=$OUT/all_tasks.h5
T=(--threads "${THREADS:-2}")
mkdir -p "$OUT"
python3 scripts/sources.py fetch --all
[ -x $AF ] || swift build -c release
rm -f "$STORE"
RESULTS=$OUT/results.tsv
printf 'task\tsplits (train/dev/test)\tskipped\tseconds\tdev\ttest\n' > "$RESULTS"
for task in tasks/*.toml; do
    name=$(basename "$task" .toml)
    log=$OUT/$name.log
    start=$(date +%s)
    $AF train-adapter --task "$task" --store "$STORE" --epochs 1 --max-train "${MAX_TRAIN:-1000}" \
        --max-dev "${MAX_DEV:-500}" "${T[@]}" > "$log" 2>&1 || { echo "$name: training failed, see $log"; tail -3 "$log"; exit 1; }
    seconds=$(( $(date +%s) - start ))
    splits=$(sed -n 's/^task [^:]*: \([0-9]*\) train \/ \([0-9]*\) dev \/ \([0-9]*\) test.*/\1 \/ \2 \/ \3/p' "$log")
    skipped=$(sed -n 's/.*examples; skipped \(.*\)/\1/p' "$log" | head -1)
    dev=$(sed -n 's/^best epoch [0-9]*: dev \([a-z_0-9]* [0-9.-]*\);.*/\1/p' "$log")
    test=$($AF eval --store "$STORE" --adapter "$name" --split test --max "${MAX_TEST:-1000}" "${T[@]}" \
        | sed -n 's/.*): \([a-z_0-9]* [0-9.-]*\).*/\1/p' | head -1)
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$splits" "${skipped:--}" "$seconds" "$dev" "$test" | tee -a "$RESULTS"
done
column -t -s $'\t' "$RESULTS"
