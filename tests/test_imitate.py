"""sdedge_agents.imitate (DAgger), its teacher (the window planner) and the per-slot hybrid policy.

The runs here are tiny (a few hundred env steps on the 8-task ids); the shipped agents are trained by
scripts/train_pretrained.sh.
"""

from __future__ import annotations

import json
import signal

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("stable_baselines3", reason="needs the train extra (stable-baselines3, torch)")
pytest.importorskip("sb3_contrib", reason="needs the train extra (sb3-contrib, torch)")

import torch

import sdedge_gym  # noqa: F401  (registers the ids)
from sdedge_agents.evaluate import make_policy, run_episodes
from sdedge_agents.imitate import ImitationConfig, Labels, SoftTargets, hybrid_loss, imitate, main
from sdedge_agents.planner import window_episode
from sdedge_agents.train import StopRequest, TrainingInterrupted, algorithm_class
from sdedge_gym.actions import encode_action


def test_window_episode_repeats_the_visible_tasks_in_turn():
    env = gym.make("sdedge/EdgeSD-Small-v0")
    env.reset(seed=3)
    episode = env.unwrapped.episode
    view = window_episode(episode, next_task=2, window=4, exact=True)
    # K = 8, at task 2: tasks 2..5 are visible, the two tasks left beyond them are copies of tasks 2 and 3
    assert view.num_tasks == 6
    np.testing.assert_array_equal(view.workload.output_len, episode.workload.output_len[[2, 3, 4, 5, 2, 3]])
    np.testing.assert_array_equal(view.channel, episode.channel[[2, 3, 4, 5, 2, 3]])
    hinted = window_episode(episode, next_task=6, window=4, exact=False)
    np.testing.assert_array_equal(hinted.workload.output_len, episode.workload.output_hint[[6, 7]])


def test_window_planner_is_the_oracle_when_the_window_holds_the_whole_queue():
    # K = 4 tasks, n_max = 4: the observation shows every task, so the window planner solves the oracle's DP
    env = gym.make("sdedge/EdgeSD-Small-v0", num_tasks=4)
    seeds = list(range(10, 16))
    window = run_episodes(make_policy("window-planner", env), env, seeds)
    oracle = run_episodes(make_policy("oracle", env), env, seeds)
    np.testing.assert_allclose(window, oracle, rtol=1e-12)


def test_window_planner_sits_between_the_oracle_and_the_best_constant_on_the_small_id():
    env = gym.make("sdedge/EdgeSD-Small-v0")
    seeds = list(range(20, 40))
    means = {name: -np.mean(run_episodes(make_policy(name, env), env, seeds))
             for name in ("oracle", "window-planner", "best-constant")}
    assert means["oracle"] <= means["window-planner"] + 1e-9 < means["best-constant"]


def test_hybrid_loss_is_the_split_entropy_at_the_teacher_and_ignores_a_common_logit_shift():
    shares = np.array([0.5, 0.3, 0.2])
    teacher = torch.as_tensor(np.stack([encode_action("hybrid", 3, 2, 4, 4, shares),
                                        encode_action("hybrid", 4, 0, 4, 4, np.full(4, 0.25))]))
    # the excess above the floor BAND_FLOOR / n, renormalised, is what softmax(LOGIT_SCALE x) must match
    excess = (shares - 0.05 / 3) / 0.95
    entropy = (-(excess * np.log(excess)).sum() + np.log(4)) / 2  # the mean over the two rows
    assert float(hybrid_loss(teacher, teacher, 4, 4)) == pytest.approx(entropy, rel=1e-5)
    shifted = teacher.clone()
    shifted[0, 2:5] -= 0.1  # every logit of a batch moves by the same amount (within [-1, 1]): the same split
    shifted[1, 2:6] -= 0.1
    assert float(hybrid_loss(shifted, teacher, 4, 4)) == pytest.approx(entropy, rel=1e-5)
    # a bin coordinate off by 0.1 costs BIN_WEIGHT * 0.01 per row, averaged over the two rows
    off = teacher.clone()
    off[0, 0] += 0.1
    assert float(hybrid_loss(off, teacher, 4, 4)) == pytest.approx(entropy + 100.0 * 0.01 / 2, rel=1e-4)


