#!/usr/bin/env bash
# Print the daemon's model and memory as one line (a liveness check for scripts).
set -euo pipefail
bin=${SELFANCHOR_BIN:-selfanchor}
printf '%s\n' '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}' '{"jsonrpc":"2.0","id":2,"method":"server/status"}' \
  | "$bin" serve --framing ndjson --model "${1:-default}" \
  | jq -r 'select(.id == 2) | .result | "\(.model.name) \(.model.description) rss=\(.memory.rssBytes / 1048576 | floor)MiB"'
