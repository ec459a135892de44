"""``robust_seasonal``: the default detector, for unknown series with no tuning.

Up to four forecasters run side by side on every point, all with winsorised
(clipped at ``clip`` sigma) updates so outliers barely move them:

* a fast level (``alpha_fast``): good for random walks and prices;
* a slow level with a damped trend (``alpha_slow``, ``beta``, ``phi``): good
  for noisy stationary series;
* a daily profile (48 phase bins of 30 min) on a slow level, kept from the
  20th point when the step is an hour or finer (an outage among the first points
  delays that decision until the mean and the median interval agree), allowed
  to speak after 1.25 days;
  until the weekly profile speaks it stands for weekdays (see *the first week*);
* a weekly profile on a level of its own: 336 bins of 30 min when the step
  visits each of them at least four times a week (7.5 minutes or finer) or once
  (a 30-minute step: an hourly bin would hold two times of day, a nightly job's
  half hour and the quiet one after it, and its value be their mixture), else
  168 bins of 1 h for a step of an hour or finer (a schedule from 09:30 is then
  a mixture inside its weekly bin at steps between 7.5 and 30 minutes). It is
  allowed to speak after 7.25 days, and not before each hour of the week was read
  about four times: after two weeks at 30 minutes, four at an hour (a bin seen
  once is one reading, not a profile).
  Whenever it does not speak (before then, or where another forecaster keeps a
  smaller error) it is a *weekly precedent*: at those steps (a bin takes at most
  ``PRECEDENT_POINTS`` points a week), from 7.25 days on, an outlier that the
  bin's value from a week before puts within the clip, with ``PRECEDENT_SPREAD``
  times sigma (one reading's error on top of the point's), is judged against it
  and published with it as the expected value (the second and third Saturday
  mornings of hourly business hours, which the daily profile expects to be a
  weekday's). The calibrator and the shift's evidence learn that judged surprise.

**Outliers that recur at the same time of day** are part of the series' schedule: a
nightly batch job, a shift that starts at 08:10, the points of a profile bin that a
schedule's edge cuts in two. Up to ``RECUR_SLOTS`` outliers are remembered by their
time of day (to half a step), side and size; when an outlier comes at a remembered
time, on the same side, and the time was seen on ``RECUR_AFTER`` earlier days at
most ``RECUR_GAP_DAYS`` apart (a weekend in between; more where readings are lost,
by the share of the steps read) or exactly a week apart (a weekly job; once
expected, at most ``RECUR_KEEP_DAYS`` apart, so a reading lost before a weekend does
not make it news again), the forecast includes the remembered residual, so the point
is judged against the size it usually has (give or take ``RECUR_SPREAD`` of it): the
usual spike is normal, one twice its size is not, one smaller than usual (between
the expected value and the usual size) is no news either, and an outlier at a new
time of day is news as before. The usual size stays near the top of the sizes seen
(a smaller sighting weighs ``RECUR_SHRINK``, a larger one half), so one small job
does not make the next normal one news. A job that runs a few minutes early or late
(within ``RECUR_NEAR``) continues the expected time nearby; an outlier of the same
size (within ``RECUR_SPREAD``) that near a time seen on a recent day, not yet
expected, continues it too when no remembered time matches its own (a schedule's
edge read with points lost, or at irregular times, falls on another step of its bin
each day, and every step waited for sightings of its own). Only the first points of
a run of outliers are remembered (as many as a profile bin holds, at least
``RECUR_RUN``, at most ``RECUR_RUN_MAX``): a longer run is a shift, which the levels
follow, and its points would push out the times a schedule's edges cut into bins (a
square wave's first day has two runs of twelve). At steps under 18 s only an outlier
beyond what unit normal noise reaches about once a day is remembered
(``RECUR_NOISE_PER_DAY``): at 1 second, noise beyond the clip comes hundreds of
times a day, and each took a remembered time in turn. The calibrator learns that
such an outlier came, not the size the schedule gives it (at most
``RECUR_LEARN_CLIPS`` clips): a schedule whose edges cut bins has a few of them
every day, and their 20-50 sigma taught it, within weeks, that a 25-sigma spike is
common.

**Readings off the grid.** A point whose interval is not a whole number of
steps (jittered timestamps) may have been read up to half a step early or late:
near a profile bin's edge, where its own bin misses by more than the clip and
the bin across the edge is nearer, it is judged against and learned into that
bin (the reading due at 07:00, taken at 06:59:40 after a rise at 06:57), and so is
the first point after a gap read off the grid (readings at irregular times). On a
regular grid of steps under ``JITTER_BINS`` of a bin (a quarter of an hour), a
schedule's edge may itself come a step early or late (a job a minute off, read
every 5 minutes): a bin's first or last point, whose interval's middle is within a
step of the edge, is judged against the bin across it where that bin explains it
(within the clip) and its own does not, and is learned by neither, so that no bin
learns another time of day's value.

**Steps inside a bin.** A schedule's edge at 09:10 cuts the bin from 09:00. On such a
grid, a bin's first visit takes the side of the step most of its points are on (not
the side of its first two), and where a profile speaks, any point of a bin may be
judged against the bin across its nearer edge where the two differ by a step
(``STEP_GAP`` clips) and that bin explains it: within the clip, or within
``STEP_NEAR`` clips where the bins beyond are level with both sides (two plateaus).
The points on the far side of the step are then no outliers: before, they missed
their bin by the step's size every day, taught the calibrator that outliers are
common, and the band on the plateaus was 5.5 to 8 noise sd wide instead of 4.4.
Where no profile speaks yet, such a point is judged by its own bin and its miss counts
against the profile as before, but it does not move that bin: at a minute, a step 20
minutes into its bin put 10 points a day on the far side, each pulled the bin a clip
toward them, and the bin sat between the sides (8 above its side after a week) when the
profile began to speak, and paged in the middle of the bin every day (at steps of 18 s
or more; below, the drift is judged without the profiles until one speaks).

**Smooth cycles.** On a grid of steps under ``JITTER_BINS`` of a bin, a profile whose
bins mostly lie on a smooth curve (``CURVE_SHARE`` of them: a daily sine, a sawtooth's
ramps) is read as that curve, linear between the centres of a bin and its neighbour,
where the bin lies on it (``CURVE_BEND``); its bins are a staircase, whose error on a
steep cycle was part of sigma and hid shifts of a few sigma. Schedules, business hours and
noisy trapezoids have many flat bins and are read bin by bin. Where a profile read as a
curve bends inside a bin, the error scale is at least ``KINK_FLOOR`` times the bend: the
day's one error scale is then the ramps', and a corner would page.

**The first week** of a series is learned before the weekly profile can
speak, and a series starts on any day. On its first weekend, where the daily
profile misses by more than the clip and the level is nearer, the level speaks
and the profile does not learn: a week of weekdays says nothing about
weekends. That miss is held against the daily profile only after the first
week (``scd``, at ``WEEKLY_AFTER``, when a weekly profile of a step of 15 minutes
or finer can speak instead; a coarser one speaks later, see above): before, the
level is the alternative, and it would take over the next weekdays. With 30-minute
weekly bins read once a visit (a 30-minute step) the rule holds until each bin was
read four times (four weeks; the weekly profile may speak after two). With those bins
and the rule for the first week alone, the half-hourly benchmark's schedules and
business hours opened 20 episodes more (drifts on the second weekend, nights far
below the daily profile in the weeks after it). Only a value
more than the clip above every bin of the profile is still judged by the profile
(and not learned): a weekend seldom rises above all the weekdays held, and a surge
that the level follows would otherwise go unseen. A series that began on a Friday or a
weekend learned its profile mostly on a weekend; on its first Monday every
daily bin is put on notice (``rm``): where the bin's first visit misses by
more than the clip, the level speaks if it is nearer (or the bin before, which
may have started again at the new pattern half an hour ago), the bin starts
again at the value (on trial, like a bin's first value), and its miss is
deferred like a first-weekend miss. A series that began earlier in the week has on
notice the bins its first weekend saw first (``wm``: no weekday reading reached them
before, as with readings at irregular times and quiet spells). A profile started after a
level jump is relative to the level after it, so undoing that jump leaves the
profiles' levels where they are.

**Which forecaster speaks** is decided on a long horizon (about a week of points, at
least 50 and at most 2,016): each keeps a long-run mean *square* error, and the one with
the smallest gives the expected value (a seasonal one must beat the simpler ones by
``season_margin``, the weekly one the daily one too). A short horizon would not do:
between the transitions of a daily step pattern the fast level forecasts as well as the
seasonal profile, and only the long run shows that it is wrong at every transition.
While young these errors are means over the points so far; a profile's starts as the
slow level's, counted as the first ``SEASON_START_POINTS`` points (where the profiles
start, on a grid), however late the profiles started (readings at irregular times wait
for the step), so a late start does not carry the slow level's misses of a daily rise
for a week. Where a weekly bin starts (or starts again) at the value itself (a bin's
first point, mostly: one point in six at 5 minutes in the first week), it forecast
nothing, and the weekly profile's long-horizon error learns the miss of the forecaster
that spoke there. Counted as a perfect forecast, those points put that error below the
levels' over the first week, and the weekly profile of random spikes, which keep no
week, spoke at about half their points from day 7, last week's spikes in its bins (the
daily profile's first day is left as it was: charged the same way, it cost the
development set). Likewise, in the first week, a point inside a run of outliers (a level
that moved, not yet taken as a jump: the fast level crawls 0.3 clip a point till it is)
charges the weekly profile no less than the fast level's miss: the bins that start
during the run start at the moved level and forecast the rest of their visit from it, a
level's knowledge, not a week's. A machine switching between three levels, which keeps
no week, had its weekly profile speak from day 7 with the levels of the week before. The
chosen forecaster's *short*-horizon error scale gives sigma (1.2533 x mean absolute
error), the robust ``z`` and the band. The surprise ``|z|`` goes through a
:class:`TailCalibrator` (on ``log1p``) to a score in [0, 1].

**The far tail.** The calibrator's tail is an exponential through its 0.9 and
0.99 quantiles. Counts whose bursts are their normal behaviour, and spiky metrics,
pass that line's 0.999 point 1.6 to 2.2 times as often as it says (generated bursty
counts, 1 in 1,000 to 1 in 3,000), and paged about once a week for as long as they were
watched. How often the surprise lands between that point and the line's 0.9999 point
is learned from the first scored point (``FAR_P``: a run of such points counts once;
beyond the 0.9999 point is what an anomaly looks like, and a series whose labelled
anomalies come every two weeks would learn them as its tail). From
``FAR_AFTER_POINTS`` points and ``FAR_AFTER_DAYS`` days on (when the budget starts to
grow), the tail beyond the 0.99 quantile is the line through it and that rate at the
0.999 point (``TailCalibrator.far``): at most ``FAR_MAX`` times as long as the
calibrator's own, never shorter. For a tail that really is an exponential twice as
long, the rate in the band reads as 1.5 times: the estimate leans towards the
calibrator's own line. A count (whole values, not negative) waits a quarter of that,
``FAR_COUNT_AFTER_POINTS`` points and ``FAR_COUNT_AFTER_DAYS`` days, its rate learned
from a smaller prior (``FAR_COUNT_PRIOR``): bursts are the habit of many counts (requests,
tweets, bytes written), and the generated bursty counts paged every two or three days
from day 3.5 to day 14, against a budget of one a week (now about one in six days).
Other series keep the two weeks: waiting a week cost a generated ECG's modest anomalies,
and three or four days the development set's fractional crash rates and quantised
sensors their windows. The development set's hourly crash counts (about 700
points, labelled windows every few days, whose bursts are the anomalies) keep
their line too: a thousand points is six weeks at that step.

Robustness: updates are winsorised, identical consecutive values do not shrink
the error scales (quantised or flat stretches), sigma is floored at ``floor``
times its long-run value (and, between two whole numbers, at 0.63: a count is
known to its unit at best, so a rare 1 in a series of zeros is no outlier; likewise
between two values on a grid of tenths, hundredths or thousandths, at 0.63 of that
unit: a sensor read to 0.1 that sits at 35.6 and flickers to 35.5 now and then paged
at each flicker for days, its sigma grown from nothing one clip at a time; and on such a
grid a value within ``UNIT_WITHIN`` units of the expected one scores no more than the
normal tail of its z, about 1.6: a health flag at 1 with a lone 0 every day or so, or a
flicker every few hours, is all the calibrator sees move, its tail put them beyond
0.9999 within a week at a minute, and each paged), and
``jump_points`` consecutive same-side outliers are taken as a level shift: the
levels restart there and the scales re-learn quickly, so a shift is one alarm
rather than a long string of them (a series that was exactly flat and comes
alive also restarts its calibrator, which had only ever seen no surprise). While
such a run builds up, its points are judged together (Stouffer's ``sum(z) /
sqrt(run length)``, each ``z`` clipped at ``3 clip``), so a sustained fall within
a spiky series' noise gathers evidence for ``jump_points`` points before the level
gives in. A run that ends before it is a jump, by a return to where the fast level
stood when the run began, was a bump: the fast level, which the run pulled along,
restarts at the returning value, so the end of a bump is not a second alarm.

**A sustained shift within the noise** (a drift that ramps away over hours, a
level that moves by two or three sigma) never makes a run of outliers: the levels
follow it, and its misses stay between one and two sigma. Their mean does not.
Three exponentially weighted means of the clipped ``z`` (``SHIFT_ALPHA``, about ten
points, ``SHIFT_SLOW_ALPHA``, about 30, for drifts, and ``SHIFT_LONG_ALPHA``, about
100, for a ramp over hours, which the slow level follows with a lag of only a few
tenths of a sigma), each in units of its own root mean square (learned over about
300 points, the third over about 1,000, so the misses of a profile that
are correlated from point to point count for what they are, and never below what
unit white noise gives), speak when one passes ``SHIFT_Z`` and the point's own
surprise. Being a mean of many clipped misses, it is near normal whatever the tail
of one miss, so it is scored by the normal tail (the calibrator's tail, learned
from single points, is far heavier and hid it); the calibrator still learns the
point's own surprise. On 1-second sensor data (a valve that moves a flow by a sigma
or two for minutes) this is the only evidence there is. Where the means start
speaking once a day or more (``SHIFT_HABIT_PER_DAY``, from the third day), shifts are
the series' habit (a market's volatility regimes) and the calibrator alone scores them.

**A drift that every forecaster follows** (a daily cycle that ramps far above its
pattern over hours, a count whose rate doubles over an afternoon) leaves no evidence in
the misses at all: the fast level follows it point by point, the slow level's trend
learns its slope, the profiles' levels and error scales move along, and a smooth daily
cycle is often forecast best by the fast level anyway (its 30-minute bins are a
staircase where they are not read as a curve). What the series drifted from is kept by a
baseline: the value less its seasonal offset (the weekly profile's where it speaks, else
the daily one's; the value itself without profiles, and while a young daily profile's
bin holds more points in a row than the baseline learns over: a 1-second sensor's bin of
1,800 points follows its value like a level, and took a valve's closing along with it),
learned slowly (``DRIFT_ALPHA``, about 100 points) in steps winsorised at ``DRIFT_CLIP``
sigma. A baseline starts at the level the forecaster has, which is rough where it starts
(a series' first hours, a profile that just began to speak, the end of a spike, a drift
just taken as the new level, which the forecaster still lags), so over its first 100
points it is the mean of the points so far; only one that starts after the level moved
(a jump, its undoing, or the shift's means speaking, if it starts within
``DRIFT_RECENT`` points of them: a baseline that waited longer, its offset's forecaster
not credible, would start from a level gone stale) is slow from the start: the level
after the move is what a further move is judged from. The mean of the distance
from it in sigmas (``DRIFT_MEAN_ALPHA``, about 30 points), in units of its own root mean
square (learned over about 1,000 points, not while it speaks, and, once the drift may
speak, not from a square beyond ``DRIFT_SPREAD_CAP`` times the mean square: a drift must
not teach the spread it is judged by, and one that builds up over a hundred points
taught it while it built; before the drift may speak it learns every point as it is, so a
distance that was there from the start is learned as the series' own),
speaks from ``DRIFT_Z`` (scored by the normal tail like the shift's means; once it
speaks, down to ``DRIFT_HOLD``: a drift about its threshold would speak in bursts, an
episode each), from ``DRIFT_AFTER`` points after the last jump, where the offset's
forecaster is credible: its long-run mean square error within ``DRIFT_CREDIBLE`` times
the fast level's (a price or a random walk, whose level wanders as its normal behaviour,
keeps its silence), each miss winsorised at its forecaster's clip for this (spikes
miss every forecaster alike: a random walk's dense spikes, learned up to 20 sigma,
swelled both errors until the profile's was within twice the fast level's for a week,
and its wander spoke as a drift). A drift makes the offset's forecaster miss too (a
daily cycle that ramps away: its profile's error grows with the ramp until it is not
credible), so a live baseline whose mean distance is beyond ``DRIFT_KEEP`` root mean
squares stays, credible or not: the evidence building up is not thrown away by what it
is evidence of.
Points that are the main model's (outliers, one judged against a recurring size, a run,
a first Monday's bins on notice) or where the offset's own profile misses by more than
the clip neither move the baseline nor are judged by it (a drift that speaks goes on
through them as it stood: one of them between two of its points split its episode in
two), nor does a count's weekend where the daily profile gives the offset (a weekend
may differ from the weekdays the daily profile learned: orders on business days, whose
weekend zeros are each within a count's noise, add up). While the shift's means speak,
the change is theirs (a level that moved, which the fast level may absorb without a
jump): the baseline starts again at the level the forecaster has once they are quiet, as
it does after a jump or its undoing, and a drift back within ``DRIFT_BACK`` sigmas of the
baseline from before they spoke (where it was a level: the profiles saw a day, or it is
the value's own) is the end of a temporary change (a day lower than its pattern, then the
pattern again): that baseline is taken back, no drift. A drift that speaks for
``DRIFT_ACCEPT`` points in a row is the new level, so a ramp that stays is one episode;
the baseline from before it is kept likewise (a valve that closed, then opened again).

**Noise in proportion to the level** (sales, traffic, tweets: at the daily peak
the noise is many times the night's, and one absolute scale, learned over the last
day or so, pages at every peak). Beside the absolute error scale a relative one
(the mean of ``|residual| / expected``, winsorised at the clip like the others)
gives sigma as that times the expected value where its residuals are the better
standardised: their mean clipped ``z^2``, over the long horizon that picks the
forecaster, below ``MULT_MARGIN`` times the absolute scale's. Only positive values
whose expected value is at least ``MULT_GUARD`` absolute sigmas above zero take part
(near zero a relative scale means nothing: sparse counts), from ``MULT_WARM``
points on. Where the level does not move, the relative scale is a second absolute
one, started from the young, unclipped scale: on a flow read in whole units whose
absolute scale collapsed onto float-rounding wiggles, it is the one whose residuals
are standardised, and it speaks.

**Spikes that are a series' normal behaviour** (CPU or latency that spikes at random
several times a day, writes that come in bursts): each spike is 7 to 40 sigma, and the
calibrator's 0.99 quantile, learned by small steps, takes a week or two to climb to
them, paging at nearly every one meanwhile. A point beyond ``SPIKE_Z`` sigma is a spike;
from point ``SPIKE_AFTER`` on, the detector learns their rate (the first point of a run
counts; a mean over a day's points, and a slower one over ``SPIKE_SLOW_DAYS`` days: the
rate is the larger) and their mean size beyond ``SPIKE_Z``. A day holds only a few
spikes, so the day's mean alone swings by a factor of three, and each spike that came
while it sat low paged. While they come ``SPIKE_PER_DAY`` times a day or more (by either
rate), or, by the slower rate alone (a day's cluster of them is news, not a habit),
where that is also ``SPIKE_SHARE`` of the points or more, ``SPIKE_PER_DAY_FINE`` times
at steps under ``SPIKE_COARSE_STEP`` (request latency with 1 % slow requests at 5
minutes; 1.15 a day at 5 minutes, 5.8 at 1 minute by the share) and
``SPIKE_PER_DAY_LOW`` times at coarser steps (``SPIKE_PER_DAY_OLD`` once the series has
seen two weeks: ``FAR_AFTER_POINTS`` points and ``FAR_AFTER_DAYS`` days; an hourly
crash rate's seven jumps in two days stay news), a spike's tail probability is at least
their rate times an exponential tail of their sizes (peaks over a threshold, as in
SPOT): the usual spike scores as often as it comes, one ten times its size still pages.
The slower rate is declustered: a spike within ``SPIKE_DECLUSTER_STEPS`` steps of the
last belongs to its cluster, and an anomaly's cluster of spikes does not teach the
habit. A run of spikes scores at least as the chance of that many in a row (how often
one follows another is learned too): where spikes come alone, a level shift pages at
its second point instead of hiding among them. A burst of spikes (a CUSUM of spikes at
``SPIKE_BURST`` times the usual rate against it: a spike density that grows) lifts the
cap at the spike where it crosses ``SPIKE_BURST_LLR``; the rate it found is then
accepted, and forgotten as the slower rate learns. Spikes rarer than the lines (an
hourly crash rate that jumps once a day; a machine at 1-minute steps whose spikes come
three times a day) stay news.

**Levels a series keeps moving to** (a machine that switches between states: three
levels, about one switch a day). Each switch is an outlier, the run of them grows the
scales until a switch is only a few sigma, the fast level follows it slowly, and the
sustained shift's evidence pages a few points after it: 39 false episodes in four 56-day
series of that kind, 29 of them from the third week. Where the levels jump, the level
left and the level reached are remembered (``MODE_SLOTS``, the visits that settled and
the time spent near each; until it settled twice, a level follows the points it settles
at, not where the move landed); while a level forecasts (not a profile: a profile's hours
are its own), an outlier near a level the series has settled at twice or more and spent
a tenth of its time at is scored against that level and the levels move there at
once: 4 and 1. The calibrator still learns the move's own surprise, so a series whose
moves are large keeps knowing it; a level never settled at, a brand new one, pages as
before.

**Counts that stop** (requests or events that drop to nothing: an outage). A count of
7 every five minutes, whose sigma, learned over the whole day, is 5, misses a zero by
1.5 sigma, and the fast level follows the zeros within a few points: no point of the
outage is an outlier. A series is a count while more than ``COUNT_SHARE`` of its values
lately were whole and not negative; from point ``SPIKE_AFTER`` on, a run of its values
below one is judged as a run. Each is a zero of a negative binomial count with the mean
expected where the run began (or the seasonal profiles' value here, if lower: the daily
one's, or the weekly one's where its bin has a value; the zeros of a quiet night or of
a weekend are no news) and the variance there (sigma squared, at least the mean:
Poisson's), so an overdispersed count's zeros weigh what they should. Only zeros that
model has rarer than ``ZERO_RARE`` count, and none as rarer than counts below one came
where it had them that rare (bytes written, in whole bytes, are mostly zeros:
zero-inflated, judged at the size of the burst before them every run of zeros paged).
A weekend whose hours the weekly profile has not seen says nothing (the first weekend
of a count of business days is all zeros), and a run that reaches zeros the profiles
expect is spent. The run's probability, counted ``ZERO_TESTS`` times over (a test
beside the others must not spend the false-alarm budget by itself), lifts the score
from its ``ZERO_RUN_MIN``-th point on, for a day at most, and the point is published
against that expected count.

After a gap (an interval over ``GAP_STEPS`` times the running median step) the
fast level's uncertainty has grown by about one step's variance per step missed:
its sigma is widened by the square root of the steps, and it takes the matching
Kalman gain, so a random walk that moved while no data came is not an alarm. Both
levels' misses after a gap count per step in the long-run errors that decide which
forecaster speaks: counted per step for the fast level alone, a stationary series read
at irregular times (events, key presses), whose fast level follows each reading after
a gap, had the fast level speak, and every point after a gap was judged with a sigma
widened for a random walk. The profiles' misses count as they were: they know the time
of day, and a daily cycle that moved during a gap is no miss of theirs. So the profiles
are compared with the fast level's misses as they came too (``sr``; the slow level's
per step where it is less): compared per step, the fast level spoke for a daily cycle
read at irregular times, where its misses as they came were twice the profile's in
mean square, and judged the points after each gap with a random walk's widened sigma
(a count's level shift during a gap of three hours went unseen). Where the daily
profile starts a bin at the value it forecast nothing and learns no miss; the fast
level's error as it came learns none there either, so a young profile whose bins
start after gaps in a random walk does not look the better forecaster for it.
The relative scale (below) learns the fast level's misses after a gap per step, as
that level's own scale does: learned as they came, it grew with the gaps, was the
wider scale on every series read at irregular times, and spoke for seasonal and
quantised series whose noise does not grow with the level at all (a quantised sensor's
shifts and bumps of 2 to 2.6 units went unseen).
Arithmetic is kept finite whatever the input: values are judged relative to a
scale, residuals are computed without overflow, and a state that still turns
non-finite is restarted from the current point, so no single value can disable
a series.

>>> det = RobustSeasonal.create({}, seed=0)
>>> for i in range(200):
...     _ = det.update(60.0 * i, 10.0 + (i % 7) * 0.1)
>>> score, expected, lower, upper, z = det.update(60.0 * 200, 25.0)
>>> score > 0.999 and lower < expected < upper and z > 10
True
>>> det = RobustSeasonal.create({}, seed=0)
>>> _ = det.update(0.0, 1e308), det.update(60.0, -1e308)
>>> out = [det.update(60.0 * i, 5.0 + i % 3) for i in range(2, 60)]
>>> all(math.isfinite(v) for row in out for v in row)
True
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from statistics import NormalDist
from typing import Any, ClassVar

from ..calibration import TailCalibrator
from ..cleaning import next_step
from ..codec import Reader, Writer
from .base import (
    BAND_P,
    CAL_RATE,
    CLIP,
    RATE,
    RELATIVE_SIGMA_FLOOR,
    Bounds,
    Update,
    check_params,
)

DAY = 86400.0
WEEK = 7 * DAY
DAY_BINS = 48
WEEK_BINS = 168
# 30-minute weekly bins, for a step that visits each of them 4 times, or once (a 30-minute
# step, within ONE_READING of it: an hourly bin would hold two times of day, see
# _fine_week)
FINE_WEEK_BINS = 336
ONE_READING = 0.1
# bins per second of the daily and weekly phase; the week's phase starts on Monday
# 00:00 UTC (1970-01-01 was a Thursday)
_DAY_SCALE = DAY_BINS / DAY
_BIN = DAY / DAY_BINS  # seconds per profile bin
_NORMAL = NormalDist()
_WEEK_SHIFT = 3 * DAY
_log1p = math.log1p
_expm1 = math.expm1
_ulp = math.ulp
SIGMA_PER_MAE = 1.2533  # sigma / mean absolute deviation for a normal law
_NAN = math.nan
_VERSION = 23
# the head; from version 12: the step the seasons were started with (NaN: not yet; the
# selection and seasonal rates follow from it), points since the last jump as a u16
# (REVERT_POINTS at most), and the slow levels before that jump (up to version 11 the
# two rates themselves, and the fast level before the jump too, which was never read)
_STATE = "<BI" + "d" * 17 + "iIddddIHddd"
_STATE_V3 = "<BI" + "d" * 18 + "iIddddIIdddd"  # the head of versions 3 to 11
# then the daily and the weekly profile: from version 14 in float32 where all of a
# profile's bins are (``Writer.compact_floats``; ``_bin32`` rounds them as they are
# learned), in doubles before
_STATE_V4 = "di"  # after the profiles: the bump of version 4 (a version 3 state has none)
_STATE_V5 = "dhhdd"  # then version 5's tol, bins on trial (tb, tw), previous time, step ...
_STATE_V5_V11 = "diidd"  # ... with the bins on trial as 32-bit ints up to version 11
_SLOT = "fdfB"  # ... and remembered outliers: time of day, residual, day, sightings
_SLOT_V5 = "fddB"  # the same up to version 9, with the day as a double
_STATE_V6 = "dQ"  # then version 6's first-week fields: the deferred miss, the bins on notice
_STATE_V7 = "dddd"  # then version 7's sustained-shift evidence: two means of z, their mean squares
_STATE_V8 = "ddd"  # then version 8's noise in proportion to the level: its scale, both mean z^2
_STATE_V9 = "dddBB"  # then version 9's spikes: rate, mean size, how often one follows, how
# many were seen, how many in a row up to the last point (from version 13 the mean size
# and how often one follows are float32, as they are kept: see ``_f32``)
_STATE_V9_V13 = "dffBB"
_STATE_V10 = "dd"  # then version 10's slow drift evidence: a third mean of z, its mean square
# then version 11's counts that stop: the share of whole non-negative values, the run of
# counts below one (its length, the expected count and variance where it began, the log
# of its probability so far), and how often such counts came where the model had them
# rare (over how many points)
_STATE_V11 = "dHddddH"
# then version 12's drift baseline, the mean distance from it and its mean square, and
# its offset's source | points in a row << 2 (the count of remembered outliers is a byte
# from version 12, a u32 before)
_STATE_V12 = "dddB"
_STATE_V13 = "d"  # then version 13's slower rate of spikes
# then version 14's daily bins first seen on the first weekend, and the point the
# profiles started at
_STATE_V14 = "QI"
# then version 15's points the drift's baseline learned (to _DRIFT_RUN; while it waits,
# to _DRIFT_RUN + DRIFT_RECENT, counting down: a version 15 state from before that, at
# most _DRIFT_RUN, means what it meant, so the version stayed)
_STATE_V15 = "B"
# then version 16's baseline from before the shift's means last spoke (NaN: none)
_STATE_V16 = "d"
# then version 17's far tail: how often the surprise landed between the calibrator's
# line's 0.999 and 0.9999 points, and whether the last point did
_STATE_V17 = "dB"
# then version 18's modes: each slot's level, visits and time spent near it (MODE_SLOTS of
# them, NaN: empty), the one the series is at, the points it stayed there since it moved
# (0: settled or left) and the sigma at the move
_STATE_V18 = "dfd" * 4 + "bBd"
# then version 19's rate at which the shift's means start speaking, and whether they spoke
# at the last point
_STATE_V19 = "dB"
# then version 20's long-run errors winsorised at each forecaster's clip: the fast level's,
# the slow level's, the daily and the weekly profile's
_STATE_V20 = "dddd"
# then version 21's long-run error of the fast level's misses as they came (not per step
# of a gap), where the daily profile forecast: what the profiles are compared with
_STATE_V21 = "d"
# then version 22's bursts of spikes: the CUSUM, the rate accepted at the last burst, and
# the time of the last spike (NaN: none; the slower rate counts spikes apart)
_STATE_V22 = "ddd"
# then version 23's time of the last value that differed from the one before it (NaN:
# not known) and the repeated values since
_STATE_V23 = "dd"
_F32 = struct.Struct("<f")
_F32_MAX = 3.4028234663852886e38  # the largest float32
_F32_TINY = 1.1754943508222875e-38  # the smallest normal float32
_SPLIT = 2.0**29 + 1.0  # Veltkamp's split of a double (53 bits) into 24 and 29 bits
_F32_ULP = 2.0**-23  # float32's relative precision (twice the most its rounding moves a value)
RECUR_SLOTS = 16  # outliers remembered by their time of day
# the most days between two sightings of one recurring outlier (a weekend); where readings
# are lost, these divided by the share of the steps read (up to RECUR_KEEP_DAYS): a nightly
# job read at irregular times is seen only on the nights a reading fell at its time, and
# the nights between are no news of it
RECUR_GAP_DAYS = 3.0
RECUR_WEEK_DAYS = 7.0  # ... or exactly a week (a weekly job)
# an expected time this many seconds off stands for a new one nearby (and one not yet
# expected, seen lately at the same size, where no time is near enough to match)
RECUR_NEAR = 900.0
RECUR_AFTER = 2  # sightings after which the next one at that time of day is expected
# ... and once expected, it stays so for up to this many days without a sighting: a
# reading lost on a Friday, then a weekend, must not make a weekday schedule news again
RECUR_KEEP_DAYS = 7.5
_KEPT = 1e9  # days added to an expected time's last sighting when choosing a slot to reuse
RECUR_SPREAD = 0.1  # a recurring outlier's size varies by this fraction of itself
RECUR_SHRINK = 0.25  # the weight of a smaller sighting in the usual size (a larger: 0.5)
# the calibrator learns a recurring outlier's raw surprise up to this many clips: that an
# outlier came, not the size the schedule gives it
RECUR_LEARN_CLIPS = 1.25
RECUR_DAYS = 1e7  # days from 1970 are kept within this (exact in the state's float32)
# an outlier is remembered only among the first points of a run of them: as many as a
# profile bin holds, and at least this many (a longer run is a shift, not a time of day)
RECUR_RUN = 2
# ... and at most this many (a bin's at 5 minutes): a 1-second square wave's runs of 12
# took 24 of the RECUR_SLOTS times a day, each edge pushed the other's out, and every
# edge paged every day
RECUR_RUN_MAX = 6
# at steps under 18 s (see _FINE_STEP) an outlier is remembered by its time of day only
# beyond the |z| that unit normal noise passes this often a day: 4.4 at 1 second, where
# some 350 outliers of noise a day took every slot in turn (at 1 minute, 3.4, it cost the
# real data-ingress rates' recurring outliers between 3 and 3.4 sigma: 77.8 -> 69.2 onsets)
RECUR_NOISE_PER_DAY = 1.0
GAP_STEPS = 2.0  # an interval this many steps long is a gap
EDGE_STEPS = 0.5  # a point read off the grid may belong across a bin edge this near
# a schedule's edge a step early or late, on the grid: the first or last point of a profile
# bin may belong to the bin across its edge, where steps are under this share of a bin
JITTER_BINS = 0.5
# Steps that cut a bin (an edge at 09:10, inside the bin from 09:00). On a grid of several
# points to a bin, a bin's first visit takes the side of the step most of its points are
# on: a point STEP_GAP clips from the bin counts against it, one within the clip for it,
# and the bin moves to the point that puts the far side ahead (``_TRIAL`` keeps the count). And
# where a profile speaks, any point of such a bin may belong to the bin across its nearer
# edge, within STEP_REACH of a bin of it (half a bin: every point), where the two bins
# differ by more than STEP_GAP clips (a step, not the slope of a cycle), and that bin
# explains it within the clip, or within STEP_NEAR clips where the bins beyond the step
# are level with either side of it (two plateaus). Before, such a bin sat on the side of
# its first two points and drifted between the sides for weeks; the points on the other
# side missed it by the step's size every day, each taught the calibrator that outliers
# come, and the band on the plateaus was 5.5 to 8 times the noise's sd, against 4.4 where
# edges fall between bins (a 15-minute bump of 6 sd on a plateau was found 1 time in 20).
# Where no profile speaks, such a point is judged by its own bin, which does not learn it
# (at steps of 18 s or more)
STEP_REACH = 0.5
STEP_GAP = 2.0
STEP_NEAR = 1.5
_TRIAL = 1000  # a bin on trial: its index plus this times (1 + the points it leads by)
_LEAD_MAX = 30  # ... counted up to this (the state keeps it in 16 bits)
# On such a grid, a profile whose bins mostly lie on a smooth curve (a daily sine, the
# ramps of a sawtooth) is read as that curve: linear between the centres of a bin and of
# its neighbour. Its 30-minute bins are a staircase, whose error on a steep cycle is many
# times the noise and hid shifts of a few sigma. A bin lies on the curve when the
# differences to its two neighbours have the same sign and differ by at most CURVE_BEND
# of their sum; a profile is a curve when at least CURVE_SHARE of its bins do (schedules,
# business hours and trapezoids with noise have many flat bins: they are read bin by bin).
# Where such a curve bends (a bin that is not a clean step: neither difference ten times
# the other), the error scale there is at least KINK_FLOOR times the bend, the change of
# slope: one error scale for the whole day cannot know that a corner is harder to forecast
# than a ramp (a noise-free trapezoid, read as a curve, paged at its corners).
CURVE_BEND = 0.5
CURVE_SHARE = 0.6
KINK_FLOOR = 0.25
_CURVE_BINS = CURVE_SHARE * DAY_BINS  # ... of the daily bins
OFF_GRID = 1e-3  # an interval this many steps from a whole number of them is off the grid
GAP_MAX = 1e6  # ... and one longer than this many steps counts as this many
_PHASE_RES = 64.0  # times of day kept in 1/64 s: exact in the state's float32
# the calibrator works on log1p(surprise): a power-law tail, robust to heavy tails
LOG_Q_LO = math.log1p(1.645)
LOG_Q_HI = math.log1p(2.576)
# a calibrator whose 0.99 quantile of |z| fell under half a sigma has learned from (next
# to) nothing but repeated values; a level jump restarts it (see ``_jump``)
COLLAPSED_Q_HI = math.log1p(0.5)
_BIG = 1e300  # residuals and levels beyond this are clipped: no overflow to inf
_SQRT_BIG = 1e150
_MAX_EXP = 690.0  # math.expm1 overflows a little above 709
# a week and more of one repeated value (at least STALE_POINTS of them) after the error
# scales learned from other values: they are stale, and the model starts again
STALE_S = 7 * 86400.0
STALE_POINTS = 64
CALM_POINTS = 8  # consecutive changed values with |z| < CALM_Z: the scales are wrong
CALM_Z = 0.02
REVERT_POINTS = 500  # a return to the level before a jump within this many points
JUMP_RATE = 0.05  # after a jump the error scales learn at most this fast per point
BUMP_SPAN = 2  # a run's end within this many times jump_points of it can be a bump's
WEEKLY_MIN_VISITS = 4  # fine weekly bins need a step that visits each 4 times a week; any
# weekly profile speaks only once each hour of the week was read about this many times
# Before then, where a weekly bin takes at most PRECEDENT_POINTS points a week (30-minute
# and hourly steps), a miss that the bin's value from a week before puts within the clip
# is not news; that value is one reading, so its sigma is PRECEDENT_SPREAD times the point's
PRECEDENT_POINTS = 2.0
PRECEDENT_SPREAD = math.sqrt(2.0)
SELECT_MIN_POINTS = 50.0
SEASON_START_POINTS = 20  # profiles are kept from here on if the step fills their bins
SEASON_WAIT_POINTS = 1000  # ... or later, after a gap among the first points (at the latest here)
DAILY_AFTER = 1.25 * DAY  # a profile speaks once every bin was seen and learned a little
WEEKLY_AFTER = WEEK + 0.25 * DAY
WEEKEND_START = 5 * DAY  # Saturday 00:00 UTC in the week's phase (Monday = 0)
# a series whose first Monday comes this soon after its start learned its daily profile
# mostly on a weekend (it began on a Friday, a Saturday or a Sunday)
RESTART_BEFORE = 3 * DAY
_ALL_BINS = (1 << DAY_BINS) - 1
SELECT_MAX_POINTS = 2016.0

DEFAULTS: dict[str, float] = {
    "alpha_fast": 0.3,
    "alpha_slow": 0.03,
    "beta": 0.05,
    "phi": 0.98,
    "alpha_err": 0.03,
    "gamma": 0.1,
    "clip": 3.0,
    "cal_rate": 0.02,
    "band_p": 0.001,
    "floor": 0.1,
    "jump_points": 12,
    "season_margin": 0.9,
}
BOUNDS: dict[str, Bounds] = {
    "alpha_fast": RATE,
    "alpha_slow": RATE,
    "beta": (0.0, 1.0, False),
    "phi": (0.0, 1.0, False),
    "alpha_err": RATE,
    "gamma": (0.0, 1.0, False),
    "clip": CLIP,
    "cal_rate": CAL_RATE,
    "band_p": BAND_P,
    "floor": (0.0, 1.0, False),
    "jump_points": (1.0, 10_000.0, True),
    "season_margin": (0.1, 2.0, False),
}
# A sustained shift (see the module's docstring): the mean of the clipped z, exponentially
# weighted (SHIFT_ALPHA, and a slower one, SHIFT_SLOW_ALPHA, for drifts), each measured in
# units of its own root mean square (learned at SHIFT_VAR_ALPHA, and never below what unit
# white noise gives it), speaks at SHIFT_Z
SHIFT_ALPHA = 0.1
SHIFT_SLOW_ALPHA = 0.03
SHIFT_VAR_ALPHA = 0.003
SHIFT_LONG_ALPHA = 0.01  # a third mean, over about 100 points (a ramp over hours)
SHIFT_LONG_VAR_ALPHA = 0.001
SHIFT_Z = 4.5
# Where the shift's means start speaking SHIFT_HABIT_PER_DAY times a day or more (their
# rate over about SHIFT_HABIT_DAYS days), from SHIFT_HABIT_AFTER on, shifts are the
# series' behaviour (a market whose volatility regime switches a few times a session):
# a shift is then scored by the calibrator alone, as any surprise of the series, not at
# least by the normal tail
SHIFT_HABIT_PER_DAY = 1.0
SHIFT_HABIT_DAYS = 7.0
SHIFT_HABIT_AFTER = 3 * 86400.0
_SQRT_HALF = math.sqrt(0.5)
_SHIFT_Z2 = SHIFT_Z * SHIFT_Z
# the mean square of each mean for unit white noise
_SHIFT_NULL = SHIFT_ALPHA / (2.0 - SHIFT_ALPHA)
_SLOW_NULL = SHIFT_SLOW_ALPHA / (2.0 - SHIFT_SLOW_ALPHA)
_LONG_NULL = SHIFT_LONG_ALPHA / (2.0 - SHIFT_LONG_ALPHA)
# A drift that every forecaster follows (see the module's docstring): a baseline of the
# value less its seasonal offset, learned at DRIFT_ALPHA (about 100 points) in winsorised
# steps; the mean (DRIFT_MEAN_ALPHA, about 30 points) of the value's distance from it in
# sigmas (each clipped at DRIFT_CLIP), in units of its own root mean square (learned at
# DRIFT_VAR_ALPHA, from one over the points since the last jump at first, not while it
# speaks, and, once it may speak, not from a square beyond DRIFT_SPREAD_CAP times it),
# speaks at DRIFT_Z (then down to DRIFT_HOLD): from DRIFT_AFTER points after the last
# jump, where the offset's forecaster keeps a long-run mean square error within
# DRIFT_CREDIBLE times the fast level's, both winsorised at their clip (or the mean is
# beyond DRIFT_KEEP already).
# After DRIFT_ACCEPT points in a row it is the new level. A baseline's first _DRIFT_RUN
# points are a running mean (one over the points so far), unless it starts after a jump,
# its undoing or (within DRIFT_RECENT points) the shift's means speaking.
DRIFT_ALPHA = 0.01
DRIFT_MEAN_ALPHA = 0.03
DRIFT_VAR_ALPHA = 0.001
DRIFT_CLIP = 10.0
DRIFT_AFTER = 600
DRIFT_Z = 6.0
_DRIFT_Z2 = DRIFT_Z * DRIFT_Z
# once the drift speaks, it goes on while its mean is beyond DRIFT_HOLD (a drift that ends
# its ramp about DRIFT_Z spoke in bursts, an episode each; held, it lasts DRIFT_ACCEPT
# points and is the new level)
DRIFT_HOLD = 5.0
_DRIFT_HOLD2 = DRIFT_HOLD * DRIFT_HOLD
# a drift within this many sigmas of the baseline from before the shift's means spoke is
# back there: the end of a temporary change, not a drift
DRIFT_BACK = 2.0
# (winsorised, the errors of a forecaster that misses by far weigh less than in the
# selection's: at 2, the generated random walks' level shifts and flatlines drifted
# falsely in 1 of 6 draws each)
DRIFT_CREDIBLE = 1.75
# a live baseline whose mean is this many root mean squares out stays where its offset's
# forecaster is no longer credible: a drift that ramps away from a daily cycle makes the
# profile miss as it builds (a smooth cycle's ramps, the unit test's 12 draws: 9 found
# before, 12 with this and the spread's rule below; this alone found no more, as the
# spread kept pace with the ramp)
DRIFT_KEEP = 3.0
_DRIFT_KEEP2 = DRIFT_KEEP * DRIFT_KEEP
# a drift builds up for tens of points before it speaks: a mean more than 3.5 root mean
# squares out teaches the spread nothing (when it taught it as one at 3.5 would, the
# spread grew about 1 % a point while a ramp built, as fast as the mean's square, and a
# 20-sigma ramp never spoke; taught as one at 2 would, the spread of heavy-tailed
# distances was learned too small, and a series of key holds drifted)
DRIFT_SPREAD_CAP = 12.0
DRIFT_ACCEPT = 36  # < 64: kept in six bits beside the offset's source
_DRIFT_NULL = DRIFT_MEAN_ALPHA / (2.0 - DRIFT_MEAN_ALPHA)
_DRIFT_RUN = round(1.0 / DRIFT_ALPHA)
# a baseline that starts within this many points after the shift's means spoke (points
# it waited through, the offset's forecaster not credible) is slow from the start; one
# that starts later is rough (while the baseline waits, its points-learned byte counts
# down from _DRIFT_RUN + DRIFT_RECENT, which must stay < 256: kept in a byte)
DRIFT_RECENT = 100
# fine steps: a daily profile whose 30-minute bin holds more points in a row than the
# drift's baseline learns over (1 / DRIFT_ALPHA) follows the value like a level within the
# bin while young, and is a staircase after: where it does not speak, the drift judges the
# value itself (and see RECUR_NOISE_PER_DAY)
_FINE_STEP = DAY / DAY_BINS * DRIFT_ALPHA  # 18 s
# Noise in proportion to the level (see the module's docstring): a relative error scale
# (mean absolute error over the expected value) gives sigma where its residuals are the
# better standardised, their mean clipped z^2 below MULT_MARGIN times the absolute scale's,
# on points whose expected value is at least MULT_GUARD absolute sigmas above zero, after
# MULT_WARM points
MULT_MARGIN = 0.9
MULT_GUARD = 6.0
MULT_WARM = 100
# Spikes that are a series' normal behaviour (see the module's docstring): a point beyond
# SPIKE_Z sigma is a spike. From point SPIKE_AFTER on, the rate of spikes (the first point
# of a run of them counts; an exponentially weighted mean over a day's points, at least
# SPIKE_MIN_POINTS and at most SELECT_MAX_POINTS, started as SPIKE_PRIOR points without
# one; or, where larger, the same over SPIKE_SLOW_DAYS days' points, started as
# SPIKE_SLOW_PRIOR_DAYS of points without one) and their mean size
# beyond SPIKE_Z (SPIKE_SIZE0 sigma before any, worth SPIKE_SIZE_WEIGHT spikes, then
# learned at SPIKE_SIZE_RATE at least, winsorised at SPIKE_SIZE_CLIP times itself) give a
# spike's tail probability, which caps its score while the series has SPIKE_PER_DAY
# spikes a day or more, or, by the slower rate alone where that is also SPIKE_SHARE of its
# points or more, SPIKE_PER_DAY_FINE at steps under SPIKE_COARSE_STEP and SPIKE_PER_DAY_LOW
# (SPIKE_PER_DAY_OLD two weeks in) at coarser ones; and how often a spike follows a spike
# (SPIKE_GO_ON0 before any, learned like their size) lifts a run of them. A burst of
# spikes lifts the cap (see _burst)
SPIKE_Z = 5.0
SPIKE_PER_DAY = 4.0
# ... by the slower rate, at steps of half an hour or more (a reading that sums up half an
# hour or more: a crash rate's or a request latency's hourly jumps, one or two a day, are
# what the development set's labels call anomalies; read from the slower rate, 2 a day
# keep a crash rate's cluster of seven jumps in two days news, 2 a day by the larger rate
# did not) ...
SPIKE_PER_DAY_LOW = 2.0
# ... and at finer steps (five-minute request latency whose slow requests come 2-3 a day;
# a spike density that grows, 1.4 a day before it), with SPIKE_SHARE: 1.15 a day at 5
# minutes, 5.8 a day at 1 minute (2 a day at a 1-minute step are one reading in 720, rare
# among its readings, which the MongoDB machine's labels call anomalies)
SPIKE_PER_DAY_FINE = 1.0
SPIKE_COARSE_STEP = 1800.0
SPIKE_SHARE = 0.004
# ... and at coarse steps SPIKE_PER_DAY_OLD once the series has seen FAR_AFTER_POINTS
# points and FAR_AFTER_DAYS days: its budget grows then, and a spike that has come every
# day for two weeks is its behaviour (measured on request latency with 0.5 % slow requests
# at 5 minutes, before the finer steps had a line of their own)
SPIKE_PER_DAY_OLD = 1.5
SPIKE_SLOW_DAYS = 7.0
# A spike counts towards the slower rate only if it comes more than SPIKE_DECLUSTER_STEPS
# steps after the last one (runs declustering, as peaks over a threshold are declustered):
# an anomaly's cluster of spikes is one event, not a habit it teaches
SPIKE_DECLUSTER_STEPS = 6.0
# Bursts (see _burst): a CUSUM of the log likelihood ratio of spikes at SPIKE_BURST times
# the usual rate (the slower rate, at least SPIKE_BURST_FLOOR a day, or the rate accepted
# at the last burst while that is higher) against the usual rate. Beyond SPIKE_BURST_LLR a
# burst starts: the spike that crossed it is not capped, the CUSUM starts again, and the
# rate accepted is SPIKE_BURST_ACCEPT times the rate tested, decaying as the slower rate
# learns. Each spike adds log(4) = 1.39: six spikes close together cross it, and spikes
# ten times as dense as usual cross it within about 115 points
SPIKE_BURST = 4.0
SPIKE_BURST_LLR = 7.0
SPIKE_BURST_ACCEPT = 2.0
SPIKE_BURST_FLOOR = 0.5
_LOG_SPIKE_BURST = math.log(SPIKE_BURST)
# The far tail (see the module's docstring): from its first learned point, how often the
# calibrator's surprise lands between its line's 0.999 and 0.9999 points (a run of such
# points counts once; a mean over the points so far, started as FAR_PRIOR points at FAR_P,
# at most over FAR_POINTS) sets the scale of its tail beyond the 0.99 quantile once the
# series has seen FAR_AFTER_POINTS points and FAR_AFTER_DAYS days (when the budget starts
# to grow, see PolicyConfig.budget_growth): a line through the 0.99 quantile and that rate
# at the 0.999 point, never lighter than the calibrator's own, at most FAR_MAX times as long
FAR_P = 0.001
FAR_PRIOR = 3000.0
FAR_POINTS = 10000.0
FAR_AFTER_POINTS = 4032
FAR_AFTER_DAYS = 14.0
FAR_MAX = 2.0
_FAR_AFTER = FAR_AFTER_DAYS * 86400.0
# ... and a count's far tail (a series whose values lately were whole and not negative,
# see COUNT_SHARE) from a quarter of that wait, FAR_COUNT_AFTER_POINTS points and
# FAR_COUNT_AFTER_DAYS days, its rate started as FAR_COUNT_PRIOR points at FAR_P: counts
# whose bursts are their habit pass the line's 0.999 point more often than it says from
# their first days, and paged every two or three days for their first two weeks
FAR_COUNT_AFTER_POINTS = FAR_AFTER_POINTS // 4
FAR_COUNT_AFTER_DAYS = FAR_AFTER_DAYS / 4.0
FAR_COUNT_PRIOR = 500.0
_FAR_COUNT_AFTER = FAR_COUNT_AFTER_DAYS * 86400.0
# Levels a series keeps moving to (modes: a machine's states; see the module's
# docstring): MODE_SLOTS levels are remembered where the levels jumped (the level left and
# the level reached; within MODE_TOL sigma of a remembered one, the sigma of the move, it
# is that one, and moves MODE_LEARN of the way to it). A move counts as a visit once the
# series stayed within MODE_TOL sigma of the level for MODE_SETTLE points (a state
# settles, a ramp passes through). Until a level has MODE_VISITS visits, each of those
# points moves it MODE_LEARN of the way to them: a young level is where the series
# settles, not where a move landed (the sigma of a move is that of a run of outliers,
# wide: a schedule's high plateau, 32 after a lasting shift of -36, was taken for a level
# remembered at 45.8, and a quarter of the way a visit left it at 42.4, 39.8, 38.1, too far
# above the plateau for its time there to count, so the rise paged every weekday at a
# minute). A level visited that often stays put (a pulse's base, whose visits settle on
# the tail of its ramp, was dragged from 50 to 31 when every visit moved it). Each point
# near the level the series is at counts as time spent there. From MODE_AFTER on, while a
# level (not a profile) forecasts, an outlier within MODE_TOL sigma of a level visited
# MODE_VISITS times or more, where the series spent MODE_SHARE or more of the time spent
# near any of them, is scored against that level (the calibrator still learns its own
# surprise), and the levels move there at once, with nothing to undo
MODE_SLOTS = 4
MODE_TOL = 3.0
MODE_SETTLE = 6
MODE_LEARN = 0.25
MODE_VISITS = 2
MODE_SHARE = 0.1
MODE_AFTER = DAY
_FAR_W_MIN = 1.0 / FAR_POINTS
_CAL_AFTER = 10  # the first points, which the calibrator neither scores nor learns
# ... which starts as this much time's points without a spike (300 at 1-minute steps, as the
# day's rate), at least SPIKE_MIN_POINTS and at most SPIKE_PRIOR: what a few early spikes
# say of a rate a day depends on the hours they came in, not the points
SPIKE_SLOW_PRIOR_DAYS = 5.0 / 24.0
SPIKE_AFTER = 300
SPIKE_PRIOR = 300
SPIKE_MIN_POINTS = 20.0
SPIKE_SIZE0 = 5.0
SPIKE_SIZE_WEIGHT = 2.0
SPIKE_SIZE_RATE = 0.05
SPIKE_SIZE_CLIP = 4.0
SPIKE_GO_ON0 = 0.5
_PER_DAY = 1.0 / DAY
_SPIKE_PRIOR_MAX = float(SPIKE_PRIOR)
_SPIKE_PRIOR_SPAN = SPIKE_PRIOR - SPIKE_MIN_POINTS  # the most the week's prior is shorter
_SPIKE_PER_MIN = 1.0 / SELECT_MAX_POINTS
_SPIKE_PER_MAX = 1.0 / SPIKE_MIN_POINTS
# Counts that stop (see the module's docstring): a series is a count while more than
# COUNT_SHARE of its values lately (an exponential mean at COUNT_ALPHA) were whole and not
# negative; a run of ZERO_RUN_MIN or more of its values below one speaks, for a day at most
COUNT_SHARE = 0.97
COUNT_ALPHA = 0.01
ZERO_RUN_MIN = 2
ZERO_POISSON = 1.000001  # a variance within this factor of the mean is Poisson's
# the run's probability counts this many times over: a test beside the others, it must not
# spend the false-alarm budget by itself (Bonferroni)
ZERO_TESTS = 10.0
# a zero of a run counts as no rarer than counts below one came where the model had a
# zero rarer than ZERO_RARE
ZERO_RARE = 0.05
_LOG_ZERO_RARE = math.log(ZERO_RARE)
LONG_ALPHA = 0.001  # memory of the long-run error scale behind the sigma floor
# where a value and the one before are whole numbers, the error scale (a mean absolute
# error) is at least half a unit: sigma at least 0.63
WHOLE_FLOOR = 0.5
# likewise where both lie on a grid of tenths, hundredths or thousandths (the coarsest
# of them that both are on): half that unit. A value on a grid is within GRID_ULPS units
# in the last place of a whole number of its units (float rounding: 35.6 * 10 is not
# exactly 356; 1e-300 is not on any grid)
DECIMAL_UNITS = (10.0, 100.0, 1000.0)
GRID_ULPS = 8.0
# on such a grid, a value this many units or less from the expected one (the grid point
# nearest it or one beside that) scores no more than the normal tail of its z
UNIT_WITHIN = 1.5


def _on_grid(value: float, units: float) -> bool:
    """Whether ``value`` is a whole number of ``1 / units`` (non-finite: no).

    >>> _on_grid(35.6, 10.0), _on_grid(-0.13, 100.0), _on_grid(0.1 + 0.2, 10.0)
    (True, True, True)
    >>> _on_grid(35.61, 10.0), _on_grid(6e-299, 10.0), _on_grid(1e12 + 0.01, 10.0)
    (False, False, False)
    >>> _on_grid(math.inf, 10.0), _on_grid(math.nan, 10.0)
    (False, False)
    """
    x = value * units
    r = x % 1.0  # in [0, 1) whatever the sign; NaN for inf and NaN
    tol = GRID_ULPS * _ulp(x)
    return r <= tol or r >= 1.0 - tol


def _normal_score(a: float) -> float:
    """The score of a surprise ``a`` (>= 0) by the two-sided normal tail: 1 - P(|Z| >= a).

    >>> round(_normal_score(1.96), 3), _normal_score(0.0)
    (0.95, 0.0)
    """
    return 1.0 - math.erfc(a * _SQRT_HALF)


def _toward(level: float, target: float) -> float:
    """A remembered level moved ``MODE_LEARN`` of the way to ``target`` (``target`` if
    that is not finite).

    >>> _toward(40.0, 32.0), _toward(1e308, -1e308)
    (38.0, -1e+308)
    """
    c = level + MODE_LEARN * (target - level)
    return c if c - c == 0.0 else target


def _season_step(a_sel: float, a_season: float) -> float:
    """A step that gives an older state's selection and seasonal rates (NaN: none yet)."""
    if not a_sel:
        return _NAN
    if a_season > 0.0 and a_sel * SELECT_MAX_POINTS <= 1.0:
        return a_season * DAY / 50.0  # a step too short for a week of selection points
    return WEEK * a_sel


