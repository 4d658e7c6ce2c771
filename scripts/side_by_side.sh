#!/usr/bin/env bash
# Side-by-side figures for the README: afusion and PyTorch + AdapterHub `adapters` in one run,
# on this machine, same shapes, same thread counts. Needs the peer in a venv (never used by the
# tests):  python3 -m venv /tmp/peer && /tmp/peer/bin/pip install 'torch==2.13.0+cpu' adapters==1.2.0
# Usage: scripts/side_by_side.sh [PEER_PYTHON]   (prints everything; takes ~15 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-/tmp/peer/bin/python}
AF=.build/release/afusion
$AF doctor | sed -n '1,8p'
for t in 1 2; do
  echo "== threads $t"
  $AF bench forward --threads $t | grep -E "^OpenBLAS|tokens/s|GFLOP|efficiency|RSS"
  $AF bench train-adapter --threads $t | grep -E "tokens/s|RSS"
  $AF bench train-fusion --threads $t | grep -E "tokens/s|RSS"
  $AF bench infer-fusion --threads $t | grep -E "tokens/s|RSS"
  $AF bench forward --batch 1 --seq 16 --threads $t | grep -E "latency"
  $AF bench infer-fusion --batch 1 --seq 16 --threads $t | grep -E "latency"
  for task in trec sentiment; do $AF bench real-task --task tasks/$task.toml --max-train 2000 --threads $t | grep -E "examples/s|RSS"; done
  "$PY" scripts/peer_bench.py --threads $t 2>&1 | grep -E "tokens/s"
  "$PY" scripts/peer_bench.py --threads $t --batch 1 --seq 16 --iters 50 --only forward,infer-fusion 2>&1 | grep -E "tokens/s"
  for task in trec sentiment; do "$PY" scripts/peer_bench.py --threads $t --only none --real-task $task 2>&1 | grep -E "real task"; done
done
