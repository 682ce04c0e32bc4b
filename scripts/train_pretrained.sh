#!/usr/bin/env bash
# Rebuild the shipped pretrained agents in agents/pretrained/ (model zip + JSON card each).
#
# These are the exact commands that produced the shipped agents. Each trains with `python -m agents.train`
# into runs/pretrained/<name>/ (checkpoints, model.zip, run.json; rerun with --resume appended to continue an
# interrupted run), then `python -m agents.pretrained ship` copies the model and writes the card, evaluating
# the agent against the oracle, the MPC planner, the best constant action and random valid actions on
# episodes seeded 0..99 (the training envs are seeded 1000..1007, and `agents.train`'s own final
# evaluation uses seeds 900000..900099).
#
# Needs the train extra: pip install 'sdedge-gym[train]'. About 8 minutes per agent on 2 shared cores.
set -euo pipefail
cd "$(dirname "$0")/.."

train_and_ship() {
    local name="$1" env_id="$2" timesteps="$3"
    local command="OMP_NUM_THREADS=1 nice python -m agents.train --env ${env_id} --algo maskable_ppo --timesteps ${timesteps} --n-envs 8 --seed 1000 --out runs/pretrained/${name} --eval-episodes 100 --checkpoint-every 50000"
    rm -rf "runs/pretrained/${name}"
    eval "${command}"
    python -m agents.pretrained ship "${name}" --run "runs/pretrained/${name}" --command "${command}" \
        --episodes 100 --seed 0
}

train_and_ship maskable-ppo-small sdedge/EdgeSD-Small-v0 250000
train_and_ship maskable-ppo-small-stochastic sdedge/EdgeSD-Small-Stochastic-v0 250000
