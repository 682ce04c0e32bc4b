"""The multi-cell env as a PettingZoo ParallelEnv: one agent per cell (needs the ``multicell`` extra)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

try:
    from pettingzoo import ParallelEnv
except ImportError as error:  # an optional extra: say how to get it
    raise ImportError("sdedge_gym.multicell_pz needs PettingZoo: pip install 'sdedge-gym[multicell]'") from error

from sdedge_gym.multicell import MultiCellConfig, MultiCellCore


class MultiCellParallelEnv(ParallelEnv):
    """
    ## Description

    C small cells share one MBS (:mod:`sdedge_gym.multicell`, docs/MODEL.md): agent ``"cell_i"`` serves cell
    i's queue batch by batch with the single env's actions (n, l and, in "hybrid"/"dict", its band split).
    The MBS serves batches first come, first served (by request time max(ready, F_cell), ties by cell index).

    ## Agents and steps

    A step is a decision epoch t: the earliest free uplink of a cell with tasks left (online cells: with its
    next task arrived). Every live agent is in ``agents`` and gets an observation, a reward and an info each
    step, but only the cells whose epoch is t act: ``info[agent]["acting"]`` (and the observation's ``acting``
    feature) says which. An acting agent must send an action; the others' actions are ignored (they may be
    omitted). Simultaneous actors are committed in cell index order. An agent terminates (and leaves
    ``agents``) once its cell has committed every task *and* the MBS has accepted all its batches, so that it
    receives the cost of every batch it committed; a cell with nothing left to commit stays live but never acts
    until then. Never truncated.

    ## Spaces

    Action: the cell's single-env action space (``EdgeSDEnv``'s in the chosen mode; with online cells, the
    ``*-online`` presets, ``EdgeSDOnlineEnv``'s, whose wait moves the cell's epoch to its next arrival). Observation:
    ``Box(0, 1)``: the cell's single-env observation, then ``acting``, the MBS backlog and the other cells'
    share of tasks left (:data:`sdedge_gym.multicell.SHARED_FEATURES`). The action mask (MaskablePPO's
    layout, as the single env's) is ``info[agent]["action_mask"]``.

    ## Rewards

    Agent i's reward is minus the cost of its cell's batches the MBS accepted during the step,
    sum_k C_k / sum_j K_j: the agents' rewards add up over the episode to minus the mean latency over all
    tasks of all cells (the common objective). ``info[agent]["mbs_wait"]`` is the time those batches waited
    for other cells' batches on the MBS; at an agent's end ``cell_mean_latency``, and at the episode's end
    ``mean_latency`` (over all cells).

    ## Seeding

    ``reset(seed=s)`` gives cell i the single env's first episode under seed s + i.
    """

    metadata: ClassVar[dict[str, Any]] = {"name": "sdedge_multicell_v0", "render_modes": []}

    def __init__(self, config: MultiCellConfig | str = "two-heterogeneous", action_mode: str = "discrete") -> None:
        self.core = MultiCellCore(config, action_mode)
        self.possible_agents = [f"cell_{i}" for i in range(self.core.num_cells)]
        self.agents: list[str] = []
        self._index = {agent: i for i, agent in enumerate(self.possible_agents)}
        self._observation_spaces = dict(zip(self.possible_agents, self.core.cell_observation_spaces, strict=True))
        self._action_spaces = {a: env.action_space for a, env in zip(self.possible_agents, self.core.cell_envs,
                                                                        strict=True)}
        self.render_mode = None

    def observation_space(self, agent: str):
        return self._observation_spaces[agent]

    def action_space(self, agent: str):
        return self._action_spaces[agent]

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is None and self.core.dynamics is None:  # unseeded first reset: fresh entropy
            seed = int(np.random.SeedSequence().generate_state(1)[0] >> 1)
        if seed is not None:
            for i, agent in enumerate(self.possible_agents):
                self._action_spaces[agent].seed(seed + i)
        self.core.reset_cells(seed)
        self.agents = list(self.possible_agents)
        return self._observations(), self._infos([{} for _ in self.agents])

    def step(self, actions: dict[str, Any]):
        self.core.check_steppable(type(self).__name__)
        unknown = set(actions) - set(self.agents)
        if unknown:
            raise ValueError(f"actions for {sorted(unknown)}, which are not live agents; allowed: {self.agents}")
        live = list(self.agents)
        costs, cell_infos = self.core.step_cells({self._index[a]: action for a, action in actions.items()})
        observations = self._observations(live)
        infos = self._infos([cell_infos[self._index[a]] for a in live], live)
        rewards = {a: -float(costs[self._index[a]]) for a in live}
        terminations = {a: bool(self.core.dynamics.done(self._index[a])) for a in live}
        truncations = dict.fromkeys(live, False)
        if all(terminations.values()):
            kpis = self.core.kpis()
            for a in live:
                infos[a]["mean_latency"] = kpis["mean_latency"]
        self.agents = [a for a in live if not terminations[a]]
        return observations, rewards, terminations, truncations, infos

    def _observations(self, agents: list[str] | None = None) -> dict[str, np.ndarray]:
        acting = self.core.acting_mask()
        return {a: self.core.cell_observation(self._index[a], bool(acting[self._index[a]]))
                for a in (self.agents if agents is None else agents)}

    def _infos(self, cell_infos: list[dict[str, Any]], agents: list[str] | None = None) -> dict[str, dict[str, Any]]:
        acting = self.core.acting_mask()
        out = {}
        for a, info in zip(self.agents if agents is None else agents, cell_infos, strict=True):
            i = self._index[a]
            out[a] = {**info, "acting": np.array(bool(acting[i])), "action_mask": self.core.cell_envs[i].action_masks()}
        return out

    def render(self) -> None:
        return None

    def close(self) -> None:
        pass
