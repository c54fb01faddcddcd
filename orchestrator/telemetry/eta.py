"""A stable ETA from a bursty count of finished seeds.

Seeds finish in bursts (a chunk's seeds are counted together, workers push every 0.5 s), so
a rate over the last few seconds swings between zero and several times the true rate, and an
ETA from it between minutes and hours. ``EtaEstimator`` instead:

- waits out a warm-up (``WARMUP_S`` seconds and ``WARMUP_SEEDS`` seeds since it first saw the
  run) before it gives any ETA, then starts from the average rate of the warm-up;
- updates the rate only when the count moves, with the rate since the previous move (so the
  idle time between bursts is part of it), blended in by an EWMA whose weight grows with the
  time covered (time constant ``TAU_S``): a steady run gives a steady rate however its seeds
  are grouped;
- lowers the rate while the run stalls: once it has waited ``STALL_GAPS`` x k times the usual
  gap between bursts with no seed finished, the rate is at most 1/k of the estimate.

``fmt_eta`` rounds what it prints to what such an estimate can promise (``~25m``, not
``24m37s``). Times are the views' own clocks (seconds), so a replayed sequence gives the same
ETAs. It knows nothing of views, Ray or rendering.
"""

from __future__ import annotations

import math

WARMUP_S = 20.0
WARMUP_SEEDS = 3
TAU_S = 120.0
STALL_GAPS = 3.0  # a wait of more than this many usual gaps between bursts is a stall


class EtaEstimator:
    def __init__(self) -> None:
        self.start: tuple[float, int] | None = None  # (time, done) when first seen
        self.last_move: tuple[float, int] | None = None  # when the count last grew
        self.rate: float | None = None  # seeds/s, None during warm-up
        self.gap_s: float | None = None  # EWMA of the time between moves

    def update(self, now: float, done: int, left: int) -> float | None:
        """Seconds left for ``left`` seeds, ``done`` seeds finished so far; None while warming
        up or when nothing finishes at all."""
        if left <= 0:
            return 0.0
        if self.start is None or done < self.start[1]:  # first view, or the counts were reset
            self.start = self.last_move = (now, done)
            return None
        assert self.last_move is not None
        if done > self.last_move[1]:
            self._moved(now, done)
        if self.rate is None or self.rate <= 0:
            return None
        rate = self.rate
        idle = now - self.last_move[0]
        usual = STALL_GAPS * self.gap_s if self.gap_s else None
        if usual and idle > usual:  # stalled far longer than usual: trust the rate less
            rate *= usual / idle
        return left / rate

    def _moved(self, now: float, done: int) -> None:
        assert self.start is not None and self.last_move is not None
        t_move, d_move = self.last_move
        dt = now - t_move
        self.last_move = (now, done)
        if dt <= 0:
            return
        self.gap_s = dt if self.gap_s is None else self.gap_s + _weight(dt) * (dt - self.gap_s)
        if self.rate is None:
            t0, d0 = self.start
            if now - t0 >= WARMUP_S and done - d0 >= WARMUP_SEEDS:
                self.rate = (done - d0) / (now - t0)
            return
        self.rate += _weight(dt) * ((done - d_move) / dt - self.rate)


def _weight(dt: float) -> float:
    """EWMA weight of an observation covering ``dt`` seconds."""
    return 1.0 - math.exp(-dt / TAU_S)


def fmt_eta(eta_s: float | None) -> str:
    """``-`` (unknown), ``<1m``, ``~7m`` (whole minutes below 10), ``~25m`` (5 minutes below
    an hour), ``~2h15m`` (15 minutes below a day), ``~3d4h``."""
    if eta_s is None:
        return "-"
    if eta_s < 60:
        return "<1m" if eta_s > 0 else "0m"
    minutes = eta_s / 60
    if minutes < 10:
        return f"~{round(minutes)}m"
    if minutes < 60:
        step = max(5, 5 * round(minutes / 5))
        return f"~{step}m" if step < 60 else "~1h"
    quarters = round(minutes / 15)
    hours, rest = divmod(quarters * 15, 60)
    if hours < 24:
        return f"~{hours}h{rest:02d}m" if rest else f"~{hours}h"
    days, hours = divmod(round(minutes / 60), 24)
    return f"~{days}d{hours}h" if hours else f"~{days}d"


def fmt_duration(seconds: float | None) -> str:
    """An exact elapsed time: ``45s``, ``2m05s``, ``1h02m``."""
    if seconds is None:
        return "-"
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
