#!/usr/bin/env bash
# Solve one question through the daemon and print the plans, steps and answer as they stream.
# Usage: solve.sh "question" [strategy] [model]   (SELFANCHOR_BIN overrides the binary)
set -euo pipefail
question=${1:?usage: solve.sh "question" [strategy] [model]}
strategy=${2:-self-anchor}
model=${3:-default}
bin=${SELFANCHOR_BIN:-selfanchor}
{
  jq -nc '{jsonrpc:"2.0", id:1, method:"initialize", params:{}}'
  jq -nc --arg q "$question" --arg s "$strategy" \
    '{jsonrpc:"2.0", id:2, method:"solve", params:{question:$q, strategy:$s, options:{maxTokens:256}}}'
} | "$bin" serve --framing ndjson --model "$model" \
  | jq -r --unbuffered '
      if .method == "selfanchor/event" then
        .params.event
        | if .event == "plan" then "Plan \(.index): \(.text)   (ω=\(.omega*100|round/100))"
          elif .event == "reason" then "Step \(.index): \(.text)"
          elif .event == "answer" then "Answer: \(.extracted // .text)"
          else empty end
      elif .id == 2 and .error then "error \(.error.code): \(.error.message)"
      else empty end'
