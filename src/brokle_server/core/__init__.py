"""Shared building blocks with no I/O: ids, clock, the response envelope, pagination."""
