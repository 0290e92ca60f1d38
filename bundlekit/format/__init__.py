"""The bundle format: layout, segments, manifest, DSSE envelope.

This package is the one place that owns the on-disk contract written down in
docs/format.md.  Everything else goes through it.
"""
