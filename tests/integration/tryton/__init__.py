"""Tests against a real trytond (built from the pinned Tryton requirements)."""
