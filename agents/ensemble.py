"""Several trained MaskablePPO agents of one discrete id acting as one: an ensemble of training seeds.

Seeds of one recipe end at different policies of about the same quality (docs/BENCHMARK.md, "Every training
seed"); where their mistakes differ, averaging their action distributions cancels part of them. The ensemble
acts in the order the action is read, each half by the members' mean probability under the env's mask:

1. the batch size ``n`` (on the online ids: or the wait) that maximises the members' mean probability of it;
2. the speculation length ``l`` that maximises the members' mean probability of l, each member's l
   distribution computed *for that n*: a sequence policy whose l head reads its batch
   (``speculation_context``, :mod:`sdedge_agents.slot_policy`) is given the ensemble's n instead of its own
   most likely one, so that no member votes for an l meant for another batch. The other members' l head does
   not depend on n.

Deterministic only (the mode of the mixture's marginals); it reads only the observation and the mask, as each
member does. From the command line, ``ensemble:MEMBER+MEMBER+...`` in ``sdedge_agents.evaluate`` (each member a
MaskablePPO ``model.zip`` or ``pretrained:NAME``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from sb3_contrib import MaskablePPO

from sdedge_agents.pretrained import PRETRAINED

ENSEMBLE_PREFIX = "ensemble:"


class EnsemblePolicy:
    """MaskablePPO ``models`` bound to one discrete-mode env; ``predict`` has SB3's signature."""

    def __init__(self, models: Sequence[MaskablePPO], env: gym.Env, name: str = "ensemble") -> None:
        if len(models) < 2:
            raise ValueError(f"ensemble {name!r} has {len(models)} member(s); allowed: at least 2 MaskablePPO models")
        space = env.action_space
        if not (isinstance(space, spaces.MultiDiscrete) and len(space.nvec) == 2):
            raise ValueError(f"ensemble {name!r}: the env's action space is {space}; allowed: the discrete action "
                             "mode's MultiDiscrete([n_max, l_max + 1]) (online: [n_max + 1, l_max + 1])")
        for index, model in enumerate(models):
            if model.observation_space.shape != env.observation_space.shape or model.action_space != space:
                raise ValueError(f"ensemble {name!r}: member {index} has observation {model.observation_space} and "
                                 f"action {model.action_space}; the env has {env.observation_space} and {space}; "
                                 "allowed: members trained on the env's spaces (the same id and env kwargs)")
        self.name, self.models, self.env = name, list(models), env
        self.batch_choices = int(space.nvec[0])  # n_max, and one more on the online ids: the wait
        self.max_batch = int(env.unwrapped.scenario.max_batch)

    @classmethod
    def load(cls, members: Sequence[str], env: gym.Env, name: str = "ensemble") -> EnsemblePolicy:
        """The ensemble of ``members``, each a MaskablePPO model.zip path or ``pretrained:NAME``."""
        from sdedge_agents.evaluate import ensemble_members  # the one check of a member list (no torch there)

        models = []
        for member in ensemble_members(ENSEMBLE_PREFIX + "+".join(members)):
            agent = member.split(":", 1)[1] if member.startswith("pretrained:") else None
            models.append(MaskablePPO.load(PRETRAINED[agent].model_path if agent else Path(member), device="cpu"))
        return cls(models, env, name)

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[np.ndarray, Any]:
        """The ensemble's action for the env's current state (``state`` passes through)."""
        if not deterministic:
            raise ValueError("EnsemblePolicy.predict: deterministic=False is not supported; allowed: True (the mode "
                             "of the members' mean marginals)")
        mask = np.asarray(self.env.get_wrapper_attr("action_masks")(), dtype=bool)
        size_mask = torch.as_tensor(mask[: self.batch_choices])
        length_mask = torch.as_tensor(mask[self.batch_choices:])
        with torch.no_grad():
            features = [self._features(model, observation) for model in self.models]
            size_probability = sum(self._probabilities(model, f, None, size_mask, length_mask)[0]
                                   for model, f in zip(self.models, features, strict=True))
            first = int(torch.argmax(size_probability))  # n - 1, or n_max: wait (online)
            # A wait's l is not used: each member's l head then reads its own most likely batch, as it would alone.
            chosen = torch.tensor([first + 1]) if first < self.max_batch else None
            length_probability = sum(self._probabilities(model, f, chosen, size_mask, length_mask)[1]
                                     for model, f in zip(self.models, features, strict=True))
        return np.array([first, int(torch.argmax(length_probability))], dtype=np.int64), state

    @staticmethod
    def _features(model: MaskablePPO, observation: Any) -> torch.Tensor:
        tensor, _ = model.policy.obs_to_tensor(observation)
        return model.policy.extract_features(tensor, model.policy.pi_features_extractor)

    def _probabilities(self, model: MaskablePPO, features: torch.Tensor, batch_size: torch.Tensor | None,
                       size_mask: torch.Tensor, length_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(p(n), p(l)) of one member under the mask, as its own MaskablePPO distribution gives them (invalid
        entries 0); with ``batch_size``, p(l) for that batch where the member's l head reads its batch."""
        extractor = model.policy.mlp_extractor
        if batch_size is not None and getattr(extractor, "speculation_context", False):
            latent = extractor.forward_actor(features, batch_size)
        else:
            latent = extractor.forward_actor(features)
        logits = model.policy.action_net(latent)[0]
        sizes = logits[: self.batch_choices].masked_fill(~size_mask, -torch.inf)
        lengths = logits[self.batch_choices:].masked_fill(~length_mask, -torch.inf)
        return torch.softmax(sizes, dim=-1), torch.softmax(lengths, dim=-1)
