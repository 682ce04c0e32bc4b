"""The composed hybrid agent (sdedge_agents.band_split): the split's losses, the network, the agent, the command."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("sb3_contrib", reason="needs the train extra (sb3-contrib, torch)")
import torch
from sb3_contrib import MaskablePPO

import sdedge_gym  # noqa: F401
from sdedge_agents.band_split import (
    BandSplitNet,
    ComposedHybridPolicy,
    log_slot_ratio,
    main,
    share_cross_entropy,
    split_samples,
)
from sdedge_agents.evaluate import check_policy_spec, evaluate
from sdedge_gym.actions import hybrid_batch_and_speculation, logits_from_shares, shares_from_logits
from sdedge_gym.uplink import slot_length

HYBRID = "sdedge/EdgeSD-Small-Hybrid-v0"


@pytest.fixture(scope="module")
def samples():
    return split_samples(HYBRID, range(7000, 7004), np.random.default_rng(0))


def test_samples_hold_the_closed_form_split_of_each_batch(samples):
    n_max = gym.make(HYBRID).unwrapped.scenario.max_batch
    sizes = samples["sizes"]
    assert samples["windows"].shape == (len(sizes), n_max, 6) and sizes.min() >= 1 and sizes.max() <= n_max
    present = np.arange(n_max)[None, :] < sizes[:, None]
    np.testing.assert_allclose(samples["shares"].sum(axis=1), 1.0, rtol=1e-12)
    assert (samples["shares"][~present] == 0).all() and (samples["payloads"][present] > 0).all()


def test_the_losses_are_minimal_at_the_closed_form_and_agree_with_the_numpy_slot(samples):
    uplink = gym.make(HYBRID).unwrapped.model.config.uplink
    sizes, shares = samples["sizes"], samples["shares"]
    exact = np.stack([logits_from_shares(shares[i, :n], shares.shape[1]) for i, n in enumerate(sizes)])
    optimal = slot_length(samples["payloads"], shares * uplink.bandwidth, samples["channels"], uplink.rate_model)
    args = (torch.as_tensor(sizes), torch.as_tensor(samples["payloads"]), torch.as_tensor(samples["channels"]),
            torch.as_tensor(optimal), uplink.bandwidth, uplink.rate_model)
    uniform = np.zeros_like(exact)
    # The same formula in float64 numpy and torch: the slot ratio of uniform logits, to 1e-9.
    numpy_ratio = np.log(slot_length(samples["payloads"], shares_from_logits(uniform, sizes) * uplink.bandwidth,
                                     samples["channels"], uplink.rate_model) / optimal).mean()
    assert float(log_slot_ratio(torch.as_tensor(uniform), *args)) == pytest.approx(numpy_ratio, rel=1e-9)
    # Every share of these batches is expressible, so the exact logits reproduce T*: the ratio's log is ~0
    # (1e-9: the shares round-trip through log and softmax).
    assert abs(float(log_slot_ratio(torch.as_tensor(exact), *args))) < 1e-9 < numpy_ratio
    # The cross-entropy's gradient vanishes at the exact logits, not at uniform ones.
    for logits, zero in ((exact, True), (uniform, False)):
        x = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
        share_cross_entropy(x, torch.as_tensor(shares), torch.as_tensor(sizes)).backward()
        assert (x.grad.abs().max() < 1e-9) == zero


def test_the_network_is_equivariant_in_the_batch_and_blind_past_it():
    torch.manual_seed(0)
    net = BandSplitNet(6, width=8)
    tasks = torch.rand(1, 6, 6)
    sizes = torch.tensor([4])
    logits = net(tasks, sizes)
    assert (logits[0, 4:] == -1).all() and (logits.abs() <= 1).all()
    order = torch.tensor([2, 0, 3, 1, 4, 5])
    np.testing.assert_allclose(net(tasks[:, order], sizes)[0, :4].detach(), logits[0, order[:4]].detach(), atol=1e-6)
    changed = tasks.clone()
    changed[0, 4:] = torch.rand(2, 6)  # rows past the batch move nothing
    assert torch.equal(net(changed, sizes), logits)


def test_fit_writes_an_agent_that_plays_the_discrete_models_n_l_with_its_split(tmp_path):
    discrete = gym.make("sdedge/EdgeSD-Small-v0")
    batch_model = MaskablePPO("MlpPolicy", discrete, n_steps=16, batch_size=16, seed=0, device="cpu")
    batch_model.save(tmp_path / "batch.zip")
    out = tmp_path / "composed"
    assert main(["fit", "--env", HYBRID, "--batch-model", str(tmp_path / "batch.zip"), "--seed", "1000",
                 "--episodes", "3", "--validation-episodes", "2", "--epochs", "2", "--width", "8",
                 "--out", str(out)]) == 0
    env = gym.make(HYBRID)
    policy = ComposedHybridPolicy.load(out, env)
    observation, _ = env.reset(seed=3)
    discrete.reset(seed=3)
    done = False
    while not done:
        action, _ = policy.predict(observation)
        expected, _ = batch_model.predict(observation, deterministic=True,
                                          action_masks=env.unwrapped.action_masks())
        n, l = hybrid_batch_and_speculation(action[None], env.unwrapped.scenario.max_batch,
                                            env.unwrapped.scenario.max_speculation)
        assert (int(n[0]), int(l[0])) == (min(int(expected[0]) + 1, env.unwrapped.batch_limit()), int(expected[1]))
        assert env.action_space.contains(action)
        observation, _, done, _, _ = env.step(action)
    results = evaluate(HYBRID, episodes=2, seed=500, policies=[f"composed:{out}"], progress=False)
    assert np.isfinite(results[-1].values).all()
    with pytest.raises(ValueError, match="a composed agent acts on an offline hybrid id"):
        ComposedHybridPolicy.load(out, gym.make("sdedge/EdgeSD-Small-v0"))
    with pytest.raises(ValueError, match=r"split\.pt does not exist"):
        check_policy_spec(f"composed:{tmp_path}", env)
    with pytest.raises(SystemExit, match="--episodes = 0 is invalid"):
        main(["fit", "--env", HYBRID, "--batch-model", "x", "--episodes", "0", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="overlap the held-out ones"):
        main(["fit", "--env", HYBRID, "--batch-model", "x", "--seed", "450", "--out", str(tmp_path)])


def test_a_composed_agent_ships_as_two_files_and_a_card(tmp_path, monkeypatch):
    import sdedge_agents.pretrained as pretrained

    run = tmp_path / "run"
    run.mkdir()
    batch_model = MaskablePPO("MlpPolicy", gym.make("sdedge/EdgeSD-v0"), n_steps=16, batch_size=16, seed=0,
                              device="cpu")
    batch_model.save(run / "model.zip")
    (run / "command.txt").write_text("python -m sdedge_agents.train ...\n")
    out = tmp_path / "composed"
    assert main(["fit", "--env", "sdedge/EdgeSD-Paper-Hybrid-v0", "--batch-model", str(run / "model.zip"),
                 "--episodes", "2", "--validation-episodes", "1", "--epochs", "1", "--width", "8",
                 "--out", str(out)]) == 0
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path / "shipped")
    (tmp_path / "shipped").mkdir()
    name = "composed-reference-paper-hybrid"
    card = pretrained.ship(name, out, "the commands", episodes=2, seed=500)
    agent = pretrained.PRETRAINED[name]
    assert agent.model_path.exists() and agent.split_path.exists() and agent.card() == card
    assert card["batch_model"]["command"] == "python -m sdedge_agents.train ..." and card["seed"] == 1000
    env = gym.make(agent.env_id)
    policy = pretrained.load_pretrained(name, env)
    observation, _ = env.reset(seed=500)
    done, total = False, 0.0
    while not done:
        observation, reward, done, _, _ = env.step(policy.predict(observation)[0])
        total += reward
    assert -total == pytest.approx(card["evaluation"]["per_episode"][name][0], rel=1e-12)
    with pytest.raises(ValueError, match="was fitted on 'sdedge/EdgeSD-Paper-Hybrid-v0'"):
        pretrained.ship("composed-reference-uplink-hybrid", out, "x", episodes=1, seed=500)
