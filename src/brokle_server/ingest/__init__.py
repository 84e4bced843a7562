"""Telemetry ingestion: OTLP, Prometheus remote_write, Luminate JSON and native batches.

Decoders are pure and synchronous: bytes + the key's ``ProjectScope`` + the time received
→ rows in ``store.schema`` column order, plus what was rejected and why. No I/O.

    dispatch        one call per endpoint body (media type, Content-Encoding, decode, reply)
    decode          media types, bounded decompression, OTLP reply and google.rpc.Status bodies
    otlp_traces     ExportTraceServiceRequest (protobuf | OTLP/JSON) → span rows
    otlp_logs       ExportLogsServiceRequest → log rows
    otlp_metrics    ExportMetricsServiceRequest → series + sample rows (Prometheus model)
    otlp_json       OTLP/JSON → generated protobuf messages (hex ids, camel/snake keys)
    remote_write    Prometheus remote_write 1.0 → series + sample rows
    luminate        {"metrics": [...]} JSON → series + sample rows
    native          POST /api/v1/ingest event batches → span, score and event rows
    scores          /v1/scores and /v1/scores/batch (the brokle SDK) → score rows
    spans, genai    the span row builder and the LLM columns promoted from attributes
    anyvalue        AnyValue → text flattening (the hot loop), attribute limits
    series          series/sample row collection shared by the metric decoders
    promnames       OTel → Prometheus metric and label naming
    common          time window, environment resolution, ids, timestamps, rejection tallies
    config          IngestSettings (BROKLE_INGEST__*)
"""
