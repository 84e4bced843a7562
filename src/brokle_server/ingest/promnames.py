"""Prometheus naming for OTLP metrics, after OpenTelemetry's Prometheus compatibility rules.

* Metric names keep ``[a-zA-Z0-9_:]``; anything else becomes ``_``, runs of ``_`` collapse,
  and a leading digit gets a ``_`` prefix.
* With suffixes on (``IngestSettings.otlp_metric_suffixes``), the unit is appended unless
  the name already ends with it: UCUM units map to words (``s`` → ``seconds``, ``By`` →
  ``bytes``, ``ms`` → ``milliseconds``, ``X/Y`` → ``X_per_Y``), ``{...}`` annotations are
  dropped, a gauge with unit ``1`` gets ``ratio``; monotonic cumulative sums end in
  ``_total``. ``http.server.duration`` in ``s`` → ``http_server_duration_seconds``.
* Label names keep ``[a-zA-Z0-9_]``; a leading digit gets ``key_``, a leading ``__`` (reserved
  in Prometheus) gets ``key``. Two attributes that sanitise to the same label have their
  values joined with ``;`` in the order of their original keys.
* ``le`` and ``quantile`` values use Prometheus' float text: ``1``, ``0.25``, ``+Inf``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Final

_METRIC_BAD = re.compile(r"[^a-zA-Z0-9_:]+")
_LABEL_BAD = re.compile(r"[^a-zA-Z0-9_]+")
_UNDERSCORES = re.compile(r"__+")
_ANNOTATION = re.compile(r"\{[^}]*\}")

_UNITS: Final = {
    "d": "days",
    "h": "hours",
    "min": "minutes",
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    "By": "bytes",
    "KiBy": "kibibytes",
    "MiBy": "mebibytes",
    "GiBy": "gibibytes",
    "TiBy": "tibibytes",
    "KBy": "kilobytes",
    "MBy": "megabytes",
    "GBy": "gigabytes",
    "TBy": "terabytes",
    "m": "meters",
    "V": "volts",
    "A": "amperes",
    "J": "joules",
    "W": "watts",
    "g": "grams",
    "Cel": "celsius",
    "Hz": "hertz",
    "%": "percent",
}
_PER_UNITS: Final = {
    "s": "second",
    "m": "minute",
    "h": "hour",
    "d": "day",
    "w": "week",
    "mo": "month",
    "y": "year",
}


def sanitize_metric_name(name: str) -> str:
    out = _UNDERSCORES.sub("_", _METRIC_BAD.sub("_", name))
    if out and out[0].isdigit():
        out = "_" + out
    return out


@lru_cache(maxsize=4096)
def sanitize_label_name(name: str) -> str:
    out = _LABEL_BAD.sub("_", name)
    if not out:
        return "key_empty"
    if out[0].isdigit():
        return "key_" + out
    if out.startswith("__"):
        return "key" + out
    return out


def _unit_word(unit: str) -> str:
    unit = _ANNOTATION.sub("", unit).strip()
    if not unit or unit == "1":
        return ""
    if "/" in unit:
        num, _, den = unit.partition("/")
        num_word = _UNITS.get(num, num) if num and num != "1" else ""
        den_word = _PER_UNITS.get(den, _UNITS.get(den, den))
        word = f"{num_word}_per_{den_word}" if num_word else f"per_{den_word}"
    else:
        word = _UNITS.get(unit, unit)
    return _LABEL_BAD.sub("_", word).strip("_")


@lru_cache(maxsize=4096)
def prometheus_metric_name(name: str, unit: str, kind: str, suffixes: bool) -> str:
    """The base series name for an OTLP metric; ``kind`` is ``counter``, ``gauge``, ...

    Histogram and summary callers append ``_bucket``/``_sum``/``_count`` to the result.
    """
    base = sanitize_metric_name(name)
    if not suffixes:
        return base
    word = "ratio" if unit == "1" and kind == "gauge" else _unit_word(unit)
    if word and not (base.endswith("_" + word) or word in base.split("_")):
        base = f"{base}_{word}"
    if kind == "counter":
        if base.endswith("_total"):
            base = base[: -len("_total")]
        base += "_total"
    return _UNDERSCORES.sub("_", base)


def format_float(value: float) -> str:
    """Prometheus' text for a float label value (``le``, ``quantile``)."""
    if value == float("inf"):
        return "+Inf"
    if value == float("-inf"):
        return "-Inf"
    if value != value:
        return "NaN"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def sanitize_labels(attrs: Mapping[str, str], max_value: int) -> dict[str, str]:
    """Attribute map → Prometheus labels (names sanitised, collisions joined, values cut)."""
    labels: dict[str, str] = {}
    collided = False
    for key, value in attrs.items():
        name = sanitize_label_name(key)
        if name in labels:
            collided = True
            break
        labels[name] = value[:max_value]
    if collided:  # rare: redo in original-key order so joined values are deterministic
        labels = {}
        for key in sorted(attrs):
            name = sanitize_label_name(key)
            value = attrs[key][:max_value]
            labels[name] = f"{labels[name]};{value}" if name in labels else value
    return labels
