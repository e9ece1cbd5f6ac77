"""Device evidence: what Android, iOS and Windows logs prove about SCEP certificate delivery.

parse (detect and read a log) → store (SQLite, deduplicated by content). A source like ca/ and
intune/: what the stored records do to the join's verdicts is reconcile.enrich.evidence.
"""
