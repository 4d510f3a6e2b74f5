"""The `evaluate` metric module in zero_shot.py (a folder to pass to `evaluate.load`)."""
