"""Choosing the torch device."""

from __future__ import annotations

import torch

from ..errors import ParameterError

__all__ = ["resolve_device"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The torch device for ``device``: ``"auto"`` is CUDA when present, else CPU.

    Raises
    ------
    ParameterError
        For an unknown device string, or ``"cuda"`` on a machine without CUDA.
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ParameterError(f"device={device!r} is not a device: use 'auto', 'cpu' or 'cuda[:N]'") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError(f"device={device!r} was asked for but torch sees no CUDA device; use device='auto' or 'cpu'")
    return resolved
