"""Golden bundles: the format's compatibility, as committed bytes (see regen.py)."""
