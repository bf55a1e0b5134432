"""The shell examples, run against the real daemon on the test model."""
import json
import os
import pathlib
import subprocess

HERE = pathlib.Path(__file__).resolve().parents[1]
ROOT = HERE.parents[1]
ENV = dict(os.environ, SELFANCHOR_BIN=os.environ.get("SELFANCHOR_BIN", str(ROOT / ".build" / "debug" / "selfanchor")))


def run(*args):
    return subprocess.run([str(HERE / args[0]), *args[1:]], capture_output=True, text=True, env=ENV, timeout=300)


def test_solve_prints_plans_steps_and_the_answer():
    out = run("solve.sh", "A farmer has 12 cows and buys 7 more. How many cows does he have?", "self-anchor", "test")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("Plan 1: ") and "(ω=" in lines[0]
    assert any(line.startswith("Step 1: ") for line in lines)
    assert lines[-1].startswith("Answer: ")


def test_batch_answers_every_line(tmp_path):
    questions = tmp_path / "questions.jsonl"
    questions.write_text("".join(json.dumps({"question": q}) + "\n" for q in ["What is 2 + 2?", "What is 10 - 3?", "What is 3 * 3?"]))
    out = run("batch.sh", str(questions), "plain", "test")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [line.split("\t")[1] for line in lines] == ["What is 2 + 2?", "What is 10 - 3?", "What is 3 * 3?"]


def test_status_reports_the_model():
    out = run("status.sh", "test")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("test llama") and "rss=" in out.stdout
