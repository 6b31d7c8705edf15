"""ERP adapters (Tryton first)."""
