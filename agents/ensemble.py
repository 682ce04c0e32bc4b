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

Members trained with the env's ``speculation="service_chain"`` (the env played l; their l head learned nothing) vote
on n only where l is the env's too: play such an ensemble in an env made with the option, or as
``chain-l:ensemble:...`` on a default env (the same l); the result scripts do the first for models whose run used the
option (``sdedge_agents.protocol.evaluation_env_kwargs``).
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
        from sdedge_agents.evaluate import check_ensemble_members  # the one check of a member list (no torch there)

        check_ensemble_members(members, name)
        models = []
        for member in members:
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
            tensor, _ = self.models[0].policy.obs_to_tensor(observation)  # the members share the env's spaces
            features = [model.policy.extract_features(tensor, model.policy.pi_features_extractor)
                        for model in self.models]
            logits = [self._logits(model, f, None) for model, f in zip(self.models, features, strict=True)]
            size_probability = sum(_masked_softmax(x[: self.batch_choices], size_mask) for x in logits)
            first = int(torch.argmax(size_probability))  # n - 1, or n_max: wait (online)
            if first < self.max_batch:  # l heads that read their batch read the chosen one (a wait's l is unused)
                chosen = torch.tensor([first + 1])
                logits = [self._logits(model, f, chosen) if _reads_batch(model) else x
                          for model, f, x in zip(self.models, features, logits, strict=True)]
            length_probability = sum(_masked_softmax(x[self.batch_choices:], length_mask) for x in logits)
        return np.array([first, int(torch.argmax(length_probability))], dtype=np.int64), state

    @staticmethod
    def _logits(model: MaskablePPO, features: torch.Tensor, batch_size: torch.Tensor | None) -> torch.Tensor:
        """One member's action logits [n logits, l logits]; with ``batch_size``, its l head reads that batch."""
        arguments = (features,) if batch_size is None else (features, batch_size)
        return model.policy.action_net(model.policy.mlp_extractor.forward_actor(*arguments))[0]


def _reads_batch(model: MaskablePPO) -> bool:
    """Whether the member's l head reads the batch its n forms (the sequence policy's ``speculation_context``)."""
    return bool(getattr(model.policy.mlp_extractor, "speculation_context", False))


def _masked_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The probabilities MaskablePPO's distribution gives ``logits`` under ``mask`` (invalid entries 0)."""
    return torch.softmax(logits.masked_fill(~mask, -torch.inf), dim=-1)
