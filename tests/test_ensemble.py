"""The ensemble of trained agents (sdedge_agents.ensemble): its vote, its spec and its errors."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("sb3_contrib", reason="the ensemble needs the train extra (sb3-contrib, torch)")

import sdedge_gym  # noqa: F401
from sdedge_agents.ensemble import EnsemblePolicy
from sdedge_agents.evaluate import check_policy_spec, evaluate, make_policy
from sdedge_agents.pretrained import load_pretrained

CONTEXT = "pretrained:dagger-context-paper"  # a sequence policy whose l head reads its batch
GROUP = "pretrained:dagger-context-group-paper"


def _steps(env, policies, seeds, steps=None):
    """Each policy's action at every state of the first policy's trajectories."""
    rows = []
    for seed in seeds:
        observation, _ = env.reset(seed=seed)
        done, count = False, 0
        while not done and (steps is None or count < steps):
            actions = [np.asarray(policy.predict(observation)[0]) for policy in policies]
            rows.append(actions)
            observation, _, terminated, truncated, _ = env.step(actions[0])
            done, count = terminated or truncated, count + 1
    return rows


@pytest.mark.parametrize(("env_id", "member"), [("sdedge/EdgeSD-v0", CONTEXT),
                                                ("sdedge/EdgeSD-Online-v0",
                                                 "pretrained:maskable-ppo-reference-context-group-online")])
def test_copies_of_one_agent_act_as_it(env_id, member):
    """Two copies of one agent vote as the agent does: n from its masked p(n), l for that n (its own argmax)."""
    env = gym.make(env_id)
    ensemble = make_policy(f"ensemble:{member}+{member}", env)
    single = load_pretrained(member.split(":", 1)[1], env)
    rows = _steps(env, [ensemble, single], seeds=[0, 1], steps=None if env_id == "sdedge/EdgeSD-v0" else 12)
    assert len(rows) >= 12
    for ensemble_action, single_action in rows:
        np.testing.assert_array_equal(ensemble_action, single_action)


def test_batch_size_is_the_mode_of_the_members_mean_masked_probability():
    """Checked against SB3's own masked distributions of each member (another route to p(n))."""
    import torch

    env = gym.make("sdedge/EdgeSD-v0")
    ensemble = EnsemblePolicy.load([CONTEXT, GROUP, "pretrained:dagger-paper"], env)
    observation, _ = env.reset(seed=3)
    done = False
    while not done:
        mask = env.unwrapped.action_masks()
        mean = 0.0
        for model in ensemble.models:
            tensor, _ = model.policy.obs_to_tensor(observation)
            with torch.no_grad():
                distribution = model.policy.get_distribution(tensor, action_masks=mask[None])
            mean = mean + distribution.distributions[0].probs[0].numpy()
        action = ensemble.predict(observation)[0]
        assert action[0] == int(np.argmax(mean))
        assert mask[action[0]] and mask[env.unwrapped.scenario.max_batch + action[1]]
        observation, _, terminated, truncated, _ = env.step(action)
        done = terminated or truncated


def test_evaluate_runs_an_ensemble_by_name():
    [result] = [r for r in evaluate("sdedge/EdgeSD-v0", episodes=2, seed=0, policies=[f"ensemble:{CONTEXT}+{GROUP}"],
                                    progress=False) if r.policy.startswith("ensemble:")]
    assert len(result.values) == 2 and all(value > 0 for value in result.values)


@pytest.mark.parametrize(("spec", "message"), [
    (f"ensemble:{CONTEXT}", "has 1 member"),
    ("ensemble:", "has 0 member"),
    (f"ensemble:{CONTEXT}+missing/model.zip", "is not an existing model.zip"),
    (f"ensemble:{CONTEXT}+pretrained:ppo-paper-hybrid", "is not a shipped MaskablePPO agent"),
    (f"ensemble:{CONTEXT}+pretrained:no-such-agent", "is not a shipped MaskablePPO agent"),
])
def test_a_bad_member_list_is_refused_before_anything_loads(spec, message):
    env = gym.make("sdedge/EdgeSD-v0")
    with pytest.raises(ValueError, match=message):
        check_policy_spec(spec, env)
    with pytest.raises(ValueError, match=message):
        make_policy(spec, env)


def test_members_of_another_id_and_stochastic_play_are_refused():
    small = gym.make("sdedge/EdgeSD-Small-v0")
    with pytest.raises(ValueError, match="allowed: members trained on the env's spaces"):
        make_policy(f"ensemble:{CONTEXT}+{GROUP}", small)
    hybrid = gym.make("sdedge/EdgeSD-Paper-Hybrid-v0")
    with pytest.raises(ValueError, match="allowed: the discrete action mode"):
        make_policy(f"ensemble:{CONTEXT}+{GROUP}", hybrid)
    env = gym.make("sdedge/EdgeSD-v0")
    ensemble = make_policy(f"ensemble:{CONTEXT}+{GROUP}", env)
    observation, _ = env.reset(seed=0)
    with pytest.raises(ValueError, match="deterministic=False is not supported"):
        ensemble.predict(observation, deterministic=False)


def test_ensemble_rows_name_the_seed_each_pair_leaves_out(tmp_path):
    from sdedge_agents.protocol import ensemble_rows

    for seed in (1000, 2000):
        (tmp_path / f"seed{seed}").mkdir()
        (tmp_path / f"seed{seed}" / "model.zip").write_bytes(b"")
    [(pair_label, pairs), (all_label, every)] = ensemble_rows([f"x={tmp_path}/seed{{seed}}/model.zip"])
    assert pair_label.startswith("x: ensembles of two seeds") and all_label == "x: ensemble of the three seeds"
    model = f"{tmp_path}/seed{{}}/model.zip"
    # Only the pair without 3000 has both its members; the others, and the one of all three, are missing.
    assert pairs == [(1000, None), (2000, None), (3000, f"ensemble:{model.format(1000)}+{model.format(2000)}")]
    assert every == [(1000, None)]
    with pytest.raises(SystemExit, match="--ensemble 'x=nothing' is invalid"):
        ensemble_rows(["x=nothing"])
    with pytest.raises(SystemExit, match="with \\{seed\\} in every PATH"):
        ensemble_rows([f"x={tmp_path}/seed{{seed}}/model.zip+other.zip"])
    # Two patterns: each seed brings one member from each, so the ensemble of all three seeds has six members.
    pattern = f"{tmp_path}/seed{{seed}}/model.zip"
    [_, (_, [(_, six)])] = ensemble_rows([f"x={pattern}+{pattern}"])
    assert six is None  # seed 3000's models are missing
    (tmp_path / "seed3000").mkdir()
    (tmp_path / "seed3000" / "model.zip").write_bytes(b"")
    [_, (_, [(_, six)])] = ensemble_rows([f"x={pattern}+{pattern}"])
    assert six == "ensemble:" + "+".join(model.format(s) for s in (1000, 1000, 2000, 2000, 3000, 3000))
