"""The pure detector core: cleaning, scoring, calibration and episodes.

No I/O, no clock, no environment: time comes in with the data. See
``CONTRACT.md`` for the interface used by the workers and the offline tools.
"""

from __future__ import annotations

from .calibration import TailCalibrator
from .cleaning import SeriesCleaner
from .config import (
    CleaningConfig,
    EngineConfig,
    EntityRule,
    Limits,
    PolicyConfig,
    Rule,
    SeriesConfig,
)
from .detectors import DEFAULT_DETECTOR, REGISTRY, Detector, DetectorRegistry, DetectorSpec
from .entity import EntityScore, EntityScorer, explain_entity
from .entity_processor import EntityProcessor, EntityStep
from .policy import EpisodePolicy, FlagEpisode
from .processor import SeriesProcessor
from .records import EpisodeEvent, ScoredPoint
from .windows import TumblingWindow, WindowAggregate

__all__ = [
    "DEFAULT_DETECTOR",
    "REGISTRY",
    "CleaningConfig",
    "Detector",
    "DetectorRegistry",
    "DetectorSpec",
    "EngineConfig",
    "EntityProcessor",
    "EntityRule",
    "EntityScore",
    "EntityScorer",
    "EntityStep",
    "EpisodeEvent",
    "EpisodePolicy",
    "FlagEpisode",
    "Limits",
    "PolicyConfig",
    "Rule",
    "ScoredPoint",
    "SeriesCleaner",
    "SeriesConfig",
    "SeriesProcessor",
    "TailCalibrator",
    "TumblingWindow",
    "WindowAggregate",
    "explain_entity",
]
