#!/bin/bash
# Issue 7's GPU checks for the lent H100, as one prepared device call (no Rust toolchain there).
#
# Prepare here (the device reaches nothing outside; the carry limit is 64 MiB in all):
#   cargo build --release -p qkc-cli --bin qkc && mkdir -p devbin devmodel
#   xz -T2 -6 -c target/release/qkc > devbin/qkc.xz                 # ~68 MB binary, compressed
#   split -b 48M tools/models/SmolLM2-135M-Instruct.Q4_1.gguf devmodel/part.
#   printf 'devbin/\ndevmodel/\ndevkeep/\n' >> .git/info/exclude
# then two device calls back to back (the machine keeps ignored files between calls while warm):
#   run(carry=["devmodel/part.aa"], command="mkdir -p devkeep && mv devmodel/part.aa devkeep/")
#   run(carry=["devbin", "devmodel/part.ab"], command="bash scripts/device_smollm2.sh")
# Everything it prints goes to $OUT too.
set -u
OUT=${OUT:-/tmp/qkc-device}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
M=devkeep/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -f "$M" ]; then
    cat devkeep/part.aa devmodel/part.ab > "$M" || exit 1
fi
sha256sum "$M"
Q=devbin/qkc
[ -x "$Q" ] || { xz -d -c devbin/qkc.xz > "$Q" && chmod +x "$Q"; } || exit 1
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv
P="Once upon a time"
for t in cpu cuda; do
    echo "== $t"
    timeout 300 "$Q" generate "$M" --prompt "$P" --max-tokens 64 --target $t > "$OUT/$t.txt"
    cat "$OUT/$t.txt"
done
echo "== cuda, no graph"
timeout 300 "$Q" generate "$M" --prompt "$P" --max-tokens 64 --target cuda --no-cuda-graph > "$OUT/cuda_nograph.txt"
cat "$OUT/cuda_nograph.txt"
# the same greedy tokens: the generated text (every line but the stats line) must match
for f in cuda cuda_nograph; do
    if diff <(grep -v '^\[prefill' "$OUT/cpu.txt") <(grep -v '^\[prefill' "$OUT/$f.txt") > /dev/null; then
        echo "SAME greedy text: cpu == $f"
    else
        echo "DIFFERENT greedy text: cpu vs $f"
    fi
done
echo "== chat, cuda"
timeout 120 "$Q" generate "$M" --chat --prompt "What is the capital of France?" --max-tokens 48 --target cuda
echo "== decode speed, cuda, 256 tokens"
timeout 300 "$Q" generate "$M" --prompt "$P" --max-tokens 257 --target cuda | tail -1
