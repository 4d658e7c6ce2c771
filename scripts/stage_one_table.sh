#!/usr/bin/env bash
# The README's stage-one table: `train-adapter` with the defaults (pfeiffer+ln, reduction 16,
# 3 epochs, lr 1e-3, batch 32, seed 42) per task, dev (at most 1,000) and test metric.
# Usage: [SPECS="boolq:4000 imdb:2000 banking77:all"] [THREADS=2] scripts/stage_one_table.sh [OUT_DIR]
# (task:N trains on a seeded sample of N examples; task:all on the whole train split)
set -euo pipefail
cd "$(dirname "$0")/.."
AF=.build/release/afusion
OUT=${1:-runs/stage_one}
STORE=$OUT/stage_one.h5
T=(--threads "${THREADS:-2}")
mkdir -p "$OUT"
RESULTS=$OUT/results.tsv
[ -f "$RESULTS" ] || printf 'task\ttrain\tdev\ttest\tseconds\n' > "$RESULTS"
for spec in ${SPECS:-trec:all sms_spam:all sentiment:all sentiment_score:all boolq:4000 privacy_qa:4000 banking77:all rotten_tomatoes:all imdb:2000}; do
    task=${spec%%:*}; n=${spec##*:}
    grep -q "^$task	" "$RESULTS" && continue
    python3 scripts/sources.py fetch --task tasks/$task.toml
    sample=(); [ "$n" = all ] || sample=(--max-train "$n")
    start=$(date +%s)
    $AF train-adapter --task tasks/$task.toml --store $STORE --max-dev 1000 "${sample[@]}" "${T[@]}" --if-missing > "$OUT/$task.log" 2>&1
    seconds=$(( $(date +%s) - start ))
    dev=$(sed -n 's/^best epoch [0-9]*: dev \([a-z_0-9]* [0-9.-]*\);.*/\1/p' "$OUT/$task.log")
    test=$($AF eval --store $STORE --adapter $task --split test "${T[@]}" | sed -n 's/.*): \([a-z_0-9]* [0-9.-]*\).*/\1/p' | head -1)
    printf '%s\t%s\t%s\t%s\t%s\n' "$task" "$n" "$dev" "$test" "$seconds" | tee -a "$RESULTS"
done
column -t -s $'\t' "$RESULTS"
