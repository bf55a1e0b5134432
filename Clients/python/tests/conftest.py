import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "Clients" / "python"))
os.environ.setdefault("SELFANCHOR_BIN", str(ROOT / ".build" / "debug" / "selfanchor"))
