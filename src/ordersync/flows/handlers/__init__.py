"""Message handlers: consumers of the hub's events (see :func:`ordersync.bootstrap.build_registry`)."""
