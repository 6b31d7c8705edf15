"""The demo Tryton: ``home.TrytonHome`` (its virtual environment in the cache, never the hub's),
``template.ensure_template`` / ``template.create_database`` (seeded demo databases from
:mod:`ordersync.devkit.demo_data`, built by ``scripts/provision.py`` inside Tryton's environment),
``server.TrytonServer`` (a real ``trytond`` subprocess on 127.0.0.1) and ``simulate.TrytonSimulator``
(ships, invoices and receives returns in Tryton as the warehouse and accounting would)."""
