#!/usr/bin/env python3
"""SmolLM2-135M decode speed, qkc vs llama.cpp, interleaved on one machine (issue 7).

usage: LLAMA_BENCH=/path/to/llama-bench benches/cpu/smollm2_decode_vs_llamacpp.py ROUNDS QKC [QKC ...]

Each round runs `llama-bench -t 2 -p 0 -n 128 -r 1` and `QKC generate MODEL --prompt "Once upon
a time" --max-tokens 129 --act-bits 8 --threads 2` (128 decode steps, the positions of tg128)
for every given qkc binary, alternating the order from round to round. It prints each round,
then per binary the median tok/s and the median and range of the per-round ratio to llama.cpp.
The machines here are shared and noisy: only ratios taken in the same round mean much.
llama.cpp is not part of this repository: build it yourself (benches/RESULTS.md says how).
"""
import os
import re
import statistics
import subprocess
import sys

MODEL = os.environ.get("MODEL", "tools/models/SmolLM2-135M-Instruct.Q4_1.gguf")
LB = os.environ.get("LLAMA_BENCH", "llama-bench")


def qkc(binary):
    out = subprocess.run(
        [binary, "generate", MODEL, "--prompt", "Once upon a time", "--max-tokens", "129",
         "--act-bits", "8", "--threads", "2"],
        capture_output=True, text=True, check=True).stdout
    return float(re.search(r"decode \d+ tokens: ([\d.]+) tok/s", out).group(1))


def llama():
    out = subprocess.run([LB, "-m", MODEL, "-t", "2", "-p", "0", "-n", "128", "-r", "1"],
                         capture_output=True, text=True, check=True).stdout
    line = next(l for l in out.splitlines() if "tg128" in l)
    return float(line.split("|")[7].split("±")[0])


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    rounds, bins = int(sys.argv[1]), sys.argv[2:]
    res = {b: [] for b in bins + ["llama.cpp"]}
    for r in range(rounds):
        order = bins + ["llama.cpp"] if r % 2 == 0 else ["llama.cpp"] + bins[::-1]
        for b in order:
            res[b].append(llama() if b == "llama.cpp" else qkc(b))
        print(r, {k: v[-1] for k, v in res.items()}, flush=True)
    for k, v in res.items():
        print(f"{k}: median {statistics.median(v):.1f} tok/s, range {min(v):.1f}-{max(v):.1f}")
    for b in bins:
        ratios = [q / l for q, l in zip(res[b], res["llama.cpp"])]
        print(f"{b} / llama.cpp, per round: median {statistics.median(ratios):.2f}, "
              f"range {min(ratios):.2f}-{max(ratios):.2f}")


if __name__ == "__main__":
    main()