def test_slot_policy_saves_and_loads_with_the_same_actions(tmp_path):
    env = gym.make("sdedge/EdgeSD-Small-Hybrid-v0")
    config = ImitationConfig(env_id="sdedge/EdgeSD-Small-Hybrid-v0", algo="ppo", seed=1000, out="unused",
                             policy="slot")
    from sdedge_agents.imitate import new_model

    model, _ = new_model(config, env)
    model.save(tmp_path / "slot.zip")
    loaded = algorithm_class("ppo").load(tmp_path / "slot.zip", device="cpu")
    observation, _ = env.reset(seed=0)
    np.testing.assert_array_equal(model.predict(observation, deterministic=True)[0],
                                  loaded.predict(observation, deterministic=True)[0])
    assert type(loaded.policy).__name__ == "SlotPolicy"


@pytest.mark.parametrize("env_id, algo", [("sdedge/EdgeSD-Small-v0", "maskable_ppo"),
                                          ("sdedge/EdgeSD-Small-Hybrid-v0", "ppo")])
def test_a_short_dagger_run_beats_random_and_writes_the_run(tmp_path, env_id, algo):
    out = tmp_path / "run"
    assert main(["--env", env_id, "--algo", algo, "--seed", "1000", "--out", str(out), "--iterations", "2",
                 "--episodes-per-iteration", "60", "--epochs", "10", "--eval-episodes", "10", "--verbose", "0"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "completed" and [r["iteration"] for r in run["iterations"]] == [0, 1]
    assert (out / "checkpoints" / "iteration_1.zip").exists() and (out / "checkpoints" / "dataset.npz").exists()
    rows = (out / "evaluations.csv").read_text().splitlines()
    assert rows[0] == "timesteps,objective,oracle,oracle_gap_percent,wall_time_s" and len(rows) == 3
    assert run["best_iteration"] == min(run["iterations"], key=lambda r: r["validation_objective"])["iteration"]
    env = gym.make(env_id)
    cls = "MaskablePPO" if algo == "maskable_ppo" else "PPO"
    seeds = list(range(40, 60))
    agent = np.mean(run_episodes(make_policy(f"sb3:{cls}:{out / 'model.zip'}", env), env, seeds))
    random = np.mean(run_episodes(make_policy("random", env), env, seeds))
    assert agent > random


def test_resume_continues_after_the_last_iteration_and_keeps_the_labels(tmp_path):
    common = dict(env_id="sdedge/EdgeSD-Small-v0", algo="maskable_ppo", seed=1000, out=str(tmp_path / "run"),
                  episodes_per_iteration=30, epochs=2, eval_episodes=5)
    first = imitate(ImitationConfig(iterations=1, **common))
    with pytest.raises(ValueError, match="already holds a run"):
        imitate(ImitationConfig(iterations=2, **common))
    second = imitate(ImitationConfig(iterations=2, resume=True, **common))
    assert [r["iteration"] for r in second["iterations"]] == [0, 1]
    assert second["iterations"][0] == first["iterations"][0]
    assert second["iterations"][1]["labels"] > first["iterations"][0]["labels"]
    with pytest.raises(ValueError, match="teacher"):
        imitate(ImitationConfig(iterations=3, resume=True, teacher="planner", **common))


@pytest.mark.parametrize("changes, message", [
    ({"teacher": "genie"}, "--teacher"),
    ({"algo": "dqn"}, "--algo"),
    ({"env_id": "sdedge/EdgeSD-Small-Hybrid-v0", "algo": "maskable_ppo"}, "cannot drive"),
    ({"algo": "ppo", "policy": "slot"}, "--policy slot with --algo ppo needs a hybrid id"),
    ({"policy": "transformer"}, "--policy"),
    ({"seed": 499}, "--seed"),
    ({"iterations": 0}, "--iterations"),
    ({"beta_decay": 1.5}, "--beta-decay"),
    ({"temperature": -0.1}, "--temperature"),
    ({"temperature": float("nan")}, "--temperature"),
    ({"temperature": 0.1, "teacher": "oracle"}, "--temperature 0.1 needs"),
    ({"speculation_context": True, "policy": "mlp"}, "--speculation-context needs"),
    ({"label_context": True}, "--label-context needs --speculation-context"),
    ({"label_context": True, "speculation_context": True, "temperature": 0.1, "teacher": "window-planner"},
     "--label-context needs"),
    ({"temperature": 0.1, "algo": "ppo", "env_id": "sdedge/EdgeSD-Small-Hybrid-v0", "policy": "mlp"},
     "--temperature 0.1 needs"),
])
def test_bad_arguments_name_the_flag(changes, message):
    arguments = dict(env_id="sdedge/EdgeSD-Small-v0", algo="maskable_ppo", seed=1000, out="unused") | changes
    with pytest.raises(ValueError, match=message):
        ImitationConfig(**arguments)


@pytest.mark.parametrize("env_id, algo", [("sdedge/EdgeSD-Small-v0", "maskable_ppo"),
                                          ("sdedge/EdgeSD-Small-Hybrid-v0", "ppo")])
def test_the_slot_policies_also_train_by_reinforcement(env_id, algo):
    # The imitation model is an ordinary (Maskable)PPO: PPO updates (fine-tuning) run on it unchanged.
    from sdedge_agents.imitate import new_model

    env = gym.make(env_id)
    model, _ = new_model(ImitationConfig(env_id=env_id, algo=algo, seed=1000, out="unused"), env)
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(total_timesteps=64)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.policy.parameters(), strict=True))
    assert env.action_space.contains(np.asarray(model.predict(env.reset(seed=0)[0], deterministic=True)[0]))


