"""Parameter-shared PPO over the cells of the multi-cell env (needs the ``multicell`` and ``train`` extras).

One SB3 PPO policy acts for every cell: SuperSuit's ``pettingzoo_env_to_vec_env_v1`` turns the PettingZoo env
(:class:`sdedge_gym.multicell_pz.MultiCellParallelEnv`) into a vector env with one slot per cell, and
``concat_vec_envs_v1`` into an SB3 ``VecEnv``. Two things are needed in between, both in :class:`TeamEpisode`:

* SuperSuit's vector env needs every agent in every step until the episode ends, but a cell's agent leaves
  once its batches are placed. SuperSuit's own ``black_death_v3`` (3.11) ends the episode only when every
  agent is terminated *and* truncated, which this env never is, so it steps past the end; the wrapper here
  keeps a finished cell in the episode with a zero observation and reward and ends everyone together.
* The cells share one objective (the mean latency over all tasks), so by default every agent gets the team's
  reward, the sum of the cells' rewards (``team_reward=False``: each its own cell's).

Non-acting cells' actions are ignored by the env (their observations say ``acting = 0``); PPO still samples and
learns from them. No action masks (SB3's PPO has none): a batch size above the tasks left is clipped by the env.
SB3's ``seed`` does not reach SuperSuit's vector env (``ConcatVecEnv`` has no ``seed``), so :func:`make_vec_env`
seeds the first reset itself; later episodes continue each cell's random stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

try:
    import supersuit
    from pettingzoo.utils.wrappers import BaseParallelWrapper
except ImportError as error:  # optional extras: say how to get them
    raise ImportError("sdedge_agents.multicell_ppo needs PettingZoo and SuperSuit: "
                      "pip install 'sdedge-gym[multicell]'") from error

from sdedge_agents.multicell import play_episode
from sdedge_gym.multicell import MultiCellConfig
from sdedge_gym.multicell_pz import MultiCellParallelEnv


class TeamEpisode(BaseParallelWrapper):
    """Every agent stays until the whole episode ends (a finished cell: zero observation, zero own reward), and
    with ``team_reward`` every agent is rewarded with the sum of the cells' rewards."""

    def __init__(self, env: MultiCellParallelEnv, team_reward: bool = True) -> None:
        super().__init__(env)
        self.team_reward = team_reward
        self.agents: list[str] = []

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        observations, infos = self.env.reset(seed=seed, options=options)
        self.agents = list(self.env.possible_agents)
        return observations, infos

    def step(self, actions: dict[str, Any]):
        live = {a: actions[a] for a in self.env.agents}
        observations, rewards, _, _, infos = self.env.step(live)
        done = not self.env.agents
        team = float(sum(rewards.values()))
        out_obs, out_rewards, out_infos = {}, {}, {}
        for agent in self.agents:
            out_obs[agent] = observations.get(agent, np.zeros_like(self.observation_space(agent).low))
            out_rewards[agent] = team if self.team_reward else float(rewards.get(agent, 0.0))
            out_infos[agent] = infos.get(agent, {})
        ends = dict.fromkeys(self.agents, done)
        truncations = dict.fromkeys(self.agents, False)
        if done:
            self.agents = []
        return out_obs, out_rewards, ends, truncations, out_infos


def make_vec_env(config: MultiCellConfig | str, seed: int, action_mode: str = "discrete", team_reward: bool = True):
    """The SB3 VecEnv of one multi-cell env, one slot per cell, first reset with ``seed`` (cell i: seed + i)."""
    env = TeamEpisode(MultiCellParallelEnv(config, action_mode), team_reward)
    venv = supersuit.pettingzoo_env_to_vec_env_v1(env)
    venv = supersuit.concat_vec_envs_v1(venv, 1, num_cpus=0, base_class="stable_baselines3")
    venv.venv.reset(seed=seed)  # the SB3 wrapper's reset(seed=...) calls the missing ConcatVecEnv.seed
    return venv


def evaluate(model, config: MultiCellConfig | str, seeds: Sequence[int], action_mode: str = "discrete") -> np.ndarray:
    """The trained model's deterministic mean latency on each seed's episode."""
    return np.array([play_episode(lambda _, obs: model.predict(obs, deterministic=True)[0], config, seed, action_mode)
                     for seed in seeds])
