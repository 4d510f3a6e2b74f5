"""The `evaluate` metric module in fill_mask.py (a folder to pass to `evaluate.load`)."""
