"""The dynamics against golden trajectories recorded before the compiled kernel (scripts/make_golden.py).

Replays the recorded random actions on every registered id and compares observations, rewards, every
numeric info value and the episode KPIs, and the oracle's optimum on fixed seeds. The kernel computes
the same model with a different operation order in places (compiled code, fused loops), so values are
compared to a relative tolerance of 1e-9 (about 10^7 ulps of slack: far below any modelling change,
far above rounding); integers and masks are compared exactly. The hybrid ids were re-recorded after the
hybrid band split got its floor share (an intended change of the action mapping; see scripts/make_golden.py).
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import sdedge_gym
from sdedge_agents.oracle import optimal_plan
from sdedge_gym.episode import Episode, ServingModel
from sdedge_gym.scenarios import make_scenario

GOLDEN = np.load(Path(__file__).parent / "data" / "golden.npz")
RTOL = 1e-9
EXACT_KEYS = ("batch_size", "speculation_length", "action_clipped", "action_mask")
FLOAT_KEYS = ("bandwidth", "uplink_slot", "wait", "service_time", "completion_times", "tokens", "accepted_drafts")
KPI_KEYS = ("mean_latency", "makespan", "throughput")
CASES = sorted({tuple(k.split("|")[:2]) for k in GOLDEN.files if k.startswith("sdedge/")})


def unflatten_action(space, flat: np.ndarray):
    """The recorded action in today's layout. The dict mode was recorded 1-based (key "batch_size", the
    same sorted position as today's "batch_size_minus_one"), and is 0-based now."""
    if isinstance(space, gym.spaces.Dict):
        out, i = {}, 0
        for key in sorted(space.spaces):
            sub = space.spaces[key]
            size = int(np.prod(sub.shape)) if sub.shape else 1
            value = flat[i:i + size]
            i += size
            out[key] = int(value[0]) if isinstance(sub, gym.spaces.Discrete) else value.astype(sub.dtype)
            if key == "batch_size_minus_one":
                out[key] -= 1
        return out
    return flat.astype(space.dtype).reshape(space.shape)


@pytest.mark.parametrize(("env_id", "seed"), CASES)
def test_trajectory_matches_golden(env_id, seed):
    key = f"{env_id}|{seed}|"
    env = gym.make(env_id)
    obs, _ = env.reset(seed=int(seed))
    np.testing.assert_allclose(obs, GOLDEN[key + "obs"][0], rtol=RTOL, atol=1e-12)
    for t, flat in enumerate(GOLDEN[key + "actions"]):
        obs, reward, done, _, info = env.step(unflatten_action(env.action_space, flat))
        np.testing.assert_allclose(obs, GOLDEN[key + "obs"][t + 1], rtol=RTOL, atol=1e-12, err_msg=f"obs {t}")
        np.testing.assert_allclose(reward, GOLDEN[key + "rewards"][t], rtol=RTOL, err_msg=f"reward {t}")
        for name in EXACT_KEYS:
            want = GOLDEN[key + name][t].copy()
            if name == "action_mask" and done:
                want[0] = 1.0  # recorded when the terminal mask had no valid entry; now n = 1 stays valid there
            np.testing.assert_array_equal(np.asarray(info[name], dtype=float), want, err_msg=name)
        for name in FLOAT_KEYS:
            np.testing.assert_allclose(info[name], GOLDEN[key + name][t], rtol=RTOL, atol=1e-12, err_msg=name)
    assert done
    np.testing.assert_allclose([info[k] for k in KPI_KEYS], GOLDEN[key + "kpis"], rtol=RTOL)


ORACLE_CASES = sorted(k.split("|")[1:] for k in GOLDEN.files if k.startswith("oracle|"))


@pytest.mark.parametrize(("preset", "acceptance", "seed"), ORACLE_CASES)
def test_oracle_optimum_matches_golden(preset, acceptance, seed):
    model = ServingModel.of(make_scenario(preset, acceptance=acceptance))
    episode = Episode.draw(model, np.random.default_rng(int(seed)))
    plan = optimal_plan(model, episode)
    np.testing.assert_allclose(plan.cost, GOLDEN[f"oracle|{preset}|{acceptance}|{seed}"][0], rtol=RTOL)


def test_golden_covers_every_offline_id():
    # The online family came after the kernel; its zero-arrival episodes are the offline ones step for step
    # (tests/test_online_env.py), which ties it to these trajectories.
    assert {env_id for env_id, _ in CASES} == set(sdedge_gym.registration.OFFLINE_ENV_IDS)
