"""The Tryton ERP adapter: the ERP port (:class:`~ordersync.ports.erp.ErpPort`) over Tryton's JSON-RPC.

* ``rpc.TrytonClient``: JSON-RPC transport with typed errors (no business logic).
* ``adapter.TrytonErp``: the port over that client (submit, amend, read orders, poll changes, returns),
  with one module per part (``submit``, ``amend``, ``changes``, ``documents``, ``returns``...).

The demo's Tryton (its environment, seeded databases, server process and simulators) is developer
tooling, in :mod:`ordersync.devkit.tryton`.
"""
