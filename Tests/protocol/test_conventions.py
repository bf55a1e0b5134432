"""One naming convention on the wire (protocol version 2): every key in every schema and every
transcript is camelCase, except inside `timings`, which keeps llama-server's snake_case names."""

import json
import re

from conftest import ROOT

SCHEMAS = sorted((ROOT / "Protocol" / "schema").glob("*.json"))
TRANSCRIPTS = sorted((ROOT / "Protocol" / "examples").glob("*.jsonl"))
CAMEL = re.compile(r"^[$]?[a-z][a-zA-Z0-9]*$")
# JSON-RPC's own member names, and `$/cancelRequest`-style method names, are camelCase already.
# Inside these objects the keys are not ours to name.
FOREIGN = {"timings"}


def schema_keys(node, path, found):
    """Every property name a schema defines, with where; `timings` properties excepted."""
    if isinstance(node, dict):
        for name, sub in (node.get("properties") or {}).items():
            if path and path[-1] in FOREIGN:
                continue
            found.append((name, "/".join(path)))
            schema_keys(sub, path + [name], found)
        for keyword, sub in node.items():
            if keyword in ("$defs", "definitions") and isinstance(sub, dict):
                for name, definition in sub.items():
                    schema_keys(definition, path + [name], found)
            elif keyword != "properties":
                schema_keys(sub, path, found)
    elif isinstance(node, list):
        for sub in node:
            schema_keys(sub, path, found)


def message_keys(value, path, found):
    """Every key of a message, with where; `timings` contents excepted."""
    if isinstance(value, dict):
        for name, sub in value.items():
            found.append((name, "/".join(path)))
            if name not in FOREIGN:
                message_keys(sub, path + [name], found)
    elif isinstance(value, list):
        for sub in value:
            message_keys(sub, path, found)


def test_there_is_something_to_check():
    assert len(SCHEMAS) >= 10 and len(TRANSCRIPTS) >= 10


def test_every_schema_key_is_camel_case():
    bad = []
    total = 0
    for schema in SCHEMAS:
        found = []
        schema_keys(json.loads(schema.read_text()), [], found)
        total += len(found)
        bad += [f"{schema.name}: {name} (in {where or 'top level'})" for name, where in found if not CAMEL.match(name)]
    assert total > 100
    assert not bad, "keys that are not camelCase:\n" + "\n".join(bad)


def test_every_transcript_key_is_camel_case():
    bad = []
    checked = 0
    for transcript in TRANSCRIPTS:
        for number, line in enumerate(transcript.read_text().splitlines(), 1):
            if not line.strip():
                continue
            step = json.loads(line)
            # The transcript's own verbs (send, expect, exit_code, …) are the test harness's, not the wire's.
            for message in (step.get("send"), step.get("expect")):
                if isinstance(message, dict):
                    found = []
                    message_keys(message, [], found)
                    checked += len(found)
                    bad += [f"{transcript.name}:{number}: {name}" for name, _ in found if not CAMEL.match(name)]
    assert checked > 100
    assert not bad, "keys that are not camelCase:\n" + "\n".join(bad)


def test_timings_keep_llama_server_names():
    event = json.loads((ROOT / "Protocol" / "schema" / "solve.json").read_text())["$defs"]["timings"]
    text = json.dumps(event)
    for name in ("prompt_n", "predicted_n", "predicted_per_second", "stop_reason"):
        assert f'"{name}"' in text


def test_the_checker_catches_snake_case():
    found = []
    message_keys({"event": {"prompt_tokens": 1, "timings": {"prompt_n": 1}}}, [], found)
    assert [name for name, _ in found if not CAMEL.match(name)] == ["prompt_tokens"]
