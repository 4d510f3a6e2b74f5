"""The `evaluate` metric module in few_shot.py (a folder to pass to `evaluate.load`)."""
