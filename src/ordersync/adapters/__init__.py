"""Adapters: one package per external system kind, each mapping vendor data to the canonical model."""
