"""Observability: metric names and their sinks (EMF, Prometheus), structured logs and
trace spans (X-Ray, OpenTelemetry). Imports nothing of edgeroute's above ``types``."""
