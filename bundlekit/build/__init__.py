"""Writing bundles: one builder every writer (pack, archive, unpack, capture) shares."""
