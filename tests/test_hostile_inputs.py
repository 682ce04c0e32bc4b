"""A hostile-input sweep: every config field, every action entry, every registered id, the CLI and the script.

Each bad input must raise a ValueError / TypeError / RuntimeError naming what is wrong (never an unrelated
traceback, never a hang), or be served as documented. A rejected action must leave the episode unchanged.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import math
import pickle
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import sdedge_gym
from sdedge_agents import evaluate as evaluate_module
from sdedge_gym.config import MAX_SAMPLED_POSITIONS, _DictMixin
from sdedge_gym.env import EdgeSDEnv
from sdedge_gym.online_env import EdgeSDOnlineEnv, encode_online_action
from sdedge_gym.registration import OFFLINE_ENV_IDS
from sdedge_gym.scenarios import make_scenario

SMALL = "sdedge/EdgeSD-Small-v0"
HOSTILE_NUMBERS = (math.nan, math.inf, -math.inf, 1e308, -1e308, 10**400, True, "1e6", None)


def _ids_kwargs(env_id: str) -> dict[str, Any]:
    return {"num_tasks": 12} if any(p in env_id for p in ("Large", "Paper", "Uplink", "EdgeSD-v0")) else {}


def _numeric_fields(config: _DictMixin, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    """(path, declared type) of every int/float/bool field of a nested config."""
    out = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, _DictMixin):
            out += _numeric_fields(value, (*prefix, f.name))
        elif f.type in ("int", "float", "bool"):
            out.append(((*prefix, f.name), f.type))
    return out


def _nested(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    for key in reversed(path):
        value = {key: value}
    return value


def _run_episode(env: EdgeSDEnv) -> list[float]:
    env.reset(seed=0)
    rewards, terminated = [], False
    while not terminated:
        _, reward, terminated, _, _ = env.step(np.array([env.scenario.max_batch - 1, 1]))
        rewards.append(reward)
    return rewards


# ------------------------------------------------------------------------------------------ config fields

FIELDS = _numeric_fields(make_scenario("small"))


# A log-std of 1e308 overflows exp (numpy warns) and the lengths clip to their range: served, as documented.
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.parametrize("rate_model", ["shannon", "fixed_snr"])
@pytest.mark.parametrize(("path", "kind"), FIELDS, ids=[".".join(p) for p, _ in FIELDS])
def test_every_config_field_rejects_or_serves_hostile_values(path, kind, rate_model) -> None:
    """NaN, inf, huge, bool, string and None in every field: an error naming it, or a finite episode."""
    values = HOSTILE_NUMBERS if kind != "bool" else (1, 0, 0.5, "yes", None, math.nan)
    for value in values:
        config = {"uplink": {"rate_model": rate_model}}
        config = _deep_update(config, _nested(path, value))
        try:
            env = EdgeSDEnv("small", config=config)
        except (ValueError, TypeError) as error:
            message = str(error)
            # The field by name, or (for a derived check: the model does not fit) the node it belongs to.
            assert path[-1] in message or path[0] in message, (path, value, message)
            continue
        assert kind == "float" and value in (1e308, 10**400), (path, value)  # only a huge float may pass
        rewards = _run_episode(env)
        assert all(math.isfinite(r) and r <= 0 for r in rewards), (path, value, rewards)


def _deep_update(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        out[key] = _deep_update(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


@pytest.mark.parametrize("config", [
    {"uplink": {"bandwidth": 1e300}}, {"uplink": {"noise_density": 1.0}},
    {"workload": {"path_loss_db_at_1km": 500.0}}, {"workload": {"distance_min": 1e8, "distance_max": 1e9}},
    {"uplink": {"bandwidth": 1e-300}}, {"uplink": {"transmit_power": 1e-12}},
    {"workload": {"path_loss_db_at_1km": 300.0}}, {"workload": {"distance_min": 1e5, "distance_max": 2e5}},
])
def test_degenerate_rates_are_rejected_at_construction_naming_the_fields(config) -> None:
    """The configs that once died with a bare ZeroDivisionError (some mid-episode) now fail at gym.make."""
    section, fields = next(iter(config.items()))
    with pytest.raises(ValueError, match="degenerate") as error:
        gym.make(SMALL, config=config)
    assert any(f"{section}.{name}" in str(error.value) for name in fields), str(error.value)


@pytest.mark.parametrize("env_id", sdedge_gym.SINGLE_CELL_ENV_IDS)  # multi-cell: test_multicell_ids.py
def test_every_id_and_its_vector_env_reject_degenerate_and_boolean_configs(env_id) -> None:
    for config, match in (({"uplink": {"bandwidth": 1e300}}, "degenerate"),
                          ({"uplink": {"bandwidth": True}}, r"UplinkConfig\.bandwidth = True"),
                          ({"workload": {"alpha_max": math.nan}}, r"WorkloadConfig\.alpha_max = nan")):
        with pytest.raises(ValueError, match=match):
            gym.make(env_id, config=config)
        if env_id in OFFLINE_ENV_IDS:  # the online ids have no native vector env
            with pytest.raises(ValueError, match=match):
                gym.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point", config=config)


@pytest.mark.parametrize("config", [[1, 2], "paper", 42, 1.5])
def test_a_config_that_is_not_a_mapping_is_a_type_error(config) -> None:
    with pytest.raises(TypeError, match=r"config = .* is invalid; allowed: None, a \(nested\) mapping"):
        gym.make(SMALL, config=config)


def test_a_nested_section_that_is_not_a_mapping_names_the_section() -> None:
    with pytest.raises(ValueError, match=r"ScenarioConfig\.uplink = 5 is invalid; allowed: a mapping"):
        gym.make(SMALL, config={"uplink": 5})
    with pytest.raises(ValueError, match="unknown scenario preset"):
        EdgeSDEnv(scenario=["small"])


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"config": {"uplink": {"bandwidth": True}}}, "bandwidth"),
    ({"num_tasks": True}, "num_tasks"),
    ({"max_batch": np.True_}, "max_batch"),
    ({"config": {"draft": {"efficiency": True}}}, "efficiency"),
])
def test_booleans_are_not_numbers_in_config(kwargs, field) -> None:
    with pytest.raises(ValueError, match=field):
        gym.make(SMALL, **kwargs)


def test_numpy_scalars_are_accepted_like_python_numbers() -> None:
    env = gym.make(SMALL, num_tasks=np.int64(8), max_batch=np.int32(4), clairvoyant=np.True_,
                   config={"uplink": {"bandwidth": np.float32(1e6)}, "workload": {"alpha_max": np.float64(0.9)}})
    scenario = env.unwrapped.scenario
    assert scenario == make_scenario("small", config={"uplink": {"bandwidth": 1e6}, "workload": {"alpha_max": 0.9}})
    # stored as Python numbers, so the config compares, hashes and serialises like one written by hand
    assert type(scenario.uplink.bandwidth) is float and type(scenario.num_tasks) is int
    assert type(scenario.max_batch) is int and type(scenario.clairvoyant) is bool
    _run_episode(env.unwrapped)


@pytest.mark.parametrize("num_tasks", [0, -1, 10**6])
def test_num_tasks_out_of_range_is_a_clear_error(num_tasks) -> None:
    with pytest.raises(ValueError, match=r"WorkloadConfig\.num_tasks = .* allowed: an integer in \[1, 100000\]"):
        gym.make(SMALL, num_tasks=num_tasks)


def test_one_task_is_one_step() -> None:
    for env_id in ("sdedge/EdgeSD-Small-v0", "sdedge/EdgeSD-Small-Hybrid-Stochastic-v0",
                   "sdedge/EdgeSD-Paper-Dict-v0"):
        env = gym.make(env_id, num_tasks=1)
        _, info = env.reset(seed=0)
        assert info["action_mask"][:env.unwrapped.scenario.max_batch].tolist() == \
            [True] + [False] * (env.unwrapped.scenario.max_batch - 1)
        _, reward, terminated, _, info = env.step(env.action_space.sample())  # any batch size clips to 1
        assert terminated and info["batch_size"] == 1 and math.isfinite(reward)


def test_sampled_acceptance_has_a_memory_bound() -> None:
    # Sampled mode keeps K x O_cap per-position draws; past the bound (about 0.6 GB) it is an error, not a swap storm.
    with pytest.raises(ValueError, match=rf"acceptance = 'sampled' is invalid.*<= {MAX_SAMPLED_POSITIONS}"):
        gym.make("sdedge/EdgeSD-Paper-Stochastic-v0", num_tasks=100_000)
    gym.make("sdedge/EdgeSD-Paper-v0", num_tasks=100_000)  # expected mode keeps O(K) arrays: allowed


def test_render_mode_human_gets_the_envs_own_error() -> None:
    for make in (lambda: gym.make(SMALL, render_mode="human"), lambda: EdgeSDEnv("small", render_mode="human")):
        with pytest.raises(ValueError, match=r"render_mode = 'human' is invalid; allowed: None \| 'ansi' \| "
                                             r"'rgb_array'"):
            make()
    collected = gym.make(SMALL, render_mode="rgb_array_list")  # Gymnasium's RenderCollection still applies
    assert isinstance(collected.env.env, gym.wrappers.RenderCollection)


# ------------------------------------------------------------------------------------ every id, every action


def _valid_action(env: EdgeSDEnv) -> Any:
    if isinstance(env, EdgeSDOnlineEnv):
        return encode_online_action(env.action_mode, 1, 1, env.scenario.max_batch, env.scenario.max_speculation)
    return sdedge_gym.actions.encode_action(env.action_mode, 1, 1, env.scenario.max_batch, env.scenario.max_speculation)


def _bad_actions(env: EdgeSDEnv) -> list[Any]:
    """NaN/inf/huge in every entry, non-integers, out of range, wrong shapes, keys and types."""
    n_max = env.scenario.max_batch
    bad_values = (math.nan, math.inf, -math.inf, 1e308, -1e308, 1.5)
    out: list[Any] = [None, "1", object(), [[0, 0]], {"batch_size": 1}]
    if env.action_mode in ("discrete", "hybrid"):
        width = 2 if env.action_mode == "discrete" else 2 + n_max
        for i in range(width):
            limit = (n_max, env.scenario.max_speculation + 1)[i]  if env.action_mode == "discrete" else None
            for value in (*bad_values, *((-1.0, float(limit)) if limit is not None else ())):
                action = np.asarray(_valid_action(env), dtype=float)
                action[i] = value
                out.append(action)
        out += [np.zeros(width - 1), np.zeros(width + 1), np.zeros((2, width)), np.float64(0.0),
                np.zeros(width, dtype=bool), [True] * width, [0] * (width - 1) + [True]]
        return out
    valid = _valid_action(env)
    for key, values in (("batch_size_minus_one", (*bad_values, -1, n_max, True, np.zeros(2), "2")),
                        ("speculation_length", (*bad_values, -1, env.scenario.max_speculation + 1, False))):
        out += [{**valid, key: value} for value in values]
    for i in range(n_max):
        for value in (*bad_values, -0.5):
            weights = np.array(valid["bandwidth"], dtype=float)
            weights[i] = value
            out.append({**valid, "bandwidth": weights})
    out += [{**valid, "bandwidth": np.ones(n_max - 1)}, {**valid, "bandwidth": np.ones(n_max + 1)},
            {**valid, "bandwidth": np.ones(n_max, dtype=bool)},
            {k: v for k, v in valid.items() if k != "bandwidth"}, {**valid, "extra": 1},
            {"batchsize": 1, "speculation_length": 1, "bandwidth": valid["bandwidth"]}, {1: 2, "a": 3},
            [valid["batch_size_minus_one"], valid["speculation_length"], valid["bandwidth"]]]
    return out


# The offline action layouts; the online ids' (with the wait entry): tests/test_online_env.py,
# test_out_of_space_actions_raise_naming_the_entry.
@pytest.mark.parametrize("env_id", OFFLINE_ENV_IDS)
def test_every_bad_action_is_a_value_error_that_changes_nothing(env_id) -> None:
    env = gym.make(env_id, **_ids_kwargs(env_id)).unwrapped
    env.reset(seed=0)
    env.step(_valid_action(env))
    clock, outcomes = env.clock, len(env.outcomes)
    for action in _bad_actions(env):
        with pytest.raises(ValueError, match="action") as error:
            env.step(action)
        assert "allowed" in str(error.value), (action, str(error.value))
        assert env.clock == clock and len(env.outcomes) == outcomes, action
    env.step(_valid_action(env))  # still usable
    assert env.clock.next_task > clock.next_task


@pytest.mark.parametrize("env_id", sdedge_gym.SINGLE_CELL_ENV_IDS)  # multi-cell: test_multicell_ids.py
def test_step_before_reset_and_after_termination(env_id) -> None:
    wrapped = gym.make(env_id, **_ids_kwargs(env_id))
    with pytest.raises(gym.error.ResetNeeded):  # Gymnasium's OrderEnforcing, in front of the env
        wrapped.step(wrapped.action_space.sample())
    env = wrapped.unwrapped
    with pytest.raises(RuntimeError, match=r"before reset\(\)"):
        env.step(env.action_space.sample())
    env.reset(seed=1)
    terminated = False
    while not terminated:
        *_, terminated, _, _ = env.step(env.action_space.sample())
    with pytest.raises(RuntimeError, match="after the episode terminated"):
        env.step(env.action_space.sample())
    # the terminal mask is never acted on; it keeps n = 1 valid so that maskable samplers never see an empty one
    assert env.action_masks()[:env.scenario.max_batch].tolist() == [True] + [False] * (env.scenario.max_batch - 1)
    env.reset(seed=2)
    env.step(env.action_space.sample())  # a reset makes it usable again


@pytest.mark.parametrize("env_id", sdedge_gym.SINGLE_CELL_ENV_IDS)  # multi-cell: test_multicell_ids.py
@pytest.mark.parametrize("clone", [copy.deepcopy, lambda env: pickle.loads(pickle.dumps(env))],
                         ids=["deepcopy", "pickle"])
def test_a_copy_mid_episode_reproduces_the_rest(env_id, clone) -> None:
    env = gym.make(env_id, **_ids_kwargs(env_id))
    env.reset(seed=3)
    env.action_space.seed(3)
    actions = [env.action_space.sample() for _ in range(env.unwrapped.episode.num_tasks)]
    env.step(_valid_action(env.unwrapped))  # one task: the episode goes on after the copy
    twin = clone(env)
    rest = []
    for target in (env, twin):
        out = []
        for action in actions[1:]:
            obs, reward, terminated, _, info = target.step(action)
            out.append((obs, reward, info["completion_times"], info["bandwidth"]))
            if terminated:
                break
        rest.append(out)
    assert len(rest[0]) == len(rest[1]) >= 1
    # Exact: the copy runs the same code on the same state, the same operations in the same order.
    for a, b in zip(*rest, strict=True):
        assert a[0].tobytes() == b[0].tobytes() and a[1] == b[1]
        assert a[2].tobytes() == b[2].tobytes() and a[3].tobytes() == b[3].tobytes()


@pytest.mark.parametrize("mode", ["discrete", "hybrid", "dict"])
def test_the_vector_env_rejects_hostile_actions_without_stepping(mode) -> None:
    suffix = {"discrete": "", "hybrid": "-Hybrid", "dict": "-Dict"}[mode]
    env = gym.make_vec(f"sdedge/EdgeSD-Small{suffix}-v0", num_envs=2, vectorization_mode="vector_entry_point").unwrapped
    with pytest.raises(RuntimeError, match=r"before reset\(\)"):
        env.step(env.action_space.sample())
    env.reset(seed=0)
    valid = env.action_space.sample()
    if mode == "dict":
        bad = [{**valid, "batch_size_minus_one": np.array([True, True])},
               {**valid, "bandwidth": np.full((2, 4), np.nan)},
               {**valid, "speculation_length": np.array([0, np.inf])}, {1: 2, "a": 3}]
    else:
        width = valid.shape[1]
        bad = [np.zeros((2, width), dtype=bool), np.full((2, width), np.nan), np.full((2, width), 1e308),
               np.zeros((3, width)), np.zeros((2, width + 1)), [[True] * width] * 2]
    before = env.next_task.copy()
    for action in bad:
        with pytest.raises(ValueError, match="actions"):
            env.step(action)
        assert env.next_task.tolist() == before.tolist()


# ---------------------------------------------------------------------------------------- the evaluate CLI


def _refuse_to_run(env):
    raise AssertionError("a policy was built before every name was validated")


@pytest.mark.parametrize(("argv", "message"), [
    (["--policies", "oracle,typo"], "policy 'typo' is unknown"),
    (["--policies", "fixed:9:0"], "policy 'fixed:9:0': batch_size = 9 is invalid"),
    (["--policies", "pretrained:nope"], "pretrained agent 'nope' is unknown"),
    (["--policies", "sb3:PPO:/nonexistent.zip"], "no model file '/nonexistent.zip';"),
    (["--policies", "sb3:PPO:/nonexistent"], "no model file '/nonexistent' (nor '/nonexistent.zip')"),
    (["--seed", "-1"], "argument --seed"),
    (["--episodes", "0"], "argument --episodes"),
    (["--episodes", "two"], "argument --episodes"),
])
def test_evaluate_cli_rejects_bad_arguments_before_any_work(argv, message, monkeypatch, capsys) -> None:
    monkeypatch.setitem(evaluate_module.POLICY_FACTORIES, "oracle", _refuse_to_run)
    monkeypatch.setitem(evaluate_module.POLICY_FACTORIES, "random", _refuse_to_run)
    with pytest.raises(SystemExit) as exit_:
        evaluate_module.main(["--env", SMALL, "--episodes", "1", "--no-progress", *argv])
    assert exit_.value.code == 2  # argparse's usage error
    stderr = capsys.readouterr().err
    assert message in stderr and ".zip.zip" not in stderr and "Traceback" not in stderr


def test_evaluate_function_validates_seed_and_names() -> None:
    with pytest.raises(ValueError, match="seed = -1 is invalid"):
        evaluate_module.evaluate(SMALL, 1, -1, ["oracle"], progress=False)
    with pytest.raises(ValueError, match="episodes = 0 is invalid"):
        evaluate_module.evaluate(SMALL, 0, 0, ["oracle"], progress=False)


# --------------------------------------------------------------------------- reproduce_paper's output place


def _load_reproduce():
    path = Path(__file__).resolve().parents[1] / "scripts" / "reproduce_paper.py"
    spec = importlib.util.spec_from_file_location("reproduce_paper_hostile", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_a_quick_reproduction_does_not_overwrite_the_committed_figures(tmp_path, monkeypatch) -> None:
    reproduce = _load_reproduce()
    # The sweeps and figures themselves are tested in test_reproduction.py; here only where files go.
    monkeypatch.setattr(reproduce, "build_sweeps", lambda plan: [])
    monkeypatch.setattr(reproduce, "run_sweeps", lambda sweeps, seeds, progress, mapper=None: None)
    monkeypatch.setattr(reproduce, "up_to_table", lambda results: "")
    monkeypatch.setattr(reproduce, "results_dict", lambda sweeps, seeds, meta: {"meta": meta})
    monkeypatch.chdir(tmp_path)
    reproduce.main(["--quick"], progress=False, printer=lambda text: None)
    assert (tmp_path / reproduce.QUICK_OUT / "reproduction.json").is_file()
    assert not (tmp_path / "docs").exists()
    reproduce.main(["--quick", "--out", "asked"], progress=False, printer=lambda text: None)
    assert (tmp_path / "asked" / "reproduction.csv").is_file()
    assert reproduce.FULL_OUT == "docs/figures" and not reproduce.QUICK_OUT.startswith("docs")
