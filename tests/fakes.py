"""Test doubles shared across test modules."""

from instrument.protocols import MicrowaveConstraints


class WorldMicrowave:
    """A minimal MicrowaveSource writing the World directly, for tests whose subject is elsewhere."""

    name = "mw"

    def __init__(self, world) -> None:
        self.world = world

    @property
    def constraints(self) -> MicrowaveConstraints:
        """No hardware list: sweeps with it step in software."""
        return MicrowaveConstraints(1e6, 20e9, -120.0, 30.0)

    def set_frequency(self, frequency_hz: float) -> None:
        self.world.mw_frequency_hz = frequency_hz

    def set_power(self, power_dbm: float) -> None:
        self.world.mw_power_dbm = power_dbm

    def set_output(self, on: bool) -> None:
        self.world.mw_output = on

    def safe_state(self) -> None:
        self.world.mw_output = False

    def close(self) -> None:
        self.safe_state()
