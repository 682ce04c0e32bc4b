"""Stable-Baselines3 actor-critic policies that read the observation's task window as a sequence.

The observation is 4 global features and 6 features per task of a window of n_max tasks in queue order
(:mod:`sdedge_gym.env`); the actions choose where the batch ends in that window (n), the speculation length
and, on the hybrid ids, one band logit per task. A plain MLP must learn every rule once per slot, from
slot-specific weights. Here:

* every task i is encoded with the global features, ``e_i = tanh(W [task_i, global])``, and a bidirectional
  GRU runs over the window, so that ``z_i`` sees the tasks before and after i; the features the env's
  ``observe_reference`` and ``observe_queue`` options append after the window count as global features;
* the batch-size logits are one shared head per slot, ``score_i = head(z_i)`` for "the batch ends at task i"
  (n = i + 1), so "cut here" is learned once for every position;
* the speculation-length logits come from an MLP of the whole observation (they depend on the batch as a
  whole and on the clock); with ``speculation_context=True`` (discrete ids) the MLP also reads the mean of z
  over the batch the most likely batch size would form, so that l can follow the batch's own tasks (the
  MultiDiscrete distribution samples n and l independently: this is how l learns which batch it goes with);
* hybrid only: the band logit of task i is ``tanh(head'(z_i, c))`` with c the mean of z over the batch the
  first bin chooses (the closed-form split of a user depends on the others in its batch only through the
  common slot length), and the first bin coordinate is the mean of the slots' bin centres under
  softmax(score) over the valid batch sizes (differentiable; the centre of the best slot once it is sure);
* the critic is an MLP of the whole observation;
* online ids (:class:`OnlineMaskableSlotPolicy`): the observation adds each task's age after the window and
  two online features at the end (:mod:`sdedge_gym.online_env`); the age is read as a seventh task feature,
  the online features as global ones, and the *wait* logit (the mask's entry after the n_max batch sizes)
  comes from the same whole-observation MLP as the speculation-length logits.

:class:`MaskableSlotPolicy` (``MaskablePPO``, discrete ids: the actor's output is the MultiDiscrete logits
[n logits, l logits]) and :class:`SlotPolicy` (``PPO``, hybrid ids: the Gaussian's mean [bins, band logits],
log-std SB3's usual parameter). In both, SB3's linear ``action_net`` on top is replaced by the identity.
Saved models refer to these classes, so loading one needs ``sdedge_agents`` importable.
"""

from __future__ import annotations

from typing import Any

import torch
from gymnasium import spaces
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.policies import ActorCriticPolicy
from torch import nn

from sdedge_gym.env import GLOBAL_FEATURES, QUEUE_FEATURES, TASK_FEATURES, EdgeSDEnv
from sdedge_gym.online_env import ONLINE_FEATURES, online_observation_size

NUM_GLOBAL, NUM_TASK = len(GLOBAL_FEATURES), len(TASK_FEATURES)
# The features the offline env may append after the window (observe_reference: 1, observe_queue: 6): the
# policies read them as more global features.
EXTRA_FEATURE_COUNTS = (0, 1, len(QUEUE_FEATURES), 1 + len(QUEUE_FEATURES))
BATCH_LIMIT_FEATURE = GLOBAL_FEATURES.index("batch_limit")  # batch_limit / n_max


def _mlp(inputs: int, widths: tuple[int, ...], outputs: int | None = None) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in widths:
        layers += [nn.Linear(inputs, width), nn.Tanh()]
        inputs = width
    if outputs is not None:
        layers.append(nn.Linear(inputs, outputs))
    return nn.Sequential(*layers)


