"""Graph passes over the exported file: native recurrent ops, the padding skip, the batch Scan, clean rows."""
