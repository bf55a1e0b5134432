#!/usr/bin/env bash
# `make uninstall PREFIX=…`: removes exactly the files `make install` listed in its manifest, then the
# folders that leaves empty.
set -euo pipefail
prefix=${1:?usage: scripts/uninstall.sh PREFIX}
prefix=$(cd "$prefix" 2>/dev/null && pwd) || { echo "uninstall: $1 does not exist" >&2; exit 1; }
manifest="$prefix/share/selfanchor/install-manifest.txt"
[ -f "$manifest" ] || { echo "uninstall: nothing installed under $prefix (no $manifest)" >&2; exit 1; }
count=0
while read -r file; do
    [ -n "$file" ] || continue
    case "$file" in "$prefix"/*) ;; *) echo "uninstall: skipping $file (outside $prefix)" >&2; continue ;; esac
    if [ -e "$file" ] || [ -L "$file" ]; then rm -f "$file"; count=$((count + 1)); fi
    # Remove the folders this leaves empty, up to the prefix.
    dir=$(dirname "$file")
    while [ "$dir" != "$prefix" ] && rmdir "$dir" 2>/dev/null; do dir=$(dirname "$dir"); done
done < <(sort -r "$manifest")
echo "removed $count files from $prefix" >&2
