"""The one error type of a request that cannot run."""

from __future__ import annotations


class RequestError(ValueError):
    """A measurement request that cannot run; the message names the setting (``instrument.settings``) and
    the fix. Front ends show it as a usage error (CLI) or beside the Start button (GUI)."""
