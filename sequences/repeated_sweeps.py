"""What every repeated CW sweep (lock-in or intensity camera) shares: its repeat settings and the glue
between them and ``sequences.sweep_order``.

``RepeatedSweeps`` is a dataclass base: ``repeats``, ``order``, ``order_seed``, ``max_runtime_s`` and
``clock`` (keyword-only, after the sweep's own fields), the planned sweeps and their visits, the
sweep-time estimate (the sweep's ``point_duration_s`` and two coil ramps), the checks, the
parameters that rebuild the plan, and the passes walked with the coils set per configuration and
the runtime limit enforced (``SweepRunner``), leaving ``end_note``. A sweep subclass provides
``frequencies_hz``, ``coil_currents_a`` and ``point_duration_s`` and builds its steps with
``visit_values`` and ``visit_label``.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from instrument.protocols import CoilDriver, SafetyLimits
from sequences.sweep_order import (
    VISIT_COLUMNS,
    Pass,
    SweepPlan,
    SweepRunner,
    check_order,
    new_seed,
    plan_sweeps,
    sweeps_within,
)

CONFIG_LABELS = ("I-off", "I-on")
"""The configurations of a CW field-map sweep: coils off, then the chosen coils on."""


@dataclass(kw_only=True)
class RepeatedSweeps(ABC):
    """Repeat settings of a CW sweep over ``frequencies_hz`` with I-off and I-on passes.

    Args:
        repeats: sweeps to run (each an I-off and an I-on pass).
        order: visiting order of the sweeps (``sequences.sweep_order.ORDERS``).
        order_seed: seed of a ``random`` order (None: drawn once, recorded in the parameters).
        max_runtime_s: run only the whole sweeps that fit in this time (None: no limit).
        clock: the clock the runtime limit is measured on: the wall clock by default; the service
            passes the station's (simulated time in simulation); tests give a fake one.
    """

    if TYPE_CHECKING:  # the subclass's own fields (declared there, so they keep their positions)
        frequencies_hz: np.ndarray
        coil_currents_a: np.ndarray

    repeats: int = 1
    order: str = "sequential"
    order_seed: int | None = None
    max_runtime_s: float | None = None
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)

    _ramp_rate_a_per_s: float = field(default=float("inf"), init=False, repr=False, compare=False)
    """The lab's coil ramp rate, learnt in ``check_repeats`` (coil ramps count in ``sweep_duration_s``)."""
    end_note: str = field(default="", init=False, compare=False)
    """After a run: how many sweeps ran and why it stopped (the engine stores it as the end reason)."""

    def __post_init__(self) -> None:
        self.frequencies_hz = np.asarray(self.frequencies_hz, dtype=float)
        self.coil_currents_a = np.asarray(self.coil_currents_a, dtype=float)
        if self.order == "random" and self.order_seed is None:
            self.order_seed = new_seed()  # drawn once, so plan, parameters and run agree

    @property
    @abstractmethod
    def point_duration_s(self) -> float:
        """Estimated time of one frequency point (the subclass's camera time and settling)."""

    @property
    def sweep_duration_s(self) -> float:
        """Estimated time of one sweep: every point of both passes, and two coil ramps at the lab's
        ramp rate once ``check_repeats`` has seen the limits (bus latency adds to it; the runtime
        limit also checks the measured pace)."""
        largest_a = float(np.max(np.abs(self.coil_currents_a), initial=0.0))
        return len(CONFIG_LABELS) * (len(self.frequencies_hz) * self.point_duration_s
                                     + largest_a / self._ramp_rate_a_per_s)

    @property
    def planned_sweeps(self) -> int:
        """The sweeps that will run: ``repeats``, or fewer when ``max_runtime_s`` holds fewer."""
        return sweeps_within(self.max_runtime_s, self.sweep_duration_s, self.repeats)

    @property
    def sweep_plan(self) -> SweepPlan:
        """The visits of the planned sweeps (``sequences.sweep_order``)."""
        return plan_sweeps(self.order, self.planned_sweeps, len(CONFIG_LABELS), len(self.frequencies_hz),
                           self.order_seed)

    @property
    def n_steps(self) -> int:
        return self.planned_sweeps * len(CONFIG_LABELS) * len(self.frequencies_hz)

    @property
    def estimated_duration_s(self) -> float:
        """The planned sweeps' ``sweep_duration_s``."""
        return self.planned_sweeps * self.sweep_duration_s

    def repeat_parameters(self) -> dict[str, Any]:
        """The parameters that rebuild the visits (``plan_from_metadata``) and say what was asked."""
        return {
            "configs": list(CONFIG_LABELS),
            **self.sweep_plan.metadata(),  # order, planned repeats, order_seed
            "repeats_requested": self.repeats,
            "max_runtime_s": self.max_runtime_s,
            "sweep_duration_s": self.sweep_duration_s,
            "step_columns": list(VISIT_COLUMNS),
        }

    def check_repeats(self, limits: SafetyLimits) -> None:
        """Learn the coil ramp rate; refuse a bad order, repeat count or a too-short runtime limit.

        Raises:
            ValueError: names `order`, `repeats` or `max_runtime`.
        """
        rate = float(getattr(limits, "coil_ramp_rate_a_per_s", 0.0) or 0.0)
        self._ramp_rate_a_per_s = rate if np.isfinite(rate) and rate > 0 else float("inf")
        check_order(self.order, self.repeats)
        sweeps_within(self.max_runtime_s, self.sweep_duration_s, self.repeats)

    def passes(self, coils: CoilDriver) -> Iterator[Pass]:
        """The planned passes, each configuration's coil currents set as its pass starts, within the
        runtime limit (``SweepRunner``); ``end_note`` says how many sweeps ran and why."""
        self.end_note = ""
        currents = (np.zeros(coils.n_channels), self.coil_currents_a)
        runner = SweepRunner(self.sweep_plan, self.repeats, self.sweep_duration_s, self.max_runtime_s,
                             self.clock)
        yield from runner.passes(lambda config: coils.set_currents(currents[config]))
        self.end_note = runner.note

    @staticmethod
    def visit_values(visit: Pass, position: int) -> dict[str, int]:
        """The step's ``VISIT_COLUMNS`` scalars: what the analysis averages the sweeps by."""
        return {"sweep": visit.sweep, "config": visit.config,
                "frequency_index": visit.frequency_indices[position]}

    def visit_label(self, visit: Pass, position: int) -> str:
        """``[sweep N ]I-off 2.870000 GHz``: the step's label (the sweep only when several run)."""
        frequency = float(self.frequencies_hz[visit.frequency_indices[position]])
        label = f"{CONFIG_LABELS[visit.config]} {frequency / 1e9:.6f} GHz"
        return f"sweep {visit.sweep + 1} {label}" if self.repeats > 1 else label
