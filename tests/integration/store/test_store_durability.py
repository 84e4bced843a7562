"""An insert that returned survives ``kill -9`` of its process, and so does its dedup record.

Each step runs in its own Python process (chDB opens one data path per process, and the
point is to lose the process): the writer inserts, reports, and is killed without any
shutdown; a second process reopens the directory and checks what is there.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

WRITER = """
import sys, time
from brokle_server.store import Store, schema
from brokle_server.store.migrate import up
from tests.integration.store.conftest import make_row

store = Store(sys.argv[1]).open()
up(store)
rows = [make_row("spans", "p1", span_id=f"{i:016x}") for i in range(1000)]
store.insert("spans", schema.SPAN_COLUMNS, rows, dedup_token="batch-1")
print("inserted", flush=True)
time.sleep(60)
"""

CHECKER = """
import sys
from brokle_server.store import Store, schema
from tests.integration.store.conftest import make_row

with Store(sys.argv[1]) as store:
    before = store.query("SELECT count() FROM spans")[0][0]
    rows = [make_row("spans", "p1", span_id=f"{i:016x}") for i in range(1000)]
    store.insert("spans", schema.SPAN_COLUMNS, rows, dedup_token="batch-1")
    after = store.query("SELECT count() FROM spans")[0][0]
    print(before, after)
"""


def _python(code: str, url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), url],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_acknowledged_insert_and_its_dedup_survive_kill_9(tmp_path: Path) -> None:
    url = f"chdb://{tmp_path / 'store'}"
    writer = _python(WRITER, url)
    try:
        assert writer.stdout is not None
        lines = iter(writer.stdout.readline, "")  # log lines come first
        acknowledged = any(line.strip() == "inserted" for line in lines)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    assert acknowledged, writer.stderr.read() if writer.stderr else ""

    checker = _python(CHECKER, url)
    out, err = checker.communicate(timeout=60)
    assert checker.returncode == 0, err
    # Everything acknowledged is there, and the retried batch was still recognised.
    assert out.splitlines()[-1].split() == ["1000", "1000"]
