"""The pure domain: order lifecycle, events, pricing rules, allocation, cases. Imports only itself and
the canonical model (an import-linter contract enforces it)."""
