"""`selfanchor eval` as a user runs it: the real binary on the test model, with --variant columns,
the constant-answer baseline, resume per variant, and clear errors for bad variants."""
import json
import subprocess

import pytest

from conftest import daemon_binary

ITEMS = [
    {"id": "s0", "question": "Is the sun a star?", "answer": "Yes"},
    {"id": "s1", "question": "Can a fish climb a tree?", "answer": "No"},
    {"id": "s2", "question": "Is ice colder than steam?", "answer": "Yes"},
]


def run_eval(tmp_path, *args, check=True):
    data = tmp_path / "yesno.jsonl"
    data.write_text("".join(json.dumps(item) + "\n" for item in ITEMS))
    process = subprocess.run(
        [daemon_binary(), "eval", "--model", "test", "--data", str(data), "--max-tokens", "12", "--parallel", "2",
         "--context-size", "1024", *args],
        capture_output=True, text=True, timeout=600)
    if check:
        assert process.returncode == 0, process.stderr
    return process


def records(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines() if line.strip()]


def test_variants_are_paired_columns_with_their_definition(tmp_path):
    out = tmp_path / "run"
    process = run_eval(tmp_path, "--strategies", "cot", "--variant", "nosteer=self-anchor:omega=1",
                       "--variant", "w16=self-anchor:omega=1.6,omegaMode=fixed", "--out", str(out))
    rows = records(out)
    assert sorted({r["strategy"] for r in rows}) == ["cot", "nosteer", "w16"]
    assert len(rows) == 9
    by_column = {}
    for row in rows:
        by_column.setdefault(row["strategy"], []).append(row)
        assert ("variant" in row) == (row["strategy"] != "cot")
    assert {r["variant"] for r in by_column["nosteer"]} == {"nosteer=self-anchor:omega=1"}
    # The options reached the decoder: ω = 1 on every line of nosteer, 1.6 (fixed) on w16.
    nosteer_omegas = {s[k]["omega"] for r in by_column["nosteer"] for s in r["result"]["steps"] for k in ("plan", "reason") if s[k]}
    w16_omegas = {s[k]["omega"] for r in by_column["w16"] for s in r["result"]["steps"] for k in ("plan", "reason") if s[k]}
    assert nosteer_omegas == {1.0}, nosteer_omegas
    assert w16_omegas == {1.6}, w16_omegas
    # Without self-anchor among the columns, the first is the target; yes/no accuracies are read against
    # always giving the most common answer ("yes": 2 of 3).
    summary = (out / "summary.md").read_text()
    assert "| nosteer |" in summary and "| w16 |" in summary
    assert "always yes" in summary and "66.7%" in summary
    assert "always yes" in process.stdout and "cot vs baseline" in process.stdout
    svg = (out / "accuracy.svg").read_text()
    assert "nosteer" in svg and "always yes: 66.7%" in svg


def test_target_and_resume_per_variant(tmp_path):
    out = tmp_path / "run"
    run_eval(tmp_path, "--strategies", "plain", "--variant", "a=cot:maxTokens=8", "--limit", "2", "--out", str(out))
    assert len(records(out)) == 4
    # A new variant in the same directory runs only itself; the old columns resume.
    process = run_eval(tmp_path, "--strategies", "plain", "--variant", "a=cot:maxTokens=8", "--variant", "b=plain:maxTokens=4",
                       "--limit", "2", "--target", "b", "--out", str(out))
    rows = records(out)
    assert len(rows) == 6
    assert "(4 resumed)" in process.stderr or "4 resumed" in process.stderr
    assert all(r["result"]["timings"]["predicted_n"] <= 4 for r in rows if r["strategy"] == "b")
    assert "b vs baseline" in process.stdout


def test_a_changed_definition_is_refused(tmp_path):
    out = tmp_path / "run"
    run_eval(tmp_path, "--strategies", "", "--variant", "a=plain:maxTokens=4", "--limit", "1", "--out", str(out))
    process = run_eval(tmp_path, "--strategies", "", "--variant", "a=plain:maxTokens=6", "--limit", "1", "--out", str(out),
                       check=False)
    assert process.returncode != 0
    assert "'a=plain:maxTokens=4'" in process.stderr and "another --out or another name" in process.stderr


@pytest.mark.parametrize("variant, message", [
    ("nosteer", "expected NAME=STRATEGY"),
    ("x=selfanchor", "unknown strategy 'selfanchor'"),
    ("x=self-anchor:omeg=1", "--variant x.omeg: unknown field"),
    ("x=self-anchor:omega=strong", "--variant x.omega: expected a number, got string"),
    ("x=self-anchor:omega=99", "must be a finite number between -10.0 and 10.0"),
    ("x=self-anchor:omega=1,omega=2", "omega is given twice"),
    ("cot=cot", "the column 'cot' is given twice"),
    ("x=self-anchor:planning=sideways", "must be one of \"interleaved\", \"upfront\""),
])
def test_bad_variants_say_what_is_wrong(tmp_path, variant, message):
    process = run_eval(tmp_path, "--strategies", "cot", "--variant", variant, "--out", str(tmp_path / "x"), check=False)
    assert process.returncode != 0
    assert message in process.stderr, process.stderr
    assert not (tmp_path / "x").exists(), "nothing is run or written"


