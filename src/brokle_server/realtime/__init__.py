"""Live updates: the pub/sub port (in-process | Redis) and, on top, the WebSocket hub."""
