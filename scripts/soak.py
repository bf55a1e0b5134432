#!/usr/bin/env python3
"""Soak test and cancellation storm for `selfanchor serve`, through one daemon process.

    scripts/soak.py [--bin .build/debug/selfanchor] [--solves 1000] [--storm 200] [--max-tokens 8]

1. Soak: `--solves` solves (short `--max-tokens`, strategies in rotation, `--pipeline` in flight at a
   time, decoding together up to `--parallel`) through one daemon. The daemon's RSS is read from /proc
   after `--warmup` solves and at the end; growth must stay under `--max-growth` percent, and the end
   RSS under the model file + the KV cache (both from server/status) + `--memory-budget-mb`.
2. Storm: `--storm` solves sent back to back; every other one is cancelled at a random moment (before
   it starts, during prompt processing, or while decoding). Every request must get exactly one answer
   (a result, or -32800 for a cancelled one), and the daemon must end with nothing in flight.

Prints one JSON object with the numbers and exits 1 if a check failed. Not part of `make test` (the
1000-solve run takes minutes); Tests/protocol/test_soak.py runs a short version of it.
"""
import argparse
import json
import os
import pathlib
import queue
import random
import subprocess
import sys
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
QUESTIONS = [
    "A farmer has 12 cows and buys 7 more. How many cows does he have?",
    "What is 17 * 3?",
    "Tom has 5 apples and eats 2. How many are left?",
    "A train travels 60 km in 1 hour. How far does it go in 3 hours?",
    "Is 91 a prime number?",
]
STRATEGIES = ["plain", "cot", "ps+", "re2", "spa", "self-anchor"]


