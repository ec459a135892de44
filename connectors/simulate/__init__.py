"""Deterministic simulators (IoT fleet, market data) with ground truth, and their Kafka shell."""

from connectors.simulate.groundtruth import GroundTruth, GroundTruthWriter, read_ground_truth
from connectors.simulate.iot import IOT_KINDS, IoTFleet
from connectors.simulate.market import MARKET_KINDS, MarketSim
from connectors.simulate.shifted import Continued, Shifted

__all__ = [
    "IOT_KINDS",
    "MARKET_KINDS",
    "Continued",
    "GroundTruth",
    "GroundTruthWriter",
    "IoTFleet",
    "MarketSim",
    "Shifted",
    "read_ground_truth",
]
