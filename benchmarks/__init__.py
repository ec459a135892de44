"""Benchmark harnesses behind ``tsguard bench`` (results and commands in RESULTS.md).

They live outside the product packages: ``detectors`` (the detector core
against River), ``pipeline`` (one real worker end to end against the local
stack), with its load (``pipeline_load``) and its decode + store reference
(``pipeline_reference``).
"""
