"""Process flows: the order's way from intake to the ERP, fulfillment, amendments, returns and the
people who act on exceptions. They speak only to ports (:mod:`ordersync.ports`) and let the order decide
(:mod:`ordersync.domain.order`).

- :mod:`~ordersync.flows.handlers`: message handlers, each module ending with ``register(registry, ...)``:
  which consumer runs on which message (the composition root assembles them).
- :mod:`~ordersync.flows.services`: what the experience API, the pages and the workbench call directly
  (intake, amendments, reorders, returns, disputes, warehouse events, case actions).
- :mod:`~ordersync.flows.jobs`: what the worker runs on a clock.
"""
