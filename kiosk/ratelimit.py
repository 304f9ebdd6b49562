"""Rate limiting of repeated denials at the camera: pure logic with an injectable clock.

Someone trying photo after photo at the door gets denied again and again. After
``max_denials`` denials within ``window_s`` seconds a RateLimiter starts a lockout of
``first_lockout_s`` seconds. Each further lockout that starts within ``forgive_after_s`` of
the end of the previous one lasts twice as long, up to ``max_lockout_s``;
a quiet spell longer than that starts again from ``first_lockout_s``. A lockout clears the
count: the next one needs ``max_denials`` fresh denials.

RateLimits keeps one such count per key (the kiosk keys them by face track and by claimed
person, see kiosk.runner), so one person's attempts never lock anybody else out.
"""
from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Hashable


class RateLimiter:
    def __init__(
        self,
        max_denials: int = 5,
        window_s: float = 60.0,
        first_lockout_s: float = 30.0,
        max_lockout_s: float = 480.0,
        forgive_after_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_denials < 1:
            raise ValueError(f"max_denials must be at least 1, got {max_denials}")
        if not 0 < first_lockout_s <= max_lockout_s:
            raise ValueError(f"need 0 < first_lockout_s <= max_lockout_s, got {first_lockout_s} and {max_lockout_s}")
        if not window_s > 0 or forgive_after_s < 0:
            raise ValueError(f"window_s must be positive and forgive_after_s not negative, "
                             f"got {window_s} and {forgive_after_s}")
        self.max_denials = max_denials
        self.window_s = window_s
        self.first_lockout_s = first_lockout_s
        self.max_lockout_s = max_lockout_s
        self.forgive_after_s = forgive_after_s
        self._clock = clock
        self._denials: deque[float] = deque()
        self._lockouts = 0  # lockouts in the current series (each doubles the next)
        self._locked_until: float | None = None

    def record_denial(self) -> float:
        """Count one denial now; returns the lockout's length in seconds if it starts one, else 0."""
        now = self._clock()
        if self.remaining() > 0:
            return 0.0  # nothing is recognised while locked out; a stray call does not extend it
        self._denials.append(now)
        while self._denials and now - self._denials[0] > self.window_s:
            self._denials.popleft()
        if len(self._denials) < self.max_denials:
            return 0.0
        if self._locked_until is not None and now - self._locked_until > self.forgive_after_s:
            self._lockouts = 0
        length = min(self.first_lockout_s * 2 ** self._lockouts, self.max_lockout_s)
        self._lockouts += 1
        self._locked_until = now + length
        self._denials.clear()
        return length

    def remaining(self) -> float:
        """Seconds left of the current lockout; 0 when the kiosk may recognise."""
        if self._locked_until is None:
            return 0.0
        return max(self._locked_until - self._clock(), 0.0)

    def idle(self) -> bool:
        """Whether this limiter remembers nothing that still matters: no denial within the window,
        no lockout, and none recent enough to double the next."""
        now = self._clock()
        if any(now - t <= self.window_s for t in self._denials):
            return False
        return self._locked_until is None or now - self._locked_until > self.forgive_after_s

    @property
    def locked_until(self) -> float | None:
        """The clock's time the latest lockout ends (or ended); None before any."""
        return self._locked_until


class RateLimits:
    """One RateLimiter per key, all with the same settings; keys nobody needs are forgotten."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, **settings: float) -> None:
        RateLimiter(clock=clock, **settings)  # checks the settings now, not at the first denial
        self._settings = settings
        self._clock = clock
        self._limiters: dict[Hashable, RateLimiter] = {}

    def record_denial(self, key: Hashable) -> float:
        """Count one denial for `key`; the length of the lockout it starts, else 0."""
        limiter = self._limiters.get(key)
        if limiter is None:
            self._forget_idle()
            limiter = self._limiters[key] = RateLimiter(clock=self._clock, **self._settings)
        return limiter.record_denial()

    def remaining(self, key: Hashable) -> float:
        """Seconds left of `key`'s lockout; 0 when it may be recognised."""
        limiter = self._limiters.get(key)
        return limiter.remaining() if limiter is not None else 0.0

    def locked_until(self, key: Hashable) -> float | None:
        """When `key`'s latest lockout ends (or ended), on the clock; None before any."""
        limiter = self._limiters.get(key)
        return limiter.locked_until if limiter is not None else None

    def keys(self) -> list[Hashable]:
        """The keys with a count or a lockout remembered."""
        return list(self._limiters)

    def _forget_idle(self) -> None:
        for key in [k for k, limiter in self._limiters.items() if limiter.idle()]:
            del self._limiters[key]
