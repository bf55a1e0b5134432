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
