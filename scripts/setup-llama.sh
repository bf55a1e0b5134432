#!/usr/bin/env bash
# Points .deps/llama at a llama.cpp install with include/llama.h and lib/libllama.so.
#
# Default: the library built by the PyPI package llama-cpp-python==0.3.36 (llama.cpp 0c1e570) in the
# project's .venv. pip keeps the built wheel in its cache, so a second setup takes seconds.
# LLAMA_PREFIX=/path/to/install uses your own llama.cpp build instead (e.g. one built with CUDA):
# it must have include/llama.h and lib/libllama.so (cmake --install's layout).
set -euo pipefail
cd "$(dirname "$0")/.."

LLAMA_CPP_PYTHON_VERSION=0.3.36
mkdir -p .deps

if [ -n "${LLAMA_PREFIX:-}" ]; then
    prefix=$(cd "$LLAMA_PREFIX" && pwd)
    [ -f "$prefix/include/llama.h" ] || { echo "setup: $prefix/include/llama.h not found (LLAMA_PREFIX)" >&2; exit 1; }
    ls "$prefix"/lib/libllama.so* >/dev/null 2>&1 || { echo "setup: $prefix/lib/libllama.so not found (LLAMA_PREFIX)" >&2; exit 1; }
    ln -sfn "$prefix" .deps/llama
    echo "setup: llama.cpp from LLAMA_PREFIX=$prefix" >&2
    exit 0
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
installed=$(.venv/bin/python -c "import importlib.metadata as m; print(m.version('llama_cpp_python'))" 2>/dev/null || true)
if [ "$installed" != "$LLAMA_CPP_PYTHON_VERSION" ] || [ ! -f "$site/include/llama.h" ]; then
    echo "setup: [llama.cpp] installing llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION: a cold build of llama.cpp" \
        "takes 6-12 minutes on 2 cores (seconds when pip's wheel cache has it)" >&2
    start=$(date +%s)
    CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=ON}" .venv/bin/pip install --quiet \
        "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" >&2 &
    pip_pid=$!
    # A line a minute, so a long build does not look like a hang.
    while kill -0 "$pip_pid" 2>/dev/null; do
        for _ in $(seq 60); do kill -0 "$pip_pid" 2>/dev/null || break; sleep 1; done
        kill -0 "$pip_pid" 2>/dev/null && echo "setup: [llama.cpp] still building ($(( ($(date +%s) - start) / 60 )) min so far)" >&2
    done
    wait "$pip_pid"
    echo "setup: [llama.cpp] installed in $(( $(date +%s) - start )) s" >&2
fi
[ -f "$site/include/llama.h" ] || { echo "setup: llama-cpp-python installed no include/llama.h" >&2; exit 1; }
ln -sfn "$site" .deps/llama
