"""Prometheus remote_write: a WriteRequest encoded by hand from prompb's field numbers (so
the test does not trust our own descriptor), snappy block-compressed like Prometheus."""

from __future__ import annotations

import math
import struct

import cramjam
import pytest

from brokle_server.core.types import ProjectScope
from brokle_server.ingest.decode import PayloadDecodeError, decompress
from brokle_server.ingest.remote_write import STALE_NAN_BITS, decode_remote_write
from brokle_server.store.schema import SAMPLE_COLUMNS, SERIES_COLUMNS, series_id

from .conftest import NOW, NOW_NS, ORG_ID, PROJECT_ID

NOW_MS = NOW_NS // 1_000_000


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # int64 on the wire: two's complement
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def ld(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def label(name: str, value: str) -> bytes:
    return ld(1, name.encode()) + ld(2, value.encode())


def sample(value: float, ts: int) -> bytes:
    return varint(1 << 3 | 1) + struct.pack("<d", value) + varint(2 << 3) + varint(ts)


def timeseries(labels: dict[str, str], points: list[tuple[float, int]]) -> bytes:
    return b"".join(ld(1, label(k, v)) for k, v in labels.items()) + b"".join(
        ld(2, sample(v, t)) for v, t in points
    )


def metadata(kind: int, family: str, help_text: str, unit: str) -> bytes:
    return (
        varint(1 << 3)
        + varint(kind)
        + ld(2, family.encode())
        + ld(4, help_text.encode())
        + (ld(5, unit.encode()))
    )


def write_request(series: list[bytes], meta: list[bytes] = ()) -> bytes:  # type: ignore[assignment]
    return b"".join(ld(1, s) for s in series) + b"".join(ld(3, m) for m in meta)


def decoded(body: bytes, scope: ProjectScope, **kw: object):  # type: ignore[no-untyped-def]
    return decode_remote_write(body, scope, NOW, **kw)  # type: ignore[arg-type]


def test_round_trip_through_snappy(scope: ProjectScope) -> None:
    body = write_request(
        [
            timeseries(
                {"__name__": "http_requests_total", "job": "api", "code": "200"},
                [(10.0, NOW_MS - 30_000), (12.0, NOW_MS - 15_000)],
            ),
            timeseries({"job": "api", "__name__": "up", "empty": ""}, [(1.0, NOW_MS)]),
            timeseries({"__name__": "lat_bucket", "le": "0.5"}, [(3.0, NOW_MS)]),
        ],
        [metadata(1, "http_requests", "Requests.", ""), metadata(2, "up", "Up.", "")],
    )
    compressed = bytes(cramjam.snappy.compress_raw(body))
    batch = decoded(decompress(compressed, "snappy", 1 << 20), scope)

    assert batch.rejected.count == 0
    samples = [dict(zip(SAMPLE_COLUMNS, r, strict=True)) for r in batch.samples]
    assert [(s["metric_name"], s["timestamp"], s["value"]) for s in samples] == [
        ("http_requests_total", NOW_MS - 30_000, 10.0),
        ("http_requests_total", NOW_MS - 15_000, 12.0),
        ("up", NOW_MS, 1.0),
        ("lat_bucket", NOW_MS, 3.0),
    ]
    assert samples[0]["project_id"] == str(PROJECT_ID)
    assert samples[0]["environment"] == "default"
    series = {r[3]: dict(zip(SERIES_COLUMNS, r, strict=True)) for r in batch.series}
    requests = series["http_requests_total"]
    assert requests["labels"] == {"job": "api", "code": "200"}
    assert requests["series_id"] == series_id("http_requests_total", {"code": "200", "job": "api"})
    assert (requests["metric_type"], requests["description"]) == ("counter", "Requests.")
    assert (requests["first_seen"], requests["last_seen"]) == (NOW_MS - 30_000, NOW_MS - 15_000)
    assert series["up"]["labels"] == {"job": "api"}  # the empty label is no label
    assert series["up"]["metric_type"] == "gauge"
    assert series["lat_bucket"]["metric_type"] == "histogram"


def test_bound_environment_and_fallback(scope: ProjectScope) -> None:
    body = write_request([timeseries({"__name__": "x"}, [(1.0, NOW_MS)])])
    staging = ProjectScope(ORG_ID, PROJECT_ID, "staging", 30)
    assert decoded(body, staging, fallback_environment="dev").samples[0][1] == "staging"
    assert decoded(body, scope, fallback_environment="Dev").samples[0][1] == "dev"


def test_nan_inf_kept_and_stale_markers_dropped(scope: ProjectScope) -> None:
    stale = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]
    body = write_request(
        [
            timeseries(
                {"__name__": "g"},
                [
                    (math.nan, NOW_MS - 3),
                    (math.inf, NOW_MS - 2),
                    (-math.inf, NOW_MS - 1),
                    (stale, NOW_MS),
                ],
            )
        ]
    )
    batch = decoded(body, scope)
    values = [r[6] for r in batch.samples]
    assert len(values) == 3 and math.isnan(values[0]) and values[1:] == [math.inf, -math.inf]
    assert batch.rejected.count == 0


def test_invalid_series_are_rejected_and_counted(scope: ProjectScope) -> None:
    duplicate = (
        ld(1, label("__name__", "dup"))
        + ld(1, label("a", "1"))
        + ld(1, label("a", "2"))
        + ld(2, sample(1.0, NOW_MS))
    )
    window = [(1.0, NOW_MS - 31 * 86_400_000), (2.0, NOW_MS + 7_200_000), (3.0, NOW_MS)]
    body = write_request(
        [
            timeseries({"job": "no-name"}, [(1.0, NOW_MS)]),
            timeseries({"__name__": "bad-name"}, [(1.0, NOW_MS)]),
            timeseries({"__name__": "ok", "bad.label": "v"}, [(1.0, NOW_MS)]),
            timeseries({"__name__": "ok", "long": "x" * 5000}, [(1.0, NOW_MS)]),
            timeseries({"__name__": "ok", **{f"l{i}": "v" for i in range(80)}}, [(1.0, NOW_MS)]),
            timeseries({"__name__": "ok"}, window),
            duplicate,
        ]
    )
    batch = decoded(body, scope)
    assert [r[6] for r in batch.samples] == [3.0]
    assert batch.rejected.count == 8
    assert batch.rejected.reasons["series without a __name__ label"] == 1
    assert batch.rejected.reasons["invalid metric name 'bad-name'"] == 1
    assert batch.rejected.reasons["invalid label name 'bad.label'"] == 1
    assert batch.rejected.reasons["duplicate label name 'a'"] == 1
    assert "rejected 8" in batch.rejected.message("samples")


def test_native_histograms_counted_as_rejected(scope: ProjectScope) -> None:
    series = timeseries({"__name__": "h"}, []) + ld(4, b"\x08\x01")
    batch = decoded(write_request([series]), scope)
    assert batch.samples == [] and batch.rejected.reasons == {
        "native histograms are not supported": 1
    }


def test_malformed_bodies(scope: ProjectScope) -> None:
    with pytest.raises(PayloadDecodeError):
        decoded(b"\x0a\xff\xff\xff\xff\x0f", scope)
    with pytest.raises(PayloadDecodeError, match="UTF-8"):
        decoded(write_request([ld(1, ld(1, b"\xff\xfe") + ld(2, b"v"))]), scope)
    with pytest.raises(PayloadDecodeError, match="snappy"):
        decompress(b"\x10garbage-not-snappy", "snappy", 1 << 20)
