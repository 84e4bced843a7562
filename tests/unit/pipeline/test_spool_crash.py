"""kill -9 a process that enqueues and acks in a loop; reopen and check what replays.

Every enqueue that returned must replay unless its lease was acked; nothing whose ack
returned may replay; a lease caught between insert and ack replays whole, with its id.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from brokle_server.pipeline.spool import SpoolQueue

from .helpers import drain, numbers

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from brokle_server.pipeline.queue import Batch
    from brokle_server.pipeline.spool import SpoolQueue

    async def main(directory):
        spool = await SpoolQueue.open(Path(directory), segment_bytes=8192)
        counter = iter(range(10**9))
        out = sys.stdout

        async def produce():
            while True:
                n = next(counter)
                await spool.enqueue([Batch("t", ("n", "pad"), [(n, "x" * 40)])])
                out.write(f"E {n}\\n")
                out.flush()

        async def consume():
            while True:
                lease = await spool.consume(25, 0.005)
                if lease is None:
                    continue
                ns = " ".join(str(m[0].rows[0][0]) for m in lease.messages)
                out.write(f"L {lease.id} {ns}\\n")
                out.flush()
                await spool.ack(lease)
                out.write(f"A {lease.id}\\n")
                out.flush()

        await asyncio.gather(*(produce() for _ in range(16)), consume())

    asyncio.run(main(sys.argv[1]))
    """
)


def run_and_kill(directory: Path, script: Path) -> list[list[str]]:
    proc = subprocess.Popen(
        [sys.executable, str(script), str(directory)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    lines: list[list[str]] = []
    enqueued = acked = 0
    for line in proc.stdout:
        lines.append(line.split())
        enqueued += line.startswith("E ")
        acked += line.startswith("A ")
        if enqueued >= 3000 and acked >= 10:
            os.kill(proc.pid, signal.SIGKILL)
            break
    lines.extend(line.split() for line in proc.stdout)  # whatever was written before death
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return lines


async def test_kill_9_loses_nothing_enqueued_and_replays_nothing_acked(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    directory = tmp_path / "spool"
    lines = run_and_kill(directory, script)

    enqueued = {int(parts[1]) for parts in lines if parts[0] == "E"}
    leased = {parts[1]: [int(n) for n in parts[2:]] for parts in lines if parts[0] == "L"}
    acked_ids = {parts[1] for parts in lines if parts[0] == "A"}
    acked = {n for lease_id in acked_ids for n in leased[lease_id]}
    in_flight = {lease_id: ns for lease_id, ns in leased.items() if lease_id not in acked_ids}

    spool = await SpoolQueue.open(directory)
    try:
        replayed_leases = await drain(spool)
    finally:
        await spool.close()
    replayed = [n for lease in replayed_leases for n in numbers(lease)]

    assert len(replayed) == len(set(replayed)), "a message replayed twice"
    assert not set(replayed) & acked, "an acknowledged message replayed"
    assert enqueued <= set(replayed) | acked | {n for ns in in_flight.values() for n in ns}
    replayed_by_id = {lease.id: numbers(lease) for lease in replayed_leases}
    for lease_id, ns in in_flight.items():
        # Its ack may or may not have become durable before the kill; if it replays, it
        # replays as the same group with the same id, so its dedup tokens match.
        if lease_id in replayed_by_id:
            assert replayed_by_id[lease_id] == ns
        else:
            assert not set(ns) & set(replayed)
