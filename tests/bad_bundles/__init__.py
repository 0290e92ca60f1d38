"""One bad bundle per verification finding code (see make.py)."""
