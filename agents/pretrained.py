"""The shipped pretrained agents and a loader that binds one to an env as a Policy-like predictor.

    import gymnasium as gym, sdedge_gym
    from sdedge_agents.pretrained import load_pretrained

    env = gym.make("sdedge/EdgeSD-Small-v0")
    agent = load_pretrained("maskable-ppo-small", env)
    observation, _ = env.reset(seed=0)
    action, _ = agent.predict(observation)

Each agent is a Stable-Baselines3 zip in ``agents/pretrained/`` with a JSON card beside it (env id,
algorithm, timesteps, seed, the command that trained it, its wall time and its evaluation with the seeds
used); ``scripts/train_pretrained.sh`` reproduces them: it trains with ``python -m sdedge_agents.train`` and then
ships the run with ``python -m sdedge_agents.pretrained ship NAME --run DIR --command CMD``, which copies the model
and writes the card after evaluating the agent against the reference policies on seeded episodes. Loading
needs the ``train`` extra (``pip install 'sdedge-gym[train]'``); importing this module does not import torch.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"
TRAIN_EXTRA_HINT = "pip install 'sdedge-gym[train]'"


class ShippedFiles:
    """Where a shipped agent's files are: ``model_file`` and ``card_file`` in :data:`PRETRAINED_DIR`."""

    model_file: str
    card_file: str

    @property
    def model_path(self) -> Path:
        return PRETRAINED_DIR / self.model_file

    @property
    def card_path(self) -> Path:
        return PRETRAINED_DIR / self.card_file

    def card(self) -> dict[str, Any]:
        """The JSON card: training command, wall time, evaluation results and their seeds."""
        return json.loads(self.card_path.read_text())


@dataclass(frozen=True)
class PretrainedAgent(ShippedFiles):
    """One shipped agent: its model zip and JSON card in :data:`PRETRAINED_DIR`."""

    name: str
    env_id: str  # the id it was trained on; it runs on any env with the same spaces
    algo: str  # an sdedge_agents.train algorithm name, or "composed" (sdedge_agents.band_split)
    model_file: str  # composed: the discrete (n, l) model; its band split is split_path
    card_file: str
    # "service_chain": trained with the env's speculation="service_chain" (the env played l*(n)); it plays its n
    # with l*(n) in any env, through the chain-l wrapper where the env plays the action's l.
    speculation: str = "action"

    @property
    def split_path(self) -> Path:
        """A composed agent's band-split network (``sdedge_agents.band_split``)."""
        return PRETRAINED_DIR / f"{self.name}.split.pt"


def _agent(name: str, env_id: str, algo: str, speculation: str = "action") -> PretrainedAgent:
    return PretrainedAgent(name, env_id, algo, f"{name}.zip", f"{name}.json", speculation)


