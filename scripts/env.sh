# Source me (bash or zsh; from the repo root in plain sh):  . scripts/env.sh
# Sets the environment for building qkc after scripts/setup.sh:
#   LLVM_SYS_191_PREFIX  LLVM 19 install used by inkwell/llvm-sys (default /usr/lib/llvm-19)
#   QKC_PTXAS            absolute path to ptxas (default: the one setup.sh put in tools/cuda)
#   PATH                 ptxas's directory prepended (once)
# Values already set in the environment are kept, so either can be overridden.
# No `set -e` etc. here: this file runs inside the caller's shell.

if [ -n "${BASH_SOURCE:-}" ]; then
    _qkc_env_src="${BASH_SOURCE[0]}"
elif [ -n "${ZSH_VERSION:-}" ]; then
    # shellcheck disable=SC2296
    _qkc_env_src="${(%):-%x}"
elif [ -f ./scripts/env.sh ]; then
    # plain POSIX sh cannot tell which file is being sourced: assume the repo root is $PWD
    _qkc_env_src="$PWD/scripts/env.sh"
else
    _qkc_env_src="$0"
fi
_qkc_root="$(cd "$(dirname "$_qkc_env_src")/.." && pwd)"

export LLVM_SYS_191_PREFIX="${LLVM_SYS_191_PREFIX:-/usr/lib/llvm-19}"
export QKC_PTXAS="${QKC_PTXAS:-$_qkc_root/tools/cuda/nvidia/cuda_nvcc/bin/ptxas}"

_qkc_ptxas_dir="$(dirname "$QKC_PTXAS")"
case ":${PATH}:" in
    *":${_qkc_ptxas_dir}:"*) ;;
    *) export PATH="${_qkc_ptxas_dir}:${PATH}" ;;
esac

if [ ! -x "$QKC_PTXAS" ]; then
    echo "env.sh: warning: no ptxas at $QKC_PTXAS (run scripts/setup.sh)" >&2
fi
if [ ! -x "$LLVM_SYS_191_PREFIX/bin/llvm-config" ]; then
    echo "env.sh: warning: no llvm-config under $LLVM_SYS_191_PREFIX (run scripts/setup.sh)" >&2
fi

unset _qkc_env_src _qkc_root _qkc_ptxas_dir
