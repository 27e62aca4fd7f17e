"""Training the feature networks: the paper's Algorithm 1 and the unrolled mode.

Both modes share the outer loop of Algorithm 1: the scales of the schedule
in order; per scale, every pair keeps its own control grid (its alignment
state, refined from the previous scale) and grid optimizer; the pair
presentation scheme (:mod:`.scheme`) draws mini-batches of pairs at mixed
alignment stages; each presentation advances a pair's grid and yields a
feature loss, and the feature optimizer (Adam) steps once per mini-batch.

* ``mode="algorithm1"``: a presentation runs ``grid_iterations`` (5) grid
  iterations with the current features (not tracked), then the tracked
  feature step is matched to the SDM step (:func:`.losses.step_matching_loss`).
* ``mode="unrolled"``: a presentation runs ``unrolled_steps`` grid iterations
  *tracked*, and the loss is the alignment of the SDMs they reach
  (:func:`.losses.unrolled_alignment_loss`).

Every loss is logged with the loss of constant features; their ratio is the
collapse signal (see :mod:`.losses`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from ..core.descent import confidence_floor
from ..core.optimizer import BSplineDescentModule, DescentSettings, GridAdam, Scale, adam_learning_rate
from ..errors import ParameterError
from ..features.cnn import FeaturePair
from .losses import LossValue, step_matching_loss, unrolled_alignment_loss
from .scheme import presentation_scheme

__all__ = ["TrainingPair", "TrainingSettings", "FeatureTrainer", "MODES"]

MODES = ("algorithm1", "unrolled")


@dataclass
class TrainingPair:
    """One training pair on a common grid.

    Attributes
    ----------
    fixed, moving : torch.Tensor
        ``[1, 1, *spatial]`` intensities (the moving image of another subject and
        modality, already on the fixed grid).
    fixed_sdm, moving_sdm : torch.Tensor
        ``[1, L + 1, *spatial]`` scaled signed distance maps (background and each label).
    """

    fixed: torch.Tensor
    moving: torch.Tensor
    fixed_sdm: torch.Tensor
    moving_sdm: torch.Tensor

    def to(self, device) -> "TrainingPair":
        return TrainingPair(*(t.to(device) for t in (self.fixed, self.moving, self.fixed_sdm, self.moving_sdm)))


@dataclass(frozen=True)
class TrainingSettings:
    """Settings of feature training (defaults: the paper's numbers where it gives them).

    Attributes
    ----------
    mode : {"algorithm1", "unrolled"}
        Step matching (the paper) or unrolled alignment.
    scales : tuple of Scale
        Grid spacings (voxels), grid iterations per pair and smoothness per scale.
    grid_iterations : int
        Grid iterations between two feature updates (Algorithm 1: 5).
    unrolled_steps : int
        Tracked grid iterations per presentation (unrolled mode).
    feature_learning_rate : float
        Adam learning rate of the feature networks (0.001).
    grid_learning_rate : float
        Grid Adam step in normalised grid units (0.005).
    batch_pairs : int
        Pairs per mini-batch (2).
    subintervals : int
        Rounds ``p`` of the pair presentation scheme.
    sdm_band : float
        Algorithm 1 supervises where ``|SDM| <`` this (0.1).
    descent : DescentSettings
        Confidence floor and Adam settings of the grid optimizer.
    seed : int
        Seeds the presentation scheme and torch.
    """

    mode: str = "algorithm1"
    scales: tuple = (Scale(20, 300, 0.2), Scale(10, 300, 0.2), Scale(7, 300, 0.4))
    grid_iterations: int = 5
    unrolled_steps: int = 10
    feature_learning_rate: float = 1e-3
    grid_learning_rate: float = 0.005
    batch_pairs: int = 2
    subintervals: int = 4
    sdm_band: float = 0.1
    descent: DescentSettings = field(default_factory=DescentSettings)
    seed: int = 0

    def presentations(self, scale: Scale) -> int:
        """Presentations of each pair at ``scale``: its grid iterations per presentation."""
        per = self.grid_iterations if self.mode == "algorithm1" else self.unrolled_steps
        return max(1, scale.iterations // per)


@dataclass
class _PairState:
    """A pair's alignment state at the current scale."""

    module: BSplineDescentModule
    coefficients: torch.Tensor
    optimizer: GridAdam
    fixed_sdm: torch.Tensor
    moving_sdm: torch.Tensor


class FeatureTrainer:
    """Trains a :class:`FeaturePair` on pairs with signed distance maps.

    Parameters
    ----------
    networks : FeaturePair
        The feature networks (updated in place).
    pairs : sequence of TrainingPair
        Training pairs (moved to the networks' device).
    settings : TrainingSettings
        Mode and schedule.
    """

    def __init__(self, networks: FeaturePair, pairs: Sequence[TrainingPair], settings: TrainingSettings = TrainingSettings()):
        if settings.mode not in MODES:
            raise ParameterError(f"unknown training mode {settings.mode!r}; use one of {MODES}")
        if not pairs:
            raise ParameterError("feature training needs at least one pair")
        self.networks = networks
        self.device = next(networks.parameters()).device
        self.pairs = [pair.to(self.device) for pair in pairs]
        self.settings = settings
        self.optimizer = torch.optim.Adam(networks.parameters(), lr=settings.feature_learning_rate)
        self.rng = np.random.default_rng(settings.seed)
        self.history: list[dict] = []

    def train(self, callback: Callable[[dict], None] | None = None) -> list[dict]:
        """Run every scale; returns (and keeps in :attr:`history`) one record per feature update."""
        torch.manual_seed(self.settings.seed)
        states: list[_PairState] | None = None
        start = time.perf_counter()
        for index, scale in enumerate(self.settings.scales):
            states = [self._scale_state(pair, scale, None if states is None else states[i])
                      for i, pair in enumerate(self.pairs)]
            scheme = presentation_scheme(len(self.pairs), self.settings.presentations(scale),
                                         self.settings.subintervals, self.settings.batch_pairs, self.rng)
            for batch in scheme:
                values = [self.present(self.pairs[i], states[i], scale) for i in batch]
                loss = sum(value.loss for value in values) / len(values)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                constant = sum(value.constant for value in values) / len(values)
                record = {
                    "scale": index, "update": len(self.history), "loss": float(loss.detach()),
                    "constant_loss": constant, "ratio": float(loss.detach()) / max(constant, 1e-12),
                    "seconds": time.perf_counter() - start,
                }
                self.history.append(record)
                if callback is not None:
                    callback(record)
        return self.history

    def _scale_state(self, pair: TrainingPair, scale: Scale, previous: _PairState | None) -> _PairState:
        shape = pair.fixed.shape[2:]
        module = BSplineDescentModule(shape, scale.grid_spacing, scale.resolution, self.device)
        if previous is None:
            coefficients = module.grid.zeros()
        else:
            coefficients = previous.module.grid.refine(previous.coefficients, module.grid)
        rate = adam_learning_rate(shape, self.settings.grid_learning_rate)
        optimizer = GridAdam(coefficients, rate, self.settings.descent.betas, self.settings.descent.adam_eps)
        return _PairState(module, coefficients, optimizer, module.level(pair.fixed_sdm), module.level(pair.moving_sdm))

    def present(self, pair: TrainingPair, state: _PairState, scale: Scale) -> LossValue:
        """One presentation: advance the pair's alignment and return its feature loss."""
        module = state.module
        fixed = module.level(self.networks(pair.fixed, modality="fixed"))
        moving = module.level(self.networks(pair.moving, modality="moving"))
        descent = self.settings.descent
        if self.settings.mode == "unrolled":
            rate = adam_learning_rate(pair.fixed.shape[2:], self.settings.grid_learning_rate)
            value, reached = unrolled_alignment_loss(
                module, fixed, moving, state.fixed_sdm, state.moving_sdm, state.coefficients, rate,
                scale.smoothness, descent, self.settings.unrolled_steps)
            state.coefficients.copy_(reached)
            return value
        with torch.no_grad():
            eps = confidence_floor(fixed, descent.confidence)
            for _ in range(self.settings.grid_iterations):
                step = module.step(fixed, moving, state.coefficients, eps)
                state.optimizer.step(module.grid_gradient(step, state.coefficients, scale.smoothness))
        return step_matching_loss(module, fixed, moving, state.fixed_sdm, state.moving_sdm, state.coefficients,
                                  descent, self.settings.sdm_band)
