"""The registry of detectors, with every built-in detector registered.

>>> REGISTRY.names()
['ensemble', 'ewma_z', 'river_hst', 'river_sad', 'robust_seasonal']
"""

from __future__ import annotations

from .base import Detector, DetectorRegistry, DetectorSpec, Update
from .ensemble import Ensemble
from .ewma_z import EwmaZ
from .river_hst import RiverHST
from .river_sad import RiverSAD
from .robust_seasonal import RobustSeasonal

DEFAULT_DETECTOR = RobustSeasonal.name


def build_registry() -> DetectorRegistry:
    """A fresh registry holding every built-in detector."""
    reg = DetectorRegistry()
    reg.register(
        DetectorSpec(
            RobustSeasonal.name,
            RobustSeasonal.create,
            RobustSeasonal.load,
            description="robust level/trend/seasonal forecast (default)",
        )
    )
    reg.register(
        DetectorSpec(EwmaZ.name, EwmaZ.create, EwmaZ.load, description="EW mean/variance z-score")
    )
    reg.register(
        DetectorSpec(
            RiverSAD.name,
            RiverSAD.create,
            RiverSAD.load,
            description="River StandardAbsoluteDeviation",
        )
    )
    reg.register(
        DetectorSpec(
            RiverHST.name,
            RiverHST.create,
            RiverHST.load,
            test_params={"n_trees": 5, "height": 6, "window_size": 50},
            description="River HalfSpaceTrees on scaled shingles",
        )
    )
    reg.register(
        DetectorSpec(
            Ensemble.name,
            Ensemble.create,
            Ensemble.load,
            test_params={"members": ["robust_seasonal", "ewma_z"]},
            description="max / noisy-or of calibrated member scores",
        )
    )
    return reg


REGISTRY = build_registry()

__all__ = [
    "DEFAULT_DETECTOR",
    "REGISTRY",
    "Detector",
    "DetectorRegistry",
    "DetectorSpec",
    "Ensemble",
    "EwmaZ",
    "RiverHST",
    "RiverSAD",
    "RobustSeasonal",
    "Update",
    "build_registry",
]