def test_a_stop_request_ends_the_run_keeping_the_finished_iterations(tmp_path):
    """SIGINT and SIGTERM (a run in the background ignores SIGINT) set the flag; the run stops at the next
    episode or fit pass, keeps its finished iterations and resumes from them."""
    common = dict(env_id="sdedge/EdgeSD-Small-v0", algo="maskable_ppo", seed=1000, out=str(tmp_path / "run"),
                  episodes_per_iteration=10, epochs=1, eval_episodes=2)
    imitate(ImitationConfig(iterations=1, **common))
    stop = StopRequest()
    stop.signum = signal.SIGTERM
    with pytest.raises(TrainingInterrupted) as interrupt:
        imitate(ImitationConfig(iterations=2, resume=True, **common), stop=stop)
    assert interrupt.value.signum == signal.SIGTERM
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["status"] == "interrupted" and [r["iteration"] for r in run["iterations"]] == [0]
    resumed = imitate(ImitationConfig(iterations=2, resume=True, **common))
    assert [r["iteration"] for r in resumed["iterations"]] == [0, 1]


def test_sigterm_exits_143_with_the_resume_hint(tmp_path, capsys, monkeypatch):
    import sdedge_agents.imitate as module

    def terminated(config, verbose, stop):
        stop(signal.SIGTERM, None)  # what the handler run_stoppable installs does on SIGTERM
        module.raise_if_stopped(stop)

    monkeypatch.setattr(module, "imitate", terminated)
    code = main(["--env", "sdedge/EdgeSD-Small-v0", "--algo", "maskable_ppo", "--seed", "1000",
                 "--out", str(tmp_path / "run")])
    assert code == 143
    assert "rerun with --resume" in capsys.readouterr().err


def test_env_kwargs_reach_the_env_the_model_and_its_run_json(tmp_path):
    out = tmp_path / "run"
    kwargs = (("observe_queue", True),)
    record = imitate(ImitationConfig(env_id="sdedge/EdgeSD-Small-v0", algo="maskable_ppo", seed=1000, out=str(out),
                                     iterations=1, episodes_per_iteration=5, epochs=1, eval_episodes=2,
                                     env_kwargs=kwargs))
    wider = gym.make("sdedge/EdgeSD-Small-v0", observe_queue=True).observation_space.shape
    model = algorithm_class("maskable_ppo").load(out / "model.zip", device="cpu")
    assert model.observation_space.shape == wider != gym.make("sdedge/EdgeSD-Small-v0").observation_space.shape
    assert record["config"]["env_kwargs"] == [["observe_queue", True]]
    with pytest.raises(ValueError, match="env_kwargs"):  # a resume must keep them
        imitate(ImitationConfig(env_id="sdedge/EdgeSD-Small-v0", algo="maskable_ppo", seed=1000, out=str(out),
                                iterations=2, episodes_per_iteration=5, epochs=1, eval_episodes=2, resume=True))


def test_bad_env_kwargs_name_the_flag(capsys):
    with pytest.raises(SystemExit):
        main(["--env", "sdedge/EdgeSD-Small-v0", "--algo", "maskable_ppo", "--out", "unused",
              "--env-kwargs", "observe_galaxies=True"])
    assert "--env-kwargs" in capsys.readouterr().err


def test_bad_torch_threads_name_the_flag(capsys):
    with pytest.raises(SystemExit):
        main(["--env", "sdedge/EdgeSD-Small-v0", "--algo", "maskable_ppo", "--out", "unused", "--torch-threads", "0"])
    assert "--torch-threads = 0 is invalid" in capsys.readouterr().err


