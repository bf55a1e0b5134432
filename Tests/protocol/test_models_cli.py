"""`selfanchor models`: the catalog as a user sees it, installing by name, and the hint a missing model gives."""
import hashlib
import json
import os
import subprocess

from conftest import daemon_binary

NAMES = ["qwen-1.5b", "qwen-0.5b", "smollm2-135m"]


def run(*args, env=None):
    return subprocess.run([daemon_binary(), *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


def test_the_list_names_every_model_and_alias_and_says_what_is_installed(tmp_path):
    process = run("models", env={"SELFANCHOR_MODELS": str(tmp_path)})
    assert process.returncode == 0, process.stderr
    lines = process.stdout.splitlines()
    assert lines[0].split() == ["name", "model", "size", "installed", "path"]
    assert len(lines) == 1 + len(NAMES)
    for name, line in zip(NAMES, lines[1:]):
        assert line.startswith(name)
        assert " no " in line and str(tmp_path) in line, "nothing is installed in an empty cache"
    assert "qwen-1.5b = default" in lines[1] and "qwen-0.5b = fast" in lines[2] and "smollm2-135m = test" in lines[3]
    assert "selfanchor models install" in process.stderr
    # The suite's own cache has the test model.
    assert " yes " in [line for line in run("models").stdout.splitlines() if line.startswith("smollm2-135m")][0]


def test_install_by_alias_streams_hashes_and_stamps(tmp_path):
    process = run("models", "install", "test", env={"SELFANCHOR_MODELS": str(tmp_path)})
    assert process.returncode == 0, process.stderr
    path = tmp_path / "smollm2-135m-instruct-q4_1.gguf"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    assert json.loads((tmp_path / (path.name + ".verified")).read_text())["sha256"] == digest
    assert "part 1/1" in process.stderr and "installed" in process.stderr
    again = run("models", "install", "smollm2-135m", env={"SELFANCHOR_MODELS": str(tmp_path)})
    assert again.returncode == 0 and "(verified)" in again.stderr, "a second install only checks the stamp"
    assert " yes " in [l for l in run("models", env={"SELFANCHOR_MODELS": str(tmp_path)}).stdout.splitlines()
                       if l.startswith("smollm2-135m")][0]


def test_unknown_names_and_missing_models_say_what_to_do(tmp_path):
    process = run("models", "install", "llama-70b")
    assert process.returncode != 0
    assert "unknown model 'llama-70b'" in process.stderr and "qwen-1.5b" in process.stderr
    missing = run("solve", "--model", "fast", "What is 2 + 2?", env={"SELFANCHOR_MODELS": str(tmp_path)})
    assert missing.returncode != 0
    assert "selfanchor models install fast" in missing.stderr
