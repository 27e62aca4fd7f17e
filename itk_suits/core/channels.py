"""Fewer feature channels: the principal components of a pair's features.

The descent's cost grows with the number of feature channels, and descriptors
such as MIND-SSC (12 channels in 3D) are strongly correlated. Projecting the
fixed and the moving features of a pair onto their leading principal
components (one basis for both, estimated on a subset of the voxels of both
images) keeps most of their variance in a few channels.
"""

from __future__ import annotations

import torch

__all__ = ["principal_channels"]


def principal_channels(
    fixed: torch.Tensor, moving: torch.Tensor, count: int, samples: int = 2**16, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Project both feature images on their ``count`` leading principal components.

    Parameters
    ----------
    fixed, moving : torch.Tensor
        ``[B, C, *spatial]`` features of the same grid (batch elements are
        projected each with their own basis).
    count : int
        Channels kept; nothing changes when ``count >= C``.
    samples : int
        Voxels per image used to estimate the covariance (a random subset).
    seed : int
        Seed of that subset.

    Returns
    -------
    fixed, moving : torch.Tensor
        ``[B, min(count, C), *spatial]``, centred on the pair's mean feature.
    kept : float
        The smallest, over the batch, fraction of the feature variance the
        kept components hold (1.0 when nothing was dropped).
    """
    batch, channels = fixed.shape[:2]
    if count >= channels:
        return fixed, moving, 1.0
    generator = torch.Generator().manual_seed(seed)
    voxels = fixed[0, 0].numel()
    chosen = torch.randperm(voxels, generator=generator)[:samples].to(fixed.device)
    projected_fixed, projected_moving, kept = [], [], 1.0
    for element in range(batch):
        rows = torch.cat([image[element].reshape(channels, -1).index_select(1, chosen)
                          for image in (fixed, moving)], dim=1).double()
        mean = rows.mean(dim=1, keepdim=True)
        covariance = (rows - mean) @ (rows - mean).T / rows.shape[1]
        values, vectors = torch.linalg.eigh(covariance)  # ascending
        basis = vectors[:, -count:].flip(1).to(fixed.dtype)
        kept = min(kept, float(values[-count:].sum() / values.sum().clamp(min=1e-30)))
        centre = mean.to(fixed.dtype).reshape((channels,) + (1,) * (fixed.ndim - 2))
        for image, out in ((fixed, projected_fixed), (moving, projected_moving)):
            out.append(torch.einsum("c...,ck->k...", image[element] - centre, basis))
    return torch.stack(projected_fixed), torch.stack(projected_moving), kept