PRETRAINED: dict[str, PretrainedAgent] = {
    agent.name: agent
    for agent in (
        _agent("maskable-ppo-small", "sdedge/EdgeSD-Small-v0", "maskable_ppo"),
        _agent("maskable-ppo-small-stochastic", "sdedge/EdgeSD-Small-Stochastic-v0", "maskable_ppo"),
        # Built by scripts/train_pretrained.sh; `python -m sdedge_agents.pretrained list` says "not built" until then.
        _agent("maskable-ppo-paper", "sdedge/EdgeSD-v0", "maskable_ppo"),
        _agent("maskable-ppo-paper-stochastic", "sdedge/EdgeSD-Paper-Stochastic-v0", "maskable_ppo"),
        _agent("ppo-paper-hybrid", "sdedge/EdgeSD-Paper-Hybrid-v0", "ppo"),
        _agent("ppo-uplink-hybrid", "sdedge/EdgeSD-Uplink-Hybrid-v0", "ppo"),
        _agent("maskable-ppo-online", "sdedge/EdgeSD-Online-v0", "maskable_ppo"),
        # RL from reward with the reference reward (reward="reference") and the sequence policy (slot_policy.py).
        _agent("maskable-ppo-reference-paper", "sdedge/EdgeSD-v0", "maskable_ppo"),
        _agent("maskable-ppo-reference-paper-stochastic", "sdedge/EdgeSD-Paper-Stochastic-v0", "maskable_ppo"),
        # The same recipe with the learning rate decayed linearly to 0 (rl-zoo3's lin_1e-3).
        _agent("maskable-ppo-reference-lrdecay-paper", "sdedge/EdgeSD-v0", "maskable_ppo"),
        # Trained by imitation of the window planner (sdedge_agents.imitate, DAgger), per-task sequence networks.
        _agent("dagger-paper", "sdedge/EdgeSD-v0", "maskable_ppo"),
        _agent("dagger-paper-stochastic", "sdedge/EdgeSD-Paper-Stochastic-v0", "maskable_ppo"),
        _agent("dagger-uplink-hybrid", "sdedge/EdgeSD-Uplink-Hybrid-v0", "ppo"),
        # The online reference reward (max-batch-with-timeout replayed on the arrivals), trained across loads, the
        # sequence policy of the online layout (sdedge_agents.slot_policy.OnlineMaskableSlotPolicy).
        _agent("maskable-ppo-reference-online", "sdedge/EdgeSD-Online-v0", "maskable_ppo"),
        # The same recipe with the speculation-length head reading the batch its batch-size head chooses.
        _agent("maskable-ppo-reference-context-online", "sdedge/EdgeSD-Online-v0", "maskable_ppo"),
        # ... each seed then fine-tuned by group_ppo across loads (a group replays one episode's arrivals: an
        # input-driven baseline): RL from reward throughout, the best learned agent on the online id.
        _agent("maskable-ppo-reference-context-group-online", "sdedge/EdgeSD-Online-v0", "maskable_ppo"),
        # The hybrid ids' composed agents (sdedge_agents.band_split): (n, l) from the discrete id's agent trained
        # from the reference reward, the band split from a network fitted to the closed form.
        _agent("composed-reference-paper-hybrid", "sdedge/EdgeSD-Paper-Hybrid-v0", "composed"),
        _agent("composed-reference-uplink-hybrid", "sdedge/EdgeSD-Uplink-Hybrid-v0", "composed"),
        # sdedge_agents.group_ppo (PPO with a group baseline, no critic) from the default reward; and dagger-paper
        # fine-tuned by it (RL from a good start).
        _agent("group-ppo-paper", "sdedge/EdgeSD-v0", "maskable_ppo"),
        _agent("dagger-group-paper", "sdedge/EdgeSD-v0", "maskable_ppo"),
        # maskable-ppo-reference-lrdecay-paper's recipe, then fine-tuned by group_ppo: RL from reward throughout.
        _agent("maskable-ppo-reference-group-paper", "sdedge/EdgeSD-v0", "maskable_ppo"),
        # DAgger from the posterior window planner (the DP on the hints' posterior, on the observation's view),
        # then fine-tuned by group_ppo: the best learned agent on the stochastic id.
        _agent("dagger-posterior-paper-stochastic", "sdedge/EdgeSD-Paper-Stochastic-v0", "maskable_ppo"),
        _agent("dagger-posterior-group-paper-stochastic", "sdedge/EdgeSD-Paper-Stochastic-v0", "maskable_ppo"),
        # DAgger with a speculation-length head that reads the batch its batch-size head chooses
        # (--speculation-context): the best learned agent on EdgeSD-v0.
        _agent("dagger-context-paper", "sdedge/EdgeSD-v0", "maskable_ppo"),
        # ... then fine-tuned by group_ppo (RL from a good start).
        _agent("dagger-context-group-paper", "sdedge/EdgeSD-v0", "maskable_ppo"),
        # RL from reward throughout with the env playing the service-chain l (speculation="service_chain"): the
        # lr-decay recipe trained with the option, then fine-tuned by group_ppo with it. Its n, the rule's l.
        _agent("maskable-ppo-reference-chain-group-paper", "sdedge/EdgeSD-v0", "maskable_ppo", "service_chain"),
    )
}


