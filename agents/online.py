"""Reference policies of the online env (``EdgeSDOnlineEnv``): the hindsight oracle, a re-planning planner
and the serving baselines.

**The hindsight oracle** is the DP of :mod:`sdedge_agents.oracle` with release times (``solve(...,
release=arrivals, now=t)``, the one DP of every oracle and planner). In the online env a batch
of tasks p..j-1 can be dispatched at any decision epoch t >= max(u, a_{j-1}) (u the end of the last
uplink slot, a the arrival times): every earlier epoch lacks task j-1, and waiting from epoch to epoch
reaches exactly t = max(u, a_{j-1}) (the arrival instant a_{j-1}, or u if it came earlier). Dispatching
later never helps, because every later time is monotone in the dispatch time. So after the first j
tasks the state is still a label (u, f, c), and serving segment (p, n, l) maps it by

    t = max(u, a_{p+n-1}),   u' = t + U[p, n],   S = max(u', f),   f' = S + D[p, n, l],
    c' = c + (n S + C[p, n, l] - sum_{k=p}^{p+n-1} a_k) / K

which is monotone in (u, f, c), so Pareto pruning is exact. Shift dominance also survives: x -> max(x, a)
is monotone and 1-Lipschitz, so from label a every later completion is at most
delta = max(0, u_a - u_b, f_a - f_b) later than from label b under the same continuation, and
c_a + r delta / K <= c_b still proves a at least as good (r tasks left). Within a segment the
speculation-length front of the offline oracle applies unchanged (same start, smaller D and C). The
oracle replays its plan: at an epoch it waits while the planned batch's last task has not arrived.
It knows the future arrivals, the output lengths and (sampled mode) the acceptance draws: it is the
optimum in hindsight, and on a clairvoyant expected-acceptance id the optimum over every action
sequence of the env (tests/test_online_oracle.py checks it against exhaustive search with waits).

**The planner** re-plans at every epoch with the same DP on the tasks that have *arrived* only (their
length hints and acceptance estimates, expected acceptance; at most ``horizon``, default 2 n_lim, of
them) and takes the plan's first batch, of n tasks. With ``forecast`` (the default) it waits instead when
that batch is not full and its upload would end ``slack`` = F - (t + U) seconds before the MBS is free, with
slack > 1 / r̂ for the estimated arrival rate r̂ (the observation's estimator): the next request is
expected before waiting would delay anything. Without ``forecast`` it never waits. The *posterior planner*
(``posterior=True``) is the same on tables averaged over draws of the hidden lengths and rates from their
posterior given the hints (``sdedge_agents.posterior``), as the offline ``PosteriorPlanner``.

**Baselines.** Dispatch-immediately: at every epoch, every waiting task (up to the batch limit).
Max-batch-with-timeout: dispatch when ``max_batch`` (default n_lim) tasks are waiting or the oldest has
waited ``timeout`` s (default 10; checked at the decision epochs, arrivals and uplink-free instants, so a
timeout expiring between arrivals acts at the next one), else wait. AD: dispatch-immediately
with l = 0 (autoregressive decoding, no draft). Their l is, for each batch size n, the best constant l
for batches of n on the offline tuning episodes (``sdedge_agents.baselines.constant_action_costs``).
Uniform-shares: the hindsight oracle with equal band shares (hybrid/dict envs).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import lru_cache

import numpy as np

from sdedge_agents.oracle import Plan, check_allocation, closed_form_shares, solve
from sdedge_agents.planner import (
    POSTERIOR_SAMPLES,
    posterior_episodes,
    predicted_episode,
    shared_slot_mean,
    window_episode,
)
from sdedge_agents.policy import Policy
from sdedge_gym.config import ScenarioConfig
from sdedge_gym.episode import Episode
from sdedge_gym.online_env import EdgeSDOnlineEnv
from sdedge_gym.reference import REFERENCE_TIMEOUT, TUNING_SEEDS, best_lengths_by_batch
from sdedge_gym.segments import SegmentTables, segment_tables


class OnlinePolicy(Policy):
    """Base of the online policies: :meth:`decide` returns None to wait, or (n, l) to dispatch."""

    name = "online-policy"
    env_class = EdgeSDOnlineEnv
    counterpart = "sdedge_agents.DPOracle"
    uniform_shares = False

    def decide(self) -> tuple[int, int] | None:
        raise NotImplementedError(f"{type(self).__name__} must implement decide()")

    def act(self, observation):
        step = self.decide()
        if step is None:
            return self.actions.encode(1, 0, wait=True)
        n, l = step
        shares = None
        if self.actions.explicit_band:
            shares = np.full(n, 1.0 / n) if self.uniform_shares else closed_form_shares(self.unwrapped, n)
        return self.encode(n, l, shares)

    def waiting(self) -> int:
        """Arrived tasks not yet dispatched."""
        return int(self.unwrapped.arrived - self.unwrapped.clock.next_task)


class OnlineOracle(OnlinePolicy):
    """The hindsight-optimal plan (release-time DP), replayed; re-plans if the env left the plan."""

    name = "oracle"

    def __init__(self, env, allocation: str = "closed_form") -> None:
        super().__init__(env)
        check_allocation(allocation, self.action_mode)
        self.allocation = allocation
        self.uniform_shares = allocation == "uniform"
        self._episode: Episode | None = None
        self._tables: SegmentTables | None = None
        self.plan: Plan | None = None

    def decide(self) -> tuple[int, int] | None:
        env = self.unwrapped
        if env.episode is not self._episode:
            self._episode = env.episode
            self._tables = segment_tables(env.model, env.episode, self.allocation)
            self.plan = None
        step = None if self.plan is None else self.plan.action_at(env.clock.next_task)
        if step is None:
            self.plan = solve(self._tables, "mean_latency", start=env.clock, release=env.arrival, now=env.now)
            step = self.plan.batches[0]
        n, _ = step
        return step if self.waiting() >= n else None  # its last task has not arrived: wait for it


class OnlineUniformShares(OnlineOracle):
    """The hindsight-optimal plan under equal band shares (the paper's benchmark split); hybrid/dict envs."""

    name = "uniform-shares"
    counterpart = "sdedge_agents.UniformShares"

    def __init__(self, env) -> None:
        super().__init__(env, allocation="uniform")


# How the online planner anticipates arrivals (OnlinePlanner's forecast).
FORECASTS = ("slack", "phantom", "none")


class OnlinePlanner(OnlinePolicy):
    """Re-plans at every epoch on the arrived tasks (hints and estimates, or the truth with ``exact``).

    ``posterior=True`` (``posterior-planner``) plans on tables averaged over draws of the hidden lengths and
    rates from their posterior given the hints, as :class:`sdedge_agents.planner.PosteriorPlanner` does offline
    (each task's draws depend on its own hints only, so tasks still to come still play no part).

    ``forecast`` says how it anticipates arrivals: "slack" waits when the planned batch would be uploaded
    more than one expected inter-arrival time (the observed rate) before the MBS frees up; "phantom" plans
    the arrived tasks together with n_lim expected ones (copies of the arrived window, arriving at the
    scenario's mean rate from now) and waits when the plan's first batch holds a task not yet arrived;
    "none" dispatches the plan's first batch. None (the default) keeps whichever has the least mean
    latency on tuning episodes (:func:`tune_forecast`; training windows on a trace).
    """

    name = "planner"
    counterpart = "sdedge_agents.MPCPlanner"

    def __init__(self, env, exact: bool = False, horizon: int | None = None, forecast: str | bool | None = None,
                 posterior: bool = False) -> None:
        super().__init__(env)
        if exact and posterior:
            raise ValueError("exact = True and posterior = True are exclusive; allowed: at most one of them")
        self.exact, self.posterior = exact, bool(posterior)
        if self.posterior:
            self.name = "posterior-planner"
        forecast = {True: "slack", False: "none"}.get(forecast, forecast) if isinstance(forecast, bool) else forecast
        if forecast is not None and forecast not in FORECASTS:
            raise ValueError(f"forecast = {forecast!r} is invalid; allowed: None (tuned) | "
                             f"{' | '.join(map(repr, FORECASTS))} (True = 'slack', False = 'none')")
        self.forecast = forecast
        limit = self.unwrapped.model.batch_limit
        self.horizon = 2 * limit if horizon is None else horizon
        if not (isinstance(self.horizon, int) and self.horizon >= 1):
            raise ValueError(f"horizon = {horizon!r} is invalid; allowed: an integer >= 1")
        self._episode: Episode | None = None
        self._tables: SegmentTables | None = None
        if forecast is None:  # chosen on tuning episodes (the training part of a trace)
            self.forecast = tune_forecast(self.unwrapped.scenario, exact, self.horizon, posterior=self.posterior)

    def decide(self) -> tuple[int, int] | None:
        env = self.unwrapped
        if env.episode is not self._episode:
            # A segment's entries depend on its own tasks only, so the DP below, which reads segments of
            # arrived tasks only, uses nothing of the tasks still to come.
            self._episode = env.episode
            self._tables = self._planned_tables(env, slice(None), lambda view: view)
        first = env.clock.next_task
        end = min(env.arrived, first + self.horizon)
        plan = solve(self._tables, "mean_latency", env.episode.num_tasks, env.clock, release=env.arrival, now=env.now,
                     end=end)
        n, l = plan.batches[0]
        if self.forecast == "phantom" and env.can_wait():
            return self._with_phantoms(env, end - first)
        if self.forecast == "slack" and n < env.model.batch_limit and env.can_wait():
            # The batch would be uploaded `slack` s before the MBS is free: waiting that long delays none of
            # its tasks' service, and the next arrival is expected within 1 / rate.
            slack = env.clock.inference_end - (env.now + float(self._tables.uplink_slot[first, n - 1]))
            rate = estimated_arrival_rate(env)
            if rate > 0.0 and slack * rate > 1.0:
                return None
        return n, l


    def _with_phantoms(self, env: EdgeSDOnlineEnv, seen: int) -> tuple[int, int] | None:
        """The first batch of the plan over the ``seen`` arrived tasks and n_lim expected ones, or a wait when
        that batch holds an expected task (its last task has not arrived)."""
        first = env.clock.next_task
        phantoms = min(env.model.batch_limit, env.episode.num_tasks - env.arrived)
        tables = self._planned_tables(env, slice(first, first + seen), lambda view: window_episode(
            view, first, seen, True, length=seen + phantoms))
        release = np.concatenate([env.arrival[first:first + seen],
                                  env.now + np.arange(1, phantoms + 1) / env.mean_arrival_rate])
        start = dataclasses.replace(env.clock, next_task=0)
        plan = solve(tables, "mean_latency", env.episode.num_tasks, start, release=release, now=env.now)
        n, l = plan.batches[0]
        return (n, l) if n <= seen else None

    def _planned_tables(self, env: EdgeSDOnlineEnv, tasks: slice, view: Callable[[Episode], Episode]) -> SegmentTables:
        """The tables of ``view(episode as the planner believes it)``: the hints (the truth with ``exact``), or
        with ``posterior`` the mean over draws of ``tasks``' hidden columns (``view`` reads only those)."""
        if not self.posterior:
            return segment_tables(env.model, view(predicted_episode(env.episode, self.exact)))
        draws = posterior_episodes(env.episode, env.scenario, POSTERIOR_SAMPLES, 0, tasks)
        return shared_slot_mean(draws, lambda draw, slot: segment_tables(env.model, view(draw), uplink_slot=slot))


def estimated_arrival_rate(env: EdgeSDOnlineEnv) -> float:
    """(m - 1) / (t - a_first) over the m = min(arrived, n_max + 1) latest arrivals (the observation's
    estimate, unsquashed); 0 with fewer than 2 arrivals, inf for a burst at one instant."""
    recent = min(env.arrived, env.scenario.max_batch + 1)
    if recent < 2:
        return 0.0
    span = env.now - float(env.arrival[env.arrived - recent])
    return (recent - 1) / span if span > 0 else float("inf")


class DispatchImmediately(OnlinePolicy):
    """Every waiting task (up to the batch limit) at every epoch; l tuned per batch size (or fixed)."""

    name = "dispatch-immediately"
    counterpart = "sdedge_agents.BestConstant"

    def __init__(self, env, speculation_length: int | None = None) -> None:
        super().__init__(env)
        if speculation_length is not None and not (
                isinstance(speculation_length, int) and 0 <= speculation_length <= self.max_speculation):
            raise ValueError(f"speculation_length = {speculation_length!r} is invalid; allowed: None or an integer "
                             f"in [0, {self.max_speculation}]")
        self.speculation_length = speculation_length
        # l per n: the best constant l for batches of n offline (the env's reward="reference" rule uses the same).
        self._best_l = best_lengths_by_batch(self.unwrapped.scenario) if speculation_length is None else None

    def length_for(self, batch_size: int) -> int:
        return self._best_l[batch_size - 1] if self.speculation_length is None else self.speculation_length

    def decide(self) -> tuple[int, int] | None:
        n = self.batch_limit()
        return n, self.length_for(n)


class Autoregressive(DispatchImmediately):
    """AD: dispatch-immediately with l = 0 (plain autoregressive decoding on the MBS)."""

    name = "autoregressive"
    counterpart = "sdedge_agents.Autoregressive"

    def __init__(self, env) -> None:
        super().__init__(env, speculation_length=0)


class MaxBatchTimeout(DispatchImmediately):
    """The classic serving rule: dispatch when ``max_batch`` tasks wait or the oldest has waited ``timeout``."""

    name = "max-batch-timeout"
    counterpart = "sdedge_agents.MaxBatch"

    def __init__(self, env, timeout: float = REFERENCE_TIMEOUT, max_batch: int | None = None) -> None:
        super().__init__(env)
        limit = self.unwrapped.model.batch_limit
        self.max_batch_size = limit if max_batch is None else max_batch
        if not (isinstance(self.max_batch_size, int) and 1 <= self.max_batch_size <= limit):
            raise ValueError(f"max_batch = {max_batch!r} is invalid; allowed: None or an integer in [1, {limit}]")
        if not (isinstance(timeout, int | float) and np.isfinite(timeout) and timeout >= 0):
            raise ValueError(f"timeout = {timeout!r} is invalid; allowed: a finite number of seconds >= 0")
        self.timeout = float(timeout)

    def decide(self) -> tuple[int, int] | None:
        env = self.unwrapped
        waiting = self.waiting()
        oldest_wait = env.now - float(env.arrival[env.clock.next_task])
        if waiting >= self.max_batch_size or oldest_wait >= self.timeout or not env.can_wait():
            n = min(waiting, self.max_batch_size, self.batch_limit())
            return n, self.length_for(n)
        return None


# The timeouts max-batch-timeout-tuned tries, as multiples of the scenario's mean inter-arrival time 1 / rate
# (for a trace with load, the rescaled rate; else the arrival_rate): 0 is dispatch-when-free.
TIMEOUT_GRID = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)


