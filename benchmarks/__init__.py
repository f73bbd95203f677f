"""kgpeft's benchmarks, one module each, run from the repository root: ``python -m benchmarks.<name>``.

They share one command line and results format (:mod:`benchmarks.harness`); ``python -m benchmarks.report``
prints their results as tables.
"""
