"""The visiting order of repeated CW sweeps: which (sweep, configuration, frequency) comes when.

A pure plan, usable by any CW sequence (lock-in or intensity camera): ``plan_sweeps`` gives the
``passes`` of a run, each a run of one configuration's frequencies in the order they are visited, and
the flat ``visits`` table (sweep, configuration, frequency index) of every step. ``sweeps_within``
plans how many whole sweeps fit a runtime limit, and ``SweepRunner`` walks the passes while a
sequence runs: it switches the configuration as a pass starts and stops before a sweep that would
end past the limit, leaving a ``note`` of how many sweeps ran and why (a sequence's ``end_note``).
A sequence stores each step's ``VISIT_COLUMNS`` as scalars; ``instrument.analysis.cw_run`` averages
the complete sweeps from them. A sweep holds one
pass per configuration (I-off and I-on), so I-off and I-on are interleaved sweep by sweep and the
coils switch once per pass, not once per point (a coil's ramp and thermal settling cost more than
a pass's worth of points on real drivers).

Orders (``ORDERS``), and why:

- ``sequential``: every pass up in frequency, configurations in their own order in every sweep
  (I-off, I-on). One sweep is exactly the historical CW sweep. A resonance that drifts during the
  run biases the result: I-on is always measured one pass after I-off, so a drift rate ``v`` adds
  ``v`` x (pass time) to every I-on - I-off difference, however many sweeps are averaged.
- ``random``: every pass visits the frequencies in a fresh permutation drawn from
  ``numpy.random.default_rng(seed)`` pass by pass (the seed is recorded, so the order can be
  rebuilt); the configurations alternate their order from sweep to sweep (I-off, I-on, then I-on,
  I-off). A drift then turns into noise on the spectrum instead of a slope across it, and the
  alternation cancels the I-on - I-off time offset of every pair of sweeps.
- ``interleaved``: passes alternate up and down in frequency (up, down, up, down) and the
  configurations alternate as in ``random`` (sweep 0: I-off up, I-on down; sweep 1: I-on up,
  I-off down). Over each pair of sweeps every (configuration, frequency) is visited at the same mean
  time, so a linear drift cancels exactly for every point of every spectrum: deterministic, and
  the best choice for an even number of sweeps.

With an odd number of sweeps the last sweep's offset is not cancelled (it is diluted by the number
of sweeps); ``SweepPlan.balanced`` says whether the plan cancels a linear drift.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from instrument.settings import setting

__all__ = ["ORDERS", "VISIT_COLUMNS", "Pass", "SweepPlan", "SweepRunner", "check_order", "new_seed",
           "plan_from_metadata", "plan_sweeps", "sweeps_within"]

log = logging.getLogger(__name__)

ORDERS = ("sequential", "random", "interleaved")
VISIT_COLUMNS = ("sweep", "config", "frequency_index")
"""The columns of ``SweepPlan.visits``; sequences store them as each step's scalars."""


@dataclass(frozen=True)
class Pass:
    """One configuration's frequencies in one sweep, in visiting order.

    Attributes:
        sweep: sweep number (0-based).
        config: configuration number (0: I-off, 1: I-on for the CW field map).
        frequency_indices: indices into the sweep's frequency array, in the order they are visited.
        first_step: the run's step number of the pass's first visit.
    """

    sweep: int
    config: int
    frequency_indices: tuple[int, ...]
    first_step: int


