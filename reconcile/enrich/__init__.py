"""After the join: steps that add to the verdicts it made, never re-join.

accepted (documented exceptions become ``accepted``) → evidence (device logs split delivery
from reporting problems) → advice (one next step per verdict). Each reads the join's
``RunResult`` and returns a new one; sources and the join never import this package.
"""
