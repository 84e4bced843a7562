"""Shared pieces of the benchmark harness: statistics, results files, a real server.

* :func:`percentile` / :func:`latency_summary`: percentiles with linear interpolation.
* :func:`write_result` / :func:`print_result`: one JSON file per run under
  ``benchmarks/results/`` (git-ignored) and a readable table on the terminal.
* :class:`BrokleServer`: a ``brokle serve`` subprocess on a free loopback port with its own
  temporary data directory (embedded mode), bootstrapped with a known API key, plus
  :func:`query_store` to read its embedded store once it has stopped.
* :func:`process_cpu_seconds` / :func:`process_rss_bytes`: another process's CPU time and
  memory, read from ``/proc`` (Linux; psutil is not a dependency).

Benchmarks never import from ``tests/``: this module is their own small equivalent of the
e2e fixtures.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

RESULTS_DIR = Path(__file__).resolve().parent / "results"
_REPO_ROOT = Path(__file__).resolve().parent.parent

Result = dict[str, Any]
"""What a benchmark returns: JSON-serialisable, nested dicts of figures."""


# -- statistics ----------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of already sorted values, linearly interpolated."""
    if not sorted_values:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0-100")
    rank = (len(sorted_values) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(sorted_values) - 1)
    fraction = rank - low
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction


