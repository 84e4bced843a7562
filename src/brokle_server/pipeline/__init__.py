"""The durable ingest pipeline: queue port (spool | Redis Streams), batch writers, dead letters."""
