"""Device evidence: what Android, iOS and Windows logs prove about SCEP certificate delivery.

parse (detect and read a log) → store (SQLite, deduplicated by content) → apply (reclassify
findings) and explain. Nothing is imported here so that reconcile.advice can use the model
without an import cycle.
"""