@dataclass(frozen=True)
class MultiCellPretrainedAgent(ShippedFiles):
    """A shipped agent of the multi-cell twin (:class:`sdedge_gym.multicell.MultiCellTwinEnv`, discrete mode):
    MaskablePPO on the joint action, trained by ``scripts/train_multicell_twin.py``; its card is that run's
    results.json (the references on the same held-out episodes) with the command and the run's settings."""

    name: str
    preset: str  # a sdedge_gym.multicell.MULTICELL_PRESETS name
    model_file: str
    card_file: str


MULTICELL_PRETRAINED: dict[str, MultiCellPretrainedAgent] = {
    agent.name: agent
    for agent in (
        # The reference reward on the twin: every cell's best constant action as the reference policy.
        MultiCellPretrainedAgent("maskable-ppo-twin-two-heterogeneous", "two-heterogeneous",
                                 "maskable-ppo-twin-two-heterogeneous.zip",
                                 "maskable-ppo-twin-two-heterogeneous.json"),
    )
}


def load_multicell_pretrained(name: str):
    """The shipped multi-cell agent ``name`` as ``policy(observation, action_mask) -> joint action`` (greedy),
    for :func:`sdedge_agents.multicell.play_twin_episode` or a loop over the twin of its preset."""
    if name not in MULTICELL_PRETRAINED:
        raise ValueError(f"multi-cell pretrained agent {name!r} is unknown; allowed: "
                         f"{' | '.join(MULTICELL_PRETRAINED)}")
    agent = MULTICELL_PRETRAINED[name]
    try:
        from sb3_contrib import MaskablePPO
    except ImportError as error:
        raise ImportError(f"pretrained agents need sb3-contrib and torch: {TRAIN_EXTRA_HINT} ({error})") from error
    if not agent.model_path.exists():
        raise FileNotFoundError(f"multi-cell pretrained agent {name!r}: {agent.model_path} is missing; "
                                "scripts/train_multicell_twin.py and `python -m sdedge_agents.pretrained "
                                "ship-multicell` rebuild it")
    from sdedge_agents.multicell import masked_greedy

    return masked_greedy(MaskablePPO.load(agent.model_path, device="cpu"))


def ship_multicell(name: str, run_dir: Path, command: str) -> dict[str, Any]:
    """Copy a finished ``scripts/train_multicell_twin.py`` run's model to the shipped agent ``name``; its card is
    the run's results.json with the command."""
    if name not in MULTICELL_PRETRAINED:
        raise ValueError(f"multi-cell pretrained agent {name!r} is unknown; allowed: "
                         f"{' | '.join(MULTICELL_PRETRAINED)} (add it to MULTICELL_PRETRAINED first)")
    agent = MULTICELL_PRETRAINED[name]
    results = json.loads((run_dir / "results.json").read_text())
    if results["preset"] != agent.preset:
        raise ValueError(f"run {run_dir} is on preset {results['preset']!r}; allowed: {agent.preset!r} for {name}")
    shutil.copyfile(run_dir / "model.zip", agent.model_path)
    card = {"name": name, "preset": agent.preset, "algo": "maskable_ppo", "env": "MultiCellTwinEnv, discrete",
            "command": command, **results}
    agent.card_path.write_text(json.dumps(card, indent=1) + "\n")
    return card


class PretrainedPolicy:
    """A loaded SB3 model bound to one env; ``predict`` has SB3's signature and applies the env's mask.

    Like the reference policies of :mod:`sdedge_agents.policy`, it is bound to a single (possibly wrapped)
    ``EdgeSDEnv`` and reads its current ``action_masks()``, so the observation passed in must be that env's
    current observation. Invalid batch sizes are never chosen.
    """

    def __init__(self, name: str, model: Any, env: gym.Env, uses_mask: bool) -> None:
        self.name = name
        self.model = model
        self.env = env
        self.uses_mask = uses_mask  # MaskablePPO: predict takes the mask; the others cannot use one

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[Any, Any]:
        """The agent's action for the env's current state (no recurrent state: ``state`` passes through)."""
        if self.uses_mask:
            mask = np.asarray(self.env.get_wrapper_attr("action_masks")(), dtype=bool)
            action, _ = self.model.predict(observation, deterministic=deterministic, action_masks=mask)
        else:
            action, _ = self.model.predict(observation, deterministic=deterministic)
        return action, state