def tuning_env(env) -> EdgeSDOnlineEnv:
    """An env of ``env``'s scenario whose episodes tune a policy: on a trace, windows of the training part
    whatever window ``env`` uses, so that a score on the test part never saw them."""
    base = env.unwrapped
    arrivals = base.scenario.arrivals
    if arrivals.process == "trace":
        arrivals = arrivals.replace(trace_window="train")
    return EdgeSDOnlineEnv(base.scenario.replace(arrivals=arrivals), base.action_mode)


def tuning_latency(policy: OnlinePolicy, seeds: tuple[int, ...]) -> float:
    """The mean latency of ``policy`` over the episodes ``seeds`` of its (tuning) env."""
    env = policy.unwrapped
    latencies = []
    for seed in seeds:
        observation, _ = env.reset(seed=seed)
        terminated = False
        while not terminated:
            observation, _, terminated, _, _ = env.step(policy.predict(observation)[0])
        latencies.append(env.latencies().mean())
    return float(np.mean(latencies))


def tune_timeout(env, seeds: tuple[int, ...] = TUNING_SEEDS) -> float:
    """The timeout (s) of :class:`MaxBatchTimeout` (max batch n_lim) with the least mean latency over the
    tuning episodes ``seeds`` of ``env``'s scenario (:func:`tuning_env`), from ``TIMEOUT_GRID`` times the
    mean inter-arrival time."""
    tuning = tuning_env(env)
    gap = 1.0 / tuning.mean_arrival_rate
    return min((tuning_latency(MaxBatchTimeout(tuning, timeout=m * gap), seeds), m * gap) for m in TIMEOUT_GRID)[1]


