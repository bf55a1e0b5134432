#!/usr/bin/env bash
# Installs the Debian packages selfanchor builds against (jansson, pkg-config, python venv support),
# only when something is missing. Runs apt-get as root, or through sudo when available.
set -euo pipefail

missing=()
pkg-config --version >/dev/null 2>&1 || missing+=(pkg-config)
pkg-config --exists jansson 2>/dev/null || missing+=(libjansson-dev)
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then missing+=(python3-venv); fi
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v c++ >/dev/null 2>&1 || missing+=(g++)
# The editor and shell clients' tests (make test) drive these against the daemon.
if [ "${SELFANCHOR_CLIENT_DEPS:-1}" = 1 ]; then
    command -v jq >/dev/null 2>&1 || missing+=(jq)
    command -v nvim >/dev/null 2>&1 || missing+=(neovim)
    command -v emacs >/dev/null 2>&1 || missing+=(emacs-nox)
    command -v node >/dev/null 2>&1 || missing+=(nodejs)
fi

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
echo "setup: [packages] installing Debian packages (1-3 minutes): ${missing[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "setup: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