class Client:
    def __init__(self, binary, args):
        self.process = subprocess.Popen([binary, "serve", "--framing", "ndjson", *args],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.inbox = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.lock = threading.Lock()

    def _read(self):
        for line in self.process.stdout:
            self.inbox.put(json.loads(line))
        self.inbox.put(None)

    def send(self, message):
        with self.lock:
            self.process.stdin.write(json.dumps(message).encode() + b"\n")
            self.process.stdin.flush()

    def next(self, timeout):
        message = self.inbox.get(timeout=timeout)
        if message is None:
            raise EOFError("the daemon closed its output")
        return message

    def response(self, request_id, timeout):
        while True:
            message = self.next(timeout)
            if "method" not in message and message.get("id") == request_id:
                return message

    def rss(self):
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def status(self, request_id):
        self.send({"jsonrpc": "2.0", "id": request_id, "method": "server/status"})
        return self.response(request_id, 60)["result"]


def solve_params(index, max_tokens):
    return {"question": QUESTIONS[index % len(QUESTIONS)], "strategy": STRATEGIES[index % len(STRATEGIES)],
            "stream": index % 3 != 0, "options": {"maxTokens": max_tokens}}


def soak(client, solves, warmup, pipeline, max_tokens, timeout):
    """Sends `solves` requests, at most `pipeline` unanswered at a time; returns the numbers."""
    answered, errors, stuck = {}, [], 0
    sent = 0
    rss_warm = None
    started = time.monotonic()
    warm_time = None
    while len(answered) < solves:
        while sent < solves and sent - len(answered) < pipeline:
            sent += 1
            client.send({"jsonrpc": "2.0", "id": sent, "method": "solve", "params": solve_params(sent, max_tokens)})
        try:
            message = client.next(timeout)
        except queue.Empty:
            stuck = sent - len(answered)
            break
        if "method" in message:
            continue
        request_id = message["id"]
        if request_id in answered:
            errors.append(f"request {request_id} answered twice")
        answered[request_id] = message
        if "error" in message:
            errors.append(f"request {request_id}: {message['error']}")
        if len(answered) == warmup:
            rss_warm = client.rss()
            warm_time = time.monotonic()
    elapsed = time.monotonic() - started
    rss_end = client.rss()
    status = client.status(10**9)
    if status["inFlight"]:
        stuck = max(stuck, len(status["inFlight"]))
    measured = len(answered) - warmup
    return {
        "solves": solves, "answered": len(answered), "errors": errors[:10], "error_count": len(errors),
        "stuck": stuck, "seconds": round(elapsed, 1),
        "requests_per_second": round(len(answered) / elapsed, 2) if elapsed else None,
        "requests_per_second_after_warmup": round(measured / (time.monotonic() - warm_time), 2) if warm_time and measured > 0 else None,
        "rss_after_warmup_bytes": rss_warm, "rss_end_bytes": rss_end,
        "rss_growth_percent": round(100.0 * (rss_end - rss_warm) / rss_warm, 2) if rss_warm else None,
        "served": status["served"],
        "model_bytes": status["memory"].get("modelBytes"), "kv_cache_bytes": status["memory"].get("kvCacheBytes"),
    }


def storm(client, count, max_tokens, seed, timeout):
    """Every other request is cancelled at a random moment; each must be answered exactly once."""
    rng = random.Random(seed)
    base = 10**6
    ids = [base + index for index in range(count)]
    cancel_at = {}
    for index, request_id in enumerate(ids):
        if index % 2 == 1:
            cancel_at[request_id] = rng.uniform(0.0, 1.5)  # seconds after it was sent
    answers = {}
    cancelled_sent = set()
    lock = threading.Lock()
    started = time.monotonic()

    def canceller(request_id, delay):
        time.sleep(delay)
        client.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": request_id}})
        with lock:
            cancelled_sent.add(request_id)

    threads = []
    for index, request_id in enumerate(ids):
        params = solve_params(index, max_tokens if request_id not in cancel_at else 200)
        client.send({"jsonrpc": "2.0", "id": request_id, "method": "solve", "params": params})
        if request_id in cancel_at:
            thread = threading.Thread(target=canceller, args=(request_id, cancel_at[request_id]))
            thread.start()
            threads.append(thread)
        if rng.random() < 0.3:
            time.sleep(rng.uniform(0, 0.05))
    problems = []
    while len(answers) < count:
        try:
            message = client.next(timeout)
        except queue.Empty:
            break
        if "method" in message or message.get("id") not in ids:
            continue
        if message["id"] in answers:
            problems.append(f"request {message['id']} answered twice")
        answers[message["id"]] = message
    for thread in threads:
        thread.join()
    # Late answers (a second one to a cancelled request) would arrive now.
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        try:
            message = client.next(0.2)
        except queue.Empty:
            continue
        if "method" not in message and message.get("id") in answers:
            problems.append(f"request {message['id']} answered twice")
    outcome = {"result": 0, "cancelled": 0, "other_error": 0}
    for request_id, message in answers.items():
        if "result" in message:
            outcome["result"] += 1
        elif message["error"]["code"] == -32800:
            outcome["cancelled"] += 1
            if request_id not in cancel_at:
                problems.append(f"request {request_id} was never cancelled but answered -32800")
        else:
            outcome["other_error"] += 1
            problems.append(f"request {request_id}: {message['error']}")
    status = client.status(10**9 + 1)
    return {
        "requests": count, "cancel_sent": len(cancel_at), "answered": len(answers), "unanswered": count - len(answers),
        **outcome, "in_flight_after": len(status["inFlight"]), "queue_waiting_after": status["queue"]["waiting"],
        "problems": problems[:10], "seconds": round(time.monotonic() - started, 1),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=os.environ.get("SELFANCHOR_BIN", str(ROOT / ".build" / "debug" / "selfanchor")))
    parser.add_argument("--model", default="test")
    parser.add_argument("--solves", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--pipeline", type=int, default=4, help="requests in flight at a time during the soak")
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--storm", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="the daemon's --threads (1 keeps it steady on a shared machine)")
    parser.add_argument("--max-growth", type=float, default=5.0, help="allowed RSS growth after warm-up, percent")
    parser.add_argument("--memory-budget-mb", type=float, default=150,
                        help="RSS at the end of the soak may exceed the model file plus the KV cache by this much")
    parser.add_argument("--parallel", type=int, default=4, help="the daemon's --parallel")
    parser.add_argument("--timeout", type=float, default=120, help="seconds without any message before a request counts as stuck")
    args = parser.parse_args(argv)
    client = Client(args.bin, ["--model", args.model, "--max-queue", "1000", "--threads", str(args.threads),
                               "--parallel", str(args.parallel)])
    report = {"binary": args.bin, "model": args.model}
    try:
        client.send({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"processId": os.getpid()}})
        client.response(0, 120)
        if args.solves:
            report["soak"] = soak(client, args.solves, min(args.warmup, args.solves - 1), args.pipeline, args.max_tokens, args.timeout)
        if args.storm:
            report["storm"] = storm(client, args.storm, args.max_tokens, args.seed, args.timeout)
        client.send({"jsonrpc": "2.0", "id": -1, "method": "shutdown"})
        client.response(-1, 120)
        client.send({"jsonrpc": "2.0", "method": "exit"})
        report["exit_code"] = client.process.wait(timeout=60)
    finally:
        if client.process.poll() is None:
            client.process.kill()
    failures = []
    if "soak" in report:
        s = report["soak"]
        if s["stuck"] or s["answered"] != s["solves"] or s["error_count"]:
            failures.append("soak: unanswered, stuck or failed requests")
        if s["rss_growth_percent"] is not None and s["rss_growth_percent"] >= args.max_growth:
            failures.append(f"soak: RSS grew {s['rss_growth_percent']}% (limit {args.max_growth}%)")
        if s["model_bytes"] and s["kv_cache_bytes"] is not None:
            budget = s["model_bytes"] + s["kv_cache_bytes"] + int(args.memory_budget_mb * 2**20)
            s["rss_budget_bytes"] = budget
            s["rss_over_model_and_kv_mb"] = round((s["rss_end_bytes"] - s["model_bytes"] - s["kv_cache_bytes"]) / 2**20, 1)
            if s["rss_end_bytes"] > budget:
                failures.append(f"soak: RSS {s['rss_end_bytes']} exceeds model file + KV cache + {args.memory_budget_mb} MB = {budget}")
    if "storm" in report:
        s = report["storm"]
        if s["unanswered"] or s["problems"] or s["in_flight_after"] or s["queue_waiting_after"]:
            failures.append("storm: unanswered requests, double answers or requests left in flight")
    if report.get("exit_code") != 0:
        failures.append(f"exit status {report.get('exit_code')}")
    report["failures"] = failures
    print(json.dumps(report, indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