class TunedMaxBatchTimeout(MaxBatchTimeout):
    """:class:`MaxBatchTimeout` with its timeout tuned on tuning episodes (:func:`tune_timeout`)."""

    name = "max-batch-timeout-tuned"

    def __init__(self, env, seeds: tuple[int, ...] = TUNING_SEEDS) -> None:
        super().__init__(env, timeout=tune_timeout(env, seeds))


@lru_cache(maxsize=16)
def tune_forecast(scenario: ScenarioConfig, exact: bool, horizon: int, seeds: tuple[int, ...] = TUNING_SEEDS,
                  posterior: bool = False) -> str:
    """The :class:`OnlinePlanner` forecast (``FORECASTS``, first on ties) with the least mean latency on the
    tuning episodes ``seeds`` of ``scenario`` (:func:`tuning_env`). Waiting for arrivals pays by a factor of
    ~5 under Poisson traffic and on the conversation trace; on the code trace's bursts (many requests at one
    instant inflate the observed rate) the slack rule waits for arrivals that do not come."""
    tuning = tuning_env(EdgeSDOnlineEnv(scenario))
    latency = {forecast: tuning_latency(OnlinePlanner(tuning, exact, horizon, forecast, posterior), seeds)
               for forecast in FORECASTS}
    return min(FORECASTS, key=lambda forecast: latency[forecast])


