"""Pytest fixtures around :class:`FakeUpstream`; import them into a ``conftest.py``::

    from tests.fakes.fixtures import fake_upstream, fake_upstream_server, http_client  # noqa: F401

One server per test session; ``fake_upstream`` resets its script and counters per test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.fakes.upstreams import FakeUpstream


@pytest.fixture(scope="session")
def fake_upstream_server() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


@pytest.fixture
def fake_upstream(fake_upstream_server: FakeUpstream) -> Iterator[FakeUpstream]:
    fake_upstream_server.reset()
    yield fake_upstream_server
    fake_upstream_server.reset()


@pytest.fixture
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client
