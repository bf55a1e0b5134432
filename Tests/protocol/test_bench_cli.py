"""`selfanchor bench --json` as a script reads it: the real binary on the test model, one JSON object
on stdout with every row's numbers, the default configuration marked; the text rows carry the mark."""
import json
import os
import subprocess

from conftest import daemon_binary

SMALL = ["--model", "test", "--repeats", "1", "--tokens", "6", "--raw-steps", "4", "--concurrent", "2"]


def test_json_has_every_row_and_marks_the_default(tmp_path):
    store = tmp_path / "cache" / "batching.tsv"
    environment = dict(os.environ, SELFANCHOR_BATCHING_FILE=str(store))
    process = subprocess.run([daemon_binary(), "bench", "--json", *SMALL], capture_output=True, text=True, timeout=900,
                             env=environment)
    assert process.returncode == 0, process.stderr
    lines = [line for line in process.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, "stdout is one JSON object"
    report = json.loads(lines[0])
    assert set(report) == {"setup", "rawSingle", "rawSeparate", "rawBatched", "batchCalibration", "decoders",
                           "promptCache", "concurrency", "aloneThreads", "beside", "modelLoad"}
    calibration = report["batchCalibration"]
    assert [row["tokens"] for row in calibration["batches"]] == [2, 3, 4]
    # The choice follows the measured costs: one call per token up to the largest size whose batch
    # costs more than that many single decodes.
    losing = [row["tokens"] for row in calibration["batches"] if row["ms"] > row["tokens"] * calibration["singleMs"]]
    assert calibration["smallRoundLimit"] == max(losing, default=0)
    # ... and is stored for the engines after it (one line: this machine, model and thread count).
    assert calibration["storedIn"] == str(store)
    stored = store.read_text().splitlines()
    assert len(stored) == 1 and stored[0].endswith(f"\t{calibration['smallRoundLimit']}"), stored
    assert "smollm2-135m-instruct-q4_1.gguf" in stored[0] and f"| threads {report['setup']['threads']}" in stored[0]
    assert report["setup"]["tokens"] == 6 and report["setup"]["rawSteps"] == 4 and report["setup"]["repeats"] == 1
    assert [row["sequences"] for row in report["rawBatched"]] == [2, 3, 4, 8]
    assert report["rawSingle"]["tokensPerSecond"] > 0
    decoders = {row["name"]: row for row in report["decoders"]}
    assert decoders["plain greedy"]["ratioToPlain"] == 1.0
    assert [row["name"] for row in report["decoders"] if row["default"]] == ["self-anchor, adaptive masked pass 0.9"]
    # One row per masked-pass mode, for spa and self-anchor; the speculative rows report their drafts.
    for strategy in ["spa (question anchored)", "self-anchor"]:
        for mode in ["masked pass every token", "speculative masked pass", "adaptive masked pass 0.9"]:
            assert f"{strategy}, {mode}" in decoders
    # (Six tokens of self-anchor are all plan, which the defaults do not steer: no drafts there.)
    speculative = decoders["spa (question anchored), speculative masked pass"]
    assert 0 <= speculative["acceptanceRate"] <= 1 and speculative["meanAcceptedLength"] >= 0
    for strategy in ["spa (question anchored)", "self-anchor"]:
        assert "acceptanceRate" not in decoders[f"{strategy}, masked pass every token"]
    for row in report["decoders"]:
        assert row["tokensPerSecond"] > 0
        assert abs(row["ratioToPlain"] - row["tokensPerSecond"] / decoders["plain greedy"]["tokensPerSecond"]) < 1e-9
    assert sum(row["default"] for row in report["concurrency"]) == 1
    assert all(row["requests"] == 2 and row["ratio"] > 0 for row in report["concurrency"])
    # The thread governor: the solve alone with it and on fixed threads, then beside a neighbour that adapts,
    # one that keeps its threads, and (the reference) this process on fixed threads beside the latter.
    alone = report["aloneThreads"]
    assert alone["adaptiveSeconds"] > 0 and alone["fixedSeconds"] > 0 and 0 <= alone["halvedShare"] <= 1
    assert calibration["reducedSingleMs"] > 0
    beside = report["beside"]
    assert isinstance(beside, list) and beside
    if beside[0]["started"]:
        assert [(row["neighbourThreads"], row["threads"]) for row in beside] == [
            ("adaptive", "adaptive"), ("fixed", "adaptive"), ("fixed", "fixed")]
        assert [row["default"] for row in beside] == [True, False, False]
        for row in beside:
            assert row["ratio"] > 0 and abs(row["ratio"] - row["besideSeconds"] / row["aloneSeconds"]) < 1e-9
            assert 0 <= row["halvedShare"] <= 1
    assert report["modelLoad"]["mmapMs"] > 0


def test_raw_only_text_rows_and_json():
    text = subprocess.run([daemon_binary(), "bench", "--raw-only", *SMALL], capture_output=True, text=True, timeout=600)
    assert text.returncode == 0, text.stderr
    assert "raw decode, 1 sequence:" in text.stdout and "sequences in one batch" in text.stdout
    raw = subprocess.run([daemon_binary(), "bench", "--raw-only", "--json", *SMALL], capture_output=True, text=True,
                         timeout=600)
    assert raw.returncode == 0, raw.stderr
    assert set(json.loads(raw.stdout)) == {"setup", "rawSingle", "rawSeparate", "rawBatched"}


def test_counts_below_one_are_refused():
    for flag in ["--tokens", "--raw-steps", "--repeats", "--concurrent"]:
        process = subprocess.run([daemon_binary(), "bench", "--model", "test", flag, "0"], capture_output=True, text=True,
                                 timeout=60)
        assert process.returncode != 0 and f"{flag} must be at least 1 (got 0)" in process.stderr, process.stderr
