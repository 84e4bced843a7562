"""Run the registered benchmarks: ``python -m benchmarks [NAME ...] [--quick]``.

A benchmark is a callable ``(quick: bool) -> dict`` registered in :data:`BENCHMARKS` under its
name; it returns JSON-serialisable figures (nested dicts), which are printed as a table and
written to ``benchmarks/results/<name>-<UTC timestamp>.json``. Benchmarks that need tuning
have their own command line too (``python -m benchmarks.ingest_load --help``).
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import gateway_load, ingest_decode, ingest_load, query_load
from benchmarks.common import RESULTS_DIR, Result, print_result, write_result

Benchmark = Callable[[bool], Result]

BENCHMARKS: dict[str, Benchmark] = {
    "gateway_load": gateway_load.bench,
    "ingest_decode": ingest_decode.bench,
    "ingest_load": ingest_load.bench,
    "query_load": query_load.bench,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "names", nargs="*", help=f"benchmarks to run (all: {', '.join(BENCHMARKS)})"
    )
    parser.add_argument("--quick", action="store_true", help="short runs, for a smoke check")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument(
        "--results-dir", type=Path, default=RESULTS_DIR, help="where the JSON results go"
    )
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(BENCHMARKS))
        return 0
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    failed = []
    for name in args.names or list(BENCHMARKS):
        started = datetime.now(UTC)
        clock = time.monotonic()
        print(f"running {name}{' (quick)' if args.quick else ''} ...", flush=True)
        try:
            result = BENCHMARKS[name](args.quick)
        except Exception:
            # One broken benchmark must not hide the others' results.
            traceback.print_exc()
            failed.append(name)
            continue
        path = write_result(
            name, result, quick=args.quick, results_dir=args.results_dir, started_at=started
        )
        print_result(name, result, path)
        print(f"{name} took {time.monotonic() - clock:.1f} s\n", flush=True)
    if failed:
        print(f"benchmark(s) that could not run: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
