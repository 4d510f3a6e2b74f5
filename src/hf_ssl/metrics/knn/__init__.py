"""The `evaluate` metric module in knn.py (a folder to pass to `evaluate.load`)."""
