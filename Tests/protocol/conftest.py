import os
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def daemon_binary():
    return os.environ.get("SELFANCHOR_BIN", str(ROOT / ".build" / "debug" / "selfanchor"))
