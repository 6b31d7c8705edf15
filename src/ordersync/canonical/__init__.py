"""The canonical model: the one language every adapter speaks.

Models are versioned by package (``ordersync.canonical.v1``). A published version never changes
incompatibly: its JSON Schemas are exported under ``schemas/v<N>/`` in the repository and a test
compares them with the code (see :mod:`ordersync.canonical.compat`).
"""
