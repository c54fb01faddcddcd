"""One rate limit's budget: a token bucket plus a sliding log of its charges.

Each limit is a token bucket whose capacity is one minute's budget, refilled
continuously at ``limit / 60`` per second (it starts with one second's worth, so a job starts
smoothly). A bucket alone admits up to twice its limit in one 60 s window (a full bucket plus a
minute of refill), so each grant is also checked against a sliding log of the charges of the
last ``WINDOW_S`` seconds (60 s plus a 1 s margin for the time a granted request takes to reach
the server); charges are corrected in the log too. The log is what guarantees "never more than
the limit in any minute"; the bucket is what spreads sends over the minute.

What it does NOT do: know which resource it counts, wait, lock or talk to Ray: the
``RateLimiter`` actor (``orchestrator.teacher.ratelimit``) owns one per limit and asks it how
long a charge must wait, charges it and corrects charges from replies' ``usage``.
"""

from __future__ import annotations

from collections import deque

__all__ = ["WINDOW_S", "Budget"]

WINDOW_S = 61.0  # sliding window checked per grant: a minute plus 1 s of send latency margin


class Budget:
    """Bucket (capacity = a minute's budget, continuous refill) plus a sliding charge log."""

    def __init__(self, per_minute: float, now: float) -> None:
        self.limit = per_minute
        self.level = per_minute / 60.0  # one second's budget to start
        self.stamp = now
        self.log: deque[list[float]] = deque()  # [time, amount]
        self.window_sum = 0.0
        self.blocked_until = 0.0  # the server said this resource is spent until then

    def _refill(self, now: float) -> None:
        if now > self.stamp:  # (the stamp is in the future while a 429 pause lasts)
            self.level = min(self.limit, self.level + (now - self.stamp) * self.limit / 60.0)
            self.stamp = now
        while self.log and self.log[0][0] <= now - WINDOW_S:
            self.window_sum -= self.log.popleft()[1]

    def wait_for(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` can be charged (0 = now)."""
        self._refill(now)
        amount = min(amount, self.limit)
        waits = [self.blocked_until - now]
        if self.level < amount:
            waits.append((amount - self.level) * 60.0 / self.limit)
        excess = self.window_sum + amount - self.limit
        if excess > 1e-9:
            freed = 0.0
            for stamp, charged in self.log:
                freed += charged
                if freed >= excess:
                    waits.append(stamp + WINDOW_S - now)
                    break
        return max(0.0, *waits)

    def charge(self, amount: float, now: float) -> list[float]:
        self._refill(now)
        self.level -= min(amount, self.limit)
        entry = [now, amount]
        self.log.append(entry)
        self.window_sum += amount
        return entry

    def correct(self, entry: list[float], actual: float, now: float) -> None:
        self._refill(now)
        delta = actual - entry[1]
        self.level = min(self.limit, self.level - delta)
        if entry[0] > now - WINDOW_S:  # still in the log
            entry[1] = actual
            self.window_sum += delta
