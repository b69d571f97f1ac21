"""What the monitoring API shows and does: queries over the telemetry, heartbeats and results in Redis,
and the commands (execute, revoke, retry, health check). HTTP-free: :mod:`skqueue.api` serves it."""
