"""Brokle: an open-source AI gateway and LLM observability platform."""

__version__ = "0.1.0"
