"""The developer kit: what the demo, the tests and the benchmarks need around the product, kept out of
the product's packages.

- :mod:`~ordersync.devkit.demo_data`: the demo manufacturer's seed facts (Kestrel Components GmbH), for
  the demo Tryton, the in-memory ERP twin and the tests' expectations;
- :mod:`~ordersync.devkit.tryton`: a Tryton 8.2 environment of its own, seeded demo databases, a
  ``trytond`` process manager, and a warehouse/accounting simulator that acts in Tryton as people would.
"""
