"""The runtime parts that keep the hub serving: the intake writer (group commit), the read model behind
the experience API, outbound webhook delivery, the ERP change poller, and the typed :class:`Hub` the
composition root hands to the API and the pages. They may use the store directly; they reach the ERPs
and subscribers through ports."""