class OnlineRandom(OnlinePolicy):
    """Uniformly random valid actions: each valid batch size and the wait (when valid) equally likely."""

    name = "random"
    counterpart = "sdedge_agents.RandomPolicy"

    def __init__(self, env, seed: int | None = 0) -> None:
        super().__init__(env)
        self.rng = np.random.default_rng(seed)

    def decide(self) -> tuple[int, int] | None:
        choices = self.batch_limit() + int(self.unwrapped.can_wait())
        n = int(self.rng.integers(1, choices + 1))
        l = int(self.rng.integers(0, self.max_speculation + 1))
        return None if n > self.batch_limit() else (n, l)


ONLINE_POLICIES = {
    "oracle": OnlineOracle,
    "planner": OnlinePlanner,
    "planner-exact": lambda env: OnlinePlanner(env, exact=True),
    "posterior-planner": lambda env: OnlinePlanner(env, posterior=True),
    "dispatch-immediately": DispatchImmediately,
    "max-batch-timeout": MaxBatchTimeout,
    "max-batch-timeout-tuned": TunedMaxBatchTimeout,
    "autoregressive": Autoregressive,
    "uniform-shares": OnlineUniformShares,
    "random": OnlineRandom,
}
ONLINE_DEFAULT_POLICIES = ("oracle", "planner", "max-batch-timeout", "dispatch-immediately", "autoregressive",
                           "uniform-shares", "random")


def make_online_policy(spec: str, env):
    """The online policy named ``spec``: a name of ONLINE_POLICIES or ``timeout:N:T`` (max batch N, timeout T s)."""
    if spec in ONLINE_POLICIES:
        return ONLINE_POLICIES[spec](env)
    if spec.startswith("timeout:"):
        parts = spec.split(":")
        try:
            n, timeout = int(parts[1]), float(parts[2])
        except (IndexError, ValueError):
            n = timeout = None
        if len(parts) != 3 or n is None:
            raise ValueError(f"policy {spec!r} is invalid; allowed: timeout:N:T with an integer N >= 1 and T >= 0 s")
        return MaxBatchTimeout(env, timeout=timeout, max_batch=n)
    raise ValueError(f"policy {spec!r} is unknown for an online env; allowed: {', '.join(ONLINE_POLICIES)}, "
                     "timeout:N:T, pretrained:NAME, sb3:ALGO:PATH")
