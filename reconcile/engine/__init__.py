"""The columnar engine: both sides of a run as DuckDB tables, matched and classified in SQL.

Python objects are built only for what a run keeps (findings, view rows, unknown_to_ca); every
other CA row and Intune record lives in DuckDB, which stores it compressed and spills to its
scratch directory beyond its memory limit.
"""
