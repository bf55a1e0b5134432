"""Plays every transcript in Protocol/examples against the real daemon, in both framings."""
import binascii
import json
import pathlib

import pytest

from conftest import daemon_binary
from daemon import Daemon, matches

EXAMPLES = sorted((pathlib.Path(__file__).resolve().parents[2] / "Protocol" / "examples").glob("*.jsonl"))


def cases():
    for path in EXAMPLES:
        steps = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        config = steps[0].get("config", {}) if steps else {}
        for framing in config.get("framings", ["lsp", "ndjson"]):
            yield pytest.param(path, framing, id=f"{path.stem}-{framing}")


@pytest.mark.parametrize("path,framing", list(cases()))
def test_transcript(path, framing):
    steps = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    config = steps[0].pop("config", {}) if steps and "config" in steps[0] else {}
    steps = [s for s in steps if s]
    daemon = Daemon(daemon_binary(), framing, config.get("args", []))
    pending_notifications = []
    try:
        expected_exit = 0
        for step in steps:
            if "send" in step:
                daemon.send(step["send"])
            elif "send_raw" in step:
                daemon.send_body(step["send_raw"].encode())
            elif "send_raw_hex" in step:
                daemon.send_body(binascii.unhexlify(step["send_raw_hex"]))
            elif "send_wire" in step:
                daemon.send_wire(step["send_wire"].encode())
            elif "close" in step:
                daemon.close()
            elif "expect" in step:
                expected = step["expect"]
                seen = []
                while True:
                    message = daemon.next()
                    if matches(message, expected):
                        break
                    if "method" not in message:
                        # A response other than the expected one must not overtake it when ids match.
                        assert "id" not in expected or message.get("id") != expected["id"], \
                            f"{path.name}: got {message}, expected {expected}"
                    seen.append(message)
                    assert len(seen) < 5000, f"{path.name}: never saw {expected}"
                if "no_notifications_for" in step:
                    request = step["no_notifications_for"]
                    assert not [m for m in seen if m.get("params", {}).get("id") == request]
                if "partial_predicted_min" in step:
                    partial = message["error"]["data"]["partial"]
                    assert partial["timings"]["predicted_n"] >= step["partial_predicted_min"]
                pending_notifications += seen
            elif "exit_code" in step:
                expected_exit = step["exit_code"]
                assert daemon.wait() == expected_exit
        if daemon.process.poll() is None:
            daemon.close()
            assert daemon.wait() == expected_exit
    finally:
        daemon.kill()


@pytest.mark.parametrize("framing", ["lsp", "ndjson"])
def test_exits_when_the_parent_process_dies(framing):
    import subprocess
    import time

    parent = subprocess.Popen(["sleep", "120"])
    daemon = Daemon(daemon_binary(), framing)
    try:
        daemon.send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"processId": parent.pid}})
        assert daemon.next()["id"] == 1
        time.sleep(1.5)
        assert daemon.process.poll() is None, "exited while the parent was alive"
        parent.kill()
        parent.wait()
        assert daemon.wait(timeout=10) == 1
    finally:
        parent.kill()
        daemon.kill()


def test_stdout_carries_protocol_messages_only():
    """Every byte the daemon writes to stdout belongs to a well-formed message, even with logging on."""
    import subprocess

    requests = b"".join(json.dumps(m).encode() + b"\n" for m in [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}},
        {"jsonrpc": "2.0", "id": 2, "method": "solve", "params": {"question": "What is 3 + 4?", "options": {"maxTokens": 16}}},
    ])
    run = subprocess.run([daemon_binary(), "serve", "--model", "test", "--log-level", "trace", "--llama-log", "debug"],
                         input=requests, capture_output=True, timeout=120)
    assert run.returncode == 0
    lines = run.stdout.decode().splitlines()
    assert lines and all(json.loads(line)["jsonrpc"] == "2.0" for line in lines)
    assert any(json.loads(line).get("id") == 2 and "result" in json.loads(line) for line in lines)
    assert run.stderr, "logs went to stderr"