def test_soft_targets_are_the_marginals_of_the_boltzmann_weights_of_the_values():
    inf = np.inf
    values = np.array([[[0.0, 1.0], [inf, 2.0]], [[5.0, 5.0], [inf, inf]]])
    soft = SoftTargets.of(values, temperature=1.0)
    by_size, by_length = soft.by_size, soft.by_length
    w = np.array([1.0, np.exp(-1.0), 0.0, np.exp(-2.0)]) / (1.0 + np.exp(-1.0) + np.exp(-2.0))
    np.testing.assert_allclose(by_size[0], [w[0] + w[1], w[3]], rtol=1e-6)
    np.testing.assert_allclose(by_length[0], [w[0], w[1] + w[3]], rtol=1e-6)
    np.testing.assert_allclose(by_size[1], [1.0, 0.0])  # a tie shares the mass; invalid actions get none
    np.testing.assert_allclose(by_length[1], [0.5, 0.5])
    np.testing.assert_allclose(SoftTargets.of(values, 1e-3).by_size[0], [1.0, 0.0], atol=1e-6)  # the hard label
    # p(l | n): n = 1 weighs l = 0, 1 as 1 : e^-1; n = 2 has only l = 1; an invalid n has no target
    given = soft.by_length_given_size
    np.testing.assert_allclose(given[0, 0], [1.0 / (1.0 + np.exp(-1.0)), np.exp(-1.0) / (1.0 + np.exp(-1.0))],
                               rtol=1e-6)
    np.testing.assert_allclose(given[0, 1], [0.0, 1.0])
    np.testing.assert_allclose(given[1, 1], [0.0, 0.0])


def test_a_cost_sensitive_run_labels_every_action_and_keeps_the_values_across_resume(tmp_path):
    common = dict(env_id="sdedge/EdgeSD-Small-v0", algo="maskable_ppo", seed=1000, out=str(tmp_path / "run"),
                  episodes_per_iteration=20, epochs=3, eval_episodes=5, temperature=0.05)
    imitate(ImitationConfig(iterations=1, **common))
    labels = Labels.load(tmp_path / "run" / "checkpoints" / "dataset.npz")
    assert len(labels.values) == len(labels) > 0
    env = gym.make("sdedge/EdgeSD-Small-v0")
    scenario = env.unwrapped.scenario
    for values, mask, action in zip(labels.values, labels.masks, labels.actions, strict=True):
        assert values.shape == (scenario.max_batch, scenario.max_speculation + 1)
        assert np.all(np.isinf(values[~mask[:scenario.max_batch]]))
        assert values[action[0], action[1]] == values.min()  # the label is the least value's action
    with pytest.raises(ValueError, match="temperature"):
        imitate(ImitationConfig(iterations=2, resume=True, **(common | {"temperature": 0.2})))
    second = imitate(ImitationConfig(iterations=2, resume=True, **common))
    dataset = Labels.load(tmp_path / "run" / "checkpoints" / "dataset.npz")
    assert second["iterations"][1]["labels"] == len(dataset.values) == len(dataset)


def test_a_dataset_from_before_the_values_loads_without_them(tmp_path):
    path = tmp_path / "dataset.npz"
    np.savez_compressed(path, observations=np.zeros((2, 3), dtype=np.float32), masks=np.ones((2, 4), dtype=bool),
                        actions=np.zeros((2, 2), dtype=np.int64), returns=np.zeros(2))
    labels = Labels.load(path)
    assert len(labels) == 2 and labels.values == []


def _fit_at_the_first_state(actions: list[np.ndarray], returns: list[float], values: list[np.ndarray],
                            **options):
    """A model of sdedge/EdgeSD-Small-v0 fitted to labels that all stand at its first state (seed 0), with
    ``actions``, ``returns`` and ``values`` (one per label); returns (model, observation, mask, the fit's loss)."""
    from sdedge_agents.imitate import fit, new_model

    config = ImitationConfig(env_id="sdedge/EdgeSD-Small-v0", algo="maskable_ppo", seed=1000, out="unused",
                             batch_size=8, **options)
    env = gym.make(config.env_id)
    observation, _ = env.reset(seed=0)
    scenario = env.unwrapped.scenario
    mask = env.unwrapped.action_masks()
    labels = Labels([observation] * len(actions), [mask] * len(actions), actions, returns, values)
    model, _ = new_model(config, env)
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.policy.parameters(), lr=3e-3)
    limits = (scenario.max_batch, scenario.max_speculation)
    loss = fit(model, labels, config, optimizer, torch.Generator().manual_seed(0), limits)
    return model, observation, mask, loss