def load_pretrained(name: str, env: gym.Env) -> Any:
    """The shipped agent ``name`` bound to ``env`` (which must have the agent's observation and action spaces)."""
    if name not in PRETRAINED:
        raise ValueError(f"pretrained agent {name!r} is unknown; allowed: {' | '.join(PRETRAINED)}")
    agent = PRETRAINED[name]
    if agent.algo == "composed":
        try:
            from sdedge_agents.band_split import ComposedHybridPolicy
        except ImportError as error:
            raise ImportError(f"pretrained agents need stable-baselines3, sb3-contrib and torch: {TRAIN_EXTRA_HINT} "
                              f"({error})") from error
        return ComposedHybridPolicy.from_files(agent.model_path, agent.split_path, env)
    try:
        from sb3_contrib import MaskablePPO
        from stable_baselines3 import A2C, DQN, PPO
    except ImportError as error:
        raise ImportError(f"pretrained agents need stable-baselines3, sb3-contrib and torch: {TRAIN_EXTRA_HINT} "
                          f"({error})") from error
    classes = {"ppo": PPO, "maskable_ppo": MaskablePPO, "a2c": A2C, "dqn": DQN}
    if not agent.model_path.exists():
        raise FileNotFoundError(f"pretrained agent {name!r}: {agent.model_path} is missing (a broken install?); "
                                "scripts/train_pretrained.sh rebuilds it")
    model = classes[agent.algo].load(agent.model_path, device="cpu")
    if model.observation_space.shape != env.observation_space.shape or model.action_space != env.action_space:
        raise ValueError(f"pretrained agent {name!r} was trained on {agent.env_id} (observation "
                         f"{model.observation_space}, action {model.action_space}); env has observation "
                         f"{env.observation_space}, action {env.action_space}; allowed: an env with the same spaces, "
                         f"e.g. gym.make({agent.env_id!r})")
    policy = PretrainedPolicy(name, model, env, uses_mask=agent.algo == "maskable_ppo")
    if agent.speculation == "service_chain" and getattr(env.unwrapped, "speculation", None) == "action":
        from sdedge_agents.service_chain import ServiceChainSpeculation

        # The l the training env played, l*(n) for the agent's n; the n is the same, since the observation is
        # and the l mask does not touch the batch-size logits (tests/test_service_chain.py).
        return ServiceChainSpeculation(env, policy, name)
    return policy


# ---------------------------------------------------------------------- shipping a trained run

# The references a card compares its agent with; the baseline is the best fixed heuristic of the family
# (the tuned constant action offline; the classic max-batch-with-timeout rule online).
CARD_REFERENCES = ("oracle", "planner", "best-constant", "random")
ONLINE_CARD_REFERENCES = ("oracle", "planner", "max-batch-timeout", "random")


def _baseline(env_id: str) -> str:
    from sdedge_gym.registration import ONLINE_ENV_IDS

    return "max-batch-timeout" if env_id in ONLINE_ENV_IDS else "best-constant"


def evaluate_shipped(name: str, episodes: int, seed: int) -> dict[str, Any]:
    """The shipped agent and the reference policies on episodes seeded seed .. seed + episodes - 1.

    Every policy faces the same episodes (``sdedge_agents.evaluate.run_episodes``); "random" is uniformly random
    valid actions.
    """
    from sdedge_agents.evaluate import make_policy, run_episodes

    agent = PRETRAINED[name]
    seeds = list(range(seed, seed + episodes))
    values: dict[str, list[float]] = {}
    baseline = _baseline(agent.env_id)
    references = ONLINE_CARD_REFERENCES if baseline == "max-batch-timeout" else CARD_REFERENCES
    for policy_name in (name, *references):
        env = gym.make(agent.env_id)
        policy = load_pretrained(name, env) if policy_name == name else make_policy(policy_name, env)
        values[policy_name] = [-r for r in run_episodes(policy, env, seeds)]
        env.close()
    means = {policy_name: float(np.mean(v)) for policy_name, v in values.items()}
    objective = gym.make(agent.env_id).unwrapped.scenario.objective
    return {
        "objective": objective,
        "seeds": f"{seed}..{seed + episodes - 1}",
        "mean": means,
        "gap_to_oracle_percent": {k: 100.0 * (v / means["oracle"] - 1.0) for k, v in means.items()},
        "baseline": baseline,
        "gap_to_baseline_percent": 100.0 * (means[name] / means[baseline] - 1.0),
        "score": (means["random"] - means[name]) / (means["random"] - means["oracle"]),
        "per_episode": values,
    }


