"""Offline tools around the detector core: ``replay``, ``evaluate``, ``bench detectors``.

Everything here reads and writes files; the detector core stays pure.
"""