def _nearer(first: float, second: float, level: float) -> float:
    """Whichever of a bin's first two values (as level residuals) is nearer ``level``."""
    return second if abs(second - level) < abs(first - level) else first


def _curved(before: float, here: float, after: float) -> bool:
    """Whether a bin (``here``) lies on a smooth curve with its neighbours' values."""
    d1 = here - before
    d2 = after - here
    if not d1 * d2 > 0.0:  # not the same sign (NaN: no)
        return False
    bend = d2 - d1
    return (bend if bend >= 0.0 else -bend) <= CURVE_BEND * (abs(d1) + abs(d2))


def _on_curve(profile: list[float], b: int, pos: float) -> tuple[float, float]:
    """Bin ``b``'s offset at phase ``pos`` (in bins) in a profile read as a curve, and
    the least error scale there (``KINK_FLOOR`` times the bend; 0 at a clean step)."""
    before = profile[b - 1]
    s = profile[b]
    after = profile[b + 1 if b + 1 < len(profile) else 0]
    d1 = s - before
    d2 = after - s
    bend = abs(d2 - d1)
    least = KINK_FLOOR * bend if abs(d1) < 10.0 * abs(d2) and abs(d2) < 10.0 * abs(d1) else 0.0
    if d1 * d2 > 0.0 and bend <= CURVE_BEND * (abs(d1) + abs(d2)):  # ``_curved``, inlined
        f = pos - int(pos) - 0.5  # from the bin's centre, in bins
        s += f * (d2 if f > 0.0 else d1)
    return s, least


