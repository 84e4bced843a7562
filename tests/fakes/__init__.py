"""Fake upstream LLM providers for tests and benchmarks (see :mod:`tests.fakes.upstreams`)."""

from tests.fakes.script import FakeUsage, Fault, Reply, ToolCall
from tests.fakes.upstreams import FakeUpstream, Recorded

__all__ = ["FakeUpstream", "FakeUsage", "Fault", "Recorded", "Reply", "ToolCall"]
