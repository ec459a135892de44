"""Handing anomaly episodes to the alerting systems operators already run."""
