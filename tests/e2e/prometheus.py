"""A real Prometheus server (Debian's package) scraping a target and remote-writing to Brokle.

remote_write authenticates with ``authorization: credentials`` (sent as ``Authorization: Bearer
bk_...``, which Brokle accepts for a key): Debian's Prometheus 2.42 parses a remote_write
``headers:`` map but does not send it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import free_port


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def prometheus_binary() -> str:
    binary = shutil.which("prometheus") or (
        "/usr/bin/prometheus" if os.path.exists("/usr/bin/prometheus") else None
    )
    if binary is None:
        message = "the prometheus binary is not installed (apt-get install prometheus)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return binary


def start_prometheus(
    workdir: Path, *, scrape_target: str, remote_write_url: str, api_key: str
) -> Prometheus:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = workdir / "prometheus.yml"
    config.write_text(
        f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
  external_labels:
    cluster: e2e
scrape_configs:
  - job_name: brokle
    static_configs:
      - targets: ["{scrape_target}"]
remote_write:
  - url: "{remote_write_url}"
    authorization:
      credentials: "{api_key}"
    queue_config:
      batch_send_deadline: 1s
      max_samples_per_send: 500
      min_backoff: 100ms
      max_backoff: 1s
"""
    )
    log_path = workdir / "prometheus.log"
    process = subprocess.Popen(
        [
            prometheus_binary(),
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )
    prom = Prometheus(f"http://127.0.0.1:{port}", process, log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(prom.url + "/-/ready", timeout=1).status_code == 200:
                return prom
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.2)
    prom.stop()
    raise RuntimeError("prometheus did not start:\n" + log_path.read_text(errors="replace"))
