#!/usr/bin/env bash
# Fuzzes framing, JSON parsing, JSON-RPC decoding and params decoding (Fuzz/FuzzMessages.swift) with
# libFuzzer and AddressSanitizer, seeded from Protocol/examples.
#
#   scripts/fuzz.sh [SECONDS] [extra libFuzzer flags…]     (default 60 s)
#
# Builds the library targets into .build-fuzz with `-sanitize=fuzzer,address` (coverage instrumentation
# and ASan, no libFuzzer main), links the harness with swiftc, writes the seed corpus, and runs with
# -max_total_time. The corpus grows in .build-fuzz/corpus; crashes land in .build-fuzz/artifacts.
# The protocol layer does not depend on llama.cpp, so neither does the harness.
# Needs the toolchain's libFuzzer runtime (clang's libclang_rt.fuzzer, shipped with Swift on Linux).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-60}
shift || true
SWIFT=${SWIFT:-swift}
SWIFTC=${SWIFTC:-swiftc}
BUILD=.build-fuzz
FLAGS=(-Xswiftc -sanitize=fuzzer,address -Xcc -fsanitize=fuzzer-no-link,address)

for target in SelfAnchorProtocol JSONRPCTransport; do
    "$SWIFT" build --build-path "$BUILD" --target "$target" "${FLAGS[@]}" >&2
done

OBJECTS=()
for module in JSON JSONRPC JSONRPCTransport SelfAnchorProtocol CJanssonShim \
              Collections OrderedCollections DequeModule BitCollections HashTreeCollections HeapModule _RopeModule \
              InternalCollectionsUtilities BasicContainers ContainersPreview TrailingElementsModule SortedCollections; do
    for object in "$BUILD"/debug/"$module".build/*.o; do
        [[ -e "$object" ]] && OBJECTS+=("$object")
    done
done
"$SWIFTC" -sanitize=fuzzer,address -parse-as-library -g -module-name FuzzMessages \
    -I "$BUILD/debug/Modules" \
    -Xcc -fmodule-map-file="$BUILD/debug/CJanssonShim.build/module.modulemap" -Xcc -ISources/CJanssonShim/include \
    -Xcc -fmodule-map-file=Sources/CJansson/module.modulemap \
    Fuzz/FuzzMessages.swift "${OBJECTS[@]}" -ljansson \
    -o "$BUILD/fuzz-messages"

mkdir -p "$BUILD/seeds" "$BUILD/corpus" "$BUILD/artifacts"
python3 Fuzz/make_seeds.py "$BUILD/seeds"
exec "$BUILD/fuzz-messages" -max_total_time="$SECONDS_TO_RUN" -max_len=65536 -timeout=10 -rss_limit_mb=4096 \
    -artifact_prefix="$BUILD/artifacts/" -print_final_stats=1 "$@" "$BUILD/corpus" "$BUILD/seeds"
