"""The Gymnasium environment: serve a queue of LLM requests at the edge, one batch per step.

A thin layer over :mod:`sdedge_gym.episode` (the dynamics) and :mod:`sdedge_gym.actions` (the action
contract): this module owns only the spaces, the observation, the reward bookkeeping and ``info``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sdedge_gym.actions import (
    ACTION_MODES,
    action_mask_table,
    finite_array,
    hybrid_batch_and_speculation,
    shares_from_logits,
    shares_from_weights,
)
from sdedge_gym.config import ScenarioConfig
from sdedge_gym.episode import BatchOutcome, Episode, EpisodeClock, ServingModel, commit_batch
from sdedge_gym.scenarios import make_scenario
from sdedge_gym.uplink import channel_coefficient, user_rate
from sdedge_gym.workload import path_gain

RENDER_MODES = ("ansi", "rgb_array")
GLOBAL_FEATURES = ("tasks_left", "uplink_elapsed", "inference_backlog", "batch_limit")
TASK_FEATURES = ("present", "prompt_len", "payload", "channel_quality", "acceptance", "output_len")


@dataclass(frozen=True)
class ObservationScales:
    """Per-scenario constants that map the observation into [0, 1] (fixed at construction).

    The reference task is a typical one of the scenario: median prompt, mean attachment, at the
    distance that splits the cell's area in half, with unit fading (or the mean spectral efficiency
    under ``fixed_snr``), holding an equal share B / n_lim of the band.
    """

    prompt_len: float  # prompt_max, tokens
    payload: float  # beta * prompt_max + extra_bits_max: the largest payload a task can have, bits
    output_len: float  # max_new_tokens
    equal_share: float  # B / n_lim, Hz
    spectral_efficiency: float  # the reference task's spectral efficiency at the equal share, bit/s/Hz
    task_time: float  # the reference task's upload time at the equal share, divided by n_lim, s

    @classmethod
    def of(cls, model: ServingModel) -> ObservationScales:
        cfg = model.config
        w, up = cfg.workload, cfg.uplink
        share = up.bandwidth / model.batch_limit
        # Half of a uniform-over-area cell lies within this distance (the median user).
        distance = np.sqrt(0.5 * (w.distance_min**2 + w.distance_max**2))
        gain = path_gain(w, distance)  # at unit (mean) Rayleigh power gain
        efficiency_mid = 0.5 * (w.spectral_efficiency_min + w.spectral_efficiency_max)
        channel = channel_coefficient(up, gain, efficiency_mid)
        efficiency = float(user_rate(share, channel, up.rate_model)) / share
        payload_typical = up.bits_per_token * w.prompt_median + 0.5 * (w.extra_bits_min + w.extra_bits_max)
        return cls(
            prompt_len=float(w.prompt_max),
            payload=up.bits_per_token * w.prompt_max + w.extra_bits_max,
            output_len=float(w.max_new_tokens),
            equal_share=share,
            spectral_efficiency=efficiency,
            # n_lim users at the equal share take as long as one user with the whole band would take
            # for n_lim payloads: task_time is the uplink time each task adds to the clock.
            task_time=payload_typical / (share * efficiency) / model.batch_limit,
        )


def _squash(x, scale):
    """x / (x + scale): 0 at 0, 1/2 at the scale, below 1 for every finite x >= 0."""
    return x / (x + scale)


def task_feature_table(model: ServingModel, scales: ObservationScales, episode: Episode) -> np.ndarray:
    """(K + n_max, 6) float32 per-task features, zero-padded so that any window of n_max rows exists.

    The observation's task block at a step is rows next_task .. next_task + n_max - 1, flattened.
    """
    cfg, w = model.config, episode.workload
    k = episode.num_tasks
    efficiency = user_rate(scales.equal_share, episode.channel, cfg.uplink.rate_model) / scales.equal_share
    table = np.zeros((k + cfg.max_batch, len(TASK_FEATURES)), dtype=np.float32)
    # Column by column into the float32 table: the same float64 values cast once, without a stacked copy.
    table[:k, 0] = 1.0
    table[:k, 1] = w.prompt_len / scales.prompt_len
    table[:k, 2] = w.payload_bits / scales.payload
    table[:k, 3] = efficiency / (efficiency + scales.spectral_efficiency)
    table[:k, 4] = w.alpha if cfg.clairvoyant else w.alpha_estimate
    table[:k, 5] = (w.output_len if cfg.clairvoyant else w.output_hint) / scales.output_len
    return table


def global_feature_values(model: ServingModel, scales: ObservationScales, num_tasks, next_task, uplink_end,
                          inference_end, batch_limit) -> np.ndarray:
    """(..., 4) float32 global features; every argument may be an array over envs (broadcasts)."""
    tau = scales.task_time
    backlog = np.maximum(np.asarray(inference_end, dtype=float) - uplink_end, 0.0)
    return np.stack(np.broadcast_arrays(
        (np.asarray(num_tasks) - next_task) / np.asarray(num_tasks, dtype=float),
        _squash(np.asarray(uplink_end, dtype=float), np.asarray(num_tasks) * tau),
        _squash(backlog, model.batch_limit * tau),
        np.asarray(batch_limit) / model.config.max_batch,
    ), axis=-1).astype(np.float32)


def global_features_one(model: ServingModel, scales: ObservationScales, num_tasks: int, next_task: int,
                        uplink_end: float, inference_end: float, batch_limit: int) -> list[float]:
    """:func:`global_feature_values` of one env on Python floats (the single env's every step).

    The same float64 operations in the same order (``max`` keeps numpy.maximum's -0.0 and NaN), so that the
    float32 observation is bit-identical; tests/test_env_speed_paths.py compares both.
    """
    tau = scales.task_time
    backlog = max(inference_end - uplink_end, 0.0)
    return [(num_tasks - next_task) / float(num_tasks), uplink_end / (uplink_end + num_tasks * tau),
            backlog / (backlog + model.batch_limit * tau), batch_limit / model.config.max_batch]


class EdgeSDEnv(gym.Env):
    """
    ## Description

    K LLM requests wait at a small base station (SBS). Users upload their prompts over a shared wireless
    uplink; the SBS drafts tokens with a small model and sends them over a wired fronthaul to a macro
    base station (MBS), whose large model verifies them in one parallel pass (speculative decoding).
    The agent serves the queue in order, one batch per step: it picks how many of the next tasks to
    batch (n), the speculation length (l; 0 is plain autoregressive decoding on the MBS) and, in the
    hybrid and dict modes, how the batch's users share the uplink band. The env simulates the batch's
    uplink slot and its pipelined draft/verify service to completion. The objective is the mean request
    latency (or the makespan), and an exact dynamic-programming oracle gives the optimum of every
    deterministic episode. The model is specified in docs/MODEL.md.

    ## Action Space

    ``n_max`` = ``max_batch`` and ``l_max`` = ``max_speculation`` of the scenario.

    | mode       | space                                              | meaning                                   |
    |------------|----------------------------------------------------|-------------------------------------------|
    | "discrete" | ``MultiDiscrete([n_max, l_max + 1])``              | ``[n - 1, l]``; closed-form band split    |
    | "hybrid"   | ``Box(-1, 1, (2 + n_max,), float32)``              | entries 0, 1 pick n, l by equal bins of   |
    |            |                                                    | [-1, 1]; entries 2.. are band logits x:   |
    |            |                                                    | shares 0.05 / n + 0.95 softmax(4 x[:n])   |
    | "dict"     | ``Dict(batch_size=Discrete(n_max, start=1),``      | shares proportional to                    |
    |            | ``speculation_length=Discrete(l_max + 1),``        | ``max(bandwidth[:n], 1e-6)``              |
    |            | ``bandwidth=Box(0, 1, (n_max,), float32))``        |                                           |

    In the hybrid mode every point of the Box is a sane split: each user of the batch gets at least a
    twentieth of an equal share (``BAND_FLOOR`` = 0.05 of the band split equally, plus a softmax part with
    ``LOGIT_SCALE`` = 4), so random or exploratory actions never leave an upload starved. The closed-form
    split of a batch is expressed exactly when all its shares are above that floor (over 99 % of every
    preset's batches), otherwise with the floored shares.
    ``sdedge_gym.actions.encode_action`` builds the action of any mode from (n, l, shares).

    A batch larger than the tasks left or than the GPUs' memory allows is invalid: it is clipped to the
    largest valid batch, ``batch_limit()``, and ``info["action_clipped"]`` is True. ``action_masks()``
    (and ``info["action_mask"]``) give the valid actions as one bool vector in MaskablePPO's
    MultiDiscrete layout, the same in every mode: ``n_max`` entries for n = 1..n_max, then ``l_max + 1``
    entries for l = 0..l_max (every l is valid). At the terminal state no batch size is valid. An action
    outside the space (wrong shape or keys, out of range, not an integer where one is needed, NaN or
    inf) raises ``ValueError``.

    ## Observation Space

    ``Box(0, 1, (4 + 6 n_max,), float32)``: four global features, then six features for each of the
    next ``n_max`` tasks in queue order (all zeros past the end of the queue). Times are squashed as
    ``x / (x + scale)``; ``tau`` is the uplink time a typical task of the scenario adds (see
    :class:`ObservationScales`, ``env.unwrapped.scales``), ``n_lim`` the memory/action batch limit.

    | index       | feature           | value                                                        | range  |
    |-------------|-------------------|--------------------------------------------------------------|--------|
    | 0           | tasks_left        | tasks not yet committed / K                                  | [0, 1] |
    | 1           | uplink_elapsed    | u / (u + K tau); u = end of the last uplink slot (s)         | [0, 1) |
    | 2           | inference_backlog | d / (d + n_lim tau); d = max(F - u, 0), F = end of the last  | [0, 1) |
    |             |                   | batch's service (s)                                          |        |
    | 3           | batch_limit       | ``batch_limit()`` / n_max                                    | [0, 1] |
    | 4 + 6 i + 0 | present           | 1 if queue slot i holds a task, else 0                       | {0, 1} |
    | 4 + 6 i + 1 | prompt_len        | I / prompt_max                                               | (0, 1] |
    | 4 + 6 i + 2 | payload           | S / (beta prompt_max + extra_bits_max)                       | (0, 1] |
    | 4 + 6 i + 3 | channel_quality   | s / (s + s_ref); s = spectral efficiency at the equal share  | (0, 1) |
    |             |                   | B / n_lim, s_ref = that of a typical task                    |        |
    | 4 + 6 i + 4 | acceptance        | alpha (clairvoyant) or its noisy estimate                    | [0, 1) |
    | 4 + 6 i + 5 | output_len        | O (clairvoyant) or the length hint, / max_new_tokens         | (0, 1] |

    ## Rewards

    The step reward is minus the committed batch's share of the objective, in seconds: with objective
    "mean_latency", ``-sum_{k in batch} C_k / K`` (C_k the completion time of task k); with "makespan",
    ``-(F_m - F_{m-1})``. The undiscounted return of an episode is exactly minus the objective (the mean
    latency or the makespan); nothing else is added.

    ## Starting State

    ``reset`` draws a workload (prompt and output lengths, payloads, distances and fading, acceptance
    rates, the non-clairvoyant hints, and in sampled mode one uniform per output position) from the
    scenario with ``self.np_random``; both clocks start at 0 and the whole queue is waiting. ``options``
    is accepted and unused.

    ## Episode End

    Terminated when every task has been committed (at most K steps). Never truncated; the registered
    ids add no time limit.

    ## Info

    Every step: ``batch_size``, ``speculation_length``, ``bandwidth`` (Hz per user of the batch),
    ``uplink_slot``, ``wait`` (ready batch waiting for the previous batch's service), ``service_time``
    (s), ``completion_times`` (s from the episode start), ``tokens``, ``accepted_drafts``,
    ``action_clipped``, ``action_mask``. At the last step also ``mean_latency``, ``makespan`` (s) and
    ``throughput`` (output tokens / s over the makespan). ``reset`` returns ``action_mask``.
    ``bandwidth`` and ``completion_times`` have length ``n_max``: the batch's tasks first, zeros after
    (fixed shapes, so that Gymnasium's vector envs can stack the infos of different batch sizes).

    ## Arguments

    ```python
    env = gymnasium.make("sdedge/EdgeSD-v0", num_tasks=50, max_speculation=6, config={"uplink": {"bandwidth": 2e6}})
    EdgeSDEnv(scenario="paper", action_mode="discrete", render_mode=None, config=None, **overrides)
    ```

    * ``scenario``: a preset name ("small", "paper", "large", "uplink") or a ``ScenarioConfig``.
    * ``action_mode``: "discrete" | "hybrid" | "dict".
    * ``render_mode``: None | "ansi" (a text dashboard) | "rgb_array" (a Gantt chart; needs matplotlib,
      the ``render`` extra).
    * ``config``: a nested dict merged over the preset, or a complete ``ScenarioConfig``.
    * ``overrides``: flat ``ScenarioConfig`` fields (``max_batch``, ``max_speculation``, ``acceptance``
      "expected" | "sampled", ``clairvoyant``, ``objective`` "mean_latency" | "makespan",
      ``pipelining``, ``queue_order``) and ``num_tasks``; they win over ``config``. Unknown keys and bad
      values raise ``ValueError`` naming the field.

    ## Version History

    * v0: initial release.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": list(RENDER_MODES), "render_fps": 2}

    def __init__(self, scenario: str | ScenarioConfig = "paper", action_mode: str = "discrete",
                 render_mode: str | None = None, config: Mapping[str, Any] | ScenarioConfig | None = None,
                 **overrides: Any) -> None:
        if action_mode not in ACTION_MODES:
            raise ValueError(f"action_mode = {action_mode!r} is invalid; allowed: "
                             f"{' | '.join(repr(m) for m in ACTION_MODES)}")
        if render_mode is not None and render_mode not in RENDER_MODES:
            raise ValueError(f"render_mode = {render_mode!r} is invalid; allowed: None | "
                             f"{' | '.join(repr(m) for m in RENDER_MODES)}")
        self.scenario: ScenarioConfig = make_scenario(scenario, config, **overrides)
        self.model = ServingModel.of(self.scenario)
        self.scales = ObservationScales.of(self.model)
        self.action_mode = action_mode
        self.render_mode = render_mode

        n_max, l_max = self.scenario.max_batch, self.scenario.max_speculation
        if action_mode == "discrete":
            self.action_space = spaces.MultiDiscrete([n_max, l_max + 1])
        elif action_mode == "hybrid":
            self.action_space = spaces.Box(-1.0, 1.0, (2 + n_max,), dtype=np.float32)
        else:
            self.action_space = spaces.Dict({
                "batch_size": spaces.Discrete(n_max, start=1),
                "speculation_length": spaces.Discrete(l_max + 1),
                "bandwidth": spaces.Box(0.0, 1.0, (n_max,), dtype=np.float32),
            })
        size = len(GLOBAL_FEATURES) + len(TASK_FEATURES) * n_max
        self.observation_space = spaces.Box(0.0, 1.0, (size,), dtype=np.float32)
        self._mask_table = action_mask_table(n_max, l_max)  # row b: the mask when batch_limit() == b

        self.episode: Episode | None = None
        self.clock = EpisodeClock()
        self.outcomes: list[BatchOutcome] = []
        self._task_features: np.ndarray | None = None

    # ------------------------------------------------------------------ Gymnasium API

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.episode = Episode.draw(self.model, self.np_random)
        self.clock = EpisodeClock()
        self.outcomes = []
        self._task_features = task_feature_table(self.model, self.scales, self.episode)
        return self._observation(), {"action_mask": self.action_masks()}

    def step(self, action):
        if self.episode is None:
            raise RuntimeError("EdgeSDEnv.step() called before reset(); call reset() first")
        if self.clock.next_task >= self.episode.num_tasks:
            raise RuntimeError("EdgeSDEnv.step() called after the episode terminated; call reset() first")
        requested, speculation_length, weights = self._decode(action)
        batch_size = min(requested, self.batch_limit())
        bandwidth = None  # discrete mode: the closed form
        if self.action_mode == "hybrid":
            bandwidth = shares_from_logits(weights, batch_size)[:batch_size] * self.scenario.uplink.bandwidth
        elif self.action_mode == "dict":
            bandwidth = shares_from_weights(weights, batch_size)[:batch_size] * self.scenario.uplink.bandwidth
        outcome, self.clock = commit_batch(self.model, self.episode, self.clock, batch_size,
                                           speculation_length, bandwidth)
        self.outcomes.append(outcome)
        terminated = self.clock.next_task >= self.episode.num_tasks
        # Per-task arrays are zero-padded to n_max: every step's info then has the same shapes, which
        # Gymnasium's sync/async vector envs need to stack the infos of envs whose batches differ.
        n_max = self.scenario.max_batch
        bandwidth = np.zeros(n_max)
        bandwidth[:batch_size] = outcome.bandwidth
        completion_times = np.zeros(n_max)
        completion_times[:batch_size] = outcome.completion_times
        info = {
            "batch_size": batch_size,
            "speculation_length": speculation_length,
            "bandwidth": bandwidth,
            "uplink_slot": outcome.uplink_slot,
            "wait": outcome.wait,
            "service_time": outcome.service_time,
            "completion_times": completion_times,
            "tokens": outcome.tokens,
            "accepted_drafts": outcome.accepted_drafts,
            "action_clipped": batch_size != requested,
            "action_mask": self.action_masks(),
        }
        if terminated:
            info.update(self.episode_kpis())
        return self._observation(), -float(outcome.cost), bool(terminated), False, info

    def render(self):
        if self.render_mode is None:
            gym.logger.warn("EdgeSDEnv.render() called without a render_mode; pass render_mode='ansi' or "
                            "'rgb_array' at construction (gymnasium.make(..., render_mode=...))")
            return None
        from sdedge_gym import render  # matplotlib stays optional: imported on first rgb_array frame

        if self.render_mode == "ansi":
            return render.dashboard(self.scenario, self.action_mode, self.episode, self.clock, self.outcomes)
        return render.gantt_rgb(self.scenario, self.episode, self.clock, self.outcomes)

    # ------------------------------------------------------------------ masks and KPIs

    def batch_limit(self) -> int:
        """The largest valid batch now: min(memory/action limit, tasks left); 0 once the queue is empty."""
        if self.episode is None:
            return 0
        return min(self.model.batch_limit, self.episode.num_tasks - self.clock.next_task)

    def action_masks(self) -> np.ndarray:
        """Valid actions in MaskablePPO's layout: [n = 1..n_max] + [l = 0..l_max]."""
        return self._mask_table[self.batch_limit()].copy()  # a copy: callers may write into their mask

    def episode_kpis(self) -> dict[str, float]:
        """Mean latency, makespan (s) and throughput (tokens/s) of the batches committed so far."""
        if not self.outcomes:
            return {"mean_latency": 0.0, "makespan": 0.0, "throughput": 0.0}
        completion = np.concatenate([o.completion_times for o in self.outcomes])
        makespan = float(completion.max())
        tokens = sum(o.tokens for o in self.outcomes)
        return {"mean_latency": float(completion.mean()), "makespan": makespan,
                "throughput": tokens / makespan if makespan > 0 else 0.0}

    # ------------------------------------------------------------------ observation

    def _observation(self) -> np.ndarray:
        clock = self.clock
        n_global = len(GLOBAL_FEATURES)
        observation = np.empty(n_global + len(TASK_FEATURES) * self.scenario.max_batch, dtype=np.float32)
        observation[:n_global] = global_features_one(self.model, self.scales, self.episode.num_tasks,
                                                     clock.next_task, clock.uplink_end, clock.inference_end,
                                                     self.batch_limit())
        observation[n_global:] = self._task_features[clock.next_task: clock.next_task + self.scenario.max_batch].ravel()
        return observation

    # ------------------------------------------------------------------ action decoding

    def _decode(self, action) -> tuple[int, int, np.ndarray | None]:
        """(requested n, l, bandwidth logits or weights) of an in-space action; ValueError otherwise."""
        n_max, l_max = self.scenario.max_batch, self.scenario.max_speculation
        if self.action_mode == "discrete":
            # Fast path: an integer array (what samplers and policies give) is finite and integral already;
            # anything else, or out of range, takes the full validation below (and its error messages).
            if type(action) is np.ndarray and action.shape == (2,) and action.dtype.kind in "iu":
                n, l = action.tolist()
                if 0 <= n < n_max and 0 <= l <= l_max:
                    return n + 1, l, None
            values = finite_array(action, "action", (2,), f"[n - 1, l], integers with 0 <= n - 1 < {n_max} and "
                                                      f"0 <= l <= {l_max}")
            _integer_in(values[0], "action[0] (batch_size - 1)", 0, n_max - 1)
            _integer_in(values[1], "action[1] (speculation_length)", 0, l_max)
            return int(values[0]) + 1, int(values[1]), None
        if self.action_mode == "hybrid":
            values = finite_array(action, "action", (2 + n_max,), f"{2 + n_max} finite numbers in [-1, 1]")
            outside = np.flatnonzero((values < -1.0) | (values > 1.0))
            if outside.size:
                i = int(outside[0])
                raise ValueError(f"action[{i}] = {values[i]!r} is invalid for action_mode 'hybrid'; "
                                 "allowed: a number in [-1, 1]")
            n, l = hybrid_batch_and_speculation(values, n_max, l_max)
            return int(n), int(l), values[2:]
        if not isinstance(action, Mapping) or set(action) != {"batch_size", "speculation_length", "bandwidth"}:
            got = sorted(action) if isinstance(action, Mapping) else type(action).__name__
            raise ValueError(f"action = {got!r} is invalid for action_mode 'dict'; allowed: a mapping with "
                             "exactly the keys ['bandwidth', 'batch_size', 'speculation_length']")
        n = finite_array(action["batch_size"], "action['batch_size']", (), f"an integer in [1, {n_max}]")
        l = finite_array(action["speculation_length"], "action['speculation_length']", (),
                     f"an integer in [0, {l_max}]")
        _integer_in(n, "action['batch_size']", 1, n_max)
        _integer_in(l, "action['speculation_length']", 0, l_max)
        weights = finite_array(action["bandwidth"], "action['bandwidth']", (n_max,), f"{n_max} numbers in [0, 1]")
        if np.any((weights < 0.0) | (weights > 1.0)):
            raise ValueError(f"action['bandwidth'] = {weights!r} is invalid; allowed: {n_max} numbers in [0, 1]")
        return int(n), int(l), weights


def _integer_in(value: np.ndarray, name: str, low: int, high: int) -> None:
    if value != np.rint(value) or not low <= value <= high:
        raise ValueError(f"{name} = {value.item()!r} is invalid; allowed: an integer in [{low}, {high}]")