def ship(name: str, run_dir: Path, command: str, episodes: int = 100, seed: int = 0) -> dict[str, Any]:
    """Copy a finished sdedge_agents.train (or sdedge_agents.group_ppo) run's ``model.zip`` to the shipped agent
    ``name``; write its card."""
    if name not in PRETRAINED:
        raise ValueError(f"pretrained agent {name!r} is unknown; allowed: {' | '.join(PRETRAINED)} (add it to "
                         "PRETRAINED first)")
    agent = PRETRAINED[name]
    if agent.algo == "composed":
        return _ship_composed(agent, run_dir, command, episodes, seed)
    run = json.loads((run_dir / "run.json").read_text())
    if run["status"] != "completed" or run["config"]["env_id"] != agent.env_id or run["config"]["algo"] != agent.algo:
        raise ValueError(f"run {run_dir} (status {run['status']!r}, env {run['config']['env_id']!r}, algo "
                         f"{run['config']['algo']!r}) is not a completed {agent.algo} run on {agent.env_id}")
    speculation = dict(run["config"].get("env_kwargs", [])).get("speculation", "action")
    if speculation != agent.speculation:
        raise ValueError(f"run {run_dir} trained with speculation = {speculation!r}; pretrained agent {name!r} is "
                         f"declared with speculation = {agent.speculation!r} (PRETRAINED); allowed: the same")
    shutil.copyfile(run_dir / "model.zip", agent.model_path)
    card = {
        "name": name,
        "env_id": agent.env_id,
        "algo": agent.algo,
        "timesteps": run["steps"],
        "seed": run["config"]["seed"],
        "n_envs": run["config"]["n_envs"],
        "command": command,
        "wall_time_s": round(run.get("total_wall_time_s", run["wall_time_s"]), 1),
        "hyperparameters": run["hyperparameters"],
        "env_kwargs": dict(run["config"].get("env_kwargs", [])),
        "vectorisation": run["vectorisation"],
        "training_eval": {k: run["evaluation"][k] for k in ("objective", "mean", "episodes", "seeds")}
        if run["evaluation"] else None,
        "evaluation": evaluate_shipped(name, episodes, seed),
    }
    agent.card_path.write_text(json.dumps(card, indent=2) + "\n")
    return card