def _across(
    profile: list[float],
    b: int,
    pos: float,
    half: float,
    level: float,
    value: float,
    clip: float,
    within: bool = False,
    wide: float = 0.0,
    step: float = 0.0,
) -> int:
    """The bin of a point near a bin's edge at phase ``pos`` (in bins; its bin is ``b``).

    Within ``half`` a bin of an edge of ``b``, it is the bin across that edge when
    bin ``b`` misses ``value`` by more than ``clip`` and that bin is nearer (and, if
    ``within``, misses it by ``clip`` at most, or by ``STEP_NEAR`` clips where the two
    bins differ by more than ``step`` clips and the bins beyond are level with each
    side: a step between two plateaus); else ``b``. Further from the edge, within
    ``wide`` of it, the same, where the two bins also differ by more than ``step``
    clips (a step between them).

    >>> day = [0.0, 0.0, 10.0, 10.0]  # a step from bin 1 to bin 2
    >>> _across(day, 1, 1.6, 0.2, 0.0, 10.0, 2.0, True)  # 0.4 of a bin from the edge
    1
    >>> _across(day, 1, 1.6, 0.2, 0.0, 10.0, 2.0, True, 0.5, 2.0)
    2
    >>> _across([0.0, 3.0, 6.0, 9.0], 1, 1.6, 0.2, 0.0, 5.5, 2.0, True, 0.5, 2.0)  # a slope
    1
    >>> plateaus = [0.0, 0.0, 0.0, 10.0, 10.0, 10.0]  # 7.5: 3.75 clips from bin 2, 1.25 from 3
    >>> _across(plateaus, 2, 2.7, 0.2, 0.0, 7.5, 2.0, True, 0.5, 2.0)
    3
    >>> _across([0.0, 5.0, 0.0, 10.0, 10.0, 10.0], 2, 2.7, 0.2, 0.0, 7.5, 2.0, True, 0.5, 2.0)
    2
    """
    off = pos - int(pos)
    reach = wide if wide > half else half
    if off < reach:
        other = b - 1 if b else len(profile) - 1
        near = off < half
    elif 1.0 - off < reach:
        other = b + 1 if b + 1 < len(profile) else 0
        near = 1.0 - off < half
    else:
        return b
    miss = value - level - profile[b]
    miss = miss if miss >= 0.0 else -miss
    if not miss > clip:
        return b
    d = value - level - profile[other]
    d = d if d >= 0.0 else -d
    rise = profile[other] - profile[b]
    stepped = (rise if rise >= 0.0 else -rise) > step * clip  # NaN: no
    if within and not d <= clip:
        if not (stepped and d <= STEP_NEAR * clip):
            return b
        # a step between two plateaus: the bins beyond either side are level with it
        nb = len(profile)
        if other == (b - 1 if b else nb - 1):
            beyond = profile[other - 1 if other else nb - 1]
            facing = profile[b + 1 if b + 1 < nb else 0]
        else:
            beyond = profile[other + 1 if other + 1 < nb else 0]
            facing = profile[b - 1 if b else nb - 1]
        if not (abs(beyond - profile[other]) <= clip and abs(facing - profile[b]) <= clip):
            return b
    if not near and not stepped:
        return b
    return other if d < miss else b  # an unseen bin (NaN) is never nearer


