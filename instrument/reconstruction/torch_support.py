"""Small torch helpers shared by the neural reconstructions; torch is imported only when used."""

from __future__ import annotations


class flush_denormals:  # noqa: N801 - used like a function-style context manager
    """Context manager: flush float denormals to zero while optimising, restore the setting after.

    Masked or sparse outputs drive many values towards zero; with denormals left on, CPU kernels on
    those tiny numbers run up to ten times slower.
    """

    def __enter__(self):
        import torch

        self._torch = torch
        self._enabled = torch.set_flush_denormal(True)
        return self

    def __exit__(self, *exc) -> None:
        if self._enabled:
            self._torch.set_flush_denormal(False)


def pick_device(device: str | None):
    """The requested torch device, else CUDA when present, else the CPU."""
    import torch

    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
