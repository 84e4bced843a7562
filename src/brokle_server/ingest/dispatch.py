"""One call per ingest body: negotiate the media type, undo ``Content-Encoding``, decode.

The HTTP routes (``ingest/routes.py``) stay thin by calling these; everything here is
pure and synchronous, so a route may run it in a worker thread for large bodies::

    result = decode_otlp("traces", raw, content_type=..., content_encoding=...,
                         scope=scope, received_at=now, settings=settings.ingest)
    ...enqueue result.rows...
    body, media = result.reply()             # 200, partial_success when something was rejected

    except BrokleError as exc:
        status, body, media = otlp_error_reply(exc, content_type)   # google.rpc.Status
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from brokle_server.core.types import ProjectScope
from brokle_server.errors import BrokleError
from brokle_server.ingest.common import Rejections, Row, RowBatch
from brokle_server.ingest.config import IngestSettings
from brokle_server.ingest.decode import (
    CONTENT_TYPES,
    BodyEncoding,
    Signal,
    body_encoding,
    decompress,
    media_type,
    otlp_error,
    otlp_response,
)
from brokle_server.ingest.luminate import decode_luminate
from brokle_server.ingest.otlp_logs import decode_logs_json, decode_logs_protobuf
from brokle_server.ingest.otlp_metrics import decode_metrics_json, decode_metrics_protobuf
from brokle_server.ingest.otlp_traces import decode_traces_json, decode_traces_protobuf
from brokle_server.ingest.remote_write import decode_remote_write
from brokle_server.ingest.series import MetricBatch

_NOUNS: Final = {"traces": "spans", "logs": "log records", "metrics": "data points"}


@dataclass(slots=True)
class OtlpResult:
    """A decoded OTLP request: rows for its table(s) and what to answer."""

    signal: Signal
    encoding: BodyEncoding
    rows: list[Row]  # spans or logs; empty for metrics
    metrics: MetricBatch | None
    rejected: Rejections

    def reply(self) -> tuple[bytes, str]:
        """(body, Content-Type) of the 200 reply, in the request's encoding."""
        message = self.rejected.message(_NOUNS[self.signal])
        body = otlp_response(self.signal, self.encoding, self.rejected.count, message)
        return body, CONTENT_TYPES[self.encoding]


def decode_otlp(
    signal: Signal,
    raw: bytes,
    *,
    content_type: str | None,
    content_encoding: str | None,
    scope: ProjectScope,
    received_at: datetime,
    settings: IngestSettings,
    api_key_id: str = "",
    fallback_environment: str | None = None,
) -> OtlpResult:
    """Decode ``/v1/traces``, ``/v1/logs`` or ``/v1/metrics``; raises BrokleError (4xx)."""
    encoding = body_encoding(content_type)
    body = decompress(raw, content_encoding, settings.max_body_bytes)
    env = fallback_environment
    if signal == "metrics":
        decode_metrics = (
            decode_metrics_json if encoding is BodyEncoding.JSON else decode_metrics_protobuf
        )
        metrics = decode_metrics(
            body, scope, received_at, settings=settings, fallback_environment=env
        )
        return OtlpResult(signal, encoding, [], metrics, metrics.rejected)
    batch: RowBatch
    if signal == "traces":
        decode_traces = (
            decode_traces_json if encoding is BodyEncoding.JSON else decode_traces_protobuf
        )
        batch = decode_traces(
            body,
            scope,
            received_at,
            settings=settings,
            api_key_id=api_key_id,
            fallback_environment=env,
        )
    else:
        decode_logs = decode_logs_json if encoding is BodyEncoding.JSON else decode_logs_protobuf
        batch = decode_logs(body, scope, received_at, settings=settings, fallback_environment=env)
    return OtlpResult(signal, encoding, batch.rows, None, batch.rejected)


def otlp_error_reply(error: BrokleError, content_type: str | None) -> tuple[int, bytes, str]:
    """(status, ``google.rpc.Status`` body, Content-Type) for an OTLP request that failed.

    The body follows the request's encoding; when that is unknown (e.g. the 415 itself),
    JSON is used if the media type mentions json, else protobuf.
    """
    encoding = BodyEncoding.JSON if "json" in media_type(content_type) else BodyEncoding.PROTOBUF
    status, body = otlp_error(error, encoding)
    return status, body, CONTENT_TYPES[encoding]


def decode_write(
    raw: bytes,
    *,
    content_type: str | None,
    content_encoding: str | None,
    scope: ProjectScope,
    received_at: datetime,
    settings: IngestSettings,
    fallback_environment: str | None = None,
) -> MetricBatch:
    """``/api/v1/write``: Prometheus remote_write (protobuf) or a Luminate JSON batch.

    remote_write bodies are always snappy block-compressed (Prometheus sends
    ``Content-Encoding: snappy``; a missing header is read as snappy too). For remote_write
    answer 204, or 400 with ``rejected.message("samples")`` when ``rejected.count``; for
    Luminate list ``errors`` and answer 400 only when nothing was accepted.
    """
    encoding = body_encoding(content_type)
    if encoding is BodyEncoding.PROTOBUF:
        body = decompress(raw, content_encoding or "snappy", settings.max_body_bytes)
        return decode_remote_write(
            body, scope, received_at, settings=settings, fallback_environment=fallback_environment
        )
    body = decompress(raw, content_encoding, settings.max_body_bytes)
    return decode_luminate(
        body, scope, received_at, settings=settings, fallback_environment=fallback_environment
    )
