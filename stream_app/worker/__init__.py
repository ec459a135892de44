"""The streaming worker: Faust agents around the detector core."""