@dataclass(frozen=True)
class SweepPlan:
    """The visits of a repeated CW run. Build it with ``plan_sweeps``.

    Attributes:
        order: one of ``ORDERS``.
        repeats: number of sweeps.
        n_configs: configurations per sweep.
        n_frequencies: frequencies per pass.
        seed: the seed of a ``random`` order (None for the others).
        passes: the passes in the order they run.
    """

    order: str
    repeats: int
    n_configs: int
    n_frequencies: int
    seed: int | None
    passes: tuple[Pass, ...]

    @property
    def steps_per_sweep(self) -> int:
        return self.n_configs * self.n_frequencies

    @property
    def n_steps(self) -> int:
        return self.repeats * self.steps_per_sweep

    @property
    def visits(self) -> np.ndarray:
        """(n_steps, 3) int table of (sweep, config, frequency index), one row per step in run order."""
        rows = [(p.sweep, p.config, i) for p in self.passes for i in p.frequency_indices]
        return np.asarray(rows, dtype=int).reshape(-1, 3)

    @property
    def balanced(self) -> bool:
        """True when a linear drift cancels in the average (a single configuration's spectrum and the
        configurations' difference): ``interleaved`` with an even number of sweeps."""
        return self.order == "interleaved" and self.repeats % 2 == 0

    def sweep_passes(self, sweep: int) -> tuple[Pass, ...]:
        """The passes of one sweep, in run order."""
        return tuple(p for p in self.passes if p.sweep == sweep)

    def truncated(self, repeats: int) -> SweepPlan:
        """The first ``repeats`` sweeps of this plan (same seed, same order of those sweeps)."""
        if not 1 <= repeats <= self.repeats:
            raise ValueError(f"cannot keep {repeats} of {self.repeats} sweeps")
        return SweepPlan(self.order, repeats, self.n_configs, self.n_frequencies, self.seed,
                         tuple(p for p in self.passes if p.sweep < repeats))

    def metadata(self) -> dict[str, Any]:
        """What rebuilds the plan (``plan_from_metadata``): stored with the run's sequence parameters."""
        return {"order": self.order, "repeats": self.repeats, "order_seed": self.seed,
                "balanced": self.balanced}


def check_order(order: str, repeats: int) -> None:
    """Refuse an unknown order or a repeat count below one, naming the setting.

    Raises:
        ValueError: names `order` or `repeats` and what to give instead.
    """
    if order not in ORDERS:
        raise ValueError(f"{setting('order')} must be one of {', '.join(ORDERS)}, got {order!r}")
    if isinstance(repeats, bool) or int(repeats) != repeats or repeats < 1:
        raise ValueError(f"{setting('repeats')} must be a whole number of sweeps >= 1, got {repeats!r}")


def new_seed() -> int:
    """A fresh seed for a ``random`` order (32 bits: short enough to read and type back)."""
    return secrets.randbits(32)


def plan_sweeps(order: str, repeats: int, n_configs: int, n_frequencies: int,
                seed: int | None = None) -> SweepPlan:
    """The passes of ``repeats`` sweeps of ``n_configs`` configurations over ``n_frequencies`` points.

    Args:
        order: one of ``ORDERS`` (see the module docstring).
        repeats: number of sweeps (>= 1).
        n_configs: configurations per sweep (2 for I-off/I-on).
        n_frequencies: points per pass.
        seed: ``random`` only: seed of the permutations; None draws one (``new_seed``), which the
            plan records. Ignored (recorded as None) for the other orders.

    Raises:
        ValueError: unknown order, repeats < 1, or no configurations or frequencies.
    """
    check_order(order, repeats)
    if n_configs < 1 or n_frequencies < 1:
        raise ValueError(f"a sweep needs configurations and frequencies, got {n_configs} and {n_frequencies}")
    repeats = int(repeats)
    if order == "random":
        seed = new_seed() if seed is None else int(seed)
        rng = np.random.default_rng(seed)
    else:
        seed = None
    up = tuple(range(n_frequencies))
    passes: list[Pass] = []
    step = 0
    for sweep in range(repeats):
        configs = list(range(n_configs))
        if order != "sequential" and sweep % 2 == 1:
            configs.reverse()  # ABBA: the configurations' mean times agree over a pair of sweeps
        for config in configs:
            if order == "random":
                indices = tuple(int(i) for i in rng.permutation(n_frequencies))
            elif order == "interleaved" and len(passes) % 2 == 1:
                indices = up[::-1]
            else:
                indices = up
            passes.append(Pass(sweep, config, indices, step))
            step += n_frequencies
    return SweepPlan(order, repeats, n_configs, n_frequencies, seed, tuple(passes))


