"""Messaging runtime: outbox relay, transports (in-process on the store; NATS JetStream later),
idempotent consumers with an inbox, retries with backoff and jitter, dead letters and replay."""
