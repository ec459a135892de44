"""The tsguard REST API: ingest, query, export, acknowledge and label anomalies.

The app is built by :func:`stream_app.api.app.create_app`. This package
``__init__`` stays empty on purpose: the root CLI imports ``stream_app.api.cli``
at start-up, and that must not pull in FastAPI, psycopg or aiokafka.
"""
