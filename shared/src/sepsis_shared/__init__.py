"""Shared library of the sepsis early-warning services."""