def latency_summary(seconds: Sequence[float]) -> dict[str, float | int | None]:
    """p50/p95/p99/max (and mean) of latencies given in seconds, reported in milliseconds."""
    values = sorted(seconds)
    if not values:
        return {"count": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    return {
        "count": len(values),
        "mean_ms": round(sum(values) / len(values) * 1000, 2),
        "p50_ms": round(percentile(values, 50) * 1000, 2),
        "p95_ms": round(percentile(values, 95) * 1000, 2),
        "p99_ms": round(percentile(values, 99) * 1000, 2),
        "max_ms": round(values[-1] * 1000, 2),
    }


# -- results -------------------------------------------------------------------------------


def environment_info() -> dict[str, Any]:
    """Where and on what the run happened, so results from different days compare."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--", "src", "benchmarks")),
    }


def _git(*args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=_REPO_ROOT, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def write_result(
    name: str,
    result: Result,
    *,
    quick: bool,
    results_dir: Path = RESULTS_DIR,
    started_at: datetime | None = None,
) -> Path:
    """Write ``<results_dir>/<name>-<UTC timestamp>.json`` and return its path."""
    started = started_at or datetime.now(UTC)
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{name}-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    document = {
        "benchmark": name,
        "started_at": started.isoformat(timespec="seconds"),
        "quick": quick,
        "environment": environment_info(),
        "result": result,
    }
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return path


def flatten(result: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """``(dotted.key, text)`` pairs for every scalar leaf; lists are shown by their length."""
    rows: list[tuple[str, str]] = []
    for key, value in result.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            rows.extend(flatten(value, name + "."))
        elif isinstance(value, list | tuple):
            if all(isinstance(v, str | int | float) for v in value) and len(value) <= 8:
                rows.append((name, ", ".join(_fmt(v) for v in value)))
            else:
                rows.append((name, f"[{len(value)} items]"))
        else:
            rows.append((name, _fmt(value)))
    return rows


def _fmt(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        return f"{value:,.2f}" if abs(value) < 1e6 else f"{value:,.0f}"
    return str(value)


def print_result(name: str, result: Result, path: Path | None = None) -> None:
    """A two-column table of the result's figures (rich)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"benchmark: {name}", title_justify="left", show_edge=False)
    table.add_column("figure", style="cyan", no_wrap=True)
    table.add_column("value", justify="right")
    for key, text in flatten(result):
        table.add_row(key, text)
    console = Console()
    console.print(table)
    if path is not None:
        console.print(f"[dim]written to {path}[/dim]")


# -- another process's CPU and memory -------------------------------------------------------

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by every thread of ``pid`` (from /proc)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may contain spaces; fields after it are space separated.
    fields = raw[raw.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _CLOCK_TICKS


def machine_busy_cpu_seconds() -> float:
    """CPU seconds every core of the machine spent busy (not idle or waiting for I/O) so far.

    Compared with the server's and the clients' own CPU over a window, this shows how much
    other processes on a shared machine took.
    """
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(x) for x in fields[:8]]  # user nice system idle iowait irq softirq steal
    return (sum(ticks) - ticks[3] - ticks[4]) / _CLOCK_TICKS


def process_rss_bytes(pid: int) -> tuple[int, int]:
    """``(current RSS, peak RSS)`` of ``pid`` in bytes (VmRSS, VmHWM from /proc)."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


# -- a real server ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def new_api_key() -> str:
    """A well-formed project key (``bk_`` + 40 alphanumerics) to bootstrap the server with."""
    alphabet = string.ascii_letters + string.digits
    return "bk_" + "".join(secrets.choice(alphabet) for _ in range(40))


_GAUGE_LINE = re.compile(r'^(\w+)\{\w+="([^"]*)"\}\s+(\S+)$')


def parse_gauges(exposition: str, family: str) -> dict[str, float]:
    """``{label value: value}`` for one single-label family of a Prometheus text exposition."""
    out: dict[str, float] = {}
    for line in exposition.splitlines():
        match = _GAUGE_LINE.match(line)
        if match and match.group(1) == family:
            out[match.group(2)] = float(match.group(3))
    return out


@dataclass
class BrokleServer:
    """``brokle serve`` in a subprocess, embedded mode, in a fresh temporary data directory.

    Use as a context manager. The bootstrap creates an admin, an organization, a project and
    the API key in :attr:`api_key`; :attr:`project_id` is read back from the key check.
    """

    env_overrides: Mapping[str, str] = field(default_factory=dict)
    startup_timeout: float = 120.0
    api_key: str = field(default_factory=new_api_key)
    base_url: str = ""
    project_id: str = ""
    workdir: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        assert self.workdir is not None, "the server has not been started"
        return self.workdir / "data"

    @property
    def log_path(self) -> Path:
        assert self.workdir is not None, "the server has not been started"
        return self.workdir / "server.log"

    @property
    def pid(self) -> int:
        assert self.process is not None, "the server has not been started"
        return self.process.pid

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def start(self) -> BrokleServer:
        self.workdir = Path(tempfile.mkdtemp(prefix="brokle-bench-"))
        port = free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("BROKLE_")},
            "BROKLE_HOST": "127.0.0.1",
            "BROKLE_PORT": str(port),
            "BROKLE_DATA_DIR": str(self.data_dir),
            "BROKLE_LOG_LEVEL": "warning",
            "BROKLE_INIT_ADMIN_EMAIL": "bench@example.com",
            "BROKLE_INIT_ADMIN_PASSWORD": secrets.token_urlsafe(18),
            "BROKLE_INIT_ORG": "Bench",
            "BROKLE_INIT_PROJECT": "Bench",
            "BROKLE_INIT_PROJECT_API_KEY": self.api_key,
            # The load comes from one key: the limiter stays in the path but never throttles.
            "BROKLE_RATE_LIMIT__API_KEY_PER_MINUTE": "1000000000",
            "BROKLE_RATE_LIMIT__API_KEY_BURST": "100000000",
            "PYTHONUNBUFFERED": "1",
            **self.env_overrides,
        }
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "brokle_server", "serve"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        try:
            self._wait_ready()
            reply = httpx.post(
                self.base_url + "/v1/auth/validate-key",
                headers={"X-API-Key": self.api_key},
                timeout=10,
            )
            reply.raise_for_status()
            self.project_id = str(reply.json()["data"]["project_id"])
        except BaseException:
            self.stop()
            self.cleanup()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"brokle serve exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                # Ready, not just live: the store (chDB) is loaded and migrated.
                if httpx.get(self.base_url + "/health/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"brokle serve was not ready in time:\n{self.log_tail()}")

    def metrics_text(self, client: httpx.Client | None = None) -> str:
        getter = client.get if client is not None else httpx.get
        reply = getter(self.base_url + "/metrics", timeout=10)
        reply.raise_for_status()
        return reply.text

    def stop(self, timeout: float = 120.0) -> float:
        """SIGTERM (the server drains its queue into the store), wait; returns seconds taken."""
        if self.process is None or self.process.poll() is not None:
            return 0.0
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        return time.monotonic() - started

    def cleanup(self) -> None:
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> BrokleServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        self.cleanup()


_QUERY_SCRIPT = """
import json, sys
from brokle_server.store.client import Store
args = json.loads(sys.argv[1])
with Store(args["url"]) as store:
    rows = store.query_dicts(args["sql"], args["params"])
print(json.dumps(rows, default=str))
"""


def query_store(data_dir: Path, sql: str, **parameters: object) -> list[dict[str, Any]]:
    """Run SQL on a *stopped* server's embedded store, in a subprocess.

    chDB allows one data path per process, and the store belongs to the server while it runs.
    """
    payload = json.dumps(
        {"url": f"chdb://{data_dir / 'clickhouse'}", "sql": sql, "params": parameters}
    )
    done = subprocess.run(
        [sys.executable, "-c", _QUERY_SCRIPT, payload],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"store query failed:\n{done.stderr[-3000:]}")
    rows: list[dict[str, Any]] = json.loads(done.stdout.strip().splitlines()[-1])
    return rows
