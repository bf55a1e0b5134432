import os
import pathlib
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]

# Every daemon of the session stores its small-round batching choice (BatchingChoiceStore) in one file of
# its own, not in the user's cache: the daemons still decode alike, and the models the tests make up
# (empty or truncated files) leave no lines behind.
os.environ.setdefault("SELFANCHOR_BATCHING_FILE",
                      os.path.join(tempfile.mkdtemp(prefix="selfanchor-tests-"), "batching.tsv"))


def daemon_binary():
    return os.environ.get("SELFANCHOR_BIN", str(ROOT / ".build" / "debug" / "selfanchor"))
