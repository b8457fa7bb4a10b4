"""QDM acquisition suite: control, acquisition and reconstruction for widefield NV microscopes."""

__version__ = "0.1.0"
