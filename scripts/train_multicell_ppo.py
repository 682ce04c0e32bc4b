"""Train parameter-shared PPO over the cells of a multi-cell preset and score it against the references.

    nice -n 5 python scripts/train_multicell_ppo.py --preset two-heterogeneous --timesteps 200000

One SB3 PPO policy (MLP, SB3's defaults but n_steps 512, batch 256) acts for every cell through SuperSuit
(sdedge_agents/multicell_ppo.py: team reward, finished cells kept until the episode ends). Training: seed
``--seed`` (the protocol's first training seed, 1000; cell i of the env is first reset with seed + i, later
episodes continue those streams). Then, on the protocol's held-out test episodes (seeds 500.. , ``--episodes``
of them; no training episode uses them): the agent's deterministic mean latency, the uncoordinated cells
(solo-optimal plans, best constant actions), the centralised planner and the lower bound (the larger of the
contention-free and the MBS-capacity bounds), each as a mean with a 95 % t-interval over the episodes.
Writes the model and results.json under ``--out`` (default runs/multicell_ppo/PRESET-seedSEED, git-ignored).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from sdedge_agents.multicell import results_record, score_table, scored_results
from sdedge_agents.protocol import TEST_SEEDS, TRAINING_SEEDS
from sdedge_gym.multicell import MULTICELL_PRESETS

RUNS = Path(__file__).resolve().parents[1] / "runs" / "multicell_ppo"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(MULTICELL_PRESETS), default="two-heterogeneous")
    parser.add_argument("--timesteps", type=int, default=200_000, help="agent steps (one per cell per env step)")
    parser.add_argument("--seed", type=int, default=TRAINING_SEEDS[0])
    parser.add_argument("--episodes", type=int, default=100, help="held-out test episodes (seeds 500..)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if not 1 <= args.episodes <= len(TEST_SEEDS):
        parser.error(f"--episodes = {args.episodes} is invalid; allowed: 1..{len(TEST_SEEDS)}")
    from stable_baselines3 import PPO
    from stable_baselines3.common.utils import set_random_seed

    from sdedge_agents.multicell_ppo import evaluate, make_vec_env

    out = args.out or RUNS / f"{args.preset}-seed{args.seed}"
    out.mkdir(parents=True, exist_ok=True)
    set_random_seed(args.seed)
    venv = make_vec_env(args.preset, args.seed)
    model = PPO("MlpPolicy", venv, n_steps=512, batch_size=256, verbose=0, device="cpu")
    start = time.time()
    model.learn(args.timesteps)
    train_seconds = time.time() - start
    model.save(out / "model")
    seeds = list(TEST_SEEDS[:args.episodes])
    results = scored_results(seeds, "parameter-shared PPO", evaluate(model, args.preset, seeds), args.preset)
    print(f"{args.preset}: {args.timesteps} agent steps in {train_seconds:.0f} s; mean latency (s) on test seeds "
          f"{seeds[0]}..{seeds[-1]}, 95 % t-interval\n\n{score_table(results)}")
    record = results_record(results, seeds, preset=args.preset, timesteps=args.timesteps, seed=args.seed,
                            train_seconds=train_seconds)
    (out / "results.json").write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
