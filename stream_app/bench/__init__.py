"""The harnesses behind ``tsguard bench`` (results and commands in benchmarks/RESULTS.md).

They ship in the wheel, under ``stream_app`` as everything else it installs, so
that ``make bench`` measures the installed build: ``detectors`` (the detector
core against River), ``pipeline`` (one real worker end to end against the local
stack), with its load (``pipeline_load``) and its decode + store reference
(``pipeline_reference``). The repository's ``benchmarks/`` folder holds the
development-only benchmarks, run from a checkout with ``python -m benchmarks.…``;
some of them build on these.
"""
