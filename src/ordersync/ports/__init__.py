"""Ports: what ordersync needs from the systems around it, in its own terms (``typing.Protocol``).

Adapters in :mod:`ordersync.adapters` implement them; each port has an in-memory twin that passes the
same contract test suite as the real adapter.
"""
