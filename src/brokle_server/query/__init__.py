"""The query API: one unified endpoint, discovery, the brokle SDK's span query, admin ops.

Modules, from the edge in:

* ``routes*`` — HTTP only (``routes`` gathers them): ``routes_query`` (``POST
  /api/v1/query``), ``routes_discovery``, ``routes_sdk`` (``/v1/spans/query``),
  ``routes_admin`` (metric deletion, retention). ``callers`` resolves who may read which
  project into a :class:`~brokle_server.query.scope.QueryScope`.
* ``request`` — the ``queryType`` union and its dispatch; ``models_*`` — one validated model
  per query type; ``timerange``, ``filters``, ``fields`` (per-type allow-lists), ``cursor``.
* readers — ``metrics``, ``traces``, ``analytics``, ``logs``, ``discovery``, ``sdk``,
  ``admin`` — run SQL built by ``sql_metrics``, ``sql_traces`` and ``sdk_filter``.
* ``scope`` — the tenant boundary: every statement is built from a ``QueryScope`` that
  injects the project (and bound environment) filter, and only sealed, scoped statements run.
"""