def _fit_one_state(values: np.ndarray, **options):
    """A model fitted at length to one state labelled with ``values``; returns (its heads there, the targets)."""
    model, observation, mask, _ = _fit_at_the_first_state([np.array([0, 1])] * 8, [0.0] * 8, [values] * 8,
                                                          epochs=1000, temperature=0.5, **options)
    heads = model.policy.get_distribution(torch.as_tensor(observation[None]),
                                          action_masks=torch.as_tensor(mask[None])).distributions
    return [head.probs[0].detach().numpy() for head in heads], SoftTargets.of(values[None], 0.5)


def _values_whose_best_length_depends_on_the_batch() -> np.ndarray:
    scenario = gym.make("sdedge/EdgeSD-Small-v0").unwrapped.scenario
    values = np.full((scenario.max_batch, scenario.max_speculation + 1), np.inf)
    values[0, 1], values[0, 2] = 10.0, 12.0  # n = 1: l = 1 is best
    values[1, 1], values[1, 2] = 12.5, 10.2  # n = 2: l = 2 is best
    return values


def test_the_cost_sensitive_fit_brings_each_head_to_its_target_marginal():
    (by_size, by_length), soft = _fit_one_state(_values_whose_best_length_depends_on_the_batch())
    np.testing.assert_allclose(by_size, soft.by_size[0].numpy(), atol=0.03)
    np.testing.assert_allclose(by_length, soft.by_length[0].numpy(), atol=0.03)


def test_with_the_speculation_context_the_l_head_fits_the_best_length_for_its_own_batch():
    (by_size, by_length), soft = _fit_one_state(_values_whose_best_length_depends_on_the_batch(),
                                                speculation_context=True)
    np.testing.assert_allclose(by_size, soft.by_size[0].numpy(), atol=0.03)
    chosen = int(np.argmax(by_size))  # n = 1, whose best l (1) has 0.98 of p(l | n), against 0.59 of p(l)
    np.testing.assert_allclose(by_length, soft.by_length_given_size[0, chosen].numpy(), atol=0.03)
    assert abs(by_length[1] - float(soft.by_length[0, 1])) > 0.2


def test_with_the_label_context_the_l_head_learns_each_labels_length_for_the_labels_own_batch():
    """Hard labels at one state: (n = 1, l = 1) three times out of four, (n = 2, l = 2) once. Fitted with the
    batch of the label's n (teacher forcing), the l head reads the batch and learns l = 1 for n = 1 and l = 2
    for n = 2; fitted at the learner's own most likely n (1), it can only learn the mixture of both."""

    def l_probabilities(label_context: bool) -> list[np.ndarray]:
        actions = [np.array([0, 1])] * 6 + [np.array([1, 2])] * 2
        model, observation, mask, _ = _fit_at_the_first_state(actions, list(np.linspace(-1.0, 1.0, 8)), [],
                                                              epochs=100, speculation_context=True,
                                                              label_context=label_context)
        assert mask[1]  # n = 2 is allowed here
        max_batch = model.policy.mlp_extractor.max_batch
        features = model.policy.extract_features(torch.as_tensor(observation[None]))
        probabilities = []
        for size in (1, 2):
            latent = model.policy.mlp_extractor.forward_actor(features, size=torch.tensor([size]))
            probabilities.append(torch.softmax(latent[0, max_batch:], dim=-1).detach().numpy())
        return probabilities

    forced = l_probabilities(True)
    assert forced[0][1] > 0.9 and forced[1][2] > 0.9
    own = l_probabilities(False)
    assert abs(own[0][1] - 0.75) < 0.05  # every label fitted at n = 1's batch: the mixture


@pytest.mark.parametrize("count", [1, 8])
def test_the_fit_learns_labels_whose_returns_do_not_vary(count):
    """One label (torch's variance of one return is nan) or equal returns (variance 0): the value loss is not
    divided by them, the fit stays finite and learns the label."""
    model, observation, mask, loss = _fit_at_the_first_state([np.array([1, 2])] * count, [-3.0] * count, [],
                                                             epochs=60)
    assert np.isfinite(loss)
    assert all(torch.isfinite(parameter).all() for parameter in model.policy.parameters())
    size, length = model.policy.get_distribution(torch.as_tensor(observation[None]),
                                                 action_masks=torch.as_tensor(mask[None])).distributions
    assert float(size.probs[0, 1]) > 0.9 and float(length.probs[0, 2]) > 0.9
