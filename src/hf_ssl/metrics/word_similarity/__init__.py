"""The `evaluate` metric module in word_similarity.py (a folder to pass to `evaluate.load`)."""
