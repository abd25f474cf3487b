"""perfkit: PostgreSQL performance evidence as pandas DataFrames, findings and reports.

Modules: db, sandbox, statements, store (the foundation); plans, loadtests, health, logs,
advice, charts, report and demo build on them.
"""

__version__ = "0.1.0"
