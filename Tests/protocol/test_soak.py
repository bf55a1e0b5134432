"""A short run of scripts/soak.py against the real daemon: a few dozen solves through one process,
then a cancellation storm (every other request cancelled at a random moment). The full 1000-solve
soak is `scripts/soak.py` (minutes; numbers in the README)."""
import importlib.util
import json
import os

from conftest import ROOT, daemon_binary

spec = importlib.util.spec_from_file_location("soak", ROOT / "scripts" / "soak.py")
soak = importlib.util.module_from_spec(spec)
spec.loader.exec_module(soak)


def test_short_soak_and_cancellation_storm(capsys):
    # Under AddressSanitizer (make test-asan) freed memory sits in ASan's quarantine, so RSS grows by
    # design; the RSS bound is only checked on a plain build. The full soak checks < 5%.
    growth, budget = ("1000", "100000") if "ASAN_OPTIONS" in os.environ else ("10", "150")
    code = soak.main(["--bin", daemon_binary(), "--solves", "30", "--warmup", "10", "--storm", "16",
                      "--max-growth", growth, "--memory-budget-mb", budget, "--timeout", "60"])
    report = json.loads(capsys.readouterr().out)
    assert report["failures"] == [] and code == 0, report
    assert report["soak"]["answered"] == 30 and report["soak"]["stuck"] == 0 and report["soak"]["error_count"] == 0
    assert report["soak"]["served"] >= 30
    assert report["soak"]["rss_end_bytes"] <= report["soak"]["rss_budget_bytes"]
    storm = report["storm"]
    assert storm["answered"] == storm["requests"] == 16
    assert storm["cancelled"] >= 1, "no cancellation landed; the storm tested nothing"
    assert storm["result"] + storm["cancelled"] == 16 and storm["other_error"] == 0
    assert storm["in_flight_after"] == 0 and storm["queue_waiting_after"] == 0
    assert report["exit_code"] == 0