class TaskSequenceExtractor(nn.Module):
    """The actor's output and the critic's latent (SB3's ``mlp_extractor`` interface); see the module docstring."""

    def __init__(self, observation_dim: int, max_batch: int, speculation_choices: int, hybrid: bool,
                 widths: tuple[int, ...], slot_width: int, online: bool = False,
                 speculation_context: bool = False) -> None:
        super().__init__()
        if hybrid and speculation_context:
            raise ValueError("speculation_context = True is invalid on the hybrid ids (their speculation coordinate "
                             "is one Box entry); allowed: False")
        self.max_batch, self.speculation_choices, self.hybrid = max_batch, speculation_choices, hybrid
        self.online, self.speculation_context = online, speculation_context
        # Online: one more logit (wait) between the batch sizes and the speculation lengths.
        self.latent_dim_pi = 2 + max_batch if hybrid else max_batch + int(online) + speculation_choices
        self.latent_dim_vf = widths[-1]
        self.window_end = EdgeSDEnv.observation_size(max_batch)  # the extras (offline) or the ages (online) follow
        # Where the features read as global ones start after the window: past the ages on the online layout.
        self.extras_start = self.window_end + (max_batch if online else 0)
        task_width = NUM_TASK + int(online)
        self.encoder = _mlp(task_width + NUM_GLOBAL + observation_dim - self.extras_start, (slot_width,))
        self.sequence = nn.GRU(slot_width, slot_width, batch_first=True, bidirectional=True)
        self.end_head = _mlp(2 * slot_width, (slot_width,), 1)
        context_width = 2 * slot_width if speculation_context else 0
        self.speculation = _mlp(observation_dim + context_width, widths,
                                1 if hybrid else int(online) + speculation_choices)
        if hybrid:
            self.share_head = _mlp(4 * slot_width, (slot_width,), 1)
        self.critic = _mlp(observation_dim, widths)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_actor(features), self.forward_critic(features)

    def forward_actor(self, features: torch.Tensor, size: torch.Tensor | None = None) -> torch.Tensor:
        """The actor's output. ``size`` (discrete ids with ``speculation_context``): the batch sizes whose
        batches the l head reads, one per row, instead of the most likely ones (teacher forcing: imitation fits
        l to the batch its label goes with)."""
        glob = torch.cat([features[:, :NUM_GLOBAL], features[:, self.extras_start:]], dim=-1)
        tasks = features[:, NUM_GLOBAL:self.window_end].reshape(-1, self.max_batch, NUM_TASK)
        if self.online:  # each task's age as one more task feature
            tasks = torch.cat([tasks, features[:, self.window_end:self.extras_start, None]], dim=-1)
        slots = glob[:, None, :].expand(-1, self.max_batch, -1)
        hidden, _ = self.sequence(self.encoder(torch.cat([tasks, slots], dim=-1)))
        scores = self.end_head(hidden).squeeze(-1)  # (m, n_max): logit of "the batch ends at task i"
        if not self.hybrid:
            inputs = features
            if self.speculation_context:
                inputs = torch.cat([features, self._chosen_batch(hidden, scores, glob, tasks, size)[2]], dim=-1)
            return torch.cat([scores, self.speculation(inputs)], dim=-1)
        position, weights, context = self._chosen_batch(hidden, scores, glob, tasks)
        centres = -1.0 + (2.0 * (position - 1) + 1.0) / self.max_batch
        size_coordinate = (weights * centres).sum(-1, keepdim=True)
        logits = self.share_head(torch.cat([hidden, context[:, None, :].expand_as(hidden)], dim=-1)).squeeze(-1)
        speculation = torch.tanh(self.speculation(features))
        return torch.cat([size_coordinate, speculation, torch.tanh(logits)], dim=-1)

    def _chosen_batch(self, hidden: torch.Tensor, scores: torch.Tensor, glob: torch.Tensor, tasks: torch.Tensor,
                      size: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(positions 1..n_max, softmax of the scores over the batch sizes the env would accept (at most the
        batch limit and the tasks present), the mean of z over the batch of the most likely size, or of
        ``size`` where given)."""
        position = torch.arange(1, self.max_batch + 1, device=scores.device)[None, :]
        limit = torch.round(glob[:, BATCH_LIMIT_FEATURE] * self.max_batch).clamp(min=1)
        valid = (position <= limit[:, None]) & ((tasks[..., 0] > 0) | (position == 1))
        weights = torch.softmax(scores.masked_fill(~valid, -1e9), dim=-1)
        if size is None:
            size = torch.argmax(weights.detach(), dim=-1) + 1
        member = (position < size[:, None] + 1).float()
        context = (hidden * member[..., None]).sum(1) / member.sum(1, keepdim=True)
        return position, weights, context

    def forward_critic(self, features: torch.Tensor) -> torch.Tensor:
        return self.critic(features)


def _window(observation_space: spaces.Space, max_batch: int) -> None:
    """Refuse an observation that is not the offline window plus the options' extras. The window is read from
    the action space and the extras from the length, so an online layout of the same length as an offline
    one (the small preset's, n_max = 4) is not told apart: the online ids have OnlineMaskableSlotPolicy."""
    window = EdgeSDEnv.observation_size(max_batch)
    expected = [window + extra for extra in EXTRA_FEATURE_COUNTS]
    if len(observation_space.shape) != 1 or observation_space.shape[0] not in expected:
        raise ValueError(f"the slot policies need the offline layout: observation of length {expected} for n_max "
                         f"= {max_batch} (the window, then the observe_reference / observe_queue features); "
                         f"got {observation_space.shape} (online ids: OnlineMaskableSlotPolicy)")


class _SlotMixin:
    """What both policies share: the extractor, the identity action_net, slot_width in the saved kwargs."""

    slot_width: int
    hybrid: bool
    speculation_context = False

    online = False

    def _build_mlp_extractor(self) -> None:
        widths = tuple(self.net_arch) if isinstance(self.net_arch, list) and self.net_arch else (256, 256)
        if self.hybrid:
            max_batch, choices = self.action_space.shape[0] - 2, 0
        else:
            max_batch, choices = (int(v) for v in self.action_space.nvec)
            max_batch -= int(self.online)  # online: the first coordinate's last value is the wait
        self.mlp_extractor = TaskSequenceExtractor(self.features_dim, max_batch, choices, self.hybrid, widths,
                                                   self.slot_width, self.online, self.speculation_context)

    def _build(self, lr_schedule) -> None:
        super()._build(lr_schedule)
        # The extractor already gives the distribution's parameters: drop SB3's linear layer on top and rebuild
        # the optimiser without it.
        self.action_net = nn.Identity()
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data["slot_width"] = self.slot_width
        if not self.hybrid:
            data["speculation_context"] = self.speculation_context
        return data


class SlotPolicy(_SlotMixin, ActorCriticPolicy):
    """PPO on the hybrid ids: ``net_arch`` (widths) sizes the speculation MLP and the critic, ``slot_width``
    the per-task networks."""

    hybrid = True

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, lr_schedule, *args: Any,
                 slot_width: int = 64, **kwargs: Any) -> None:
        if not isinstance(action_space, spaces.Box) or len(action_space.shape) != 1:
            raise ValueError(f"SlotPolicy needs a hybrid action Box(-1, 1, (2 + n_max,)); got {action_space}")
        _window(observation_space, action_space.shape[0] - 2)
        self.slot_width = slot_width
        super().__init__(observation_space, action_space, lr_schedule, *args, **kwargs)


class MaskableSlotPolicy(_SlotMixin, MaskableActorCriticPolicy):
    """MaskablePPO on the discrete ids (MultiDiscrete([n_max, l_max + 1]))."""

    hybrid = False

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, lr_schedule, *args: Any,
                 slot_width: int = 64, speculation_context: bool = False, **kwargs: Any) -> None:
        if not isinstance(action_space, spaces.MultiDiscrete) or action_space.shape != (2,):
            raise ValueError(f"{type(self).__name__} needs the discrete action MultiDiscrete([n_max, l_max + 1]) "
                             f"(online: [n_max + 1, l_max + 1]); got {action_space}")
        self._check_observation(observation_space, int(action_space.nvec[0]))
        self.slot_width, self.speculation_context = slot_width, bool(speculation_context)
        super().__init__(observation_space, action_space, lr_schedule, *args, **kwargs)

    @staticmethod
    def _check_observation(observation_space: spaces.Space, batch_choices: int) -> None:
        _window(observation_space, batch_choices)


class OnlineMaskableSlotPolicy(MaskableSlotPolicy):
    """MaskablePPO on the online ids, discrete mode (MultiDiscrete([n_max + 1, l_max + 1]): the last batch size
    is the wait). A class of its own rather than detected from the spaces: an online observation can have the
    length of an offline one with the options' extras (n_max = 4 online and 5 offline, both 34)."""

    online = True

    @staticmethod
    def _check_observation(observation_space: spaces.Space, batch_choices: int) -> None:
        max_batch = batch_choices - 1
        expected = online_observation_size(max_batch)
        if observation_space.shape != (expected,):
            raise ValueError(f"OnlineMaskableSlotPolicy needs the online observation: length {expected} for n_max = "
                             f"{max_batch} (the window, the ages, {len(ONLINE_FEATURES)} online features); got "
                             f"{observation_space.shape}")
