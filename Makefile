# selfanchor — two commands on a fresh machine:
#   make run    set up what is missing, build release, solve a sample problem on the default model
#   make test   set up what is missing, run the whole test suite on the SmolLM2 test model
SHELL := /bin/bash
PYTHON ?= python3
SWIFT ?= swift
SWIFT_TEST_FLAGS ?=
QUESTION ?= Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for her friends every day with four. She sells the remainder at the farmers' market daily for $$2 per fresh duck egg. How much in dollars does she make every day at the farmers' market?
BIN := .build/release/selfanchor
# Passed to the shell through the environment, so that "$2" in the question stays "$2".
export QUESTION
# The test bundle decodes in-process (no selfanchor re-exec there): give its OpenMP workers the same short
# spin the binary uses, so tests beside other work (an eval, a second make) do not starve each other.
export GOMP_SPINCOUNT ?= 10000

.PHONY: install uninstall run test test-protocol test-clients test-tools test-asan test-tsan fuzz soak bench setup setup-test deps llama models models-test build build-debug clean help

help:
	@echo "make run      set up, build release, solve a sample problem on the default model"
	@echo "make test     set up, run the test suite on the test model"
	@echo "make setup    install system packages, llama.cpp and both models (idempotent)"
	@echo "make build    release build of .build/release/selfanchor"
	@echo "make bench    speed and memory ratios on the default model"
	@echo "make install  selfanchor, completions and the Python client under PREFIX (default ~/.local)"
	@echo "make uninstall  remove exactly what make install put under PREFIX"

run: setup build
	$(BIN) solve --model default "$$QUESTION"

test: setup-test test-tools
	$(SWIFT) build --build-tests $(SWIFT_TEST_FLAGS)
	$(SWIFT) test $(SWIFT_TEST_FLAGS)
	$(MAKE) test-protocol
	$(MAKE) test-clients

# Conformance: the real daemon over pipes, both framings, every message checked against Protocol/schema.
DAEMON_BIN ?= $(CURDIR)/.build/debug/selfanchor
test-protocol: test-tools
	cd Tests/protocol && SELFANCHOR_BIN=$(DAEMON_BIN) ../../.venv/bin/python -m pytest -q -rs

# The Swift tests and the protocol tests (real daemon) under AddressSanitizer / ThreadSanitizer, each in
# its own build directory. Slow: a full instrumented build. Suppressions: scripts/sanitizers/.
test-asan: setup-test test-tools
	$(SWIFT) build --build-tests --sanitize=address --build-path .build-asan
	ASAN_OPTIONS=$(ASAN_OPTIONS_TEST) LSAN_OPTIONS=$(LSAN_OPTIONS_TEST) $(SWIFT) test --sanitize=address --build-path .build-asan
	ASAN_OPTIONS=$(ASAN_OPTIONS_TEST) LSAN_OPTIONS=$(LSAN_OPTIONS_TEST) $(MAKE) test-protocol DAEMON_BIN=$(CURDIR)/.build-asan/debug/selfanchor

test-tsan: setup-test test-tools
	$(SWIFT) build --build-tests --sanitize=thread --build-path .build-tsan
	TSAN_OPTIONS=$(TSAN_OPTIONS_TEST) $(SWIFT) test --sanitize=thread --build-path .build-tsan
	TSAN_OPTIONS=$(TSAN_OPTIONS_TEST) $(MAKE) test-protocol DAEMON_BIN=$(CURDIR)/.build-tsan/debug/selfanchor

ASAN_OPTIONS_TEST ?= halt_on_error=1:detect_leaks=1
LSAN_OPTIONS_TEST ?= suppressions=$(CURDIR)/scripts/sanitizers/lsan.supp:print_suppressions=0
TSAN_OPTIONS_TEST ?= halt_on_error=1:second_deadlock_stack=1:suppressions=$(CURDIR)/scripts/sanitizers/tsan.supp

# libFuzzer + ASan over framing, JSON, JSON-RPC and params decoding (FUZZ_SECONDS, default 60).
FUZZ_SECONDS ?= 60
fuzz: setup-test
	scripts/fuzz.sh $(FUZZ_SECONDS)

# 1000 solves and a cancellation storm through one daemon; prints RSS growth, requests/s, stuck count.
# Speed and memory on the default model, side by side in one run (ratios; see the README's table):
# decoders against plain greedy, the prompt cache, concurrent requests, model load; then 100 requests
# through the daemon, four at a time, and its RSS against model file + KV cache + 150 MB.
bench: setup build
	$(BIN) bench --model default
	$(PYTHON) scripts/soak.py --bin $(BIN) --model default --solves 100 --warmup 10 --storm 0 --max-tokens 32 --threads 0

soak: setup-test build-debug
	.venv/bin/python scripts/soak.py

test-tools: llama
	@.venv/bin/python -c 'import pytest, jsonschema, nbclient, nbformat, ipykernel, mcp' 2>/dev/null \
		|| .venv/bin/pip install --quiet pytest jsonschema nbclient nbformat ipykernel mcp

# Every client against the real daemon (debug build) on the test model.
test-clients: test-tools
	SELFANCHOR_BIN=$(CURDIR)/.build/debug/selfanchor .venv/bin/python -m pytest -q Clients/python/tests Clients/shell/tests
	cd Clients/vscode && SELFANCHOR_BIN=$(CURDIR)/.build/debug/selfanchor node --test test/
	SELFANCHOR_BIN=$(CURDIR)/.build/debug/selfanchor nvim --headless -u NONE --cmd 'set rtp+=Clients/nvim' \
		-c 'luafile Clients/nvim/test/run.lua'
	SELFANCHOR_BIN=$(CURDIR)/.build/debug/selfanchor emacs --batch -Q -L Clients/emacs \
		-l Clients/emacs/test/selfanchor-test.el -f ert-run-tests-batch-and-exit

setup: deps llama models
setup-test: deps llama models-test

deps:
	@scripts/install-system-deps.sh

llama: deps
	@scripts/setup-llama.sh

models:
	@$(PYTHON) scripts/install_models.py default test

models-test:
	@$(PYTHON) scripts/install_models.py test

build: deps llama
	$(SWIFT) build -c release --product selfanchor

build-debug: deps llama
	$(SWIFT) build --product selfanchor

# Installs under PREFIX: bin/selfanchor (its rpath finds llama.cpp in lib/selfanchor), shell completions,
# the Python client, share/selfanchor/install_models.py; the manifest lets uninstall remove exactly that.
PREFIX ?= $(HOME)/.local
install: build
	scripts/install.sh "$(PREFIX)"

uninstall:
	scripts/uninstall.sh "$(PREFIX)"

clean:
	rm -rf .build .build-asan .build-tsan .build-fuzz