def _inside(pos: float, half: float) -> bool:
    """Whether phase ``pos`` (in bins) is at least ``half`` a bin from both edges of its bin.

    >>> _inside(3.5, 0.2), _inside(3.1, 0.2), _inside(3.85, 0.2)
    (True, False, False)
    """
    off = pos - int(pos)
    return half <= off <= 1.0 - half


def _judged_by(
    profile: list[float],
    b: int,
    pos: float,
    half: float,
    level: float,
    value: float,
    clip: float,
    within: bool,
    reach: float,
    hold: float,
) -> tuple[int, bool]:
    """The bin that judges a point of bin ``b`` near an edge (``_across``, with ``reach``
    as its wide reach), and whether bin ``b`` is held: where no profile speaks (``hold``
    is the wide reach then, ``reach`` 0), a point further than ``half`` from the edges
    that the bin across explains is judged by its own bin, which does not learn it.

    >>> day = [0.0, 0.0, 10.0, 10.0]  # a step from bin 1 to bin 2
    >>> _judged_by(day, 1, 1.6, 0.2, 0.0, 10.0, 2.0, True, 0.5, 0.0)
    (2, False)
    >>> _judged_by(day, 1, 1.6, 0.2, 0.0, 10.0, 2.0, True, 0.0, 0.5)
    (1, True)
    >>> _judged_by(day, 1, 1.9, 0.2, 0.0, 10.0, 2.0, True, 0.0, 0.5)  # its last point
    (2, False)
    """
    other = _across(profile, b, pos, half, level, value, clip, within, reach or hold, STEP_GAP)
    if hold and other != b and _inside(pos, half):
        return b, True
    return other, False


def _trial(miss: float, clip: float) -> int:
    """The trial code (see ``_TRIAL``) of a bin after its first two points, whose values
    differ by ``miss``: 3 (a lead of 2) within the ``clip``, else 2.

    >>> _trial(0.5, 1.0), _trial(-3.0, 1.0)
    (3, 2)
    """
    return 3 if (miss if miss >= 0.0 else -miss) <= clip else 2


def _voted(code: int, miss: float, clip: float) -> int:
    """The trial code (see ``_TRIAL``) after another point of a bin's first visit, which
    misses the bin by ``miss``: one more within the ``clip`` (at most ``_LEAD_MAX`` + 1),
    one less ``STEP_GAP`` clips away; 0 where the far side now leads.

    >>> _voted(2, 0.5, 1.0), _voted(2, 1.5, 1.0), _voted(2, -3.0, 1.0), _voted(1, 3.0, 1.0)
    (3, 2, 1, 0)
    """
    a = miss if miss >= 0.0 else -miss
    if a <= clip:
        code += 1
    elif a > STEP_GAP * clip:
        code -= 1
    return code if code <= _LEAD_MAX + 1 else _LEAD_MAX + 1


def _mean_of_z(
    m: float,
    v: float,
    zc: float,
    alpha: float,
    var_alpha: float,
    null: float,
    cap: float = math.inf,
) -> tuple[float, float, float]:
    """One of the sustained shift's means of the clipped ``zc``: the mean ``m`` and its
    mean square ``v``, both learned (a square beyond ``cap`` times the old mean square is
    not: a mean that far out is a change building up), and the new mean squared in units
    of the old mean square (never below ``null``, unit white noise's), so no square root
    is taken unless the shift speaks."""
    m += alpha * (zc - m)
    m2 = m * m
    unit = v if v > null else null
    if m2 > cap * unit:
        return m, v, m2 / unit
    return m, v + var_alpha * (m2 - v), m2 / unit


def _winsorised(miss: float, cap: float) -> float:
    """A miss (not negative) winsorised at ``cap`` (none where ``cap`` is not positive)
    and at ``_SQRT_BIG``, so its square, learned by a long-run mean square error, stays
    finite.

    >>> _winsorised(5.0, 2.0), _winsorised(5.0, 0.0), _winsorised(1e300, 0.0) < 1e300
    (2.0, 5.0, True)
    """
    e = miss if miss < cap or cap <= 0.0 else cap
    return e if e < _SQRT_BIG else _SQRT_BIG


def _count_mean(expected: float, season: float) -> float:
    """The count expected: the forecast, or the seasonal profiles' value where lower (a
    quiet night, a weekend), never negative; 0 beyond ``_SQRT_BIG`` (its square must
    stay finite)."""
    mean = expected if 0.0 < expected < _SQRT_BIG else 0.0
    if season < mean:  # NaN (no profile) is never lower
        mean = season if season > 0.0 else 0.0
    return mean


def _log_zero(mean: float, var: float) -> float:
    """The log of the probability that a count of this mean and variance is zero: a
    negative binomial's, ``(mean / var) ** (mean ** 2 / (var - mean))``, or Poisson's
    where the variance is not above the mean."""
    if not mean > 0.0:
        return 0.0
    if var > mean * ZERO_POISSON:
        if not var < math.inf:
            return 0.0  # a count dispersed without bound: a zero is no news
        # the difference of the logs: mean / var underflows to 0 for a tiny mean and a
        # large variance (1e-200 and 1e200), and its log raised
        return mean / (var - mean) * mean * (math.log(mean) - math.log(var))
    return -mean


def _far_scale(rate: float) -> float:
    """The far tail's scale (``TailCalibrator.far``) for a series whose surprise lands
    beyond the calibrator's line's 0.999 point (up to its 0.9999 point) at ``rate`` per
    point (> ``FAR_P``): a line through the 0.99 quantile and that point at ``rate``, at
    most ``FAR_MAX``.

    >>> _far_scale(0.002), _far_scale(0.01)
    (1.430676558073393, 2.0)
    """
    scale = 1.0 / math.log10(0.01 / rate) if rate < 0.01 else FAR_MAX
    return FAR_MAX if scale > FAR_MAX else scale


def _recur_day(day: float) -> float:
    """A day number for the remembered outliers, kept within +-``RECUR_DAYS`` (exact in
    the state's float32)."""
    return RECUR_DAYS if day > RECUR_DAYS else -RECUR_DAYS if day < -RECUR_DAYS else day


def _noise_daily(step: float) -> float:
    """The |z| unit normal noise passes ``RECUR_NOISE_PER_DAY`` times a day, a point every
    ``step`` seconds under ``_FINE_STEP`` (0 for an unknown step or a coarser one).

    >>> [round(_noise_daily(s), 2) for s in (0.0, 1.0, 10.0, 60.0)]
    [0.0, 4.39, 3.85, 0.0]
    """
    p = 0.5 * RECUR_NOISE_PER_DAY * step / DAY
    return _NORMAL.inv_cdf(1.0 - p) if 0.0 < step < _FINE_STEP else 0.0


def _short_run(jumps: int, step: float) -> bool:
    """A run of ``jumps`` outliers (signed) still short enough to be remembered by time of day."""
    run = jumps if jumps >= 0 else -jumps
    return run < RECUR_RUN or (run * step < _BIN and run < RECUR_RUN_MAX)


def _top(profile: list[float]) -> float:
    """The largest offset of a profile's bins that have one (NaN: none)."""
    return max((b for b in profile if b == b), default=_NAN)


def _f32(x: float) -> float:
    """``x`` rounded to float32, as the state keeps it (a restored state then goes on
    exactly as the detector that wrote it would have)."""
    return float(_F32.unpack(_F32.pack(x))[0])


def _bin32(x: float) -> float:
    """A profile bin's value rounded to float32's 24 significant bits, so the state keeps
    it in 4 bytes (half the bytes of the profiles, the bulk of a state): as a float32
    where it is within float32's range, else as a float32 scaled by a power of two that
    the profile's bins share (``Writer.compact_floats``; bins more than 2**250 apart in
    size, as a series that moves between 1e-300 and 1e300 has, keep it in doubles).

    Veltkamp's split: three multiplications and subtractions, where a struct round trip
    per point cost the detector about 5 % of its speed. (Were a compiler to fuse the
    multiplication into the subtraction, a bin could keep more bits: the state would
    then keep that profile in doubles, exactly, only larger.)

    >>> _bin32(0.1) == _F32.unpack(_F32.pack(0.1))[0], _bin32(-2.5), _bin32(0.0)
    (True, -2.5, 0.0)
    >>> _bin32(1e300) == _F32.unpack(_F32.pack(1e300 / 2.0**900))[0] * 2.0**900
    True
    """
    a = x if x >= 0.0 else -x
    if _F32_TINY <= a <= _F32_MAX:  # NaN is neither
        c = x * _SPLIT
        return c - (c - x)
    if a == 0.0 or a - a != 0.0:  # zero, inf or NaN
        return x
    # beyond float32's range: the split of the mantissa (the product would overflow
    # near 1e308, and loses bits among denormals)
    m, e = math.frexp(x)
    c = m * _SPLIT
    return math.ldexp(c - (c - m), e)


def _fine_week(step: float) -> bool:
    """Whether a series read every ``step`` seconds keeps 30-minute weekly bins: where it
    reads each of them ``WEEKLY_MIN_VISITS`` times a week, or once (a 30-minute step,
    within ``ONE_READING`` of it), where an hourly bin would hold two times of day (a
    nightly job's half hour and the quiet one after it) and its value be their mixture.

    >>> [_fine_week(s) for s in (60.0, 450.0, 600.0, 900.0, 1800.0, 1900.0, 3600.0)]
    [True, True, False, False, True, True, False]
    """
    fine = WEEK / FINE_WEEK_BINS
    return step <= fine / WEEKLY_MIN_VISITS or abs(step - fine) <= ONE_READING * fine


def _weekend(ts: float) -> bool:
    """A Saturday or a Sunday, UTC."""
    return (ts + _WEEK_SHIFT) % WEEK >= WEEKEND_START


