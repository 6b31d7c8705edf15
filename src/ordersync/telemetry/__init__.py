"""Traces (OpenTelemetry) and structured logs: one order is one trace, every log line names it.

:mod:`ordersync.telemetry.tracing` holds the process's tracer (none until :func:`configure` installs
the SDK: the hub then makes no span at all) and the W3C trace context carried in envelopes and NATS
headers; :mod:`ordersync.telemetry.logs` formats log lines (human or JSON) with the trace and the order.
Neither imports the rest of the hub: every layer may use them.
"""
