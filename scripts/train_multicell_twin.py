"""Train MaskablePPO on the centralised multi-cell twin (one agent, the joint action) and score it against the
references.

    nice -n 5 python scripts/train_multicell_twin.py --preset two-heterogeneous --reward reference --seed 1000

The twin (:class:`sdedge_gym.multicell.MultiCellTwinEnv`, discrete mode) with its action masks, the single-cell
harness's hyperparameters (agents/hyperparams.yml's sdedge/EdgeSD-v0 entry: 8 envs x 256 steps a rollout, batch 256,
10 epochs, lr 1e-3, gamma 1, MLP 128x128) and ``--gae-lambda`` (default 0.9, the shipped single-cell recipe's).
``--reward reference`` (default) shapes the reward with every cell's best constant action as the reference policy
(its cost to go is the potential, so the return is the episode's improvement over the uncoordinated best-constant
cells); ``latency`` is minus each step's cost. Training episodes: sub-env j is first reset with seed ``--seed`` +
8 j (cell i: + i), later episodes continue those streams. Then the held-out test episodes (seeds 500.., ``--episodes``
of them): the agent's deterministic mean latency against the references
(:func:`sdedge_agents.multicell.reference_latencies`), the same table as ``scripts/train_multicell_ppo.py``. Writes
the model, evaluations.csv (every ``--eval-every`` steps on the validation episodes 900000..) and results.json under
``--out`` (default runs/multicell_twin/PRESET-REWARD-seedSEED, git-ignored).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

from sdedge_agents.hyperparameters import load_entry
from sdedge_agents.multicell import masked_greedy, play_twin_episode, results_record, score_table, scored_results
from sdedge_agents.protocol import TEST_SEEDS, TRAINING_SEEDS, VALIDATION_SEED_BASE
from sdedge_gym.multicell import MAX_CELLS, MULTICELL_PRESETS, TWIN_REWARDS, MultiCellTwinEnv, identical_cells

RUNS = Path(__file__).resolve().parents[1] / "runs" / "multicell_twin"
# The single-cell harness's MaskablePPO settings (agents/hyperparams.yml, the one copy of those numbers).
HARNESS = load_entry("sdedge/EdgeSD-v0", "maskable_ppo")
N_ENVS = HARNESS.n_envs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(MULTICELL_PRESETS), default="two-heterogeneous")
    parser.add_argument("--cells", type=int, default=None,
                        help="C identical small cells instead of a preset (scripts/multicell_figure.py's networks)")
    parser.add_argument("--reward", choices=TWIN_REWARDS, default="reference")
    parser.add_argument("--timesteps", type=int, default=300_000, help="env steps (joint decisions)")
    parser.add_argument("--gae-lambda", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=TRAINING_SEEDS[0])
    parser.add_argument("--episodes", type=int, default=100, help="held-out test episodes (seeds 500..)")
    parser.add_argument("--eval-every", type=int, default=20_000, help="steps between validation evaluations")
    parser.add_argument("--eval-episodes", type=int, default=20, help="validation episodes (seeds 900000..)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if not 1 <= args.episodes <= len(TEST_SEEDS):
        parser.error(f"--episodes = {args.episodes} is invalid; allowed: 1..{len(TEST_SEEDS)}")
    if not 0 < args.gae_lambda <= 1:
        parser.error(f"--gae-lambda = {args.gae_lambda} is invalid; allowed: a number in (0, 1]")
    if args.cells is not None and not 1 <= args.cells <= MAX_CELLS:
        parser.error(f"--cells = {args.cells} is invalid; allowed: an integer in 1..{MAX_CELLS}")
    config = args.preset if args.cells is None else identical_cells(args.cells)
    name = args.preset if args.cells is None else config.name
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.utils import set_random_seed
    from stable_baselines3.common.vec_env import DummyVecEnv

    from sdedge_agents.train import algorithm_kwargs

    out = args.out or RUNS / f"{name}-{args.reward}-seed{args.seed}"
    out.mkdir(parents=True, exist_ok=True)
    set_random_seed(args.seed)
    venv = DummyVecEnv([lambda: MultiCellTwinEnv(config, reward=args.reward) for _ in range(N_ENVS)])
    for j, env in enumerate(venv.envs):  # disjoint first episodes; SB3's own reset then continues the streams
        env.reset(seed=args.seed + MAX_CELLS * j)
    settings = {**HARNESS.algorithm_kwargs, "gae_lambda": args.gae_lambda}
    model = MaskablePPO("MlpPolicy", venv, device="cpu", verbose=0, **algorithm_kwargs(settings))
    validation = [VALIDATION_SEED_BASE + i for i in range(args.eval_episodes)]
    start = time.time()
    rows: list[tuple[int, float, float]] = []

    class Validate(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % args.eval_every < N_ENVS:
                latency = float(np.mean([play_twin_episode(masked_greedy(model), config, seed) for seed in validation]))
                rows.append((self.num_timesteps, latency, time.time() - start))
                print(f"{self.num_timesteps:>8} steps  validation mean latency {latency:.4f} s", flush=True)
            return True

    model.learn(args.timesteps, callback=Validate())
    train_seconds = time.time() - start
    model.save(out / "model")
    with open(out / "evaluations.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([("timesteps", "mean_latency", "wall_time_s"), *rows])
    seeds = list(TEST_SEEDS[:args.episodes])
    agent = f"twin MaskablePPO ({args.reward} reward)"
    policy = masked_greedy(model)
    results = scored_results(seeds, agent, [play_twin_episode(policy, config, seed) for seed in seeds], config)
    print(f"{name}: {args.timesteps} steps in {train_seconds:.0f} s; mean latency (s) on test seeds "
          f"{seeds[0]}..{seeds[-1]}, 95 % t-interval\n\n{score_table(results)}")
    command = " ".join(["python scripts/train_multicell_twin.py", *(sys.argv[1:] if argv is None else argv)])
    record = results_record(results, seeds, command=command, preset=name, reward=args.reward,
                            timesteps=args.timesteps, seed=args.seed, gae_lambda=args.gae_lambda,
                            train_seconds=train_seconds)
    (out / "results.json").write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
