"""A deterministic IoT fleet: devices with correlated sensors and injected anomalies.

Two independent random streams are spawned from the seed: one drives the
normal behaviour (cycles, drift, noise), the other schedules anomalies. So a
run with ``anomaly_rate=0`` is exactly the same fleet without the faults, and
the tests can check that injected rows really deviate from the clean value.

Every device shares one latent "load" (a daily and weekly cycle plus an AR(1)
wander) that drives all its sensors with sensor-specific gains, which makes
sensors within a device correlated (humidity negatively).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from connectors.simulate.base import SECONDS_PER_DAY, Reading, Tick, rfc3339, weekday
from connectors.simulate.groundtruth import GroundTruth
from stream_app.wire.names import is_metric

VALUE_KINDS = ("spike", "dip", "level_shift", "trend_drift", "variance_burst", "stuck")
DEVICE_KINDS = ("silence", "out_of_order", "duplicate")
IOT_KINDS = VALUE_KINDS + DEVICE_KINDS
DEFAULT_SENSORS = ("temperature", "vibration", "pressure", "power", "humidity")
DEFAULT_START = 1_767_571_200.0  # 2026-01-05T00:00:00Z, a Monday


@dataclass(frozen=True, slots=True)
class SensorProfile:
    """Normal behaviour of one sensor kind; gains multiply the device's load in [0, 1]."""

    base: float
    gain: float
    noise: float
    drift_per_day: float
    decimals: int
    low: float = -math.inf
    high: float = math.inf


PROFILES: dict[str, SensorProfile] = {
    "temperature": SensorProfile(55.0, 18.0, 0.35, 0.15, 2),
    "vibration": SensorProfile(0.020, 0.030, 0.0015, 0.0004, 5, low=0.0),
    "pressure": SensorProfile(4.0, 1.2, 0.04, -0.01, 3, low=0.0),
    "power": SensorProfile(1.5, 7.5, 0.12, 0.02, 3, low=0.0),
    "humidity": SensorProfile(52.0, -9.0, 0.5, 0.05, 2, low=0.0, high=100.0),
}


def profile_for(name: str) -> SensorProfile:
    """Known sensors have hand-made profiles; others get a stable one derived from the name."""
    if name in PROFILES:
        return PROFILES[name]
    h = zlib.crc32(name.encode())
    base = 10.0 + (h % 90)
    return SensorProfile(base, base * 0.3, base * 0.01, base * 0.002, 3)


@dataclass(slots=True)
class _Fault:
    """An anomaly in progress on one device."""

    kind: str
    sensor: int
    ticks_left: int
    length: int
    magnitude: float
    frozen: float | None = None
    held: list[Reading] = field(default_factory=list)


