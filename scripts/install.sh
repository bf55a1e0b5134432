#!/usr/bin/env bash
# `make install PREFIX=…`: the selfanchor binary, llama.cpp's libraries beside it (the binary's rpath
# looks in ../lib/selfanchor first), bash/zsh/fish completions, the Python client and the model
# installer, under PREFIX. Every file written is listed in PREFIX/share/selfanchor/install-manifest.txt,
# which `make uninstall` (scripts/uninstall.sh) removes, and nothing else.
#
# Usage: scripts/install.sh PREFIX   (BIN=path/to/selfanchor to install another build than release)
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${1:?usage: scripts/install.sh PREFIX}
mkdir -p "$prefix"
prefix=$(cd "$prefix" && pwd)
bin=${BIN:-.build/release/selfanchor}
[ -x "$bin" ] || { echo "install: $bin not built (make build)" >&2; exit 1; }
manifest="$prefix/share/selfanchor/install-manifest.txt"
if [ -f "$manifest" ]; then scripts/uninstall.sh "$prefix"; fi

written=()
put() { # put SOURCE DESTINATION MODE
    install -D -m "$3" "$1" "$2"
    written+=("$2")
}
put "$bin" "$prefix/bin/selfanchor" 0755
# The shared libraries by their sonames, as the binary and libllama ask for them.
for lib in .deps/llama/lib/lib*.so.0; do
    put "$(readlink -f "$lib")" "$prefix/lib/selfanchor/$(basename "$lib")" 0755
done
put scripts/install_models.py "$prefix/share/selfanchor/install_models.py" 0755

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$prefix/bin/selfanchor" --generate-completion-script bash > "$tmp/bash"
"$prefix/bin/selfanchor" --generate-completion-script zsh > "$tmp/zsh"
"$prefix/bin/selfanchor" --generate-completion-script fish > "$tmp/fish"
put "$tmp/bash" "$prefix/share/bash-completion/completions/selfanchor" 0644
put "$tmp/zsh" "$prefix/share/zsh/site-functions/_selfanchor" 0644
put "$tmp/fish" "$prefix/share/fish/vendor_completions.d/selfanchor.fish" 0644

# The Python client, into PREFIX's site-packages (for ~/.local, the user site Python already searches).
python=${PYTHON:-python3}
site=$("$python" -c 'import sys, sysconfig; print(sysconfig.get_path("purelib", vars={"base": sys.argv[1], "platbase": sys.argv[1]}))' "$prefix")
"$python" -m pip install --quiet --no-deps --target "$tmp/python" Clients/python >&2
(cd "$tmp/python" && find . -type f ! -name '*.pyc' | sort) | while read -r file; do
    echo "${file#./}"
done > "$tmp/python-files"
while read -r file; do
    put "$tmp/python/$file" "$site/$file" 0644
done < "$tmp/python-files"

mkdir -p "$(dirname "$manifest")"
printf '%s\n' "${written[@]}" "$manifest" > "$manifest"
echo "installed ${#written[@]} files under $prefix (listed in $manifest)" >&2
case ":$PATH:" in
    *":$prefix/bin:"*) ;;
    *) echo "note: $prefix/bin is not on your PATH" >&2 ;;
esac
