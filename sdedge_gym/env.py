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

from sdedge_gym import kernels
from sdedge_gym.actions import ActionMode, action_mask_table, action_mode_class
from sdedge_gym.config import ScenarioConfig
from sdedge_gym.episode import (
    BatchOutcome,
    Episode,
    EpisodeClock,
    ServingModel,
    commit_batch,
    frozen_record,
    predicted_episode,
)
from sdedge_gym.reference import best_constant_action, constant_action_costs, reference_cost_to_go
from sdedge_gym.scenarios import check_override_keys, make_scenario
from sdedge_gym.service_chain import service_chain_length
from sdedge_gym.uplink import channel_coefficient, user_rate
from sdedge_gym.workload import MAX_ALPHA_ESTIMATE, WORKLOAD_FIELDS, Workload, path_gain, raw_draws

RENDER_MODES = ("ansi", "rgb_array")
# Every step's info (EdgeSDEnv._step_info), and the episode KPIs of the last step (EdgeSDEnv.episode_kpis):
# the vector env derives its info arrays from these names.
STEP_INFO_KEYS = ("batch_size", "speculation_length", "bandwidth", "uplink_slot", "wait", "service_time",
                  "completion_times", "tokens", "accepted_drafts", "action_clipped", "action_mask")
KPI_KEYS = ("mean_latency", "makespan", "throughput")
GLOBAL_FEATURES = ("tasks_left", "uplink_elapsed", "inference_backlog", "batch_limit")
TASK_FEATURES = ("present", "prompt_len", "payload", "channel_quality", "acceptance", "output_len")
# ``observe_queue=True``: the queue past the window, summarised (the card's "Observation Space").
QUEUE_FEATURES = ("queue_beyond", "beyond_prompt_len", "beyond_payload", "beyond_channel_quality",
                  "beyond_acceptance", "beyond_output_len")
# The env's reward forms (the ``reward=`` argument; the card's "Rewards" section defines them).
REWARDS = ("latency", "reference", "relative")
# Who picks the speculation length (the ``speculation=`` argument; the card's "Action Space" defines them).
SPECULATIONS = ("action", "service_chain")


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


def derive_columns(scenario: ScenarioConfig, parameters: np.ndarray, raw: tuple, table_rows: int,
                   tokens: tuple[np.ndarray, np.ndarray] | None = None, read_only: bool = False
                   ) -> dict[str, np.ndarray | None]:
    """The workload columns, channel figures, acceptance runs and observation task tables of m episodes.

    ``raw`` is :func:`sdedge_gym.workload.raw_draws` of m episodes (arrays (m, K)); ``parameters`` is the
    env's :func:`sdedge_gym.kernels.workload_parameters`. One compiled call (:func:`kernels.derive_episodes`)
    does what :func:`sdedge_gym.workload.derive_workload`, :meth:`Episode.of` and :func:`task_feature_table`
    specify. ``table`` is (m, table_rows, 6), zero beyond the K tasks. ``tokens`` = (prompt lengths,
    output lengths), each (m, K), replaces the drawn lengths (a trace's), as in ``derive_workload``.
    ``read_only``: the Workload columns come back read-only, as a Workload holds them (``channel``, ``runs``
    and ``table`` stay writable).
    """
    prompt_z, output_z, distance_sq, fading, extra, spectral, alpha, alpha_z, hint_z, uniforms = raw
    m, k = prompt_z.shape
    sampled = uniforms is not None
    columns = np.empty((8, m, k))
    prompt = np.empty((m, k), dtype=np.int64)
    output = np.empty((m, k), dtype=np.int64)
    runs = np.empty((m, k, uniforms.shape[2]), dtype=np.int32) if sampled else np.empty((m, k, 0), dtype=np.int32)
    table = np.zeros((m, table_rows, len(TASK_FEATURES)), dtype=np.float32)
    queue = np.empty((m, k), dtype=np.int64)
    given = (np.empty((m, 0), dtype=np.int64),) * 2 if tokens is None else tuple(
        np.ascontiguousarray(np.broadcast_to(x, (m, k)), dtype=np.int64) for x in tokens)
    kernels.derive_episodes(parameters, prompt_z, output_z, distance_sq,
                            np.empty((m, 0)) if fading is None else fading, extra, spectral, alpha, alpha_z, hint_z,
                            uniforms if sampled else np.empty((m, k, 0)), *given, columns, prompt, output, runs, table,
                            queue)
    if sampled and scenario.queue_order == "shortest_payload":  # the kernel ordered everything but the uniforms
        uniforms = np.take_along_axis(uniforms, queue[..., None], axis=-2)
    channel = columns[7]
    if read_only:  # whole blocks at once: every view taken below inherits the flag
        for block in (columns, prompt, output) if uniforms is None else (columns, prompt, output, uniforms):
            block.setflags(write=False)
    out = {name: columns[row] for row, name in enumerate(("payload_bits", "distance", "channel_gain",
                                                         "spectral_efficiency", "alpha", "alpha_estimate",
                                                         "output_hint"))}
    return {**out, "channel": channel, "prompt_len": prompt, "output_len": output, "uniforms": uniforms,
            "runs": runs if sampled else None, "table": table}


