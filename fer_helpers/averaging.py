"""An exponential moving average (EMA) of a model's weights, kept beside the training.

After every optimizer step the average moves a little towards the weights just trained:

    average <- decay_t * average + (1 - decay_t) * weights,  decay_t = min(decay, (1+t)/(10+t))

where t counts the updates before this one (0, 1, 2, ...). The ramp (1+t)/(10+t) lets the
first updates move the average most, so that the random starting weights are forgotten
within a few hundred steps even in a short run; later, decay (such as 0.999: about the last
1,000 steps) takes over. The average sits in a flatter place than the last step's weights,
which often scores a little better on faces it has not seen (Polyak averaging; the
speed-run recipes of small-image training, such as hlb-CIFAR10, keep one).

Batch norm's running mean and variance are averaged the same way; counters (a batch norm's
num_batches_tracked) are copied as they are.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .errors import FerError


class WeightAverage:
    """An EMA of `model`'s weights: call update(model) after every optimizer step.

    average.model is a copy of the model (eval mode, no gradients) that holds the average;
    evaluate or save it as any model. A checkpoint keeps it with `updates`, the count that
    decides the next decay_t, so that a resumed run averages on exactly (train.fit).
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise FerError(f"the weight average's decay must lie between 0 and 1, not {decay}")
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    def current_decay(self) -> float:
        """decay_t of the next update: min(decay, (1 + t) / (10 + t)), t = updates so far."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards `model`'s present weights (the same architecture)."""
        weight = 1.0 - self.current_decay()
        trained = model.state_dict()
        for name, average in self.model.state_dict().items():
            if average.is_floating_point():
                average.lerp_(trained[name].to(average.dtype), weight)
            else:
                average.copy_(trained[name])
        self.updates += 1
