"""Choosing the torch device."""

from __future__ import annotations

import torch

from ..errors import ParameterError

__all__ = ["resolve_device"]

_HINT = "use 'auto', 'cpu' or 'cuda[:N]'"


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The torch device for ``device``: ``"auto"`` is CUDA when present, else CPU.

    Only CPU and CUDA devices run the registration (the same code path on both);
    other torch backends (``"mps"``, ``"xpu"``, ``"meta"``...) are refused here
    rather than failing deep inside torch.

    Raises
    ------
    ParameterError
        For something that is not a device, a backend other than CPU and CUDA,
        ``"cuda"`` on a machine without CUDA, or a CUDA index beyond the GPUs present.
    """
    if isinstance(device, str) and device.strip().lower() == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, (str, torch.device)):
        raise ParameterError(f"device={device!r} is not a device: {_HINT}")
    try:
        resolved = torch.device(device.strip().lower() if isinstance(device, str) else device)
    except (RuntimeError, TypeError, ValueError) as error:
        raise ParameterError(f"device={device!r} is not a device: {_HINT}") from error
    if resolved.type not in ("cpu", "cuda"):
        raise ParameterError(f"device={device!r}: itk-suits runs on CPU or CUDA devices only; {_HINT}")
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ParameterError(
                f"device={device!r} was asked for but torch sees no CUDA device; use device='auto' or 'cpu'")
        count = torch.cuda.device_count()
        if resolved.index is not None and resolved.index >= count:
            raise ParameterError(f"device={device!r}: torch sees {count} CUDA device(s), numbered from 0")
    return resolved
