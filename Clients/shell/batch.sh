#!/usr/bin/env bash
# Solve every question of a JSONL file ({"question": …} per line) in one daemon, print "answer<TAB>question"
# in the file's order. The daemon solves up to four at once (they finish in any order), so the lines come at the end.
# Usage: batch.sh questions.jsonl [strategy] [model]
set -euo pipefail
file=${1:?usage: batch.sh questions.jsonl [strategy] [model]}
strategy=${2:-cot}
model=${3:-default}
bin=${SELFANCHOR_BIN:-selfanchor}
{
  jq -nc '{jsonrpc:"2.0", id:0, method:"initialize", params:{}}'
  jq -c --arg s "$strategy" '{jsonrpc:"2.0", id:(input_line_number), method:"solve",
        params:{question:.question, strategy:$s, stream:false, options:{maxTokens:256}}}' "$file"
} | "$bin" serve --framing ndjson --model "$model" \
  | jq -rs 'map(select(.id != null and .id > 0)) | sort_by(.id)[]
           | if .result then "\(.result.answer.extracted // "-")\t\(.result.question)" else "error\t\(.error.message)" end'
