#!/usr/bin/env python3
"""Writes libFuzzer seeds for Fuzz/FuzzMessages.swift from Protocol/examples: every transcript as one
stream in each framing, plus every single message. Byte 0 of a seed selects the framing and limit
(see the harness): 0 auto, 1 lsp, 2 ndjson, with the 1 MiB limit (+6)."""
import binascii
import hashlib
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
LSP, NDJSON = 1 + 6, 2 + 6


def bodies(path):
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        step = json.loads(line)
        if "send" in step:
            yield json.dumps(step["send"], ensure_ascii=False).encode()
        elif "send_raw" in step:
            yield step["send_raw"].encode()
        elif "send_raw_hex" in step:
            yield binascii.unhexlify(step["send_raw_hex"])


def lsp(body):
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def main(out):
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = []
    for path in sorted((ROOT / "Protocol" / "examples").glob("*.jsonl")):
        messages = [b for b in bodies(path) if len(b) < 60000]
        seeds.append(bytes([LSP]) + b"".join(lsp(b) for b in messages))
        seeds.append(bytes([NDJSON]) + b"".join(b + b"\n" for b in messages))
        for body in messages:
            seeds.append(bytes([NDJSON]) + body + b"\n")
            seeds.append(bytes([LSP]) + lsp(body))
    for seed in seeds:
        (out / hashlib.sha1(seed).hexdigest()).write_bytes(seed[:65536])
    print(f"{len(seeds)} seeds in {out}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1])
