"""Development benchmarks, run from a checkout (``python -m benchmarks.…``; results
and commands in RESULTS.md).

They are not shipped: the wheel installs only ``stream_app`` and ``connectors``.
The harnesses behind ``tsguard bench`` (``detectors``, ``pipeline`` and its load
and reference) are in :mod:`stream_app.bench`, which some of these build on.
"""
