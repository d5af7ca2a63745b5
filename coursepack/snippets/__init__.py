"""Code shared by several notebooks, written into them by `make sync` (see coursepack/notebooks.py)."""
