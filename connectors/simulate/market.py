"""A deterministic market-data feed: prices, volumes and spreads with labelled faults.

Instruments trade on weekdays between ``open`` and ``close`` (UTC); outside
those hours nothing is sent. Those gaps are the calendar, not anomalies, so
they never appear in the ground truth (a pipeline that pages on them is wrong).

Normal behaviour comes from one random stream (regime-switching volatility,
opening gaps, U-shaped intraday volume, spreads that widen with volatility),
faults from another, so ``anomaly_rate=0`` gives the same market without them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from connectors.simulate.base import SECONDS_PER_DAY, Reading, Tick, rfc3339, weekday
from connectors.simulate.groundtruth import GroundTruth
from connectors.simulate.iot import DEFAULT_START

MARKET_KINDS = ("jump", "flash_crash", "volume_spike", "spread_widening")
_NAMES = (
    "ACME",
    "GLOBX",
    "INITECH",
    "UMBRL",
    "WAYNE",
    "STARK",
    "TYRELL",
    "CYBDN",
    "SOYLT",
    "MASSV",
)
_YEAR_SECONDS = 252 * 6.5 * 3600.0  # trading seconds per year, to scale annual volatility
_LENGTHS = {
    "jump": (1, 1),
    "flash_crash": (40, 160),
    "volume_spike": (1, 5),
    "spread_widening": (5, 30),
}
_METRICS = {
    "jump": ("price",),
    "flash_crash": ("price", "volume", "spread"),
    "volume_spike": ("volume",),
    "spread_widening": ("spread",),
}


@dataclass(slots=True)
class _Fault:
    kind: str
    ticks_left: int
    length: int
    size: float
    sign: float


def instrument_names(count: int) -> list[str]:
    """Stable, readable tickers: the fictional ten first, then SYM010, SYM011, ..."""
    return [_NAMES[i] if i < len(_NAMES) else f"SYM{i:03d}" for i in range(count)]


class MarketSim:
    """``instruments`` instruments quoting every ``interval`` seconds during trading hours.

    >>> sim = MarketSim(instruments=2, seed=7)
    >>> readings, _ = next(sim.ticks())
    >>> readings[0]["entity"], sorted(readings[0]["metrics"])
    ('XSIM/ACME', ['price', 'spread', 'volume'])
    """

    def __init__(
        self,
        instruments: int | Sequence[str] = 5,
        anomaly_rate: float = 0.0005,
        seed: int = 0,
        start: float = DEFAULT_START,
        interval: float = 1.0,
        open_utc: str = "09:30",
        close_utc: str = "16:00",
        venue: str = "XSIM",
        kinds: Sequence[str] = MARKET_KINDS,
        ts_format: str = "epoch",
    ) -> None:
        names = instrument_names(instruments) if isinstance(instruments, int) else list(instruments)
        if not names or interval <= 0:
            raise ValueError("need at least one instrument and interval > 0")
        unknown = set(kinds) - set(MARKET_KINDS)
        if unknown:
            raise ValueError(f"unknown anomaly kinds {sorted(unknown)}; known: {MARKET_KINDS}")
        self.entities = [f"{venue}/{n}" for n in names]
        self.venue, self.kinds, self.anomaly_rate = venue, tuple(kinds), anomaly_rate
        self.start, self.interval, self.ts_format = start, interval, ts_format
        self.open_s, self.close_s = _clock(open_utc), _clock(close_utc)
        if self.close_s <= self.open_s:
            raise ValueError("close must be after open (sessions do not cross midnight)")
        if self.close_s - self.open_s < interval:
            # no tick in any session: the instants would be searched for ever
            raise ValueError(
                f"a session of {self.close_s - self.open_s:g} s holds no tick every {interval:g} s:"
                " the interval must be at most the time from open to close"
            )
        normal, faults = np.random.SeedSequence(seed).spawn(2)
        self._rng, self._fault_rng = np.random.default_rng(normal), np.random.default_rng(faults)
        n = len(names)
        self._logp = np.log(self._rng.uniform(20.0, 400.0, n))
        self._regime = np.zeros(n, dtype=bool)
        self._vol = self._rng.uniform(0.15, 0.35, n)  # annualised, calm regime
        self._base_volume = self._rng.uniform(50.0, 2000.0, n)
        self._phase = np.arange(n) * (interval / n)

    def readings_per_tick(self) -> float:
        """One quote per instrument per tick."""
        return float(len(self.entities))

    def trading_instants(self) -> Iterator[tuple[float, int, int]]:
        """(ts, index in session, ticks in session) for every tick of every trading day."""
        per_session = int((self.close_s - self.open_s) / self.interval)
        day = math.floor(self.start / SECONDS_PER_DAY)
        while True:
            midnight = day * SECONDS_PER_DAY
            if weekday(midnight) < 5:
                open_ts = midnight + self.open_s
                first = max(0, math.ceil((self.start - open_ts) / self.interval))
                for k in range(first, per_session):
                    yield open_ts + k * self.interval, k, per_session
            day += 1

    def ticks(self) -> Iterator[Tick]:
        """Endless; only trading instants are yielded."""
        n = len(self.entities)
        faults: dict[int, _Fault] = {}
        dt_years = self.interval / _YEAR_SECONDS
        for ts, k, per_session in self.trading_instants():
            rng = self._rng
            switch = rng.random(n) < np.where(self._regime, 1 / 900, 1 / 7200) * self.interval
            self._regime ^= switch
            sigma = self._vol * np.where(self._regime, 3.0, 1.0) * math.sqrt(dt_years)
            shock = rng.standard_normal(n)
            ret = sigma * shock
            if k == 0:
                ret += 0.004 * rng.standard_normal(n)  # overnight news: the opening gap
            self._logp += ret
            x = (k + 0.5) / per_session
            profile = 1.0 + 2.0 * (2.0 * x - 1.0) ** 2  # U-shaped intraday volume
            volume = self._base_volume * profile * np.exp(0.35 * rng.standard_normal(n))
            volume *= 1.0 + 0.3 * np.minimum(np.abs(shock), 4.0)  # busy when it moves
            spread_bps = np.where(self._regime, 6e-4, 2e-4) * (
                1.0 + 0.2 * np.abs(rng.standard_normal(n))
            )
            truth = self._schedule(ts, k, per_session, faults)
            logp = self._logp.copy()
            spread_mult = np.ones(n)
            for i, fault in list(faults.items()):
                self._apply(fault, i, logp, volume, spread_mult)
                fault.ticks_left -= 1
                if fault.ticks_left <= 0:
                    del faults[i]
            price = np.exp(logp)
            spread = np.maximum(price * spread_bps * spread_mult, 0.01)
            stamps = np.round(ts + self._phase, 3).tolist()
            columns = zip(
                np.round(price, 2).tolist(),
                np.rint(volume).astype(np.int64).tolist(),
                np.round(spread, 4).tolist(),
                strict=True,
            )
            readings = [self._reading(i, stamps[i], *values) for i, values in enumerate(columns)]
            yield readings, truth

    def _reading(self, i: int, ts: float, price: float, volume: int, spread: float) -> Reading:
        stamp: float | str = ts if self.ts_format == "epoch" else rfc3339(ts)
        return {
            "entity": self.entities[i],
            "ts": stamp,
            "metrics": {"price": price, "volume": volume, "spread": spread},
            "source": "market",
            "tags": {"venue": self.venue},
        }

    def _schedule(
        self, ts: float, k: int, per_session: int, faults: dict[int, _Fault]
    ) -> list[GroundTruth]:
        """Start faults that fit in the rest of the session (they never span a closed market)."""
        draws = self._fault_rng.random(len(self.entities))
        truth: list[GroundTruth] = []
        if self.anomaly_rate <= 0 or not self.kinds:
            return truth
        for i in np.flatnonzero(draws < self.anomaly_rate).tolist():
            rng = self._fault_rng
            kind = self.kinds[int(rng.integers(len(self.kinds)))]
            lo, hi = _LENGTHS[kind]
            length = int(rng.integers(lo, hi + 1))
            size = float(rng.uniform(0.0, 1.0))
            sign = 1.0 if rng.random() < 0.5 else -1.0
            if i in faults or k + length > per_session:
                continue
            faults[i] = _Fault(kind, length, length, size, sign)
            start = round(ts + float(self._phase[i]), 3)
            end = round(start + (length - 1) * self.interval, 3)
            truth.extend(
                GroundTruth(self.entities[i], m, kind, start, end, source="market")
                for m in _METRICS[kind]
            )
        return truth

    def _apply(
        self, fault: _Fault, i: int, logp: np.ndarray, volume: np.ndarray, spread_mult: np.ndarray
    ) -> None:
        step = fault.length - fault.ticks_left
        if fault.kind == "jump":
            self._logp[i] += fault.sign * (0.02 + 0.03 * fault.size)  # permanent repricing
            logp[i] = self._logp[i]
        elif fault.kind == "flash_crash":
            depth = 0.05 + 0.05 * fault.size
            fall = max(1, fault.length // 5)
            if step < fall:
                offset = -depth * (step + 1) / fall
            else:
                offset = -depth * (1.0 - (step - fall + 1) / (fault.length - fall + 1))
            logp[i] += offset
            volume[i] *= 8.0
            spread_mult[i] *= 5.0
        elif fault.kind == "volume_spike":
            volume[i] *= 8.0 + 12.0 * fault.size
        elif fault.kind == "spread_widening":
            spread_mult[i] *= 5.0 + 5.0 * fault.size


def _clock(text: str) -> float:
    """'09:30' -> seconds after midnight; a ``ValueError`` that names the text for
    anything but a time of day (``24:00`` is the end of the day).

    >>> _clock("09:30"), _clock("24:00")
    (34200.0, 86400.0)
    >>> _clock("25:00")
    Traceback (most recent call last):
    ...
    ValueError: not a time of day: '25:00' (use HH:MM, 00:00 to 24:00, UTC)
    """
    hours, sep, minutes = text.strip().partition(":")
    if (
        sep
        and hours.isdigit()
        and minutes.isdigit()
        and len(minutes) == 2
        and (int(hours), int(minutes)) <= (24, 0)
        and int(minutes) < 60
    ):
        return int(hours) * 3600.0 + int(minutes) * 60.0
    raise ValueError(f"not a time of day: {text!r} (use HH:MM, 00:00 to 24:00, UTC)")
