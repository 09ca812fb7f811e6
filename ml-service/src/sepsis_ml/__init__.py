"""Hybrid ML sepsis classifier (gradient-boosted model + clinical scores)."""
