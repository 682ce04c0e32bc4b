"""RLlib (Ray) pieces that the env runners import by name: the greedy policy of a trained module and the
multi-cell env under RLlib's multi-agent API (needs the ``rllib`` extra; the multi-cell env also ``multicell``).

Ray pins gymnasium 1.2.2, so these run in a venv of their own (docs/INTEGRATIONS.md). Everything an env runner
must rebuild lives here, in an importable module, because Ray's workers import functions by module name: a
creator defined in a script would not unpickle there.

**The multi-cell env on RLlib** (:class:`ActingCells`): RLlib's multi-agent episodes are turn-based, so a cell's
agent observes, and so acts, only at the decision epochs where its uplink is free (the PettingZoo env's
``acting``). Its rewards at the epochs in between reach RLlib without an observation, and RLlib adds them to the
agent's next transition: each agent's return is still its cell's cost (or, with ``team_reward``, every cell's).
An agent's last step is the epoch at which the MBS has accepted all its batches; it gets its last observation
there. Nothing is truncated. Policies: one module shared by every cell (``"shared"``, parameter sharing), or one
module per cell (``"per-cell"``), mapped by :func:`policy_mapping`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

try:
    from ray.rllib.env.multi_agent_env import MultiAgentEnv
except ImportError as error:  # an optional extra: say how to get it
    raise ImportError("sdedge_agents.rllib needs Ray RLlib: pip install 'sdedge-gym[rllib]' "
                      "(in a venv of its own: docs/INTEGRATIONS.md)") from error

POLICY_LAYOUTS = ("shared", "per-cell")
SHARED_POLICY = "shared"


class RLlibGreedyPolicy:
    """An RLlib RLModule with SB3's ``predict`` for :func:`sdedge_agents.evaluate.evaluate`: its greedy action
    in ``action_space`` (the env's)."""

    def __init__(self, module, action_space) -> None:
        self.module, self.action_space = module, action_space
        self.dist_class = module.get_inference_action_dist_cls()

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        import torch
        import tree  # dm-tree, an RLlib dependency
        from ray.rllib.utils.spaces.space_utils import unsquash_action

        with torch.no_grad():
            out = self.module.forward_inference({"obs": torch.as_tensor(observation)[None]})
            action = self.dist_class.from_logits(out["action_dist_inputs"]).to_deterministic().sample()
        action = tree.map_structure(lambda value: value[0].numpy(), action)  # a dict of tensors in the dict mode
        # As RLlib's env runners do (normalize_actions, the default): Box entries come out of the module in
        # [-1, 1] and are mapped (and clipped) to the space's bounds; discrete entries pass unchanged.
        return unsquash_action(action, self.action_space), state


class ActingCells(MultiAgentEnv):
    """The multi-cell PettingZoo env (:class:`sdedge_gym.multicell_pz.MultiCellParallelEnv`) as an RLlib
    ``MultiAgentEnv`` in which only acting cells observe (module docstring).

    ``config``: ``preset`` (a :data:`sdedge_gym.multicell.MULTICELL_PRESETS` name, default "two-heterogeneous"),
    ``action_mode`` ("discrete" | "hybrid" | "dict", default "discrete") and ``team_reward`` (default True:
    every agent is rewarded with the sum of the cells' rewards, the common objective).
    """

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        from sdedge_gym.multicell_pz import MultiCellParallelEnv

        super().__init__()
        config = dict(config or {})
        unknown = set(config) - {"preset", "action_mode", "team_reward"}
        if unknown:
            raise ValueError(f"ActingCells config keys {sorted(unknown)} are invalid; allowed: preset, action_mode, "
                             "team_reward")
        self.env = MultiCellParallelEnv(config.get("preset", "two-heterogeneous"),
                                        config.get("action_mode", "discrete"))
        self.team_reward = bool(config.get("team_reward", True))
        self.possible_agents = list(self.env.possible_agents)
        self.agents = list(self.possible_agents)
        self.observation_spaces = {a: self.env.observation_space(a) for a in self.possible_agents}
        self.action_spaces = {a: self.env.action_space(a) for a in self.possible_agents}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        observations, infos = self.env.reset(seed=seed, options=options)
        self.agents = list(self.env.agents)
        acting = [a for a in self.agents if infos[a]["acting"]]
        return {a: observations[a] for a in acting}, {a: infos[a] for a in acting}

    def step(self, action_dict: dict[str, Any]):
        observations, rewards, terminations, _, infos = self.env.step(action_dict)
        if self.team_reward:
            team = float(sum(rewards.values()))
            rewards = dict.fromkeys(rewards, team)
        # Acting cells observe; a cell that ends here gets its last observation too.
        seen = [a for a in observations if infos[a]["acting"] or terminations[a]]
        self.agents = list(self.env.agents)
        terminateds = {a: bool(done) for a, done in terminations.items()}
        terminateds["__all__"] = not self.env.agents
        return ({a: observations[a] for a in seen}, rewards, terminateds, {"__all__": False},
                {a: infos[a] for a in seen})


def train_iterations(algo, iterations: int, progress: bool = True) -> dict[str, Any]:
    """``algo.train()`` ``iterations`` times, a line of progress each; the last result."""
    result: dict[str, Any] = {}
    for iteration in range(1, iterations + 1):
        result = algo.train()
        runners = result.get("env_runners", {})
        if progress:
            print(f"iteration {iteration}/{iterations}  env steps {result.get('num_env_steps_sampled_lifetime')}"
                  f"  mean episode return {runners.get('episode_return_mean', float('nan')):.3f}", flush=True)
    return result


def multicell_env_creator(env_config: dict[str, Any]) -> ActingCells:
    """``ray.tune.registry.register_env`` creator of :class:`ActingCells` (its ``config`` keys)."""
    return ActingCells(dict(env_config))


def policy_mapping(layout: str):
    """RLlib's ``policy_mapping_fn`` for ``layout``: every cell to one shared module, or each to its own."""
    if layout == "shared":
        return lambda agent_id, episode, **kwargs: SHARED_POLICY
    if layout == "per-cell":
        return lambda agent_id, episode, **kwargs: agent_id
    raise ValueError(f"policies = {layout!r} is invalid; allowed: {' | '.join(POLICY_LAYOUTS)}")


def greedy_cells(algo, preset: str, layout: str, action_mode: str = "discrete"):
    """The trained algorithm's greedy joint policy as ``policy(agent, observation) -> action`` for
    :func:`sdedge_agents.multicell.play_episode`."""
    env = ActingCells({"preset": preset, "action_mode": action_mode})
    mapping = policy_mapping(layout)
    policies = {a: RLlibGreedyPolicy(algo.get_module(mapping(a, None)), env.action_spaces[a])
                for a in env.possible_agents}
    return lambda agent, observation: policies[agent].predict(np.asarray(observation))[0]
