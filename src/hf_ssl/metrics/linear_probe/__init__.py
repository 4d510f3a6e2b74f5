"""The `evaluate` metric module in linear_probe.py (a folder to pass to `evaluate.load`)."""
