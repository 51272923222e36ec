#!/usr/bin/env bash
# Idempotent set-up for a fresh machine: Debian packages (when missing and we are root), a
# virtual environment, then the package with all extras (building the C feature kernel). A stamp
# keyed on pyproject.toml, setup.py, this script, the C sources and the settings below makes
# reruns instant.
#
# Settings (environment variables):
#   PYTHON  the interpreter to build the environment with (default: python3.11, else python3)
#   VENV    the environment's folder (default: .venv)
#   TORCH   1 (default): torch==2.13.0 pinned first (the CPU build; an unpinned torch pulls GBs
#           of CUDA), then the silero-torch extra (the JIT backend and silero's own reference
#           code for the tests); 0: no torch at all, as `pip install rxaudio[all]` gives
#
# Example, the torch-free Python 3.13 environment that .ci/run tests with:
#   PYTHON=$(pyenv root)/versions/3.13.0/bin/python VENV=.venv313 TORCH=0 bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(libportaudio2 libsndfile1 pulseaudio pulseaudio-utils libasound2-plugins
              redis-server chromium espeak-ng sox gcc nginx-light openssl)
missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "setup: installing Debian packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${missing[@]}" >/dev/null
    elif command -v sudo >/dev/null 2>&1; then
        sudo apt-get update -qq
        sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "setup: missing Debian packages (${missing[*]}); install them as root" >&2
    fi
fi

VENV=${VENV:-.venv}
TORCH=${TORCH:-1}
case "$TORCH" in
    0 | 1) ;;
    *) echo "setup: TORCH must be 0 or 1, got '$TORCH'" >&2; exit 2 ;;
esac
if [ -n "${PYTHON:-}" ]; then
    PY=$PYTHON
    command -v "$PY" >/dev/null 2>&1 || { echo "setup: PYTHON=$PY not found" >&2; exit 2; }
else
    PY=python3.11
    command -v "$PY" >/dev/null 2>&1 || PY=python3
fi
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
extras="all,dev"
[ "$TORCH" = 1 ] && extras="all,silero-torch,dev"
stamp=$VENV/.rxaudio-stamp
want=$( (cat pyproject.toml setup.py scripts/setup.sh rxaudio/dsp/*.c; echo "$TORCH") \
    | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "$VENV/bin/python" -m pip install -q --upgrade pip
    if [ "$TORCH" = 1 ]; then
        "$VENV/bin/python" -m pip install -q "torch==2.13.0"
    fi
    "$VENV/bin/python" -m pip install -q -e ".[$extras]"
    if [ "$TORCH" = 0 ] && "$VENV/bin/python" -c "import torch" 2>/dev/null; then
        echo "setup: TORCH=0 but torch is importable in $VENV (a dependency pulled it)" >&2
        exit 1
    fi
    echo "$want" > "$stamp"
fi
