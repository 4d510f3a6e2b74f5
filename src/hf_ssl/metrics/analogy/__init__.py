"""The `evaluate` metric module in analogy.py (a folder to pass to `evaluate.load`)."""