def test_two_shards_merged_equal_one_unsharded_run(tmp_path):
    common = ["--strategies", "plain,cot", "--variant", "short=cot:maxTokens=6", "--parallel", "1"]
    whole = tmp_path / "whole"
    run_eval(tmp_path, *common, "--out", str(whole))
    shards = [tmp_path / "shard1", tmp_path / "shard2"]
    for k, out in enumerate(shards, start=1):
        run_eval(tmp_path, *common, "--shard", f"{k}/2", "--out", str(out))
    sharded = [records(out) for out in shards]
    ids = [{r["id"] for r in rows} for rows in sharded]
    assert ids[0].isdisjoint(ids[1]) and ids[0] | ids[1] == {item["id"] for item in ITEMS}
    assert all(len({r["strategy"] for r in rows}) == 3 for rows in sharded if rows), "every column in every shard"
    merged = tmp_path / "merged"
    process = subprocess.run([daemon_binary(), "eval", "merge", "--out", str(merged), *map(str, shards)],
                             capture_output=True, text=True, timeout=60)
    assert process.returncode == 0, process.stderr

    def key(row):
        return (row["id"], row["strategy"], row["correct"], row["extracted"], row["result"]["text"])
    assert sorted(map(key, records(merged))) == sorted(map(key, records(whole)))
    summary = (merged / "summary.md").read_text()
    for line in (whole / "summary.md").read_text().splitlines():
        if line.startswith("| ") and "%" in line:
            # The same accuracies, intervals and constant baseline (tokens/s may differ between runs).
            assert any(other.split("|")[1:5] == line.split("|")[1:5] for other in summary.splitlines()), line
    assert (merged / "accuracy.svg").exists()
    # One shard alone merges with a warning about the other.
    partial = subprocess.run([daemon_binary(), "eval", "merge", "--out", str(tmp_path / "partial"), str(shards[0])],
                             capture_output=True, text=True, timeout=60)
    assert partial.returncode == 0 and "shards 2/2 are missing" in partial.stderr
    # A shard and an unsharded run do not merge.
    other = tmp_path / "other"
    run_eval(tmp_path, "--strategies", "plain", "--limit", "1", "--out", str(other))
    refused = subprocess.run([daemon_binary(), "eval", "merge", "--out", str(tmp_path / "x"), str(shards[0]), str(other)],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "shards of different splits do not merge" in refused.stderr


def merge(tmp_path, *args, check=True):
    process = subprocess.run([daemon_binary(), "eval", "merge", *map(str, args)], capture_output=True, text=True, timeout=60)
    if check:
        assert process.returncode == 0, process.stderr
    return process


def test_runs_of_other_columns_join_one_paired_table(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    run_eval(tmp_path, "--strategies", "plain", "--variant", "short=cot:maxTokens=6", "--out", str(first))
    run_eval(tmp_path, "--strategies", "plain", "--variant", "tiny=cot:maxTokens=4", "--out", str(second))
    joined = tmp_path / "joined"
    process = merge(tmp_path, "--out", joined, first, second, "--target", "tiny")
    rows = records(joined)
    # plain is in both runs: its records are kept once, from the first run.
    assert sorted(r["strategy"] for r in rows) == sorted(["plain", "short", "tiny"] * len(ITEMS))
    assert [c["name"] for c in json.loads((joined / "run.json").read_text())["columns"]] == ["plain", "short", "tiny"]
    summary = (joined / "summary.md").read_text()
    assert "| short |" in summary and "| tiny |" in summary and "tiny vs baseline" in process.stdout
    # One name with two definitions is refused, naming both.
    clash = tmp_path / "clash"
    run_eval(tmp_path, "--strategies", "", "--variant", "short=cot:maxTokens=5", "--limit", "1", "--out", str(clash))
    refused = merge(tmp_path, "--out", tmp_path / "x", first, clash, check=False)
    assert refused.returncode != 0
    assert "'short=cot:maxTokens=5'" in refused.stderr and "'short=cot:maxTokens=6'" in refused.stderr


def test_rescore_reads_answers_again_from_the_stored_text(tmp_path):
    run = tmp_path / "run"
    run_eval(tmp_path, "--strategies", "plain", "--out", str(run))
    original = records(run)
    # Spoil the stored verdicts: a rescore decides them again from each transcript.
    spoiled = []
    for row in original:
        row = dict(row, extracted="maybe", correct=not row["correct"])
        spoiled.append(json.dumps(row))
    (run / "results.jsonl").write_text("\n".join(spoiled) + "\n")
    kept = tmp_path / "kept"
    merge(tmp_path, "--out", kept, run)
    assert all(r["extracted"] == "maybe" for r in records(kept)), "without --rescore the stored answers stay"
    rescored = tmp_path / "rescored"
    merge(tmp_path, "--rescore", "--out", rescored, run)
    again = {r["id"]: r for r in records(rescored)}
    for row in original:
        assert again[row["id"]]["extracted"] == row["extracted"]
        assert again[row["id"]]["correct"] == row["correct"]
        assert again[row["id"]]["result"]["answer"]["extracted"] == row["extracted"]


@pytest.mark.parametrize("shard", ["0/2", "3/2", "1/0", "a/b", "1"])
def test_bad_shards_are_refused(tmp_path, shard):
    process = run_eval(tmp_path, "--strategies", "plain", "--shard", shard, "--out", str(tmp_path / "x"), check=False)
    assert process.returncode != 0 and "--shard must be K/N" in process.stderr