class RobustSeasonal:
    """Robust level/trend/seasonal forecaster with a calibrated residual score."""

    name: ClassVar[str] = "robust_seasonal"

    __slots__ = (
        "a_err",
        "a_fast",
        "a_season",
        "a_sel",
        "a_slow",
        "age",
        "band_k",
        "beta",
        "cal",
        "calm",
        "clip",
        "cm",
        "cn",
        "day",
        "dk",
        "dl",
        "dm",
        "dn",
        "dp",
        "ds",
        "dv",
        "ec",
        "ef",
        "el",
        "es",
        "evidence",
        "ew",
        "floor",
        "gamma",
        "hr",
        "hs",
        "jd",
        "jt",
        "jump",
        "jumps",
        "k",
        "k20",
        "kb",
        "kc",
        "kk",
        "kl",
        "kp",
        "kq",
        "kr",
        "ks",
        "kt",
        "lc",
        "lf",
        "ls",
        "lw",
        "m2a",
        "m2r",
        "margin",
        "mc",
        "mem",
        "mi",
        "mj",
        "mp",
        "mr",
        "ms",
        "mt",
        "mv",
        "n",
        "n0",
        "nq",
        "phi",
        "pre",
        "prev",
        "qc",
        "qf",
        "qs",
        "qw",
        "rk",
        "rl",
        "rm",
        "rsum",
        "sc",
        "scd",
        "season_step",
        "sf",
        "sg",
        "sm",
        "sml",
        "sms",
        "sr",
        "ss",
        "stp",
        "sv",
        "svl",
        "svs",
        "swl",
        "t0",
        "tb",
        "tk",
        "tol",
        "tp",
        "tr",
        "tw",
        "week",
        "wm",
        "xf",
        "xr",
        "zk",
        "zl",
        "zq",
        "zs",
        "zv",
        "zw",
        "zz",
    )  # fmt: skip

    def __init__(self, params: Mapping[str, Any]) -> None:
        check_params(params, set(DEFAULTS), self.name, BOUNDS)
        p = {**DEFAULTS, **params}
        self.a_fast = float(p["alpha_fast"])
        self.a_slow = float(p["alpha_slow"])
        self.beta = float(p["beta"])
        self.phi = float(p["phi"])
        self.a_err = float(p["alpha_err"])
        self.gamma = float(p["gamma"])
        self.clip = float(p["clip"])
        self.k = self.clip * SIGMA_PER_MAE  # the winsorising limit, in mean absolute errors
        self.k20 = 20.0 * self.k  # ... and the far wider one of the long-horizon errors
        self.band_k = math.log10(0.1 / float(p["band_p"]))
        self.floor = float(p["floor"])
        self.margin = float(p["season_margin"])
        self.jump = int(p["jump_points"])
        self.cal = TailCalibrator(LOG_Q_LO, LOG_Q_HI, rate=float(p["cal_rate"]))
        self._reset()

    def _reset(self) -> None:
        self.n = 0
        self.el = 0.0
        self.age = 0  # points since the start or the last level jump (bias correction)
        self.prev = math.nan
        self.jumps = 0  # consecutive points beyond the clip on the same side (signed)
        self.rsum = 0.0  # sum of their (clipped) z
        self.rl = 0.0  # the fast level when the last run of outliers began
        self.rk = 0  # points left in which a return ends that run as a bump (signed: its side)
        self.t0 = self.lf = self.ef = self.ls = self.tr = self.es = 0.0
        self.sm = 0.0  # the mean of the clipped z lately (a sustained shift's evidence)
        self.sv = _SHIFT_NULL  # ... and its mean square
        self.sms = 0.0  # the same over a longer horizon (a slow drift's evidence)
        self.svs = _SLOW_NULL
        self.sml = 0.0  # ... and over a longer one still (a ramp over hours)
        self.svl = _LONG_NULL
        self.dl = 0.0  # a drift's baseline: the value less its seasonal offset, slowly
        self.dm = 0.0  # the mean distance from it lately, in sigmas ...
        self.dv = _DRIFT_NULL  # ... and its mean square
        self.ds = 0  # the offset's source: 1 none, 2 daily, 3 weekly (0: restart the baseline)
        self.dk = 0  # points in a row the drift has spoken
        # points the baseline learned, up to _DRIFT_RUN (from there, at DRIFT_ALPHA); while
        # it waits, 0 for a rough start, _DRIFT_RUN for a slow one, above that slow for a
        # while yet (see DRIFT_RECENT)
        self.dn = 0
        # the baseline before the shift's means last spoke, or before a drift became the
        # new level, while the one restarted after them judges (NaN: none): a drift back
        # to it is the end of a temporary change
        self.dp = _NAN
        # how often the surprise landed between the calibrator's line's 0.999 and 0.9999
        # points (a run counts once), and whether the last point did: the far tail's scale
        # (see FAR_P)
        self.xf = FAR_P
        self.xr = False
        # levels the series moves to (see MODE_SLOTS): where, how often it settled there,
        # the points it spent near them; the level it is at (-1: none yet), the points it
        # has stayed near it since it moved there (0: settled or left), and the sigma then
        self.mc = [_NAN] * MODE_SLOTS
        self.mv = [0.0] * MODE_SLOTS
        self.mt = [0.0] * MODE_SLOTS
        self.mi = -1
        self.mp = 0
        self.ms = 0.0
        self.mj = False  # a move to a mode: the levels follow at this point (not kept)
        # the sigma a move of the levels is remembered at (not kept): the point's own, set
        # before the modes are looked at; an undone jump, which comes before, sees the
        # point before's (with its own, readings at irregular times paged a little more:
        # the events run's schedules 52 -> 55 episodes)
        self.sg = 0.0
        # what spoke at the last point, for the explanation of an episode ("": its miss,
        # or the shift's means); not state
        self.evidence = ""
        self.mr = 0.0  # the relative error scale: mean |residual| / expected (0: not started)
        self.m2a = 1.0  # the mean clipped z^2 with the absolute scale ...
        self.m2r = 1.0  # ... and with the relative one
        self.hr = 0.0  # the shift's means: the rate per point at which they start speaking
        self.hs = False  # ... and whether they spoke at the last point
        self.kr = 0.0  # spikes (beyond SPIKE_Z sigma): their rate per point ...
        self.kl = 0.0  # ... the same over SPIKE_SLOW_DAYS days, declustered ...
        self.kq = 0.0  # ... the CUSUM of a burst of them ...
        self.kb = 0.0  # ... the rate accepted at the last burst ...
        self.kt = _NAN  # ... the time of the last one (NaN: none) ...
        self.ks = SPIKE_SIZE0  # ... their mean size beyond it, in sigma ...
        self.kc = SPIKE_GO_ON0  # ... how often another follows one ...
        self.kk = 0  # ... how many were seen (to 255) ...
        self.kp = 0  # ... and how many in a row up to the last point (to 255)
        self.zw = 1.0  # the share of whole non-negative values lately (a count series)
        self.zk = 0  # counts below one in a row (see ``_stopped``) ...
        self.zs = self.zv = 0.0  # ... the expected count and its variance where they began
        self.zl = 0.0  # ... and the log of their probability so far
        self.zz = 0.0  # how often a count below one came where the model had it rare ...
        self.zq = 0  # ... over this many such points (at most SELECT_MAX_POINTS)
        self.lc = self.lw = self.ec = 0.0
        self.sf = self.ss = self.sc = self.swl = self.ew = (
            0.0  # long-horizon errors: which forecaster speaks
        )
        # the same, each miss winsorised at the forecaster's own clip: whose offset the
        # drift may judge against (see DRIFT_CREDIBLE)
        self.qf = self.qs = self.qc = self.qw = 0.0
        # the fast level's long-run error with its misses after a gap as they came (not
        # per step), and none where the daily profile started a bin: what the profiles
        # are compared with, whose misses count as they came (see the module's docstring)
        self.sr = 0.0
        self.a_sel = 0.0
        # the first week (see the module's docstring): the daily profile's first-weekend
        # misses, charged to its long-horizon error after the first week;
        # and the daily bins on notice after a Friday or weekend start (a bit per bin)
        self.scd = 0.0
        self.n0 = 0  # the point the profiles started at (0: not started)
        self.rm = 0
        self.wm = 0  # daily bins first seen on the first weekend: on notice from its Monday
        self.calm = 0  # consecutive changed values far inside the band (scale too large)
        self.tk = _NAN  # the time of the last value unlike the one before it (NaN: unknown)
        self.nq = 0.0  # the repeated values since
        # the daily bins on a smooth curve (a bit per bin) and how many (-1: not counted
        # since the profile last changed other than by learning): not state, they follow
        # from the profile, and are kept up to date as its bins learn
        self.cm = 0
        self.cn = -1
        self.jd = 0.0  # the size of the last level jump, while it may still be undone
        self.jt = 0  # points since that jump
        self.pre: tuple[float, ...] = (0.0, 0.0, 0.0)  # the slow levels before it
        self.a_season = 0.0  # 0: not decided yet, -1: step too coarse for seasons
        self.season_step = _NAN  # ... as they follow from the step the seasons started with
        self.day: list[float] | None = None
        self.week: list[float] | None = None
        # outliers by time of day: (time of day, residual, day, sightings) per slot
        self.mem: list[float] = []
        self.tol = 0.0  # half the step: how near a time of day must be (0: not seasonal)
        # the daily / weekly bin whose first value is on trial until the next point: a
        # bin's first value may be an outlier (a nightly job), and clipped updates would
        # take days to correct it; if the next point falls in the same bin, whichever of
        # the two is nearer the fast level starts the bin. With several points to a bin,
        # the rest of the first visit stays on trial (``_TRIAL``): the bin takes the side
        # of a step most of its points are on
        self.tb = -1
        self.tw = -1
        self.tp = 0.0  # the previous point's time
        self.stp = 0.0  # the step: a running median of the intervals (0: not known yet)

    @classmethod
    def create(cls, params: Mapping[str, Any], seed: int) -> RobustSeasonal:
        return cls(params)

    @classmethod
    def load(cls, blob: bytes, params: Mapping[str, Any], seed: int) -> RobustSeasonal:
        """Restore a state; a state of an older layout raises ``ValueError``."""
        det = cls(params)
        r = Reader(blob)
        if not blob or not 3 <= blob[0] <= _VERSION:
            raise ValueError(f"{cls.name}: state of an older layout")
        if blob[0] >= 12:
            (_v, n, det.t0, det.lf, det.ef, det.ls, det.tr, det.es, det.lc, det.ec, det.sf,
             det.ss, det.sc, season_step, q_lo, q_hi, det.el, det.prev, det.rsum, jumps, age,
             det.ew, det.swl, det.lw, det.jd, calm, jt, *pre) = r.raw(_STATE[1:])  # fmt: skip
            det._season_rates(float(season_step))
        else:
            (_v, n, det.t0, det.lf, det.ef, det.ls, det.tr, det.es, det.lc, det.ec, det.sf,
             det.ss, det.sc, a_sel, a_season, q_lo, q_hi, det.el, det.prev, det.rsum, jumps,
             age, det.ew, det.swl, det.lw, det.jd, calm, jt, *pre) = r.raw(_STATE_V3[1:])  # fmt: skip
            # the step is kept from now on (a step found again from the rates gives them
            # back within rounding); the rates as they were
            det.season_step = _season_step(float(a_sel), float(a_season))
            det.a_sel, det.a_season = float(a_sel), float(a_season)
        det.n = int(n)
        det.jumps = int(jumps)
        det.age = int(age)
        det.calm = int(calm)
        det.pre = tuple(float(v) for v in pre[-3:])
        det.jt = int(jt)
        det.cal.set_state(float(q_lo), float(q_hi))
        if blob[0] >= 14:
            day, week = r.compact_floats(), r.compact_floats()
        else:  # doubles, rounded as the profiles keep them from now on
            day = r.floats()
            week = [_bin32(v) for v in r.floats()]
        det.day = day or None
        det.week = week or None
        if blob[0] >= 4:
            rl, rk = r.raw(_STATE_V4)
            det.rl = float(rl)
            det.rk = int(rk)
        if blob[0] >= 5:
            tol, tb, tw, tp, stp = r.raw(_STATE_V5 if blob[0] >= 12 else _STATE_V5_V11)
            det.tol = float(tol)
            det.tb = int(tb)
            det.tw = int(tw)
            det.tp = float(tp)
            det.stp = float(stp)
            mem: list[float] = []
            slot = _SLOT if blob[0] >= 10 else _SLOT_V5
            for _ in range(int(r.raw("B")[0]) if blob[0] >= 12 else r.u32()):
                phase, usual, on, sightings = r.raw(slot)
                mem.extend((float(phase), float(usual), _recur_day(float(on)), float(sightings)))
            det.mem = mem
            if blob[0] >= 6:
                scd, rm = r.raw(_STATE_V6)
                det.scd = float(scd)
                det.rm = int(rm)
            if blob[0] >= 7:
                sm, sv, sms, svs = r.raw(_STATE_V7)
                det.sm, det.sv = float(sm), float(sv)
                det.sms, det.svs = float(sms), float(svs)
            if blob[0] >= 8:
                mr, m2a, m2r = r.raw(_STATE_V8)
                det.mr, det.m2a, det.m2r = float(mr), float(m2a), float(m2r)
            if blob[0] >= 9:
                kr, ks, kc, kk, kp = r.raw(_STATE_V9_V13 if blob[0] >= 13 else _STATE_V9)
                det.kr, det.ks, det.kc = float(kr), float(ks), float(kc)
                det.kk, det.kp = int(kk), int(kp)
                det.kl = det.kr  # before version 13: the day's rate is the best there is
            if blob[0] >= 10:
                sml, svl = r.raw(_STATE_V10)
                det.sml, det.svl = float(sml), float(svl)
            if blob[0] >= 11:
                zw, zk, zs, zv, zl, zz, zq = r.raw(_STATE_V11)
                det.zw, det.zk = float(zw), int(zk)
                det.zs, det.zv, det.zl = float(zs), float(zv), float(zl)
                det.zz, det.zq = float(zz), int(zq)
            if blob[0] >= 12:
                dl, dm, dv, packed = r.raw(_STATE_V12)
                det.dl, det.dm, det.dv = float(dl), float(dm), float(dv)
                det.ds, det.dk = int(packed) & 3, int(packed) >> 2
            if blob[0] >= 13:
                det.kl = float(r.raw(_STATE_V13)[0])
            if blob[0] >= 14:
                wm, n0 = r.raw(_STATE_V14)
                det.wm, det.n0 = int(wm), int(n0)
            if blob[0] >= 15:
                det.dn = int(r.raw(_STATE_V15)[0])
            if blob[0] >= 16:
                det.dp = float(r.raw(_STATE_V16)[0])
            if blob[0] >= 17:
                xf, xr = r.raw(_STATE_V17)
                det.xf, det.xr = float(xf), bool(xr)
            if blob[0] >= 18:
                *slots, mi, mp, ms = r.raw(_STATE_V18)
                det.mc = [float(c) for c in slots[0::3]]
                det.mv = [float(v) for v in slots[1::3]]
                det.mt = [float(t) for t in slots[2::3]]
                det.mi, det.mp, det.ms = int(mi), int(mp), float(ms)
                if not -1 <= det.mi < MODE_SLOTS:
                    raise ValueError(f"{cls.name}: a damaged state (mode {det.mi})")
            if blob[0] >= 19:
                hr, hs = r.raw(_STATE_V19)
                det.hr, det.hs = float(hr), bool(hs)
            if blob[0] >= 20:
                qf, qs, qc, qw = r.raw(_STATE_V20)
                det.qf, det.qs, det.qc, det.qw = float(qf), float(qs), float(qc), float(qw)
            if blob[0] >= 21:
                det.sr = float(r.raw(_STATE_V21)[0])
            if blob[0] >= 22:
                kq, kb, kt = r.raw(_STATE_V22)
                det.kq, det.kb, det.kt = float(kq), float(kb), float(kt)
            if blob[0] >= 23:
                tk, nq = r.raw(_STATE_V23)
                det.tk, det.nq = float(tk), float(nq)
        else:
            # an older state: the step is learned again from the intervals after the next
            # point, and the tolerance of a time of day from the mean step at an outlier
            det.tp = _NAN
            if det.day is not None:
                det.tol = -1.0
        if blob[0] < 11:
            det.zw = 0.0  # not known to be a count series until its values say so
        if blob[0] < 12:
            # a drift's baseline starts at the next quiet point, its spread at a sigma (the
            # points since the last jump may be many: it would learn it too slowly from 0)
            det.dv = 1.0
        if blob[0] < 15:
            # a live baseline goes on learning as it did; one yet to start starts rough
            det.dn = _DRIFT_RUN if det.ds else 0
        if blob[0] < 20:
            # the winsorised errors start where the long-run errors are (the best there is:
            # as before, the drift's judge; they lose the outliers' weight as they learn)
            det.qf, det.qs, det.qc, det.qw = det.sf, det.ss, det.sc, det.swl
        if blob[0] < 21:
            det.sr = det.sf  # as the fast level's misses per step: as compared before
        return det

    def to_bytes(self) -> bytes:
        w = Writer()
        q_lo, q_hi = self.cal.state()
        w.raw(_STATE[1:], _VERSION, self.n, self.t0, self.lf, self.ef, self.ls, self.tr,
              self.es, self.lc, self.ec, self.sf, self.ss, self.sc, self.season_step, q_lo,
              q_hi, self.el, self.prev, self.rsum, self.jumps, self.age, self.ew, self.swl,
              self.lw, self.jd, self.calm, self.jt, *self.pre)  # fmt: skip
        w.compact_floats(self.day or ())
        w.compact_floats(self.week or ())
        w.raw(_STATE_V4, self.rl, self.rk)
        w.raw(_STATE_V5, self.tol, self.tb, self.tw, self.tp, self.stp)
        mem = self.mem
        w.raw("B", len(mem) // 4)
        for k in range(0, len(mem), 4):
            w.raw(_SLOT, mem[k], mem[k + 1], mem[k + 2], int(mem[k + 3]))
        w.raw(_STATE_V6, self.scd, self.rm)
        w.raw(_STATE_V7, self.sm, self.sv, self.sms, self.svs)
        w.raw(_STATE_V8, self.mr, self.m2a, self.m2r)
        w.raw(_STATE_V9_V13, self.kr, self.ks, self.kc, self.kk, self.kp)
        w.raw(_STATE_V10, self.sml, self.svl)
        w.raw(_STATE_V11, self.zw, self.zk, self.zs, self.zv, self.zl, self.zz, self.zq)
        w.raw(_STATE_V12, self.dl, self.dm, self.dv, self.ds | self.dk << 2)
        w.raw(_STATE_V13, self.kl)
        w.raw(_STATE_V14, self.wm, self.n0)
        w.raw(_STATE_V15, self.dn)
        w.raw(_STATE_V16, self.dp)
        w.raw(_STATE_V17, self.xf, self.xr)
        slots = [x for i in range(MODE_SLOTS) for x in (self.mc[i], self.mv[i], self.mt[i])]
        w.raw(_STATE_V18, *slots, self.mi, self.mp, self.ms)
        w.raw(_STATE_V19, self.hr, self.hs)
        w.raw(_STATE_V20, self.qf, self.qs, self.qc, self.qw)
        w.raw(_STATE_V21, self.sr)
        w.raw(_STATE_V22, self.kq, self.kb, self.kt)
        w.raw(_STATE_V23, self.tk, self.nq)
        return w.getvalue()

    def update(self, ts: float, value: float) -> Update:
        out = self._update(ts, value)
        if self.calm >= CALM_POINTS or (
            self.nq >= STALE_POINTS
            and ts - self.tk >= STALE_S
            and (self.ef > 0.0 or self.es > 0.0 or self.ec > 0.0 or self.ew > 0.0)
        ):
            # the error scales are far too large for what the series does now (they
            # learned from a few absurd values, or the noise fell by orders of
            # magnitude), or they learned from values the series has not had since,
            # for a week and more of one value: start again from this point rather
            # than stay deaf (a repeated value never unlearns a scale, so a series of
            # 42s that once read 1e149 judged every later value within +-1e145)
            self._reset()
            self._update(ts, value)
            return out
        expected = out[1]
        if expected - expected != 0.0:
            # a safety net (the arithmetic is meant to stay finite): a non-finite level
            # shows in the expected value; start again here
            self._reset()
            self._update(ts, value)
            return (out[0], value, value, value, 0.0)
        return out

    def _update(self, ts: float, value: float) -> Update:
        n = self.n
        if self.evidence:
            self.evidence = ""
        # inputs beyond +-1e300 are clipped: every level, residual and band below then
        # stays finite (levels move by winsorised steps inside the range of the values)
        value = _BIG if value > _BIG else -_BIG if value < -_BIG else value
        if n == 0:
            self.n = self.age = 1
            self.t0 = self.tp = ts
            self.lf = self.ls = self.lc = value
            return (0.0, value, value, value, 0.0)
        n += 1
        self.n = n
        # a gap: the steps missed since the last point are steps the fast level could
        # not follow; its uncertainty grows by about one step's variance per step missed
        gap = 1.0
        dt = ts - self.tp
        self.tp = ts
        stp = self.stp
        if stp > 0.0 and dt > GAP_STEPS * stp:
            gap = dt / stp if dt < GAP_MAX * stp else GAP_MAX
        self.stp = next_step(stp, dt)  # the same running median as the cleaner's
        # Near a profile bin's edge a point may belong to the bin across it: within
        # ``edge`` seconds of the edge, its time moved on by ``lead`` (0: never). A point
        # whose interval is not a whole number of steps was read off the grid
        # (timestamps with jitter): up to EDGE_STEPS steps early or late, and then it is
        # learned into the bin it is judged by; after a gap too (readings at irregular
        # times: the first point after a quiet spell falls anywhere in its bin, and a
        # schedule's edge that cuts the bin paged there). On a grid with several points
        # to a bin, a schedule's edge may come a step early or late (``jitter``): a bin's first or
        # last point (its interval's middle within a step of the edge) is judged by the
        # bin across only where that bin explains it, and learned by neither, so that no
        # bin learns another time of day's value.
        edge = lead = reach = 0.0
        jitter = False
        fine = 0.0 < stp * _DAY_SCALE < JITTER_BINS  # several points to a daily bin
        if stp > 0.0 and dt > 0.0 and gap < GAP_MAX:  # dt / stp under GAP_MAX: no overflow
            off = dt - int(dt / stp + 0.5) * stp
            if off > OFF_GRID * stp or -off > OFF_GRID * stp:
                edge = EDGE_STEPS * stp
                if fine:
                    reach = STEP_REACH * _BIN
            elif fine:
                # on the grid, after points lost on it too (the edges of a schedule whose
                # readings are lost stay where they were)
                edge, lead, jitter, reach = stp, 0.5 * stp, True, STEP_REACH * _BIN
        hold = 0.0  # the reach within which a point the bin across explains is not learned
        if reach:
            best = self.margin * (self.ss if self.ss < self.sf else self.sf)
            if not (self.sc < best or (self.week is not None and self.swl < best)):
                # no profile speaks (a random walk's): its steps are not the series', so
                # its own bin judges the point, but the bin across may keep it from
                # moving its own (a step that cuts the bin, see STEP_REACH); not at steps
                # under 18 s, whose drift is judged without profiles until one speaks
                # (at 10 and 15 seconds, the toy of STEP_REACH paged twice as often)
                hold = reach if stp >= _FINE_STEP else 0.0
                reach = 0.0
        hold_d = hold_w = False  # the point's daily / weekly bin does not learn its value
        fresh_d = False  # the point's daily bin started at its value: the profile's first visit
        # the bins a point is learned into (-1: none)
        learn_d = learn_w = True
        # the least error scale of a profile read as a curve, where it bends (see CURVE_BEND)
        kink_d = kink_w = 0.0
        curve = -1  # the daily profile's bins on a smooth curve (-1: not yet known)
        lf = self.lf
        fs = self.ls + self.phi * self.tr
        day = self.day
        week = self.week
        if day is None:
            if self.a_season == 0.0 and n >= SEASON_START_POINTS:
                self._start_season(ts, n)
            fc = fw = fs
            known = False  # the point's weekly bin held a value before it
            fresh_w = False  # ... and was rewritten from this point's own value: no forecast
            sd = sw = cd = cw = 0.0
            bd = bw = -1  # no bin: profiles started on this point learn from the next one
        else:
            since = ts - self.t0
            notice = since < RESTART_BEFORE or (self.wm != 0 and since < WEEKLY_AFTER)
            if notice and (ts + _WEEK_SHIFT) % WEEK < (ts - dt + _WEEK_SHIFT) % WEEK:
                # the first Monday: after a Friday or weekend start every daily bin is
                # on notice; after a start earlier in the week, the bins the weekend saw
                # first (the weekdays brought none of their points)
                self.rm = _ALL_BINS if since < RESTART_BEFORE else self.rm | self.wm
                self.wm = 0
            lc = self.lc
            pos = (ts % DAY) * _DAY_SCALE  # the daily phase, in bins
            bd = int(pos) % DAY_BINS
            sd = day[bd]
            if sd != sd:  # first visit of this bin: start from the level residual
                sd = day[bd] = value - lc
                fresh_d = True
                self.tb = bd
                self.cn = -1
                if since < WEEKLY_AFTER and _weekend(ts):
                    self.wm |= 1 << bd
            elif self.tb >= 0:
                tb = self.tb
                if tb == bd:
                    m = value - lc - sd  # the second point of the bin's first visit
                    sd = day[bd] = _nearer(sd, value - lc, lf - lc)
                    self.cn = -1
                    c = self.k * self.ec
                    if fine:  # the rest of the visit stays on trial
                        self.tb = bd + _TRIAL * _trial(m, c)
                    else:
                        self.tb = -1
                elif tb % _TRIAL == bd:
                    # the rest of the first visit: the bin takes the side of a step that
                    # cuts it most of its points are on
                    code = _voted(tb // _TRIAL, value - lc - sd, self.k * self.ec)
                    if not code:
                        sd = day[bd] = value - lc
                        self.cn = -1
                        code = 2
                    self.tb = bd + _TRIAL * code
                else:
                    self.tb = -1
            cd = sd  # the offset the profile forecasts: the bin's, or the curve's
            b = bd
            if edge:
                b, hold_d = _judged_by(
                    day,
                    bd,
                    pos + lead * _DAY_SCALE,
                    edge * _DAY_SCALE,
                    lc,
                    value,
                    self.k * self.ec,
                    jitter,
                    reach * _DAY_SCALE,
                    hold * _DAY_SCALE,
                )
            if b != bd:  # judged by the bin across an edge
                bd = b
                cd = sd = day[b]
                learn_d = not jitter
            elif fine:
                curve = self.cn if self.cn >= 0 else self._curve_count(day)
                if curve >= _CURVE_BINS:
                    cd, kink_d = _on_curve(day, bd, pos)
            fc = lc + cd
            known = fresh_w = False
            if week is None:
                bw = 0
                sw = cw = 0.0
                fw = fc
            else:
                bins = len(week)
                pos = ((ts + _WEEK_SHIFT) % WEEK) * (bins / WEEK)  # the weekly phase, in bins
                bw = int(pos) % bins
                sw = week[bw]
                held = sw
                lw = self.lw
                known = sw == sw
                if not known:
                    sw = week[bw] = _bin32(value - lw)
                    self.tw = bw
                elif self.tw >= 0:
                    tw = self.tw
                    if tw == bw:
                        m = value - lw - sw
                        sw = week[bw] = _bin32(_nearer(sw, value - lw, lf - lw))
                        c = self.k * self.ew
                        if 0.0 < stp * bins / WEEK < JITTER_BINS:
                            self.tw = bw + _TRIAL * _trial(m, c)
                        else:
                            self.tw = -1
                    elif tw % _TRIAL == bw:  # as for the daily bins
                        code = _voted(tw // _TRIAL, value - lw - sw, self.k * self.ew)
                        if not code:
                            sw = week[bw] = _bin32(value - lw)
                            code = 2
                        self.tw = bw + _TRIAL * code
                    else:
                        self.tw = -1
                cw = sw
                # the bin started, or started again, at this very value (a first visit,
                # its second point nearer the fast level, a restart): no forecast
                fresh_w = sw != held
                b = bw
                if edge:
                    scale = bins / WEEK
                    b, hold_w = _judged_by(
                        week,
                        bw,
                        pos + lead * scale,
                        edge * scale,
                        lw,
                        value,
                        self.k * self.ew,
                        jitter,
                        reach * scale,
                        hold * scale,
                    )
                if b != bw:
                    bw = b
                    cw = sw = week[b]
                    learn_w = not jitter
                    fresh_w = False
                elif 0.0 < stp * bins / WEEK < JITTER_BINS:
                    # read as a curve where the daily profile is one
                    if curve < 0:
                        curve = self.cn if self.cn >= 0 else self._curve_count(day)
                    if curve >= _CURVE_BINS:
                        cw, kink_w = _on_curve(week, bw, pos)
                fw = lw + cw
                miss = value - fw
                if (miss if miss >= 0.0 else -miss) <= _F32_ULP * (cw if cw >= 0.0 else -cw):
                    # within the float32 rounding of the bin (``_bin32``): no miss, as the
                    # exact offset would have had (a flat sensor's weekly error scale
                    # stays at 0 rather than learn the rounding)
                    fw = value
        # which forecaster speaks: the smallest long-horizon error; a seasonal one must
        # beat the simpler ones by ``season_margin``, the weekly one also the daily one
        kink = 0.0  # the least error scale where the speaking profile bends
        if self.ss < self.sf:
            expected, err, best = fs, self.es, self.ss
        else:
            expected, err, best = lf, self.ef, self.sf
            # the profiles, whose misses after a gap count as they came, are compared
            # with the fast level's as they came (``sr``), or the slow level's if less
            sr = self.sr
            if sr > best:
                best = sr if sr < self.ss else self.ss
        if day is not None:
            span = ts - self.t0
            margin = self.margin
            if span < WEEKLY_AFTER or (
                # 30-minute weekly bins read once a visit: until each was read four times
                week is not None
                and len(week) == FINE_WEEK_BINS
                and span < WEEKLY_MIN_VISITS * self.stp * FINE_WEEK_BINS + 0.25 * DAY
            ):
                speak = span >= DAILY_AFTER and self.sc < margin * best
                miss = value - fc
                miss = miss if miss >= 0.0 else -miss
                if miss > self.k * self.ec:
                    near = value - expected
                    near = near if near >= 0.0 else -near
                    if miss > near:
                        # the daily profile misses and the level is nearer: on the first
                        # weekend, the profile does not learn it (its miss is deferred),
                        # nor speak, unless the value is far above all the profile holds
                        # (a weekend may differ from the weekdays, but seldom by rising
                        # above them all: a surge the level follows);
                        # on a bin on notice, the bin starts again (see ``_learn``)
                        if _weekend(ts):
                            if not value > lc + _top(day) + self.k * self.ec:
                                speak = False
                            bd = -2
                        elif self.rm >> bd & 1:
                            speak = False
                            # or the bin before, which may have started again at the new
                            # pattern half an hour ago, if it is nearer still
                            fp = lc + day[bd - 1]
                            d = value - fp
                            if (d if d >= 0.0 else -d) < near:
                                expected, err = fp, self.ec
            else:
                if self.scd or self.rm:
                    self.sc += self.scd  # the first weekend's misses, now the first week is over
                    self.scd = 0.0
                    self.rm = 0
                speak = self.sc < margin * best
            if speak:
                expected, err, best = fc, self.ec, self.sc
                kink = kink_d
            if (
                week is not None
                and span >= WEEKLY_AFTER
                and self.swl < margin * best
                and span >= WEEKLY_MIN_VISITS * self.stp * WEEK_BINS + 0.25 * DAY
            ):
                expected, err = fw, self.ew
                kink = kink_w
        # sigma never collapses below a fraction of its long-run value (flat stretches)
        el = self.el
        changed = value != self.prev  # a repeated value says nothing about the noise
        if changed:
            self.tk = ts
            self.nq = 0.0
            el += (LONG_ALPHA if n * LONG_ALPHA > 1.0 else 1.0 / n) * (err - el)
            self.el = el
        else:
            self.nq += 1.0
            if self.tk != self.tk:
                self.tk = ts  # a state from before version 23: counted from here
        least = self.floor * el
        unit = 0.0  # the unit of the grid the value and the one before are read on, if known
        if least < WHOLE_FLOOR and value % 1.0 == 0.0 and self.prev % 1.0 == 0.0:
            # whole numbers (counts): known to their unit at best, so a lone 1 in a
            # series of zeros is not a 20-sigma event (NaN % 1 is NaN: not whole)
            least = WHOLE_FLOOR
            unit = 1.0
        elif least < WHOLE_FLOOR / DECIMAL_UNITS[0]:
            # a sensor read to a decimal unit is known to that unit at best, as above
            prev = self.prev
            for units in DECIMAL_UNITS:
                if least >= WHOLE_FLOOR / units:
                    break
                if _on_grid(value, units) and _on_grid(prev, units):
                    least = WHOLE_FLOOR / units
                    unit = 1.0 / units
                    break
        if err < least:
            err = least
        if gap > 1.0 and expected == lf:
            err *= math.sqrt(gap)  # after the long-run scale learned from it: per step
        sigma = SIGMA_PER_MAE * err
        if expected > MULT_GUARD * sigma and value > 0.0 and sigma > 0.0:
            sigma = self._relative(value, expected, sigma, least, changed, gap, expected == lf)
        if sigma < SIGMA_PER_MAE * kink:
            sigma = SIGMA_PER_MAE * kink
        least = 1e-300 + RELATIVE_SIGMA_FLOOR * (expected if expected >= 0.0 else -expected)
        if sigma < least:
            sigma = least
        z = (value - expected) / sigma
        z = _BIG if z > _BIG else -_BIG if z < -_BIG else z
        a = z if z >= 0.0 else -z
        shown = expected  # the expected value published: a weekly precedent, or with a
        # recurring outlier's usual size
        raw = a
        clip = self.clip
        if (
            known
            and week is not None
            and a > clip
            and expected != fw
            and ts - self.t0 >= WEEKLY_AFTER
            and self.stp * len(week) * PRECEDENT_POINTS >= 0.98 * WEEK
        ):
            # the weekly profile does not speak (too few visits per bin yet, or a larger
            # long-run error), but it has seen this hour of the week before: a miss that
            # it puts within the clip (a Saturday morning, while the daily profile
            # expects a weekday) is not news
            zw = (value - fw) / (PRECEDENT_SPREAD * sigma)
            aw = zw if zw >= 0.0 else -zw
            if aw <= clip:
                z = zw
                a = raw = aw
                shown = fw
        if (
            a > clip
            and self.tol
            and _short_run(self.jumps, self.stp)
            and a > _noise_daily(self.stp)
        ):
            usual = self._recurring(ts, n, value - expected)
            if usual:
                # judged against its usual size, which varies by a fraction of itself
                shown = expected + usual
                spread = RECUR_SPREAD * (usual if usual >= 0.0 else -usual)
                if sigma < spread:
                    sigma = spread
                z = (value - shown) / sigma
                z = _BIG if z > _BIG else -_BIG if z < -_BIG else z
                if (z < 0.0) == (usual > 0.0):
                    z = 0.0  # between the expected value and the usual size: a smaller one
                a = z if z >= 0.0 else -z
        if raw < CALM_Z:  # the surprise before a recurring outlier's usual size is taken
            if changed:
                # a real (not float-rounding) miss far inside sigma: the scale may be too large
                r = value - expected
                real = (r if r >= 0.0 else -r) > 1e-9 * (abs(value) + abs(expected))
                self.calm = self.calm + 1 if real else 0
        elif changed and self.calm:
            self.calm = 0
        jd = self.jd
        if jd:
            self.jt += 1
            if self.jt > REVERT_POINTS:
                self.jd = 0.0
            elif a > clip:
                back = (value - expected + jd) / sigma
                if -clip <= back <= clip:
                    # back to the level from before the last jump: a temporary shift
                    # has ended; that is not news, so undo the jump instead of a new one.
                    # The slow levels go back to where they were; the fast one restarts
                    # at this value: its old level may be hundreds of points stale (the
                    # night before a daily rise), and the next points would page
                    self.jd = 0.0
                    self._mode_move(expected, value)
                    self._drift_after_move()  # from the level before the jump
                    expected -= jd
                    ls, lc, lw = self.pre
                    lf = value
                    self.lf, self.ls, self.lc, self.lw = lf, ls, lc, lw
                    fs = ls + self.phi * self.tr
                    fc = lc + cd
                    fw = lw + cw
                    z = back
                    a = z if z >= 0.0 else -z
        if self.rk and self._bump_ended(value, z, sigma, expected == lf):
            # the run of outliers was a bump that is over; the fast level it pulled
            # along restarts at the value, which is judged against where it was
            lf = self.lf = value
            z = (value - self.rl) / sigma
            a = z if z >= 0.0 else -z
        self.sg = sigma
        if self.mi >= 0:
            self._mode_stay(value, sigma)
            if a > clip and ts - self.t0 >= MODE_AFTER and expected in (lf, fs):
                level = self._mode_near(value, expected, sigma)
                if level == level:
                    # a level the series keeps moving to: judged against it, and the
                    # levels move there at once (see ``_learn``)
                    z = (value - level) / sigma
                    a = z if z >= 0.0 else -z
                    self.mj = True
                    self.jumps = 0
        if a > clip or self.jumps:
            a = self._run_evidence(z, a)
        learned = -1.0  # >= 0: the sustained shift speaks; the calibrator learns this instead
        if n > 10:
            # a sustained shift: the mean of the clipped z lately (over three horizons), in
            # units of its own root mean square (the misses of a drift within the noise add up)
            zc = z if -clip <= z <= clip else clip if z > 0.0 else -clip
            self.sm, self.sv, shift2 = _mean_of_z(
                self.sm, self.sv, zc, SHIFT_ALPHA, SHIFT_VAR_ALPHA, _SHIFT_NULL
            )
            self.sms, self.svs, slow2 = _mean_of_z(
                self.sms, self.svs, zc, SHIFT_SLOW_ALPHA, SHIFT_VAR_ALPHA, _SLOW_NULL
            )
            self.sml, self.svl, long2 = _mean_of_z(
                self.sml, self.svl, zc, SHIFT_LONG_ALPHA, SHIFT_LONG_VAR_ALPHA, _LONG_NULL
            )
            if slow2 > shift2:
                shift2 = slow2
            if long2 > shift2:
                shift2 = long2
            # a drift that every forecaster follows: judged against a slow baseline of
            # the value less the speaking seasonal offset (none without profiles)
            baseline = _NAN
            if week is not None and expected == fw and bw >= 0 and bd >= 0:
                off, src, mse, miss, far = sw, 3, self.qw, value - fw, self.k * self.ew
            elif day is None or (self.stp < _FINE_STEP and expected != fc):
                # no profile; or, at steps under 18 s, one that does not speak: its bin
                # holds more points in a row than the baseline's horizon, so on its first
                # visits it follows the value like a level (its offset would take a drift
                # along with it), and after them it is a staircase on a smooth cycle (every
                # bin's edge drifted, once its first day was over), while over 100 points
                # the value's own baseline barely sees a daily cycle move
                off, src, mse, miss, far = 0.0, 1, self.qs, 0.0, 0.0
            else:
                off, src, mse, miss, far = sd, 2, self.qc, value - fc, self.k * self.ec
            if not (bd >= 0 or day is None):
                pass  # a first weekend's point: the daily profile's miss is deferred
            elif shift2 > _SHIFT_Z2 or (
                mse > DRIFT_CREDIBLE * self.qf
                and not (
                    self.ds == src
                    and self.dm * self.dm
                    > _DRIFT_KEEP2 * (self.dv if self.dv > _DRIFT_NULL else _DRIFT_NULL)
                )
            ):
                # the shift's means speak (the change is theirs: a level that moved, which
                # the fast level may absorb without a jump), or the offset's forecaster
                # misses far more than the fast level (a random walk, whose level wanders
                # as its normal behaviour) while no drift builds up against a live
                # baseline: a baseline starts again later, slow from
                # the start once the shift's means spoke (from the level they saw move;
                # a jump and its undoing set that too)
                if shift2 > _SHIFT_Z2:
                    if self.ds:
                        # the level to come back to, where a daily pattern was seen or the
                        # baseline is the value's own (a younger series' profile follows
                        # its value like a level)
                        daily = day is not None and ts - self.t0 >= DAILY_AFTER
                        self.dp = self.dl if daily or self.ds == 1 else _NAN
                    self.dn = _DRIFT_RUN + DRIFT_RECENT
                elif self.ds:  # a live baseline ends here: the next one starts rough
                    self.dn = 0
                elif self.dn > _DRIFT_RUN:
                    # the shift's means spoke a while ago: the level they saw move grows
                    # stale while the baseline waits (a random walk's forecaster, far
                    # from credible); once DRIFT_RECENT points went by, a restart is rough
                    self.dn -= 1
                    if self.dn == _DRIFT_RUN:
                        self.dn = 0
                self.ds = 0
            else:
                # the main model's points (outliers, a recurring one, a run, a first
                # Monday's bins on notice) are not the drift's, nor those where the offset's
                # own profile misses, nor a count's weekend judged against the daily
                # profile: a weekend may differ from the weekdays the daily profile
                # learned (a count of business days whose weekend is zeros, each within a
                # count's noise, drifted below by Saturday noon; its second weekend too,
                # before the weekly profile spoke, once a far-out mean taught the spread
                # nothing; for every series, the rule cost smooth cycles their ramps on a
                # first weekend and added false episodes)
                loud = (
                    a > clip
                    or raw > clip
                    or shown != expected
                    or self.jumps != 0
                    or self.rm != 0
                    or not -far <= miss <= far
                    or (src == 2 and self.zw > COUNT_SHARE and _weekend(ts))
                )
                drift2 = self._drift(value - off, expected - off, src, sigma, loud)
                if drift2 > shift2:
                    shift2 = drift2
                    baseline = self.dl + off
            speaks = shift2 > _SHIFT_Z2 and shift2 > a * a
            # how often they start speaking: a weight of one over the points so far, never
            # under one over SHIFT_HABIT_DAYS days' points
            wh = self.stp * (_PER_DAY / SHIFT_HABIT_DAYS)
            if (n - 10) * wh < 1.0:
                wh = 1.0 / (n - 10)
            self.hr += wh * ((1.0 if speaks and not self.hs else 0.0) - self.hr)
            self.hs = speaks
            if speaks:
                learned = a
                a = math.sqrt(shift2)
                if baseline == baseline:  # the drift's evidence spoke: say so
                    side = "above" if value >= baseline else "below"
                    self.evidence = (
                        f"the series has drifted {side} where it was (its baseline here "
                        f"{baseline:.6g}): a slow drift"
                    )
        cal = self.cal
        # two weeks in, when the budget starts to grow: the far tail and the spikes' lower line
        old = n >= FAR_AFTER_POINTS and ts - self.t0 >= _FAR_AFTER
        if n <= _CAL_AFTER:
            score = 0.0
        else:
            xf = self.xf
            count = self.zw > COUNT_SHARE
            long_tail = old or (
                count and n >= FAR_COUNT_AFTER_POINTS and ts - self.t0 >= _FAR_COUNT_AFTER
            )
            cal.far = _far_scale(xf) if long_tail and xf > FAR_P else 1.0
            top = cal.q_hi
            spread = top - cal.q_lo
            top += spread  # the calibrator's line's 0.999 point, before this point
            if learned >= 0.0:
                # the shift's evidence is a mean of many clipped misses, near normal
                # whatever the tail of one miss: it is scored by the normal tail
                # (two-sided), or by the calibrator if that says more (by the calibrator
                # alone where shifts are the series' habit); the calibrator learns the
                # point's own surprise
                score = cal.score(_log1p(a))
                if not (
                    ts - self.t0 >= SHIFT_HABIT_AFTER
                    and self.hr >= SHIFT_HABIT_PER_DAY * self.stp * _PER_DAY > 0.0
                ):
                    normal = _normal_score(a)
                    if normal > score:
                        score = normal
                taught = _log1p(learned)
                cal.score_learn(taught)
            elif shown != expected:
                # a recurring outlier is scored at its usual size; the calibrator learns
                # that an outlier came (its raw surprise, but no more than
                # RECUR_LEARN_CLIPS clips), not the schedule's size of it: a schedule
                # whose edges cut profile bins has a few such points every day, and their
                # 20-50 sigma would numb it in weeks
                score = cal.score(_log1p(a))
                cap = RECUR_LEARN_CLIPS * clip
                taught = _log1p(raw if raw < cap else cap if cap > a else a)
                cal.score_learn(taught)
            elif self.mj:
                # a move to a mode is scored against the mode; the calibrator learns the
                # move's own surprise, as it would without the modes (a series whose moves
                # are large learns that its large surprises are common)
                score = cal.score(_log1p(a))
                taught = _log1p(raw)
                cal.score_learn(taught)
            else:
                taught = _log1p(a)
                score = cal.score_learn(taught)
            # how often the surprise lands between the line's 0.999 and 0.9999 points (a
            # run counts once; beyond them is what an anomaly looks like)
            passed = top < taught <= top + spread
            w = 1.0 / (n - _CAL_AFTER + (FAR_COUNT_PRIOR if count else FAR_PRIOR))
            if w < _FAR_W_MIN:
                w = _FAR_W_MIN
            self.xf = xf + w * ((1.0 if passed and not self.xr else 0.0) - xf)
            self.xr = passed
            if unit and learned < 0.0:
                # read on a grid, a value at the grid point nearest the expected one or
                # the one beside it is within the reading's resolution: no news, however
                # rarely the series moves (its calibrator, of a point mass at zero and a
                # few such moves, has no tail to speak of)
                off_by = value - expected
                if (off_by if off_by >= 0.0 else -off_by) < UNIT_WITHIN * unit:
                    normal = _normal_score(a)
                    if score > normal:
                        score = normal
        if n > SPIKE_AFTER:
            # the spikes' rate learns at a weight of 1 / the points so far, never under
            # 1 / a day's points (within bounds); most points are no spike and follow
            # none, and for them the rate only decays (the rest is ``_spike``'s)
            per = self.stp * _PER_DAY
            if per < _SPIKE_PER_MIN:
                per = _SPIKE_PER_MIN
            elif per > _SPIKE_PER_MAX:
                per = _SPIKE_PER_MAX
            seen = n - SPIKE_AFTER + SPIKE_PRIOR
            w = per if seen > SELECT_MAX_POINTS else 1.0 / seen
            if w < per:
                w = per
            wl = per * (1.0 / SPIKE_SLOW_DAYS)  # the slower rate's weight
            if (seen - _SPIKE_PRIOR_SPAN) * wl < 1.0:  # (a week on, never)
                prior = SPIKE_SLOW_PRIOR_DAYS / per  # ... and its prior, in points
                if prior < SPIKE_MIN_POINTS:
                    prior = SPIKE_MIN_POINTS
                elif prior > _SPIKE_PRIOR_MAX:
                    prior = _SPIKE_PRIOR_MAX
                slow_seen = seen - SPIKE_PRIOR + prior
                if slow_seen * wl < 1.0:
                    wl = 1.0 / slow_seen
            spiky = a if learned < 0.0 else learned
            burst = self._burst(spiky > SPIKE_Z and not self.kp, per, wl)
            apart = not ts - self.kt <= SPIKE_DECLUSTER_STEPS * self.stp  # (NaN: none)
            if spiky > SPIKE_Z:
                self.kt = ts
            if spiky > SPIKE_Z or self.kp:
                if self.stp < SPIKE_COARSE_STEP:
                    low = SPIKE_PER_DAY_FINE
                else:
                    low = SPIKE_PER_DAY_OLD if old else SPIKE_PER_DAY_LOW
                # (not ``cap``: that name is a float in this method, and mypyc keeps one type)
                capping = learned < 0.0 and not burst
                score = self._spike(n, spiky, score, capping, w, wl, per, low, apart)
            else:
                self.kr -= w * self.kr
                self.kl -= wl * self.kl
        if n > 1:
            whole = 1.0 if value >= 0.0 and value % 1.0 == 0.0 else 0.0
            self.zw += (COUNT_ALPHA if n * COUNT_ALPHA > 1.0 else 1.0 / n) * (whole - self.zw)
        if self.zk or self.zw > COUNT_SHARE:
            # the seasonal profiles' count here: the daily one's, or the weekly one's
            # where its bin has a value and is lower (no count on weekends)
            season = fc if day is not None else _NAN
            if known and not fw >= season:
                season = fw
            below = 0.0 <= value < 1.0
            mean = _count_mean(expected, season)
            var = sigma * sigma if sigma < _SQRT_BIG else _BIG
            if _log_zero(mean, var) < _LOG_ZERO_RARE:
                # how often a count below one came where the model had a zero rare: no
                # zero of a run counts as rarer (bytes written are zero-inflated)
                zq = self.zq = self.zq + 1 if self.zq < SELECT_MAX_POINTS else self.zq
                self.zz += ((1.0 if below else 0.0) - self.zz) / zq
            if below and n > SPIKE_AFTER and (known or week is None or not _weekend(ts)):
                # (a weekend whose hours the weekly profile has not seen yet says nothing:
                # the first weekend of a count of business days is all zeros)
                stopped, mean = self._stopped(expected, var, season)
                if 1.0 - stopped > score:
                    # the count stopped: published against what it was expected to be
                    score = 1.0 - stopped
                    shown = mean
                    z = (value - mean) / math.sqrt(self.zv)
            elif not below:
                self.zk = 0
        else:
            self.zk = 0
        q_lo = cal.q_lo
        exponent = q_lo + (cal.q_hi - q_lo) * self.band_k
        half = _expm1(exponent if exponent < _MAX_EXP else _MAX_EXP) * sigma
        if half > _BIG:
            half = _BIG
        self._learn(
            value,
            changed,
            expected,
            lf,
            fs,
            fc,
            fw,
            bd if learn_d else -1,
            bw if learn_w else -1,
            sd,
            sw,
            gap,
            hold_d,
            hold_w,
            fresh_w,
            fresh_d,
        )
        return (score, shown, shown - half, shown + half, z)

    def _drift(self, u: float, level: float, src: int, sigma: float, loud: bool) -> float:
        """A drift's evidence at a point whose value less its seasonal offset is ``u``
        (``level``: the expected value, likewise), as the squared mean distance from the
        baseline in units of its mean square; 0 while it does not speak.

        ``src`` says whose offset (1 none, 2 the daily profile's, 3 the weekly one's): a
        change between the two profiles moves the baseline by the difference of their
        levels, any other starts it again at ``level``, as does the first quiet point after
        a jump or its undoing. ``loud`` points (outliers, a recurring one, a run) are the
        main model's: they neither move the baseline nor are judged by it (a drift that
        speaks gives its evidence as it stood).
        """
        ds = self.ds
        if src != ds:
            if ds + src == 5:  # daily <-> weekly: the same baseline, their levels apart
                apart = (self.lw - self.lc) if src == 3 else (self.lc - self.lw)
                self.dl += apart
                self.dp += apart
                self.ds = src
            elif not loud:
                if ds:  # a live baseline whose source changed: a rough start
                    self.dn = 0
                elif self.dn > _DRIFT_RUN:  # soon after the shift's means spoke: slow
                    self.dn = _DRIFT_RUN
                if not self.dn:  # the level before a move long past is no reference
                    self.dp = _NAN
                self.dl = level
                self.dm = 0.0
                self.dk = 0
                self.ds = src
                return 0.0
        if loud or not self.ds:
            if loud and self.dk:
                # a drift that speaks goes on through them, as it stood (one of them
                # between two of its points split its episode in two)
                dv = self.dv
                return self.dm * self.dm / (dv if dv > _DRIFT_NULL else _DRIFT_NULL)
            return 0.0
        z = (u - self.dl) / sigma
        z = z if -DRIFT_CLIP <= z <= DRIFT_CLIP else DRIFT_CLIP if z > 0.0 else -DRIFT_CLIP
        age = self.age
        dv = self.dv
        # (at least one point: a state read back with an age of 0 was damaged)
        w = DRIFT_VAR_ALPHA if age * DRIFT_VAR_ALPHA >= 1.0 else 1.0 / (age if age > 0 else 1)
        self.dm, self.dv, drift2 = _mean_of_z(
            self.dm,
            dv,
            z,
            DRIFT_MEAN_ALPHA,
            w,
            _DRIFT_NULL,
            DRIFT_SPREAD_CAP if age > DRIFT_AFTER else math.inf,
        )
        if age > DRIFT_AFTER and (drift2 > _DRIFT_Z2 or (self.dk and drift2 > _DRIFT_HOLD2)):
            back = (u - self.dp) / sigma
            if -DRIFT_BACK <= back <= DRIFT_BACK:
                # back where the baseline was before the shift's means spoke, or before a
                # drift became the new level: the change was temporary (a day lower than
                # its pattern, a valve closed for minutes), and its end is no drift; the
                # baseline is the one from before again
                self.dl = self.dp
                self.dp = _NAN
                self.dm = 0.0
                self.dk = 0
                return 0.0
            # a drift under way does not teach the spread (before it may speak, the spread
            # learns every point: a distance there from the start is the series' own)
            self.dv = dv
            self.dk += 1
            if self.dk < DRIFT_ACCEPT:
                return drift2
            # a drift that lasts is the new level (the forecaster's, which lags the end of
            # a ramp: a rough start); a return to where it was is the end of a temporary
            # change, as after the shift's means (a valve that closed, then opened again)
            self.dp = self.dl
            self.dl = level
            self.dm = 0.0
            self.dk = 0
            self.dn = 0
            return 0.0
        self.dk = 0
        dn = self.dn
        if dn < _DRIFT_RUN:  # a young baseline: the mean of the points so far
            dn += 1
            self.dn = dn
            self.dl += sigma * z / dn
        else:
            self.dl += DRIFT_ALPHA * sigma * z
        return 0.0

    def _relative(
        self,
        value: float,
        expected: float,
        sigma: float,
        least: float,
        changed: bool,
        gap: float,
        fast: bool,
    ) -> float:
        """Sigma where noise may grow with the level: the absolute or the relative scale.

        Called for a positive value whose expected value is at least ``MULT_GUARD``
        absolute sigmas above zero. The relative scale gives sigma (never under the
        absolute one's floor, ``least``) once its residuals are the better
        standardised: their mean clipped ``z^2`` below ``MULT_MARGIN`` times the
        absolute scale's, both learned over the long horizon that picks the
        forecaster. It learns like the error scales, winsorised at the clip, and a miss
        of the fast level after a gap per step of the gap, as that level's scale does.
        """
        mr = self.mr
        r = value - expected
        r = r if r >= 0.0 else -r
        if not mr > 0.0:
            self.mr = sigma / (SIGMA_PER_MAE * expected)  # it starts at the absolute scale
            return sigma
        n = self.n
        # the fast level after a gap, as for the absolute scale: judged with a sigma
        # widened by the root of the steps, and its miss learned per step (learned as it
        # came, a series read at irregular times had a relative scale inflated by its
        # gaps, which then spoke for it whatever its noise)
        per_step = math.sqrt(gap) if gap > 1.0 and fast else 1.0
        rel = SIGMA_PER_MAE * mr * expected
        floor = SIGMA_PER_MAE * least
        if rel < floor:
            rel = floor
        rel *= per_step
        if not rel > 0.0:
            return sigma
        m2a = self.m2a
        m2r = self.m2r
        use = n > MULT_WARM and m2r < MULT_MARGIN * m2a
        a_sel = self.a_sel
        if not (a_sel and n * a_sel > 1.0):
            a_sel = 1.0 / n
        cap = self.clip * self.clip
        za = r / sigma
        za *= za
        zr = r / rel
        zr *= zr
        self.m2a = m2a + a_sel * ((za if za < cap else cap) - m2a)
        self.m2r = m2r + a_sel * ((zr if zr < cap else cap) - m2r)
        if changed:
            age = self.age
            a_err = self.a_err if age * self.a_err > 1.0 else 1.0 / (age if age > 1 else 1)
            x = r / expected / per_step
            lim = self.k * mr
            self.mr = mr + a_err * ((x if x < lim else lim) - mr)
        return rel if use else sigma

    def _spike(
        self,
        n: int,
        a: float,
        score: float,
        cap: bool,
        w: float,
        wl: float,
        per: float,
        low: float,
        apart: bool,
    ) -> float:
        """``score``, capped where spikes are the series' normal behaviour; then learn ``a``.

        A surprise ``a`` beyond ``SPIKE_Z`` sigma is a spike. While the series has
        ``SPIKE_PER_DAY`` or more a day, or, by the slower rate alone, ``low`` where
        that is also ``SPIKE_SHARE`` of its points or more (``SPIKE_PER_DAY_FINE`` at
        fine steps, ``SPIKE_PER_DAY_LOW`` or ``SPIKE_PER_DAY_OLD`` two weeks in at coarse
        ones), a spike's tail probability is at least their rate per point times an
        exponential tail of their sizes beyond ``SPIKE_Z`` (peaks over a threshold): the
        usual spike scores as often as it comes, and one several times the usual size
        still pages. A run's first point counts as a spike, the rest of the run belongs
        to it; from the second point on, the run scores at least as the chance of that
        many spikes in a row (their rate times how often one follows another, to the power
        of the run so far). ``cap`` False only learns (the
        score is a sustained shift's, or a burst's). ``apart``: a first spike counts
        towards the slower rate (it is not in another's cluster). ``w`` is the day's
        rate's weight at this point, ``wl`` the slower rate's, and ``per`` one over a
        day's points. The cap's rate is the larger of the two: the slower one holds it up
        on a day with few spikes, the day's one lifts it when spikes start to come often
        (four a day, an anomalous day's run of outliers, and the cap holds them back).
        """
        fast = self.kr
        slow = self.kl
        rate = fast if fast > slow else slow
        spike = a > SPIKE_Z
        kp = self.kp  # spikes in a row before this point
        first = spike and not kp
        self.kp = (kp + 1 if kp < 255 else 255) if spike else 0
        go_on = self.kc
        if kp:  # how often another spike follows one
            wk = 1.0 / (self.kk + SPIKE_SIZE_WEIGHT)
            if wk < SPIKE_SIZE_RATE:
                wk = SPIKE_SIZE_RATE
            self.kc = _f32(go_on + wk * ((1.0 if spike else 0.0) - go_on))
        hit = 1.0 if first else 0.0
        self.kr = fast + w * (hit - fast)
        self.kl = slow + wl * ((hit if apart else 0.0) - slow)
        if not spike:
            return score
        excess = a - SPIKE_Z
        size = self.ks
        # the spikes a day: a rate times a day's points (times the points so far, if
        # fewer); the lower line by the slower rate (a day's cluster is no habit)
        days = n if n * per < 1.0 else 1.0 / per
        if cap and (rate * days >= SPIKE_PER_DAY or (slow * days >= low and slow >= SPIKE_SHARE)):
            tail = rate * math.exp(-excess / size)
            if 1.0 - tail < score:
                score = 1.0 - tail
            if not first:
                # a run of spikes is as likely as that many spikes in a row: where they
                # come alone, a second one at once is news (a level shift in a spiky
                # series, whose first points the cap holds back)
                tail = rate * go_on**kp
                if 1.0 - tail > score:
                    score = 1.0 - tail
        if first:
            kk = self.kk + 1 if self.kk < 255 else 255
            self.kk = kk
            ws = 1.0 / (kk + SPIKE_SIZE_WEIGHT)
            if ws < SPIKE_SIZE_RATE:
                ws = SPIKE_SIZE_RATE
            lim = SPIKE_SIZE_CLIP * size
            self.ks = _f32(size + ws * ((excess if excess < lim else lim) - size))
        return score

    def _burst(self, first: bool, per: float, wl: float) -> bool:
        """Whether spikes come in a burst: a CUSUM of the log likelihood ratio of spikes
        at ``SPIKE_BURST`` times the usual rate against the usual rate crossed
        ``SPIKE_BURST_LLR`` at this point (``first``: a spike, the first of its run).

        The usual rate is the slower rate of spikes, at least ``SPIKE_BURST_FLOOR`` a day
        (``per``: one over a day's points), or the rate accepted at the last burst where
        higher; that decays at the slower rate's weight ``wl``. Where spikes are the
        habit, the cap makes one no news; a density of them that grows is (a spike
        density's change, which the cap would otherwise hide until the habit learned it).
        """
        usual = self.kl if self.kl > self.kb else self.kb
        least = SPIKE_BURST_FLOOR * per
        if usual < least:
            usual = least
        tested = SPIKE_BURST * usual
        burst = False
        # a spike adds log(SPIKE_BURST); a point without one, log((1 - tested) / (1 - usual)),
        # which is negative: where the CUSUM is at zero it stays there (most points)
        if tested < 0.5 and (first or self.kq > 0.0):
            q = self.kq + (_LOG_SPIKE_BURST if first else _log1p(-tested) - _log1p(-usual))
            if q > SPIKE_BURST_LLR:
                burst = True
                q = 0.0
                self.kb = SPIKE_BURST_ACCEPT * tested
            self.kq = q if q > 0.0 else 0.0
        self.kb -= wl * self.kb
        return burst

    def _stopped(self, expected: float, var: float, season: float) -> tuple[float, float]:
        """The probability of the run of counts below one that this point continues (1:
        no evidence, while it is shorter than ``ZERO_RUN_MIN`` points or longer than a
        day), times ``ZERO_TESTS``, and the count expected at this point.

        Each is a zero of a negative binomial count with the mean the series was expected
        to have where the run began (or the seasonal profiles' value here, ``season``, if
        lower: a night's or a weekend's counts) and the variance ``var`` (sigma squared)
        it had then (at least the mean: Poisson), so an overdispersed count's zeros weigh what
        they should. Only zeros rarer than ``ZERO_RARE`` count, and none as rarer than
        counts below one came where the model had them that rare (``zz``). A run whose
        expected count falls to zero is spent.
        """
        if not self.zk:
            self.zs = _count_mean(expected, _NAN)
            self.zv = var if var > self.zs else self.zs
            self.zl = 0.0
        self.zk = zk = self.zk + 1 if self.zk < 65535 else 65535
        mean = _count_mean(self.zs, season)
        if not mean > 0.0 or self.zl > 0.0:
            # zeros where the profiles expect none: the run says nothing more (a positive
            # log probability marks it spent, so an episode does not open again in it)
            self.zl = 1.0
            return 1.0, mean
        lp = _log_zero(mean, self.zv)
        if lp < _LOG_ZERO_RARE:  # only zeros the model has rare count (not a night's)
            if self.zz > 0.0:
                floor = math.log(self.zz)
                if lp < floor:
                    lp = floor
            self.zl += lp
        if zk < ZERO_RUN_MIN or zk * self.stp > DAY:
            return 1.0, mean
        return (ZERO_TESTS * math.exp(self.zl) if self.zl > -_MAX_EXP else 0.0), mean

    def _recurring(self, ts: float, n: int, r: float) -> float:
        """The usual residual of an outlier that recurs at this time of day, else 0.

        Remembers the outlier (residual ``r``): a slot at the same time of day (to
        half a step) and side counts another sighting if it was last seen on an
        earlier day, at most ``RECUR_GAP_DAYS`` ago (divided by the share of the
        steps read, up to ``RECUR_KEEP_DAYS``; ``RECUR_KEEP_DAYS`` once it is
        expected), and starts again otherwise; a new time of day takes the slot
        seen longest ago, sparing the times still expected while any other is left
        (a day of new outliers must not push out the schedule learned so far). An
        expected time on the same side within ``RECUR_NEAR`` (or one seen exactly a
        week ago) and seen more often than this one (a job that runs a few minutes
        early or late) stands for it: this time takes over its sightings and usual size.
        With neither here, a time on the same side within ``RECUR_NEAR`` not yet expected,
        seen on an earlier day within those days at this size (within
        ``RECUR_SPREAD`` of it) does the same: a schedule's edge read with points lost
        (or at irregular times) comes at a different step of its bin from day to day.
        A second outlier of one day at a time already seen that day is a run, not a
        recurrence, unless that time is expected.
        """
        tol = self.tol
        if tol < 0.0:  # a state from before version 5: half the mean step so far
            tol = self.tol = 0.5 * (ts - self.t0) / (n - 1)
        gap_days = RECUR_GAP_DAYS
        span = ts - self.t0
        read = 2.0 * n * tol  # the time the points read cover, a step (twice ``tol``) each
        if 0.0 < read < span:
            gap_days = min(RECUR_GAP_DAYS * span / read, RECUR_KEEP_DAYS)
        mem = self.mem
        day = _recur_day(float(ts // DAY))
        phase = round((ts % DAY) * _PHASE_RES) / _PHASE_RES
        up = r > 0.0
        oldest = 0
        oldest_day = math.inf
        match = -1  # the slot at this time of day, on this side
        near = -1  # a slot on this side a few minutes off, seen most often: expected
        near_count = 0.0  # and seen lately, or seen exactly a week ago
        close = -1  # or a slot on this side a few minutes off, not yet expected, seen
        close_count = 0.0  # lately at this size, seen most often
        for k in range(0, len(mem), 4):
            d = mem[k] - phase
            d = d if d >= 0.0 else -d
            if d > DAY - d:
                d = DAY - d
            seen = mem[k + 2]
            if (mem[k + 1] > 0.0) == up:
                if d <= tol:
                    if match < 0:
                        match = k
                elif (
                    d <= RECUR_NEAR
                    and mem[k + 3] > near_count
                    and (
                        (mem[k + 3] > RECUR_AFTER and 0.0 < day - seen <= RECUR_KEEP_DAYS)
                        or day - seen == RECUR_WEEK_DAYS  # a weekly job's last sighting
                    )
                ):
                    near = k
                    near_count = mem[k + 3]
                elif (
                    d <= RECUR_NEAR
                    and mem[k + 3] > close_count
                    and 0.0 < day - seen <= gap_days
                    and abs(r - mem[k + 1]) <= RECUR_SPREAD * abs(mem[k + 1])
                ):
                    close = k
                    close_count = mem[k + 3]
            if mem[k + 3] > RECUR_AFTER and day - seen <= RECUR_KEEP_DAYS:
                seen += _KEPT  # an expected time is given up only after every other one
            if seen < oldest_day:
                oldest_day = seen
                oldest = k
        if match >= 0 and mem[match + 2] >= day:
            # seen today already: a run, not a recurrence; unless this time of day is
            # expected: readings anywhere in their step bring two of one day within
            # half a step of it, and both are the schedule's
            return mem[match + 1] if mem[match + 3] > RECUR_AFTER else 0.0
        # a job that runs a few minutes early or late: the expected time nearby (seen on
        # an earlier day, recently enough to be expected still) or the time nearby seen
        # a week ago, seen more often than this one, stands for it (its sightings and
        # usual size)
        src = near if near >= 0 and (match < 0 or near_count > mem[match + 3]) else match
        if src < 0:
            # a time first seen: a time nearby seen lately at this size may be the same
            # edge of a schedule, read at another step of its bin
            src = close
        size, sightings, usual = r, 1.0, 0.0  # a time first seen, or seen again too late
        if src >= 0:
            gap = day - mem[src + 2]
            last = mem[src + 3]
            if gap <= (RECUR_KEEP_DAYS if last > RECUR_AFTER else gap_days) or (
                gap == RECUR_WEEK_DAYS
            ):
                # the usual size follows a larger one by half, a smaller one by a
                # quarter: it stays near the top of the sizes seen, and a smaller one
                # (between the expected value and that) is no news (see ``_update``)
                usual = mem[src + 1]
                rate = 0.5 if (r > usual) == (usual > 0.0) else RECUR_SHRINK
                size = usual + rate * (r - usual)
                sightings = last + 1.0 if last < 255.0 else 255.0
        k = match
        if k < 0:  # this time of day gets a slot of its own
            if len(mem) < 4 * RECUR_SLOTS:
                k = len(mem)
                mem.extend((phase, 0.0, 0.0, 0.0))
            else:
                k = oldest
                mem[k] = phase
        mem[k + 1] = size
        mem[k + 2] = day
        mem[k + 3] = sightings
        return usual if sightings > RECUR_AFTER else 0.0

    def _bump_ended(self, value: float, z: float, sigma: float, fast: bool) -> bool:
        """True when ``value`` ends the last run of outliers as a bump.

        That is a point beyond the clip on the other side of the fast level, which
        speaks, within the clip of where the fast level stood when the run began,
        and at most ``BUMP_SPAN`` times ``jump_points`` points after the run.
        """
        rk = self.rk
        self.rk = rk - 1 if rk > 0 else rk + 1
        clip = self.clip
        if not fast or (z >= -clip if rk > 0 else z <= clip):
            return False
        back = (value - self.rl) / sigma
        if not -clip <= back <= clip:
            return False
        self.rk = 0
        self.jumps = 0
        return True

    def _run_evidence(self, z: float, a: float) -> float:
        """A run of same-side outliers counts as a whole: Stouffer's sum / sqrt(length)."""
        clip = self.clip
        zc = clip * 3.0
        if z > clip:
            jumps = self.jumps + 1 if self.jumps > 0 else 1
        elif z < -clip:
            jumps = self.jumps - 1 if self.jumps < 0 else -1
        else:
            jumps = 0
        self.jumps = jumps
        zr = zc if z > zc else -zc if z < -zc else z
        if jumps == 1 or jumps == -1:
            self.rsum = zr
            self.rl = self.lf
        elif jumps:
            span = BUMP_SPAN * self.jump
            self.rk = span if jumps > 0 else -span
            self.rsum = rsum = self.rsum + zr
            b = rsum / math.sqrt(jumps) if jumps > 0 else -rsum / math.sqrt(-jumps)
            if b > a:
                a = b
        return a

    def _learn(
        self,
        value: float,
        changed: bool,
        expected: float,
        lf: float,
        fs: float,
        fc: float,
        fw: float,
        bd: int,
        bw: int,
        sd: float,
        sw: float,
        gap: float,
        hold_d: bool = False,
        hold_w: bool = False,
        fresh_w: bool = False,
        fresh_d: bool = False,
    ) -> None:
        """Winsorised error-correction updates, bias-corrected while young.

        A held bin (``hold_d``, ``hold_w``) keeps its value; its profile's level and
        error scales learn the point as usual. A weekly bin that started (or started
        again) at this very value (``fresh_w``) forecast nothing, so the long-horizon
        error that picks the forecaster learns the miss of the one that spoke
        (``expected``), not the bin's own; and in the first week, inside a run of
        outliers, no less than the fast level's miss (its bins, started during the run,
        follow a moved level within their visit).
        A daily bin that started at this very value (``fresh_d``) forecast nothing
        either: its profile learns no miss there, nor does the fast level's error as it
        came (``sr``), which the profiles are compared with.

        Each forecaster's residual is winsorised at ``clip`` sigma before it moves
        the forecaster or its short-horizon error scale. The long-horizon error
        that picks the forecaster is a mean *square*, clipped far wider (20
        sigma): it must weigh the large misses of a forecaster that ignores a
        season (a daily profile on weekends, a level at every step of a daily
        pattern) above a slightly wider noise, and only a wild outlier is kept
        from dominating it. A repeated value (not ``changed``) says nothing about
        the noise (quantised or flat stretches), so it does not shrink the error scales.
        """
        age = self.age + 1
        self.age = age
        a_err = self.a_err
        if not age * a_err > 1.0:
            a_err = 1.0 / age
        n = self.n
        if age < n and a_err > JUMP_RATE:
            # after a jump: residuals are taken unclipped for a few points so the scales
            # can grow to a noisier regime at once, but no single point replaces them
            a_err = JUMP_RATE
        a_sel = self.a_sel
        if not (a_sel and n * a_sel > 1.0):
            a_sel = 1.0 / n
        # the profiles' long-run errors are means over their own points while young,
        # their start (the slow level's) counting as SEASON_START_POINTS of them: as
        # for the levels where the profiles start at that point, but a profile that
        # started late (readings at irregular times wait for the step) no longer
        # carries the slow level's misses of a daily rise with the weight of all the
        # points before it, which kept it from speaking for a week
        a_prof = a_sel
        young_profile = n - self.n0 + SEASON_START_POINTS
        if self.n0 and young_profile * a_sel < 1.0:
            a_prof = 1.0 / young_profile
        if not changed:
            a_err = 0.0
        self.prev = value
        k = self.k
        k20 = self.k20
        young = age <= 5
        # The four forecasters below learn by the same few lines, written out four
        # times on purpose: a helper called four times per point made the whole
        # detector about 30 % slower (this is the hot path of every worker). Their
        # conditions test first what is usually false (a residual beyond the clip).
        # fast level
        err = self.ef
        r = value - lf
        a_fast = self.a_fast
        per_step = 1.0
        if gap > 1.0:
            # after a gap the fast level takes a Kalman gain for the steps it missed,
            # and its residual is judged and learned per step of the gap
            a_fast = 1.0 - (1.0 - a_fast) / gap
            per_step = math.sqrt(gap)
            r /= per_step
        ar = r if r >= 0.0 else -r
        e = _winsorised(ar, k20 * err)
        self.sf += a_sel * (e * e - self.sf)
        # as it came, for the profiles; none where the daily profile started a bin at the
        # value (it forecast nothing, and its own long-run error learns no miss there)
        e = 0.0 if fresh_d else e * per_step
        self.sr += a_sel * (e * e - self.sr)
        lim = k * err
        e = _winsorised(ar, lim)
        self.qf += a_sel * (e * e - self.qf)
        if ar > lim and lim > 0.0 and not young:
            r = lim if r > 0.0 else -lim
            ar = lim
        self.lf = lf + a_fast * r * per_step
        self.ef = err + a_err * (ar - err)
        # slow level and damped trend
        a_slow = self.a_slow
        if not age * a_slow > 1.0:
            a_slow = 1.0 / age
        err = self.es
        r = value - fs
        ar = r if r >= 0.0 else -r
        # both levels' misses after a gap count per step (see above)
        e = _winsorised(ar, k20 * err) / per_step
        self.ss += a_sel * (e * e - self.ss)
        lim = k * err
        e = _winsorised(ar, lim) / per_step
        self.qs += a_sel * (e * e - self.qs)
        if ar > lim and lim > 0.0 and not young:
            r = lim if r > 0.0 else -lim
            ar = lim
        self.ls = fs + a_slow * r
        self.tr = self.phi * self.tr + self.beta * a_slow * r
        self.es = err + a_err * (ar - err)
        a_season_err = a_err and self.a_err
        day = self.day
        if self.scd:
            self.scd -= a_sel * self.scd  # the deferred miss ages like the error it joins
        if day is not None and bd != -1:
            err = self.ec
            r = value - fc
            ar = r if r >= 0.0 else -r
            e = _winsorised(ar, k20 * err)
            lim = k * err
            learn = True
            rm = self.rm
            if bd == -2:
                # a first-weekend miss: charged to the daily profile after the first
                # week; the profile does not learn it
                self.scd += a_prof * e * e
                learn = False
            elif rm and rm >> bd & 1:
                self.rm = rm ^ (1 << bd)
                if ar > lim > 0.0:
                    # a bin on notice that misses starts again at the value, on trial
                    # until the next point; its miss counts after the first week
                    day[bd] = value - self.lc
                    self.tb = bd
                    self.scd += a_prof * e * e
                    learn = False
                    self.cn = -1
            if learn:
                self.sc += a_prof * (e * e - self.sc)
                # winsorised, for the drift's judge: not the misses the profile does not
                # learn (its first weekend's, whose points the drift does not judge, and a
                # bin on notice that starts again; charged at once, the first weekend's
                # made a quantised sensor's profile not credible through a late day on
                # that weekend, which went unfound)
                e = _winsorised(ar, lim)
                self.qc += a_prof * (e * e - self.qc)
                if ar > lim and lim > 0.0 and not young:
                    r = lim if r > 0.0 else -lim
                    ar = lim
                self.lc += self.a_season * r
                if not hold_d:
                    day[bd] = sd + self.gamma * r
                self.ec = err + a_season_err * (ar - err)
                if self.cn >= 0 and not hold_d:
                    self._curve_learned(day, bd)
        week = self.week
        if week is not None and bw >= 0:
            err = self.ew
            r = value - fw
            ar = r if r >= 0.0 else -r
            picked = ar
            if fresh_w:
                picked = value - expected
                picked = picked if picked >= 0.0 else -picked
            elif self.jumps and self.tp - self.t0 < WEEKLY_AFTER:
                # in a run of outliers in the first week (a level that moved, not yet
                # taken as a jump), a bin that started during the run follows the move
                # within its visit: a level's knowledge, not a week's, so no better than
                # the fast level there
                moved = value - lf
                moved = moved if moved >= 0.0 else -moved
                if moved > picked:
                    picked = moved
            e = _winsorised(picked, k20 * err)
            self.swl += a_prof * (e * e - self.swl)
            lim = k * err
            e = _winsorised(picked, lim)
            self.qw += a_prof * (e * e - self.qw)
            if ar > lim and lim > 0.0 and not young:
                r = lim if r > 0.0 else -lim
                ar = lim
            self.lw += self.a_season * r
            if not hold_w:
                week[bw] = _bin32(sw + self.gamma * r)
            self.ew = err + a_season_err * (ar - err)
        jumps = self.jumps
        if self.mj:
            self._to_mode(value, expected)
        elif jumps >= self.jump or -jumps >= self.jump:
            self._jump(value, expected, sd, sw)

    def _curve_count(self, day: list[float]) -> int:
        """The daily profile's bins that lie on a smooth curve, counted afresh."""
        mask = 0
        before = day[DAY_BINS - 1]
        here = day[0]
        for b in range(DAY_BINS):
            after = day[b + 1] if b + 1 < DAY_BINS else day[0]
            if _curved(before, here, after):
                mask |= 1 << b
            before = here
            here = after
        self.cm = mask
        self.cn = n = mask.bit_count()
        return n

    def _curve_learned(self, day: list[float], b: int) -> None:
        """Bin ``b`` learned: it and its neighbours may have joined or left the curve."""
        a = b - 1 if b else DAY_BINS - 1
        c = b + 1 if b + 1 < DAY_BINS else 0
        va = day[a]
        vb = day[b]
        vc = day[c]
        mask = self.cm & ~(1 << a | 1 << b | 1 << c)
        if _curved(day[a - 1], va, vb):
            mask |= 1 << a
        if _curved(va, vb, vc):
            mask |= 1 << b
        if _curved(vb, vc, day[c + 1 if c + 1 < DAY_BINS else 0]):
            mask |= 1 << c
        if mask != self.cm:
            self.cm = mask
            self.cn = mask.bit_count()

    def _drift_after_move(self) -> None:
        """A drift's baseline starts again at the next quiet point, slow from the start
        (the level after a jump or its undoing is what a further move is judged from),
        with no baseline from before the shift's means spoke to come back to."""
        self.ds = 0
        self.dn = _DRIFT_RUN
        self.dp = _NAN

    def _mode_move(self, left: float, level: float) -> None:
        """The levels moved from ``left`` to ``level`` (a jump, or its undoing): remember
        ``level`` among the modes (see ``MODE_SLOTS``), and watch whether it settles."""
        mc, mv, mt = self.mc, self.mv, self.mt
        lim = MODE_TOL * self.sg
        if self.mi < 0:
            # the first move: the level left is the first one remembered, a visit with
            # the points so far
            mc[0], mv[0], mt[0] = left, 1.0, float(self.n)
            self.mi = 0
        here = -1
        for i in range(MODE_SLOTS):
            d = level - mc[i]
            if -lim <= d <= lim:  # (NaN, an empty slot, is never within)
                mc[i] = _toward(mc[i], level)
                here = i
                break
        if here < 0:
            # a new level, in an empty slot or the least visited one (not the one left)
            least = _BIG
            for i in range(MODE_SLOTS):
                if mc[i] != mc[i]:
                    here = i
                    break
                if i != self.mi and mv[i] < least:
                    here, least = i, mv[i]
            mc[here], mv[here], mt[here] = level, 0.0, 0.0
        self.mi = here
        self.mp = 1
        self.ms = self.sg

    def _levels_to(self, value: float, left: float) -> None:
        """The fast and slow levels restart at ``value`` (a move from the level ``left``,
        which the modes remember): the move is taken, so the shift's evidence, the run of
        outliers and a drift's baseline start again (from the level after the move)."""
        self._mode_move(left, value)
        self.lf = self.ls = value
        self.tr = 0.0
        self.sm = self.sms = self.sml = 0.0
        self._drift_after_move()
        self.jumps = 0
        self.rk = 0

    def _to_mode(self, value: float, expected: float) -> None:
        """Move the levels to ``value``, at a mode: a jump, but the profiles keep their
        levels (a mode is the series' level, not its hours'), the scales learn as before,
        and there is nothing to undo."""
        self.mj = False
        self._levels_to(value, expected)
        self.jd = 0.0

    def _mode_stay(self, value: float, sigma: float) -> None:
        """A point at the level the series last moved to counts as time spent there, and,
        once ``MODE_SETTLE`` points after the move stayed near it, as a visit; each of those
        points moves a level with fewer than ``MODE_VISITS`` visits ``MODE_LEARN`` of the way
        to it."""
        i = self.mi
        d = value - self.mc[i]
        if self.mp:
            lim = MODE_TOL * self.ms  # the sigma of the move: right after it, the scales re-learn
            if -lim <= d <= lim:
                self.mp += 1
                if self.mv[i] < MODE_VISITS:
                    # a young level is where the series settles, not where the move landed
                    self.mc[i] = _toward(self.mc[i], value)
                if self.mp > MODE_SETTLE:
                    self.mv[i] += 1.0
                    self.mp = 0
            else:
                self.mp = 0
        lim = MODE_TOL * sigma
        if -lim <= d <= lim:
            self.mt[i] += 1.0

    def _mode_near(self, value: float, expected: float, sigma: float) -> float:
        """The mode within ``MODE_TOL`` sigma of ``value``, other than the one at
        ``expected`` (NaN: none)."""
        mc, mv, mt = self.mc, self.mv, self.mt
        least = MODE_SHARE * sum(mt)
        lim = MODE_TOL * sigma
        for i in range(MODE_SLOTS):
            if mv[i] < MODE_VISITS or mt[i] < least:
                continue
            c = mc[i]
            if -lim <= expected - c <= lim:
                continue  # the series is there already
            if -lim <= value - c <= lim:
                return c
        return _NAN

    def _jump(self, value: float, expected: float, daily: float, weekly: float) -> None:
        """Restart the levels at ``value`` (a level shift); scales and profiles stay.

        The jump's size is remembered for ``REVERT_POINTS`` points, so that a
        return to the old level (a temporary shift that ended) is not a second
        alarm.
        """
        delta = value - expected
        if self.cal.q_hi < COLLAPSED_Q_HI:
            # the calibrator has seen next to no surprise (a series exactly flat, e.g. a
            # rate at 0 for a week, that now comes alive): it knows nothing of the regime
            # this jump starts, and would page at every point while the scales grow
            self.cal.set_state(LOG_Q_LO, LOG_Q_HI)
        self.pre = (self.ls, self.lc, self.lw)
        # (the run was a jump, not a bump) the level left is where the fast level stood
        # when the run began: the expected value, pulled along by the run, is no level
        # (a machine's first move, from 10 to 80, was remembered as a move from 34)
        self._levels_to(value, self.rl)
        self.lc = value - daily
        self.lw = value - weekly
        self.jd = delta  # a return undoes the jump
        self.jt = 0
        # re-learn the error scales faster in the new regime (see JUMP_RATE)
        self.age = 1

    def _season_rates(self, step: float) -> None:
        """The rates that follow from the step the seasons start with (NaN: not yet; a
        step of 0 or less, from timestamps that do not advance, is a step all the same)."""
        self.season_step = step
        if step != step:
            self.a_sel = self.a_season = 0.0
            return
        # the long horizon that decides which forecaster speaks: about a week of points
        self.a_sel = 1.0 / min(max(WEEK / max(step, 1e-9), SELECT_MIN_POINTS), SELECT_MAX_POINTS)
        # a seasonal level slow enough not to swallow the daily cycle (-1: a step too
        # coarse for seasons)
        self.a_season = -1.0 if step > DAY / 24 else min(self.a_slow, 50.0 * step / DAY)

    def _start_season(self, ts: float, n: int) -> None:
        """Learn the step from the first points: the selection horizon, and the profiles it fills.

        The step is the smaller of the mean interval so far and the running median
        of the intervals. Where the two disagree by more than ``GAP_STEPS`` times, a
        gap (a sensor installed, then paused) is among the first points, and the
        decision waits until they agree (at most ``SEASON_WAIT_POINTS`` points): a
        gap must not leave a 5-minute series without its profiles.
        """
        step = (ts - self.t0) / (n - 1)
        stp = self.stp
        if stp > 0.0:
            if n < SEASON_WAIT_POINTS and (step > GAP_STEPS * stp or stp > GAP_STEPS * step):
                return
            step = stp if stp < step else step
        self._season_rates(step)
        if step > DAY / 24:
            return  # too coarse for seasons
        self.lc = self.lw = self.ls
        # a jump before the profiles started is not undone for their levels: the bins
        # are learned from here on, relative to the level after it
        self.pre = (self.pre[0], self.ls, self.ls)
        self.ec = self.es
        self.sc = self.swl = self.ss
        self.qc = self.qw = self.qs
        self.n0 = n
        self.ew = self.es
        self.day = [_NAN] * DAY_BINS
        self.cn = -1
        self.tol = 0.5 * step
        if _fine_week(step):
            self.week = [_NAN] * FINE_WEEK_BINS
        elif step <= WEEK / WEEK_BINS:
            self.week = [_NAN] * WEEK_BINS
