from __future__ import annotations

from brokle_server.core.ids import uuid7


def test_uuid7_is_versioned_and_time_ordered() -> None:
    ids = [uuid7() for _ in range(1000)]
    assert all(u.version == 7 and u.variant == "specified in RFC 4122" for u in ids)
    assert len(set(ids)) == 1000
    millis = [u.int >> 80 for u in ids]
    assert millis == sorted(millis)
