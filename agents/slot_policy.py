"""A Stable-Baselines3 actor-critic policy for the hybrid action whose band logits are computed per task.

The hybrid action is two bins (batch size, speculation length) and one band logit per task of the window
(``sdedge_gym.actions``). A plain MLP must learn the same share rule once per slot, from slot-specific
weights; here one small network is shared by all slots, so the rule is learned once:

* ``bins``: an MLP of the whole observation -> the two bin coordinates (tanh);
* per slot i: ``h_i = encoder(task_i features, global features)``, then the context c = the mean of h over
  the batch the bins choose (the tasks 1..n, n read off the first bin with the env's own binning; the
  closed-form split of a user depends on the others in its batch only through the common slot length),
  and ``logit_i = tanh(head(h_i, c, global features))``;
* the critic: an MLP of the whole observation.

The Gaussian's mean is this output (``action_net`` is the identity), its log-std SB3's usual parameter. It
reads the observation layout of :mod:`sdedge_gym.env` (4 global features, then 6 per task) and works on the
offline hybrid ids (action ``Box(-1, 1, (2 + n_max,))``). Saved models refer to this class, so loading
one needs ``agents`` importable (it is, in this repo and its installed package).
"""

from __future__ import annotations

from typing import Any

import torch
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy
from torch import nn

from sdedge_gym.env import GLOBAL_FEATURES, TASK_FEATURES

NUM_GLOBAL, NUM_TASK = len(GLOBAL_FEATURES), len(TASK_FEATURES)


def _mlp(inputs: int, widths: tuple[int, ...], outputs: int | None = None) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in widths:
        layers += [nn.Linear(inputs, width), nn.Tanh()]
        inputs = width
    if outputs is not None:
        layers.append(nn.Linear(inputs, outputs))
    return nn.Sequential(*layers)


class SlotExtractor(nn.Module):
    """The actor's mean action and the critic's latent (SB3's ``mlp_extractor`` interface)."""

    def __init__(self, observation_dim: int, max_batch: int, widths: tuple[int, ...], slot_width: int) -> None:
        super().__init__()
        self.max_batch = max_batch
        self.latent_dim_pi = 2 + max_batch
        self.latent_dim_vf = widths[-1]
        self.bins = _mlp(observation_dim, widths, 2)
        self.encoder = _mlp(NUM_TASK + NUM_GLOBAL, (slot_width, slot_width))
        self.head = _mlp(2 * slot_width + NUM_GLOBAL, (slot_width,), 1)
        self.critic = _mlp(observation_dim, widths)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_actor(features), self.forward_critic(features)

    def forward_actor(self, features: torch.Tensor) -> torch.Tensor:
        glob = features[:, :NUM_GLOBAL]
        tasks = features[:, NUM_GLOBAL:].reshape(-1, self.max_batch, NUM_TASK)
        bins = torch.tanh(self.bins(features))
        # n as the env bins the first coordinate: floor((x + 1) / 2 * n_max) + 1, clipped to 1..n_max
        size = torch.clamp(torch.floor((bins[:, 0].detach() + 1.0) * 0.5 * self.max_batch), 0, self.max_batch - 1) + 1
        slots = glob[:, None, :].expand(-1, self.max_batch, -1)
        hidden = self.encoder(torch.cat([tasks, slots], dim=-1))
        member = (torch.arange(self.max_batch, device=features.device)[None, :] < size[:, None]).float()
        member = member * (tasks[..., 0] > 0).float()  # the "present" feature: no task beyond the queue
        context = (hidden * member[..., None]).sum(1) / member.sum(1, keepdim=True).clamp(min=1.0)
        logits = self.head(torch.cat([hidden, context[:, None, :].expand_as(hidden), slots], dim=-1)).squeeze(-1)
        return torch.cat([bins, torch.tanh(logits)], dim=-1)

    def forward_critic(self, features: torch.Tensor) -> torch.Tensor:
        return self.critic(features)


class SlotPolicy(ActorCriticPolicy):
    """ActorCriticPolicy with :class:`SlotExtractor`; ``net_arch`` (a list of widths) sizes the bins MLP and
    the critic, ``slot_width`` the per-slot networks."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, lr_schedule, *args: Any,
                 slot_width: int = 64, **kwargs: Any) -> None:
        if not isinstance(action_space, spaces.Box) or observation_space.shape is None:
            raise ValueError(f"SlotPolicy needs a hybrid action Box(-1, 1, (2 + n_max,)); got {action_space}")
        max_batch = action_space.shape[0] - 2
        expected = NUM_GLOBAL + NUM_TASK * max_batch
        if observation_space.shape != (expected,):
            raise ValueError(f"SlotPolicy needs the offline hybrid layout: observation ({expected},) for n_max = "
                             f"{max_batch}; got {observation_space.shape} (the online ids are not supported)")
        self.slot_width = slot_width
        super().__init__(observation_space, action_space, lr_schedule, *args, **kwargs)

    def _build_mlp_extractor(self) -> None:
        widths = tuple(self.net_arch) if isinstance(self.net_arch, list) and self.net_arch else (256, 256)
        self.mlp_extractor = SlotExtractor(self.features_dim, self.action_space.shape[0] - 2, widths, self.slot_width)

    def _build(self, lr_schedule) -> None:
        super()._build(lr_schedule)
        # The extractor already gives the mean action: drop SB3's linear layer on top and rebuild the optimiser
        # without it.
        self.action_net = nn.Identity()
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data["slot_width"] = self.slot_width
        return data