def _ship_composed(agent: PretrainedAgent, run_dir: Path, command: str, episodes: int, seed: int) -> dict[str, Any]:
    """Ship a ``python -m sdedge_agents.band_split fit`` directory: its two models, and a card with the fit's
    record and the (n, l) model's training run (its run.json, beside the model it was fitted with)."""
    fit = json.loads((run_dir / "run.json").read_text())
    if fit.get("env_id") != agent.env_id:
        raise ValueError(f"composed agent {run_dir} was fitted on {fit.get('env_id')!r}; allowed: one on "
                         f"{agent.env_id}")
    batch_dir = Path(fit["batch_model"]).parent
    batch_run = json.loads((batch_dir / "run.json").read_text()) if (batch_dir / "run.json").exists() else None
    batch_command = (batch_dir / "command.txt").read_text().strip() if (batch_dir / "command.txt").exists() else None
    shutil.copyfile(run_dir / "batch_model.zip", agent.model_path)
    shutil.copyfile(run_dir / "split.pt", agent.split_path)
    card = {
        "name": agent.name,
        "env_id": agent.env_id,
        "algo": agent.algo,
        "timesteps": batch_run["steps"] if batch_run else None,
        "seed": fit["seed"],
        "command": command,
        "wall_time_s": round(fit["fit_wall_time_s"] + (batch_run["total_wall_time_s"] if batch_run else 0.0), 1),
        "batch_model": {"path": fit["batch_model"],
                        "command": batch_command,
                        "env_id": batch_run["config"]["env_id"] if batch_run else None,
                        "hyperparameters": batch_run["hyperparameters"] if batch_run else None},
        "band_split": {key: fit[key] for key in ("command", "train_batches", "validation_batches",
                                                 "validation_slot_excess", "fit_wall_time_s")},
        "evaluation": evaluate_shipped(agent.name, episodes, seed),
    }
    agent.card_path.write_text(json.dumps(card, indent=2) + "\n")
    return card


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sdedge_agents.pretrained",
                                     description="List the shipped agents, or ship a finished training run.")
    commands = parser.add_subparsers(dest="action", required=True)  # not "command": ship's --command is that
    commands.add_parser("list", help="the shipped agents and their evaluation")
    ship_parser = commands.add_parser("ship", help="copy a run's model.zip into agents/pretrained and write the card")
    ship_parser.add_argument("name", choices=sorted(PRETRAINED))
    ship_parser.add_argument("--run", required=True, help="the sdedge_agents.train --out directory")
    ship_parser.add_argument("--command", required=True, help="the exact training command, for the card")
    ship_parser.add_argument("--episodes", type=int, default=100, help="evaluation episodes (default 100)")
    ship_parser.add_argument("--seed", type=int, default=0, help="evaluation episode i uses seed S + i")
    multicell_parser = commands.add_parser("ship-multicell", help="copy a scripts/train_multicell_twin.py run's "
                                                                   "model into agents/pretrained and write the card")
    multicell_parser.add_argument("name", choices=sorted(MULTICELL_PRETRAINED))
    multicell_parser.add_argument("--run", required=True, help="the run's --out directory")
    multicell_parser.add_argument("--command", required=True, help="the exact training command, for the card")
    args = parser.parse_args(argv)
    if args.action == "ship-multicell":
        card = ship_multicell(args.name, Path(args.run), args.command)
        print(json.dumps(card["summary"], indent=1))
        return 0
    if args.action == "list":
        for name, agent in PRETRAINED.items():
            if not agent.card_path.exists():
                print(f"{name}: {agent.env_id} (not built)")
                continue
            evaluation = agent.card()["evaluation"]
            gaps = evaluation["gap_to_oracle_percent"]
            baseline = evaluation.get("baseline", "best-constant")  # cards written before "baseline" existed
            print(f"{name}: {agent.env_id}, {evaluation['objective']} {evaluation['mean'][name]:.3f} s on seeds "
                  f"{evaluation['seeds']}; gap to oracle {gaps[name]:+.1f} % ({baseline} "
                  f"{gaps[baseline]:+.1f} %, random {gaps['random']:+.1f} %)")
        for name, multicell in MULTICELL_PRETRAINED.items():
            if not multicell.card_path.exists():
                print(f"{name}: multi-cell {multicell.preset} (not built)")
                continue
            summary = multicell.card()["summary"]
            agent_row = next(k for k in summary if k.startswith("twin"))
            print(f"{name}: multi-cell {multicell.preset}, mean latency {summary[agent_row]['mean']:.3f} s on seeds "
                  f"500..599 (centralised planner {summary['centralised planner']['mean']:.3f} s, uncoordinated "
                  f"best-constant {summary['uncoordinated best-constant']['mean']:.3f} s)")
        return 0
    if args.episodes < 1:
        parser.error(f"--episodes = {args.episodes} is invalid; allowed: an integer >= 1")
    card = ship(args.name, Path(args.run), args.command, args.episodes, args.seed)
    evaluation = card["evaluation"]
    print(json.dumps({k: evaluation[k] for k in ("seeds", "mean", "gap_to_oracle_percent", "baseline",
                                                  "gap_to_baseline_percent", "score")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
