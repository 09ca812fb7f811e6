"""Public gateway of the sepsis early-warning API."""
