"""Any policy's batch size with the service-chain speculation length: the l that is best for that batch.

The learned agents choose n well and l badly: kept at their n, the l that is best *for their own batch* (by the
window planner's values) takes ``dagger-paper`` from +2.7 % to +1.4 % of the oracle on the validation
episodes (docs/BENCHMARK.md, "What the learners got wrong"). The planner's values cost a DP per action; the rule
of :mod:`sdedge_gym.service_chain` asks the batch alone:

    l*(n) = argmin_l  sum_k C_k(l) + r F(l),     r = the tasks left after the batch

(F(l) alone under makespan), timed by the env's compiled commit from its clock on the episode as the observation
shows it. This module plays it for agents trained without the env's ``speculation="service_chain"`` option
(which plays the same l inside the env): :class:`ServiceChainSpeculation` keeps the inner policy's n and plays
l*(n); online, a wait the env can honour stays a wait, and a wait it cannot (the env then dispatches the largest
batch) gets the rule's l for that batch.

On the online ids r counts every request of the episode after the batch, arrived or not (the observation shows
how many are left). Counting only the requests already waiting behind the batch was worse (on 10 validation
episodes at load 0.7, with the shipped ``maskable-ppo-reference-context-group-online``'s batch sizes: 20.14 s,
against 19.34 s for every request left and 20.07 s for the agent's own l): the requests about to arrive wait for
this batch's service too.

Discrete action mode (``action_mode="discrete"``). From the command line, ``chain-l:SPEC`` in
:mod:`sdedge_agents.evaluate` wraps any policy SPEC (``chain-l:pretrained:NAME``,
``chain-l:sb3:MaskablePPO:model.zip``, ``chain-l:ensemble:A+B``, ``chain-l:max-batch``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sdedge_agents.policy import Predictor
from sdedge_gym.env import EdgeSDEnv

PREFIX = "chain-l:"


def check_env(env, name: str = "chain-l") -> None:
    """ValueError unless ``env`` is an sdedge env (offline or online) in the discrete action mode, where the rule
    replaces l of a [n - 1, l] action (``name``: the policy's, for the message)."""
    unwrapped = env.unwrapped
    if not isinstance(unwrapped, EdgeSDEnv) or unwrapped.action_mode != "discrete":
        raise ValueError(f"policy {name!r}: {PREFIX}SPEC plays in the discrete action mode of an sdedge env (offline "
                         f"or online); the env is {type(unwrapped).__name__} in action_mode "
                         f"{getattr(unwrapped, 'action_mode', None)!r}")


class ServiceChainSpeculation:
    """``inner``'s batch size (its action's first entry; a wait stays a wait) with l*(n) of the module docstring.

    ``env``: an offline or online env in the discrete action mode; ``inner``: anything with SB3's ``predict``
    that plays it (a trained agent, a reference policy, an ensemble).
    """

    def __init__(self, env, inner: Predictor, name: str = "chain-l") -> None:
        check_env(env, name)
        self.unwrapped, self.inner, self.name = env.unwrapped, inner, name
        self.online = self.unwrapped.has_wait  # the online action's first entry may be the wait

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[Any, Any]:
        action, state = self.inner.predict(observation, state, episode_start, deterministic)
        env = self.unwrapped
        waits, requested, _, _ = env.actions.decode(np.asarray(action, dtype=np.int64), wait=self.online)
        if waits and env.can_wait():
            return action, state
        # A wait the env cannot honour dispatches the largest batch (the online card): it gets the rule's l too.
        batch_size = env.batch_limit() if waits else min(requested, env.batch_limit())
        length = env.service_chain_length(batch_size)
        return env.actions.encode(batch_size, length, wait=waits if self.online else None), state