def plan_from_metadata(parameters: Mapping[str, Any], n_configs: int, n_frequencies: int) -> SweepPlan:
    """The plan a run recorded (``SweepPlan.metadata`` in its sequence parameters); a run stored
    before repeats existed is one sequential sweep."""
    return plan_sweeps(str(parameters.get("order", "sequential")), int(parameters.get("repeats", 1)),
                       n_configs, n_frequencies, parameters.get("order_seed"))


def sweeps_within(max_runtime_s: float | None, sweep_s: float, repeats: int) -> int:
    """How many whole sweeps of ``sweep_s`` fit in ``max_runtime_s`` (None: no limit), at most ``repeats``.

    Raises:
        ValueError: the limit is not a positive time, or not even one sweep fits; names `max_runtime`.
    """
    if max_runtime_s is None:
        return repeats
    if not np.isfinite(max_runtime_s) or max_runtime_s <= 0:
        raise ValueError(f"{setting('max_runtime')} must be a positive time, got {max_runtime_s!r} s")
    fit = int(max_runtime_s // sweep_s) if sweep_s > 0 else repeats
    if fit < 1:
        raise ValueError(f"{setting('max_runtime')} of {max_runtime_s:g} s is shorter than one sweep "
                         f"(about {sweep_s:.3g} s); raise {setting('max_runtime')} or use fewer "
                         f"{setting('points')} or {setting('frames_per_point')}")
    return min(repeats, fit)


@dataclass
class SweepRunner:
    """Walks a plan's passes while a sequence runs, enforcing the runtime limit sweep by sweep.

    Before every sweep after the first it compares the time used so far plus one more sweep, at the
    measured pace but never faster than ``sweep_s``, with ``max_runtime_s``: a sweep that would end
    after it does not start. A sweep that started always finishes, so every stored sweep is whole.

    Args:
        plan: the planned sweeps (already cut to those that fit, ``sweeps_within``).
        requested: the sweeps the operator asked for (``plan.repeats`` or more).
        sweep_s: the estimated time of one sweep.
        max_runtime_s: the limit (None: none).
        clock: seconds on the station's clock (the wall clock, or simulated time in simulation).
    """

    plan: SweepPlan
    requested: int
    sweep_s: float
    max_runtime_s: float | None = None
    clock: Callable[[], float] = time.monotonic
    note: str = field(default="", init=False)
    """After the passes: how many sweeps ran and why it stopped (empty for a single requested sweep)."""

    def passes(self, set_config: Callable[[int], None]) -> Iterator[Pass]:
        """The passes to measure; ``set_config(config)`` is called when a pass changes configuration."""
        self.note = ""
        started = self.clock()
        config: int | None = None
        sweep = 0
        for visit in self.plan.passes:
            if visit.sweep != sweep:  # the first pass of a new sweep: ``sweep`` sweeps are complete
                sweep = visit.sweep
                if self._out_of_time(started, sweep):
                    return
            if visit.config != config:
                set_config(visit.config)
                config = visit.config
            yield visit
        n = self.plan.repeats
        if n < self.requested:
            self.note = (f"{n} of {self.requested} sweeps ran: only {n} sweep{'s' if n > 1 else ''} of about "
                         f"{self.sweep_s:.3g} s fit in {setting('max_runtime')} ({self.max_runtime_s:g} s)")
        elif self.requested > 1:
            self.note = f"{n} of {self.requested} sweeps ran ({self.plan.order} order)"

    def _out_of_time(self, started: float, done: int) -> bool:
        """True (with ``note`` set) when sweep ``done + 1`` would end after ``max_runtime_s``."""
        if self.max_runtime_s is None:
            return False
        elapsed = self.clock() - started
        pace = max(self.sweep_s, elapsed / done)
        if elapsed + pace <= self.max_runtime_s:
            return False
        self.note = (f"{done} of {self.requested} sweeps ran ({self.plan.repeats} planned): after "
                     f"{elapsed:.3g} s, another sweep (about {pace:.3g} s at the pace so far) would end "
                     f"after {setting('max_runtime')} ({self.max_runtime_s:g} s)")
        log.info("%s", self.note)
        return True
