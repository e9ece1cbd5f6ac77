"""Run history: what is new since last night, what was resolved, how old each finding is.

``store`` keeps runs and findings in SQLite; ``delta`` turns what the store read into the
change since the previous run without touching the database. The records both hand out
(``RunDelta``, ``RunRow``, ...) live in ``reconcile.model``; their text is ``report.historytext``.
"""
