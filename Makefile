# qkc: two-command setup.   make setup   then   make demo / make test
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CARGO      ?= cargo
DEMO_GRAPH ?= ir/llama_block.qir
DEMO_ARGS  ?= --target cpu --check --seed 0
DEMO_MODEL ?= tools/models/SmolLM2-135M-Instruct.Q4_1.gguf
DEMO_PROMPT ?= What is the capital of France? Answer in one sentence.
# Environment for every cargo invocation (LLVM_SYS_191_PREFIX, QKC_PTXAS, PATH).
ENV        := . scripts/env.sh &&

.PHONY: help setup demo test build fmt fmt-check clippy lint ci clean

help:
	@echo "make setup      install LLVM 19 dev packages + ptxas (tools/cuda); idempotent"
	@echo "make demo       compile $(DEMO_GRAPH) for the CPU, run it, check it against the interpreter;"
	@echo "                then generate an answer from SmolLM2-135M (Q4_1 GGUF) on the CPU"
	@echo "make test       cargo test --workspace --all-targets --locked"
	@echo "make build      cargo build --workspace --all-targets --locked"
	@echo "make fmt        cargo fmt --all"
	@echo "make fmt-check  cargo fmt --all -- --check"
	@echo "make clippy     cargo clippy --workspace --all-targets --locked -- -D warnings"
	@echo "make ci         what .ci/run does"

setup:
	@bash scripts/setup.sh

demo: setup
	$(ENV) $(CARGO) build --release -q -p qkc-cli --bin qkc
	./target/release/qkc check $(DEMO_GRAPH)
	./target/release/qkc compile $(DEMO_GRAPH) --emit kernels
	./target/release/qkc run $(DEMO_GRAPH) $(DEMO_ARGS) --batch 4 --steps 2
	./target/release/qkc generate $(DEMO_MODEL) --chat --prompt "$(DEMO_PROMPT)" --max-tokens 48

test: setup
	$(ENV) INSTA_UPDATE=no $(CARGO) test --workspace --all-targets --locked

build: setup
	$(ENV) $(CARGO) build --workspace --all-targets --locked

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

clippy: setup
	$(ENV) $(CARGO) clippy --workspace --all-targets --locked -- -D warnings

lint: fmt-check clippy

ci: test

clean:
	$(CARGO) clean