class IoTFleet:
    """``devices`` devices, each sending one multi-metric reading every ``interval`` seconds.

    ``anomaly_rate`` is the probability, per device and reading, that a fault
    starts (one fault at a time per device). Entities are ``site-SS/dev-DDDD``.

    >>> fleet = IoTFleet(devices=2, sensors=["temperature"], seed=1)
    >>> readings, truth = next(fleet.ticks())
    >>> [r["entity"] for r in readings], sorted(readings[0]["metrics"])
    (['site-01/dev-0000', 'site-01/dev-0001'], ['temperature'])
    """

    def __init__(
        self,
        devices: int = 10,
        sensors: Sequence[str] = DEFAULT_SENSORS,
        anomaly_rate: float = 0.002,
        seed: int = 0,
        start: float = DEFAULT_START,
        interval: float = 10.0,
        kinds: Sequence[str] = IOT_KINDS,
        devices_per_site: int = 25,
        ts_format: str = "epoch",
    ) -> None:
        if devices < 1 or not sensors or interval <= 0:
            raise ValueError("need devices >= 1, at least one sensor and interval > 0")
        # a reading with one invalid metric name is dead-lettered whole (schema), and a
        # sensor named twice was one metric whose faults the ground truth misplaced
        invalid = [name for name in dict.fromkeys(sensors) if not is_metric(name)]
        if invalid:
            raise ValueError(
                f"sensor(s) {', '.join(map(repr, invalid))} cannot be metric names (a letter"
                " or _, then up to 63 letters, digits, _ . or -): every reading would be"
                " dead-lettered"
            )
        twice = sorted({name for name in sensors if list(sensors).count(name) > 1})
        if twice:
            raise ValueError(f"sensor(s) {', '.join(twice)} named more than once")
        unknown = set(kinds) - set(IOT_KINDS)
        if unknown:
            raise ValueError(f"unknown anomaly kinds {sorted(unknown)}; known: {IOT_KINDS}")
        self.devices, self.sensors = devices, tuple(sensors)
        self.anomaly_rate, self.kinds = anomaly_rate, tuple(kinds)
        self.start, self.interval, self.ts_format = start, interval, ts_format
        self.entities = [
            f"site-{d // devices_per_site + 1:02d}/dev-{d:04d}" for d in range(devices)
        ]
        self._sites = [e.split("/")[0] for e in self.entities]
        normal, faults = np.random.SeedSequence(seed).spawn(2)
        self._rng = np.random.default_rng(normal)
        self._fault_rng = np.random.default_rng(faults)
        profiles = [profile_for(s) for s in self.sensors]
        shape = (devices, len(self.sensors))
        self._noise = np.array([p.noise for p in profiles])
        self._gain = np.array([p.gain for p in profiles])
        self._base = np.array([p.base for p in profiles]) * (
            1 + 0.05 * self._rng.standard_normal(shape)
        )
        self._drift = np.array([p.drift_per_day for p in profiles]) * self._rng.uniform(
            -1, 2, shape
        )
        self._low = np.array([p.low for p in profiles])
        self._high = np.array([p.high for p in profiles])
        self._decimals = [p.decimals for p in profiles]
        self._phase = np.arange(devices) * (interval / devices)
        self._ar = np.zeros(devices)

    def readings_per_tick(self) -> float:
        """One reading per device and tick (faults change this only slightly)."""
        return float(self.devices)

    def clean_values(self, tick: int) -> np.ndarray:
        """The fault-free values of all devices x sensors at ``tick`` (advances the normal stream)."""
        t = self.start + tick * self.interval
        hour = (t % SECONDS_PER_DAY) / 3600.0
        daily = 0.5 - 0.5 * math.cos(2 * math.pi * (hour - 4.0) / 24.0)
        day = weekday(t)
        weekly = 1.0 if day < 5 else (0.7 if day == 5 else 0.6)
        self._ar = 0.98 * self._ar + 0.01 * self._rng.standard_normal(self.devices)
        load = daily * weekly + self._ar
        days = tick * self.interval / SECONDS_PER_DAY
        eps = self._rng.standard_normal((self.devices, len(self.sensors)))
        values = self._base + np.outer(load, self._gain) + self._drift * days + self._noise * eps
        return np.clip(values, self._low, self._high)

    def ticks(self) -> Iterator[Tick]:
        """Endless; bound it with itertools.islice or the shell's --count/--duration."""
        faults: dict[int, _Fault] = {}
        tick = 0
        while True:
            values = self.clean_values(tick)
            truth = self._schedule(tick, faults)
            readings: list[Reading] = []
            later: list[Reading] = []
            for d, active in faults.items():
                self._apply(active, values, d)
            rows = self._rounded(values)
            stamps = np.round(self.start + tick * self.interval + self._phase, 3).tolist()
            for d in range(self.devices):
                fault = faults.get(d)
                if fault is None:
                    readings.append(self._reading(d, stamps[d], rows[d]))
                    continue
                if fault.kind != "silence":
                    reading = self._reading(d, stamps[d], rows[d])
                    if fault.kind == "out_of_order" and fault.ticks_left == fault.length:
                        fault.held.append(reading)  # only the first one is late
                    else:
                        readings.append(reading)
                        if fault.kind == "duplicate":
                            readings.append(dict(reading))
                fault.ticks_left -= 1
                if fault.ticks_left <= 0:
                    later.extend(fault.held)
                    del faults[d]
            yield readings + later, truth
            tick += 1

    def _rounded(self, values: np.ndarray) -> list[list[float]]:
        """Round each sensor to its resolution in one numpy pass (per-value round() is slow)."""
        out = np.empty_like(values)
        for j, dec in enumerate(self._decimals):
            np.round(values[:, j], dec, out=out[:, j])
        rows: list[list[float]] = out.tolist()
        return rows

    def _reading(self, d: int, ts: float, row: list[float]) -> Reading:
        stamp: float | str = ts if self.ts_format == "epoch" else rfc3339(ts)
        return {
            "entity": self.entities[d],
            "ts": stamp,
            "metrics": dict(zip(self.sensors, row, strict=True)),
            "source": "iot",
            "tags": {"site": self._sites[d]},
        }

    def _schedule(self, tick: int, faults: dict[int, _Fault]) -> list[GroundTruth]:
        """Start new faults; the fault stream draws the same amount whatever happens."""
        draws = self._fault_rng.random(self.devices)
        truth: list[GroundTruth] = []
        if self.anomaly_rate <= 0 or not self.kinds:
            return truth
        for d in np.flatnonzero(draws < self.anomaly_rate).tolist():
            if d in faults:
                continue
            rng = self._fault_rng
            kind = self.kinds[int(rng.integers(len(self.kinds)))]
            sensor = int(rng.integers(len(self.sensors)))
            lo, hi = _LENGTHS[kind]
            length = int(rng.integers(lo, hi + 1))
            magnitude = float(rng.uniform(8.0, 14.0))
            faults[d] = _Fault(kind, sensor, length, length, magnitude)
            start = round(self.start + tick * self.interval + float(self._phase[d]), 3)
            end = round(start + (length - 1) * self.interval, 3)
            if kind == "out_of_order":
                end = start  # the held reading; it arrives ``length`` ticks late
            entity = self.entities[d]
            if kind in VALUE_KINDS:
                truth.append(GroundTruth(entity, self.sensors[sensor], kind, start, end))
            elif kind == "silence":
                truth.extend(GroundTruth(entity, s, kind, start, end) for s in self.sensors)
            else:
                truth.append(GroundTruth(entity, "*", kind, start, end, expect_episode=False))
        return truth

    def _apply(self, fault: _Fault, values: np.ndarray, d: int) -> None:
        """Distort row ``d`` in place according to the fault (value kinds only)."""
        s = fault.sensor
        sigma = float(self._noise[s])
        step = fault.length - fault.ticks_left  # 0 on the first faulty tick
        if fault.kind == "spike":
            values[d, s] += fault.magnitude * sigma
        elif fault.kind == "dip":
            values[d, s] -= fault.magnitude * sigma
        elif fault.kind == "level_shift":
            values[d, s] += 0.6 * fault.magnitude * sigma
        elif fault.kind == "trend_drift":
            values[d, s] += 1.5 * fault.magnitude * sigma * (step + 1) / fault.length
        elif fault.kind == "variance_burst":
            values[d, s] += 0.5 * fault.magnitude * sigma * float(self._fault_rng.standard_normal())
        elif fault.kind == "stuck":
            if fault.frozen is None:
                fault.frozen = float(values[d, s])
            values[d, s] = fault.frozen


# Inclusive length ranges in ticks; out_of_order holds a reading back for its length.
_LENGTHS: dict[str, tuple[int, int]] = {
    "spike": (1, 2),
    "dip": (1, 2),
    "level_shift": (30, 90),
    "trend_drift": (60, 180),
    "variance_burst": (20, 60),
    "stuck": (20, 80),
    "silence": (10, 60),
    "out_of_order": (3, 8),
    "duplicate": (1, 1),
}