def draw_episode(scenario: ScenarioConfig, parameters: np.ndarray, rng: np.random.Generator,
                 tokens: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[Episode, np.ndarray]:
    """One episode and its observation task table (K + n_max rows): the draws of ``workload.raw_draws`` from
    ``rng``, derived by the kernel (:func:`derive_columns`); the reset of the env and of the online env."""
    return episode_from_draws(scenario, parameters, raw_draws(scenario, rng), tokens)


def episode_from_draws(scenario: ScenarioConfig, parameters: np.ndarray, draws: tuple,
                       tokens: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[Episode, np.ndarray]:
    """:func:`draw_episode` from the raw draws ``draws`` of one episode (``workload.raw_draws``); ``tokens``
    (prompt, output lengths) replace the drawn ones (a trace's)."""
    raw = tuple(None if x is None else x[None] for x in draws)
    c = derive_columns(scenario, parameters, raw, scenario.num_tasks + scenario.max_batch,
                       None if tokens is None else tuple(np.asarray(x)[None] for x in tokens), read_only=True)
    # The columns are read-only already (Workload.__post_init__'s work, done on whole blocks): built without
    # it, since a reset is a quarter of the single env's time and this is one of its larger Python parts.
    workload = frozen_record(Workload, **{name: None if c[name] is None else c[name][0] for name in WORKLOAD_FIELDS})
    return Episode(workload, c["channel"][0], None if c["runs"] is None else c["runs"][0]), c["table"][0]


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
    | "dict"     | ``Dict(batch_size_minus_one=Discrete(n_max),``     | ``batch_size_minus_one`` = n - 1 (0-based |
    |            | ``speculation_length=Discrete(l_max + 1),``        | as in "discrete"); shares proportional to |
    |            | ``bandwidth=Box(0, 1, (n_max,), float32))``        | ``max(bandwidth[:n], 1e-6)``              |

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
    entries for l = 0..l_max (every l is valid). Every mask has at least one valid entry: at the
    terminal state, where no task is left, n = 1 is marked valid (samplers such as MaskablePPO's and
    TorchRL's ``ActionMask`` fail on an all-False mask; the terminal mask is never acted on). An action
    outside the space (wrong shape or keys, out of range, not an integer where one is needed, NaN or
    inf, booleans or strings) raises ``ValueError`` and leaves the episode unchanged.

    ``speculation="service_chain"`` makes the env pick l: the action still has its l entry (the spaces are the
    same, so agents and tools carry over), but the env ignores it and serves the batch with the service-chain
    speculation length l*(n) = argmin_l [sum_k C_k(l) + r F(l)] (F(l) alone under makespan), r the tasks left
    after the batch, the batch timed from the env's clock with the closed-form split on the episode as the
    observation shows it (:mod:`sdedge_gym.service_chain`; docs/MODEL.md, section 11). The mask then marks only
    l = 0 valid (a placeholder: a masked learner's l head has one choice), ``info["speculation_length"]`` is the
    l played (``env.unwrapped.service_chain_length(n)`` gives it for any n now), and the agent's decision is n
    (and, in the hybrid and dict modes, the band split). The default,
    ``"action"``, plays the action's l. The native vector env has no ``speculation`` option
    (``gymnasium.make_vec(id, num_envs, vectorization_mode="sync", speculation="service_chain")`` vectorises this env).

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

    ``observe_reference=True`` appends one feature at index ``4 + 6 n_max`` (the space becomes
    ``Box(0, 1, (5 + 6 n_max,))``): ``reference_cost_to_go`` = V / (V + V_bar), V the reference policy's cost
    to go from the current state (see Rewards), V_bar its mean episode cost on the tuning episodes, in [0, 1).
    It summarises the whole queue, beyond the window, in the one number a critic needs as a per-episode
    baseline. Allowed only on clairvoyant, expected-acceptance scenarios (V reads the true lengths and rates).

    ``observe_queue=True`` appends six features after those (at index ``4 + 6 n_max + observe_reference``):
    the queue past the window, summarised from the same task features the window shows (so it reveals
    nothing the agent could not see by scrolling: the hints and estimates where the scenario has them).
    With m = the tasks past the window (queue positions ``n_max`` onwards, uncommitted):

    | index     | feature                | value                                                  | range  |
    |-----------|------------------------|--------------------------------------------------------|--------|
    | q + 0     | queue_beyond           | m / K                                                  | [0, 1) |
    | q + 1..5  | beyond_prompt_len, ... | the mean of task features 1..5 (prompt_len, payload,   | [0, 1] |
    |           | beyond_output_len      | channel_quality, acceptance, output_len) over those m  |        |
    |           |                        | tasks; 0 when m = 0                                    |        |

    Offline envs only (the online env's queue past the window holds requests that have not arrived).

    ## Rewards

    The step reward is minus the committed batch's share of the objective, in seconds: with objective
    "mean_latency", ``-sum_{k in batch} C_k / K`` (C_k the completion time of task k); with "makespan",
    ``-(F_m - F_{m-1})``. The undiscounted return of an episode is exactly minus the objective (the mean
    latency or the makespan); nothing else is added. This is ``reward="latency"``, the default.

    ``reward="reference"`` adds a potential-based shaping term (Ng, Harada & Russell, 1999) whose potential
    is minus the cost to go of a reference policy: the scenario's best constant action (n_ref, l_ref),
    the action of the ``best-constant`` baseline, searched once per scenario on the tuning episodes
    (``sdedge_gym.reference``; n_ref = 22, l_ref = 5 on the paper preset). V(s) is what the rest of the
    episode costs when (n_ref, l_ref) is committed at every remaining step from the state s (n clipped to
    the tasks left, closed-form split), computed on the episode's own draws by the compiled kernel (one call
    of a few batches per step). The reward of a step from s to s' is then

        r = -cost + V(s) - V(s'),   V(terminal) = 0,

    the action's advantage over following the reference from s: positive when the batch leaves the rest of
    the episode cheaper than the reference would. The undiscounted return is V(s_0) - objective (the
    episode's improvement over the reference policy, in s); V(s_0) does not depend on the policy, so the
    ranking of policies, and the optimal policy, are the default reward's. ``info["latency_reward"]`` is the
    default reward (-cost) and ``info["reference_cost_to_go"]`` is V(s') (V(s_0) in the reset info). Use it
    with gamma = 1, where the shaping telescopes exactly. The native vector env has no ``reward`` option
    (``gymnasium.make_vec(id, num_envs, vectorization_mode="sync", reward="reference")`` vectorises this env).

    ``reward="relative"`` is the reference reward in % of V(s_0): r = 100 (-cost + V(s) - V(s')) / V(s_0),
    whose return is 100 (1 - objective / V(s_0)), the episode's relative improvement over the reference.
    Scaling each episode by its own positive constant keeps the best action of every state of the full
    state (the oracle is optimal for both), but weighs episodes differently: a policy that sees only the
    window may rank differently under it (it maximises the mean relative improvement, not the mean latency).

    ## Starting State

    ``reset`` draws a workload (prompt and output lengths, payloads, distances and fading, acceptance
    rates, the non-clairvoyant hints, and in sampled mode one uniform per output position) from the
    scenario with ``self.np_random``; both clocks start at 0 and the whole queue is waiting.
    ``options={"workload": w}`` (a :class:`~sdedge_gym.workload.Workload`) or ``options={"episode": e}``
    (an :class:`~sdedge_gym.episode.Episode`, e.g. one of the vector env's ``episodes``) replays that
    episode instead of drawing one; other option keys are ignored.

    ## Episode End

    Terminated when every task has been committed (at most K steps). Never truncated by the env itself;
    the registered ids add no time limit (``gymnasium.make(id, max_episode_steps=N)`` adds Gymnasium's
    ``TimeLimit``, which truncates after N steps). Wrappers that need a time limit, such as Gymnasium's
    ``TimeAwareObservation``, take it that way; N = K never truncates an offline episode (2K an online
    one)::

        env = TimeAwareObservation(gymnasium.make("sdedge/EdgeSD-Small-v0", max_episode_steps=8))

    ## Info

    Every step: ``batch_size``, ``speculation_length``, ``bandwidth`` (Hz per user of the batch),
    ``uplink_slot``, ``wait`` (ready batch waiting for the previous batch's service), ``service_time``
    (s), ``completion_times`` (s from the episode start), ``tokens``, ``accepted_drafts``,
    ``action_clipped``, ``action_mask``. At the last step also ``mean_latency``, ``makespan`` (s) and
    ``throughput`` (output tokens / s over the makespan). ``reset`` returns ``action_mask``. Every value
    is a numpy value (``np.int64``, ``np.float64``, a 0-d bool array for ``action_clipped``, arrays),
    which info readers such as TorchRL's convert by dtype.
    ``bandwidth`` and ``completion_times`` have length ``n_max``: the batch's tasks first, zeros after
    (fixed shapes, so that Gymnasium's vector envs can stack the infos of different batch sizes).

    ## Arguments

    ```python
    env = gymnasium.make("sdedge/EdgeSD-v0", num_tasks=50, max_speculation=6, config={"uplink": {"bandwidth": 2e6}})
    EdgeSDEnv(scenario="paper", action_mode="discrete", render_mode=None, config=None, reward="latency",
              observe_reference=False, observe_queue=False, speculation="action", **overrides)
    ```

    * ``scenario``: a preset name ("small", "paper", "large", "uplink") or a ``ScenarioConfig``.
    * ``action_mode``: "discrete" | "hybrid" | "dict".
    * ``render_mode``: None | "ansi" (a text dashboard) | "rgb_array" (a Gantt chart; needs matplotlib,
      the ``render`` extra); anything else, "human" included, raises ``ValueError`` (also through
      ``gymnasium.make``, see ``sdedge_gym.registration.make_env``).
    * ``config``: a nested dict merged over the preset, or a complete ``ScenarioConfig``.
    * ``reward``: "latency" (default) | "reference" | "relative" (see Rewards).
    * ``observe_reference``: False (default) | True: the reference's cost to go as an extra observation feature.
    * ``observe_queue``: False (default) | True: the summary of the queue past the window as six extra
      observation features (see Observation Space).
    * ``speculation``: "action" (default: the action's l) | "service_chain" (the env plays l*(n) for the
      action's n; see Action Space).
    * ``overrides``: flat ``ScenarioConfig`` fields (``max_batch``, ``max_speculation``, ``acceptance``
      "expected" | "sampled", ``clairvoyant``, ``objective`` "mean_latency" | "makespan",
      ``pipelining``, ``queue_order``) and ``num_tasks``; they win over ``config``. An unknown keyword
      argument raises ``TypeError`` ("got an unexpected keyword argument", Python's convention, which
      wrappers such as TorchRL's ``GymEnv`` rely on); unknown keys inside ``config`` and bad values raise
      ``ValueError`` naming the field.

    ## Version History

    * v0: initial release. Within v0 the dict action's ``batch_size`` (``Discrete(n_max, start=1)``)
      became ``batch_size_minus_one`` (``Discrete(n_max)``), the terminal mask marks n = 1 valid, the
      hybrid band split got its floor share (0.05 / n + 0.95 softmax(4 x)), and ``reset`` accepts
      ``options={"workload"|"episode": ...}``. The dynamics are unchanged (golden trajectories, 1e-9).
    * Package 0.2.0 (the ids and dynamics unchanged): the repository's ``agents/`` folder is imported as
      ``sdedge_agents`` (was ``agents``; ``python -m sdedge_agents.evaluate`` etc.); ``FlattenBatchSpeculation``
      moved to ``sdedge_gym.wrappers`` (still importable from ``sdedge_agents.train``) and carries the flat
      action mask; the compiled kernels are cached per user instead of in the package's ``__pycache__``;
      ``OFFLINE_ENV_IDS`` and ``ONLINE_ENV_IDS`` are attributes of ``sdedge_gym``; the offline reference
      policies refuse an online env (and the reverse) with a TypeError naming the class to use.
      Also in 0.2.0: each action mode is an ``ActionMode`` object (``sdedge_gym.actions.action_mode``;
      ``env.actions``), replacing ``sdedge_gym.env.action_space(mode, ...)`` (use
      ``action_mode(mode, n_max, l_max).space(wait)``); ``EdgeSDOnlineEnv`` derives from ``EdgeSDEnv``;
      ``sdedge_agents.online.solve_online`` is ``sdedge_agents.oracle.solve(..., release=, now=, end=)``;
      ``sdedge_gym.episode.closed_form_shares`` (Hz) is ``closed_form_bandwidth``. One episode state: the
      clock (``EpisodeClock``) gained ``now``, the decision epoch; the online env's ``now``, ``arrived`` and
      ``arrival`` are read-only views of ``clock.now`` and ``episode.release`` (restore a saved state by
      assigning ``env.clock``); the vector env's ``next_task``, ``uplink_end``, ``inference_end`` read its
      ``clocks`` (``EpisodeClocks``).
      The ``reward``, ``observe_reference``, ``observe_queue`` and ``speculation`` options were added later;
      their defaults are the v0 env.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": list(RENDER_MODES), "render_fps": 2}

    def __init__(self, scenario: str | ScenarioConfig = "paper", action_mode: str = "discrete",
                 render_mode: str | None = None, config: Mapping[str, Any] | ScenarioConfig | None = None,
                 reward: str = "latency", observe_reference: bool = False, observe_queue: bool = False,
                 speculation: str = "action", **overrides: Any) -> None:
        check_override_keys(type(self).__name__, overrides)
        if reward not in REWARDS:
            raise ValueError(f"reward = {reward!r} is invalid; allowed: {' | '.join(repr(r) for r in REWARDS)}")
        if speculation not in SPECULATIONS:
            raise ValueError(f"speculation = {speculation!r} is invalid; allowed: "
                             f"{' | '.join(repr(r) for r in SPECULATIONS)}")
        if not isinstance(observe_reference, bool):
            raise ValueError(f"observe_reference = {observe_reference!r} is invalid; allowed: True | False")
        if not isinstance(observe_queue, bool):
            raise ValueError(f"observe_queue = {observe_queue!r} is invalid; allowed: True | False")
        mode_class = action_mode_class(action_mode)  # checked before the scenario, whose errors come next
        if render_mode is not None and render_mode not in RENDER_MODES:
            raise ValueError(f"render_mode = {render_mode!r} is invalid; allowed: None | "
                             f"{' | '.join(repr(m) for m in RENDER_MODES)}")
        self.scenario: ScenarioConfig = self._make_scenario(scenario, config, overrides)
        if observe_reference and (not self.scenario.clairvoyant or self.scenario.acceptance != "expected"):
            # V(s) reads the true lengths and acceptance rates: an observation of it would leak what the agent
            # of a non-clairvoyant or sampled-acceptance scenario must not see.
            raise ValueError("observe_reference = True is invalid for this scenario (clairvoyant = "
                             f"{self.scenario.clairvoyant}, acceptance = {self.scenario.acceptance!r}); allowed: "
                             "clairvoyant = True and acceptance = 'expected'")
        self.model = ServingModel.of(self.scenario)
        self.scales = ObservationScales.of(self.model)
        self._workload_parameters = kernels.workload_parameters(self.scenario, self.scales, MAX_ALPHA_ESTIMATE)
        self.action_mode = action_mode
        self.render_mode = render_mode
        self.reward = reward
        self.observe_reference = observe_reference
        self.observe_queue = observe_queue
        self.speculation = speculation
        self._observed: tuple[Episode | None, Episode | None] = (None, None)  # (episode, as observed): the rule's view
        # (n_ref, l_ref) of reward="reference" and observe_reference: the search runs once per scenario (cached).
        self.uses_reference = reward != "latency" or observe_reference
        self.reference_action: tuple[int, int] | None = None  # offline: the reference's (n_ref, l_ref)
        if self.uses_reference:
            self._set_up_reference()
        # The scale of the observed V(s): the reference's mean episode cost on the tuning episodes.
        self.reference_scale = float(constant_action_costs(self.scenario).min()) if observe_reference else 0.0
        self._reference_to_go = 0.0  # V(s) of the current state, when the reference is used
        self._reference_start = 0.0  # V(s_0) of the episode, when the reference is used

        n_max, l_max = self.scenario.max_batch, self.scenario.max_speculation
        self.actions: ActionMode = mode_class(n_max, l_max)
        self.action_space = self.actions.space(wait=self.has_wait)
        size = self.observation_size(n_max) + int(observe_reference) + len(QUEUE_FEATURES) * observe_queue
        self.observation_space = spaces.Box(0.0, 1.0, (size,), dtype=np.float32)
        self._mask_table = action_mask_table(n_max, l_max)  # row b: the mask when batch_limit() == b
        if speculation == "service_chain":  # the env plays l*(n): the action's l is ignored, and masked to l = 0
            self._mask_table = self._mask_table.copy()
            self._mask_table[:, n_max + 1:] = False

        self.episode: Episode | None = None
        self.clock = EpisodeClock()
        self.outcomes: list[BatchOutcome] = []
        self._task_features: np.ndarray | None = None
        self._feature_sums: np.ndarray | None = None  # observe_queue: row j sums task features 1..5 of tasks < j

    has_wait: ClassVar[bool] = False  # the online env's action space adds a wait

    @classmethod
    def observation_size(cls, max_batch: int) -> int:
        """4 global features + 6 per task of the window (the online env appends its block)."""
        return len(GLOBAL_FEATURES) + len(TASK_FEATURES) * max_batch

    def _make_scenario(self, scenario: str | ScenarioConfig, config: Mapping[str, Any] | ScenarioConfig | None,
                       overrides: dict[str, Any]) -> ScenarioConfig:
        """The validated scenario of the constructor's arguments (the online env adds its arrivals)."""
        made = make_scenario(scenario, config, **overrides)
        if made.arrivals.online:  # this env has every task at t = 0; arrivals would be ignored silently
            raise ValueError(f"ScenarioConfig.arrivals.process = {made.arrivals.process!r} is invalid for "
                             "EdgeSDEnv; allowed: 'offline' (use sdedge_gym.online_env.EdgeSDOnlineEnv or the "
                             "sdedge/EdgeSD-Online-* ids for arrivals over time)")
        return made

    # ------------------------------------------------------------------ Gymnasium API

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.episode, self._task_features = self._episode_from(options)
        if self.observe_queue:  # prefix sums, so that every step's summary is O(1)
            num_tasks = self.episode.num_tasks
            sums = np.zeros((num_tasks + 1, len(TASK_FEATURES) - 1))
            np.cumsum(self._task_features[:num_tasks, 1:], axis=0, dtype=np.float64, out=sums[1:])
            self._feature_sums = sums
        self.clock = EpisodeClock()
        self.outcomes = []
        self._start_episode()
        info = {"action_mask": self.action_masks()}
        if self.uses_reference:  # V(s_0) before the first observation, which may read it
            self._reference_to_go = self._reference_cost_to_go()
            self._reference_start = self._reference_to_go  # V(s_0): the scale of reward="relative"
            info["reference_cost_to_go"] = np.float64(self._reference_to_go)
        return self._observation(), info

    def _start_episode(self) -> None:
        """After the episode is drawn and the clock reset (the online env draws its arrivals here)."""

    def step(self, action):
        self._check_steppable()
        _, requested, speculation_length, weights = self.actions.decode(action)
        batch_size = min(requested, self.batch_limit())
        speculation_length = self._played_length(batch_size, speculation_length)
        outcome = self._commit(batch_size, speculation_length, weights, self.clock)
        terminated = self.clock.next_task >= self.episode.num_tasks
        info = self._step_info(outcome, outcome.batch_size, speculation_length, outcome.batch_size != requested)
        reward = -outcome.cost
        if self.uses_reference:
            reward = self._shaped_reward(reward, info)
        if terminated:
            info.update(self._kpi_info())
        return self._observation(), reward, terminated, False, info

    # ------------------------------------------------------------------ the reference (reward= and observe_reference)

    def _set_up_reference(self) -> None:
        """The reference policy, once per env: offline, the scenario's best constant action (cached per scenario)."""
        self.reference_action = best_constant_action(self.scenario)

    def _reference_cost_to_go(self) -> float:
        """V(s): the reference policy's cost to go from the current state, on the episode's own data."""
        return reference_cost_to_go(self.model, self.episode, self.clock, *self.reference_action)

    def _shaped_reward(self, reward: float, info: dict[str, Any]) -> float:
        """The step's reward under ``self.reward`` from its default ``reward`` (-cost), once the state has moved
        to s'; records both and V(s') in ``info``."""
        to_go = self._reference_cost_to_go()
        info["latency_reward"] = np.float64(reward)
        info["reference_cost_to_go"] = np.float64(to_go)
        if self.reward != "latency":  # the potential's difference, Phi(s') - Phi(s) with Phi = -V
            reward += self._reference_to_go - to_go
        if self.reward == "relative":  # in % of the reference's episode cost
            reward *= 100.0 / self._reference_start
        self._reference_to_go = to_go
        return reward

    def _played_length(self, batch_size: int, speculation_length: int) -> int:
        """The l the env serves the batch with: the action's, or under ``speculation="service_chain"`` the rule's."""
        return speculation_length if self.speculation == "action" else self.service_chain_length(batch_size)

    def service_chain_length(self, batch_size: int) -> int:
        """l*(n) of the next ``batch_size`` tasks from the current state
        (:func:`sdedge_gym.service_chain.service_chain_length`), on the episode as the observation shows it: the l
        that ``speculation="service_chain"`` plays, and the ``chain-l:`` policies' l."""
        episode, view = self._observed
        if episode is not self.episode:  # built once an episode
            view = predicted_episode(self.episode, exact=self.scenario.clairvoyant)
            self._observed = (self.episode, view)
        return service_chain_length(self.model, view, self.clock, batch_size)

    def _commit(self, batch_size: int, speculation_length: int, weights: np.ndarray | None,
                start: EpisodeClock) -> BatchOutcome:
        """Serve the next ``batch_size`` tasks from clock ``start`` (the kernel); the env's clock moves on."""
        outcome, self.clock = commit_batch(self.model, self.episode, start, batch_size, speculation_length,
                                           self._bandwidth(weights, batch_size))
        self.outcomes.append(outcome)
        return outcome

    def _step_info(self, outcome: BatchOutcome | None, batch_size: int, speculation_length: int,
                   clipped: bool) -> dict[str, Any]:
        """The STEP_INFO_KEYS of a step that served ``outcome`` (None: nothing served, the online wait)."""
        # Per-task arrays are zero-padded to n_max: every step's info then has the same shapes, which
        # Gymnasium's sync/async vector envs need to stack the infos of envs whose batches differ.
        n_max = self.scenario.max_batch
        bandwidth, completion_times = np.zeros(n_max), np.zeros(n_max)
        slot = wait = service_time = tokens = accepted = 0.0
        if outcome is not None:
            bandwidth[:batch_size] = outcome.bandwidth
            completion_times[:batch_size] = outcome.completion_times
            slot, wait, service_time = outcome.uplink_slot, outcome.wait, outcome.service_time
            tokens, accepted = outcome.tokens, outcome.accepted_drafts
        # Every entry is a numpy value (scalars 0-d, with a dtype): info readers such as TorchRL's
        # default_info_dict_reader convert each entry by its dtype and fail on Python ints and bools.
        return {
            "batch_size": np.int64(batch_size),
            "speculation_length": np.int64(speculation_length),
            "bandwidth": bandwidth,
            "uplink_slot": np.float64(slot),
            "wait": np.float64(wait),
            "service_time": np.float64(service_time),
            "completion_times": completion_times,
            "tokens": np.float64(tokens),
            "accepted_drafts": np.float64(accepted),
            # A 0-d bool array, not np.bool_: Gymnasium's vector envs stack np.bool_ into an object array.
            "action_clipped": np.array(clipped),
            "action_mask": self.action_masks(),
        }

    def _kpi_info(self) -> dict[str, np.float64]:
        """The last step's episode KPIs, as numpy values."""
        return {key: np.float64(value) for key, value in self.episode_kpis().items()}

    def _bandwidth(self, weights: np.ndarray | None, batch_size: int) -> np.ndarray | None:
        """Hz per user of the batch from the action's shares; None for the closed form (discrete mode)."""
        shares = self.actions.shares(weights, batch_size)
        return None if shares is None else shares[:batch_size] * self.scenario.uplink.bandwidth

    def _check_steppable(self) -> None:
        """RuntimeError unless an episode is running (this env's and the online env's step)."""
        if self.episode is None:
            raise RuntimeError(f"{type(self).__name__}.step() called before reset(); call reset() first")
        if self.clock.next_task >= self.episode.num_tasks:
            raise RuntimeError(f"{type(self).__name__}.step() called after the episode terminated; call reset() "
                               "first")

    def render(self):
        if self.render_mode is None:
            gym.logger.warn(f"{type(self).__name__}.render() called without a render_mode; pass render_mode='ansi' "
                            "or 'rgb_array' at construction (gymnasium.make(..., render_mode=...))")
            return None
        from sdedge_gym import render  # matplotlib stays optional: imported on first rgb_array frame

        if self.render_mode == "ansi":
            return render.dashboard(self.scenario, self.action_mode, self.episode, self.clock, self.outcomes)
        return render.gantt_rgb(self.model, self.episode, self.clock, self.outcomes)

    def _episode_from(self, options: Mapping[str, Any] | None) -> tuple[Episode, np.ndarray]:
        """A drawn episode, or the one ``options`` replays ("workload": a Workload, "episode": an Episode),
        and its observation task table."""
        options = options or {}  # other keys are left alone: wrappers and vector envs pass their own
        if "workload" in options and "episode" in options:
            raise ValueError("reset options 'workload' and 'episode' are exclusive; allowed: one of them")
        if "workload" in options:
            workload = options["workload"]
            if not isinstance(workload, Workload):
                raise ValueError(f"options['workload'] is a {type(workload).__name__}; allowed: a "
                                 "sdedge_gym.workload.Workload")
            episode = Episode.of(self.model, workload)
        elif "episode" in options:
            episode = options["episode"]
            if not isinstance(episode, Episode):
                raise ValueError(f"options['episode'] is a {type(episode).__name__}; allowed: a "
                                 "sdedge_gym.episode.Episode")
        else:
            return self._draw_episode()
        if episode.num_tasks != self.scenario.num_tasks or (episode.runs is None) != (
                self.scenario.acceptance == "expected"):
            raise ValueError(f"the replayed episode has {episode.num_tasks} tasks and "
                             f"{'no ' if episode.runs is None else ''}acceptance draws; allowed: "
                             f"{self.scenario.num_tasks} tasks, with acceptance draws only in sampled mode")
        return episode, task_feature_table(self.model, self.scales, episode)

    def _draw_episode(self) -> tuple[Episode, np.ndarray]:
        """Draw the next episode from ``self.np_random`` (see :func:`draw_episode`)."""
        return draw_episode(self.scenario, self._workload_parameters, self.np_random)

    # ------------------------------------------------------------------ masks and KPIs

    def batch_limit(self) -> int:
        """The largest valid batch now: min(memory/action limit, tasks left); 0 once the queue is empty."""
        episode = self.episode
        if episode is None:
            return 0
        # Called several times a step (the clipping, the observation, the mask): plain comparisons, not min().
        left, limit = episode.num_tasks - self.clock.next_task, self.model.batch_limit
        return left if left < limit else limit

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
        # sum / size is numpy's mean to the bit (the same pairwise sum, one division) without its Python wrapper,
        # which cost more than the rest of the last step.
        return {"mean_latency": float(completion.sum() / completion.size), "makespan": makespan,
                "throughput": tokens / makespan if makespan > 0 else 0.0}

    # ------------------------------------------------------------------ observation

    def _observation(self) -> np.ndarray:
        """The global features and the task window (the online env appends its block through super())."""
        clock = self.clock
        n_global, width = len(GLOBAL_FEATURES), len(TASK_FEATURES)
        n_window = n_global + width * self.scenario.max_batch
        observation = np.zeros(n_window + int(self.observe_reference) + len(QUEUE_FEATURES) * self.observe_queue,
                               dtype=np.float32)
        observation[:n_global] = global_features_one(self.model, self.scales, self.episode.num_tasks,
                                                     clock.next_task, self._uplink_time(), clock.inference_end,
                                                     self.batch_limit())
        visible = self._visible_tasks()
        observation[n_global:n_global + width * visible] = self._task_features[
            clock.next_task: clock.next_task + visible].ravel()
        if self.observe_reference:
            to_go = self._reference_to_go
            observation[n_window] = to_go / (to_go + self.reference_scale)
        if self.observe_queue:
            start = n_window + int(self.observe_reference)
            num_tasks = self.episode.num_tasks
            first = min(clock.next_task + self.scenario.max_batch, num_tasks)  # the first task past the window
            beyond = num_tasks - first
            observation[start] = beyond / num_tasks
            if beyond > 0:
                sums = self._feature_sums
                observation[start + 1:start + len(QUEUE_FEATURES)] = (sums[num_tasks] - sums[first]) / beyond
        return observation

    def _uplink_time(self) -> float:
        """When the next upload can start as far as the observation is concerned: the uplink's end."""
        return self.clock.uplink_end

    def _visible_tasks(self) -> int:
        """Rows of the task window the observation shows: all n_max (the table is zero past the queue)."""
        return self.scenario.max_batch

