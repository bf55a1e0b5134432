"""Request options whose effect shows in the result: the adaptive masked pass is on by default
(τ = 0.9) and `"skipMaskedAbove": null` turns it off."""
from conftest import daemon_binary
from daemon import Daemon

QUESTION = "A farmer has 12 cows and buys 7 more. Then 4 cows are sold. How many cows are left?"


def result(daemon, request_id, options):
    daemon.send({"jsonrpc": "2.0", "id": request_id, "method": "solve",
                 "params": {"question": QUESTION, "stream": False, "options": {"maxTokens": 60, **options}}})
    while True:
        message = daemon.next(timeout=120)
        if message.get("id") == request_id:
            return message


def test_adaptive_masked_pass_is_the_default_and_null_turns_it_off():
    daemon = Daemon(daemon_binary(), "ndjson")
    try:
        daemon.send({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {}})
        while daemon.next().get("id") != 0:
            pass
        default = result(daemon, 1, {})["result"]["timings"]
        off = result(daemon, 2, {"skipMaskedAbove": None})["result"]["timings"]
        never = result(daemon, 3, {"skipMaskedAbove": 1})["result"]["timings"]
        assert default["masked_skipped_n"] > 0
        assert off["masked_skipped_n"] == 0 and off["masked_n"] >= off["predicted_n"]
        assert never["masked_skipped_n"] == 0 or never["masked_skipped_n"] < default["masked_skipped_n"]
        bad = result(daemon, 4, {"skipMaskedAbove": 1.5})
        assert bad["error"]["code"] == -32602 and "skipMaskedAbove" in bad["error"]["message"]
    finally:
        daemon.kill()
