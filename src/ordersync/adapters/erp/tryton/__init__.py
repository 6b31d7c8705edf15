"""The Tryton ERP side: its own environment, demo databases, a server process manager and a JSON-RPC client.

* ``home.TrytonHome``: the Tryton 8.2 virtual environment in the cache (never the hub's).
* ``template.ensure_template`` / ``template.create_database``: seeded demo databases from ``demo_data``.
* ``server.TrytonServer``: a real ``trytond`` subprocess on 127.0.0.1.
* ``rpc.TrytonClient``: JSON-RPC transport with typed errors (no business logic).
* ``adapter.TrytonErp``: the ERP port over that client (submit, amend, read orders, poll changes).
"""
