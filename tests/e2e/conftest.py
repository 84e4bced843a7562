"""A real ``brokle serve`` process on a free loopback port, for tests through real clients."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    base_url: str
    data_dir: Path
    env: dict[str, str]
    process: subprocess.Popen[str]
    log_path: Path
    first_run: dict[str, str] = field(default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int | None = None) -> None:
        if self.process.poll() is None:
            if sig is None:
                self.process.terminate()
            else:
                self.process.send_signal(sig)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_server(data_dir: Path, log_path: Path, **env_overrides: str) -> Server:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BROKLE_")},
        "BROKLE_HOST": "127.0.0.1",
        "BROKLE_PORT": str(port),
        "BROKLE_DATA_DIR": str(data_dir),
        "BROKLE_LOG_LEVEL": "info",
        "PYTHONUNBUFFERED": "1",
        **env_overrides,
    }
    log = log_path.open("a")
    process = subprocess.Popen(
        [sys.executable, "-m", "brokle_server", "serve"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=data_dir.parent,
    )
    server = Server(f"http://127.0.0.1:{port}", data_dir, env, process, log_path)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"brokle serve exited {process.returncode}:\n{server.log()}")
        try:
            if httpx.get(server.base_url + "/health/live", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    else:
        server.stop()
        raise RuntimeError(f"brokle serve did not start:\n{server.log()}")
    text = server.log()
    for label, pattern in (
        ("api_key", r"API key:\s+(bk_[A-Za-z0-9]{40})"),
        ("admin_password", r"Admin password:\s+(\S+)"),
        ("project_id", r"Project:\s+.*\(([0-9a-f-]{36})\)"),
    ):
        match = re.search(pattern, text)
        if match:
            server.first_run[label] = match.group(1)
    return server


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def factory(data_dir: Path | None = None, **env: str) -> Server:
        log_path = tmp_path / f"server-{len(started)}.log"
        server = start_server(data_dir or tmp_path / "data", log_path, **env)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture
def server(server_factory: Callable[..., Server]) -> Server:
    return server_factory()


_DUMP_SCRIPT = """
import json, sys
from brokle_server.store.client import Store
args = json.loads(sys.argv[1])
out = {}
with Store(args["url"]) as store:
    for name, sql in args["queries"].items():
        out[name] = store.query_dicts(sql, args["params"])
print(json.dumps(out, default=str))
"""


def dump_store(
    data_dir: Path, queries: dict[str, str], **parameters: object
) -> dict[str, list[dict[str, object]]]:
    """Run several SELECTs on a stopped server's embedded store in one subprocess (one chDB
    load; chDB allows one data path per process, and the test process may hold another)."""
    payload = json.dumps(
        {"url": f"chdb://{data_dir / 'clickhouse'}", "queries": queries, "params": parameters}
    )
    done = subprocess.run(
        [sys.executable, "-c", _DUMP_SCRIPT, payload],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"store query failed:\n{done.stderr[-3000:]}")
    result: dict[str, list[dict[str, object]]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def query_store(data_dir: Path, sql: str, **parameters: object) -> list[dict[str, object]]:
    """One SELECT on a stopped server's embedded store."""
    return dump_store(data_dir, {"rows": sql}, **parameters)["rows"]


# -- what the store keeps for attribute values ---------------------------------------


def flat(value: object) -> str:
    """An attribute value as the store keeps it (the AnyValue → text table of the contract)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, Sequence):
        return json.dumps(list(value), separators=(",", ":"))
    raise TypeError(type(value))


def flat_map(attrs: Any) -> dict[str, str]:
    return {k: flat(v) for k, v in dict(attrs or {}).items()}
