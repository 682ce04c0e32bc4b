#!/usr/bin/env bash
# Rebuild the shipped agents of agents/pretrained/ (model zip + JSON card each), three training seeds each.
#
# For every (id, algorithm) below: train with `python -m sdedge_agents.train` at the training seeds 1000, 2000 and
# 3000 of agents/protocol.py (hyperparameters, budget and n_envs from agents/hyperparams.yml), into
# runs/pretrained/<name>/seed<S>/ (checkpoints, model.zip, run.json, logs/, evaluations.csv; rerun the same
# command with --resume appended to continue an interrupted run). Each seed's agent is evaluated on the
# held-out test episodes 500..599 (`python -m sdedge_agents.evaluate --json`); the seed with the median test
# score is shipped (`python -m sdedge_agents.pretrained ship`, whose card evaluates it on the same test episodes),
# and runs/pretrained/results.md gets every seed's row, the interquartile mean and the stratified bootstrap
# 95 % interval of the normalised score over the seeds, and the learning curves (scripts/plot_training.py,
# docs/figures/training_<name>.png).
#
# Duration, measured with the compiled kernel on 2 cores, as two invocations side by side
#     bash scripts/train_pretrained.sh maskable-ppo-paper ppo-paper-hybrid maskable-ppo-small maskable-ppo-online &
#     bash scripts/train_pretrained.sh maskable-ppo-paper-stochastic ppo-uplink-hybrid maskable-ppo-small-stochastic
# ~6-9 min per 1M-step seed of a paper-size agent, ~2 min per 250k-step small seed, ~3.5 min per 500k-step
# online seed, plus the evaluations: about 75 min in all. The dagger-* agents (sdedge_agents.imitate, 6 iterations x
# 500 teacher-labelled episodes per seed), as three invocations side by side
#     bash scripts/train_pretrained.sh dagger-paper & bash scripts/train_pretrained.sh dagger-paper-stochastic &
#     bash scripts/train_pretrained.sh dagger-uplink-hybrid
# ~25 min per paper-size seed and ~17 min per Uplink seed with three runs sharing 2 cores: about 80 min.
# The two maskable-ppo-reference-* agents (the sequence policy from the env's reference reward, 300k steps), as
#     bash scripts/train_pretrained.sh maskable-ppo-reference-paper &
#     bash scripts/train_pretrained.sh maskable-ppo-reference-paper-stochastic
# ~23-28 min per seed (170-330 env steps/s, two or three runs sharing 2 cores): about 80 min.
# maskable-ppo-reference-lrdecay-paper (the same, the learning rate decayed linearly to 0) was shipped from the
# reward ablation's runs of that recipe (scripts/ablation_reward.sh reference-slot-lambda0.9-linlr: the same
# training, evaluated every 20k steps instead of 10k), each seed 20-33 min with three or four runs on 2 cores.
# maskable-ppo-reference-online (the online reference reward across loads) and the two composed-reference-*-hybrid
# agents (sdedge_agents.band_split: the lr-decay recipe on the discrete id, then the band split) were shipped from
# the reward ablation's runs of the same commands (scripts/ablation_reward.sh online-reference-slot-loads,
# reference-slot-lambda0.9-linlr, uplink-reference-slot-linlr; the fits into runs/band-split/), 32-38 min per
# online seed with two runs on 2 cores, 35-55 min per (n, l) seed with four to six runs, 1-2.5 min per fit.
# maskable-ppo-reference-context-online likewise (scripts/ablation_reward.sh online-reference-slot-context-loads):
# 26 min per seed beside one other run on 2 cores. maskable-ppo-reference-context-group-online from the same
# recipe's runs fine-tuned in runs/online-group/ (its seed 2000 from the shipped seed 2000; evaluations every 50k
# steps instead of 25k): 10-11 min per seed beside one other run.
# group-ppo-paper, dagger-group-paper and maskable-ppo-reference-group-paper (sdedge_agents.group_ppo, the trainer
# "group" below) were shipped from the same commands' runs in runs/group/ (scripts/ablation_group.sh
# default-lin_1e-3, and the fine-tuning loops of docs/BENCHMARK.md, the last from the reward ablation's lr-decay
# models): 22-30 min per 1M-step seed and ~9 min per 300k-step fine-tuning seed, two or three runs on 2 cores.
# dagger-posterior-paper-stochastic and dagger-posterior-group-paper-stochastic were shipped from the same commands'
# runs in runs/dagger-posterior/ and runs/group/ (docs/BENCHMARK.md, "What the hints are worth"): 25-33 min per
# DAgger seed with three runs on 2 cores, 6-8 min per fine-tuning seed. dagger-context-paper and
# dagger-context-group-paper were shipped from the same commands' runs in runs/csd/ (docs/BENCHMARK.md, "What the
# learners got wrong"): 8-17 min per DAgger seed and ~20 min per fine-tuning seed with three to five runs on 2 cores.
# maskable-ppo-reference-chain-group-paper was shipped from the same command's runs in runs/chain/group/ (docs/BENCHMARK.md,
# "The speculation length in the env"; evaluations every 50k steps instead of 25k): 17-18 min per lr-decay seed
# beside one other run, then 7 min per
# fine-tuning seed with two runs on 2 cores.
# Needs the train extra.
set -euo pipefail
cd "$(dirname "$0")/.."

SEEDS=(1000 2000 3000)
# The sdedge_agents.imitate (DAgger) budget of the dagger-* agents: iterations x episodes per iteration.
DAGGER_ITERATIONS=6
DAGGER_EPISODES=500

train_and_ship() {
    local name="$1" env_id="$2" algo="$3" trainer="${4:-train}"
    local extra="${TRAIN_ARGUMENTS[${name}]:-}"
    local cls
    case "${algo}" in
        maskable_ppo) cls=MaskablePPO ;;
        ppo) cls=PPO ;;
        *) echo "unknown algo ${algo}" >&2; return 2 ;;
    esac
    local scores=()
    for seed in "${SEEDS[@]}"; do
        local out="runs/pretrained/${name}/seed${seed}"
        local command
        if [ "${trainer}" = group ]; then
            command="OMP_NUM_THREADS=1 nice python -m sdedge_agents.group_ppo --env ${env_id} --seed ${seed} --out ${out} --eval-every 25000 --eval-episodes 20 --checkpoint-every 100000${extra:+ ${extra}}"
        elif [ "${trainer}" = imitate ]; then
            command="OMP_NUM_THREADS=1 nice python -m sdedge_agents.imitate --env ${env_id} --algo ${algo} --seed ${seed} --out ${out} --iterations ${DAGGER_ITERATIONS} --episodes-per-iteration ${DAGGER_EPISODES} --eval-episodes 20 --verbose 0${extra:+ ${extra}}"
        else
            command="OMP_NUM_THREADS=1 nice python -m sdedge_agents.train --env ${env_id} --algo ${algo} --seed ${seed} --out ${out} --eval-every 10000 --eval-episodes 20 --checkpoint-every 50000 --no-progress-bar${extra:+ ${extra}}"
        fi
        rm -rf "${out}"
        eval "${command}"
        echo "${command}" > "${out}/command.txt"
        python -m sdedge_agents.evaluate --env "${env_id}" --episodes 100 --seed 500 --policies "sb3:${cls}:${out}/model.zip" \
            --json "${out}/test.json" --no-progress > /dev/null
    done
    # The median seed by test score, the per-seed rows and the aggregate over seeds.
    local median_seed
    median_seed=$(python - "${name}" "${env_id}" "${cls}" "${SEEDS[@]}" <<'PY'
import json, sys
from pathlib import Path
from sdedge_agents.statistics import interquartile_mean, stratified_bootstrap_ci
name, env_id, cls, *seeds = sys.argv[1:]
scores = {}
for seed in seeds:
    data = json.loads(Path(f"runs/pretrained/{name}/seed{seed}/test.json").read_text())
    policy = f"sb3:{cls}:runs/pretrained/{name}/seed{seed}/model.zip"
    scores[seed] = next(r for r in data["results"] if r["policy"] == policy)
ordered = sorted(seeds, key=lambda s: scores[s]["score"])
median = ordered[len(ordered) // 2]
values = [scores[s]["score"] for s in seeds]
point, low, high = stratified_bootstrap_ci({env_id: values})
with open("runs/pretrained/results.md", "a") as out:
    for s in seeds:
        r = scores[s]
        out.write(f"| `{env_id}` | {name} seed {s}{' (shipped)' if s == median else ''} | {r['mean']:.3f} ± "
                  f"{r['half_width']:.3f} | {r['gap_percent']:+.1f} % | {r['score']:.3f} |\n")
    out.write(f"| `{env_id}` | {name}: IQM of the score over {len(seeds)} seeds [95 % stratified bootstrap] | | | "
              f"{interquartile_mean(values):.3f} [{low:.3f}, {high:.3f}] |\n")
print(median)
PY
)
    local shipped="runs/pretrained/${name}/seed${median_seed}"
    python -m sdedge_agents.pretrained ship "${name}" --run "${shipped}" --command "$(cat "${shipped}/command.txt")" \
        --episodes 100 --seed 500
    # shellcheck disable=SC2086  # PLOT_ARGUMENTS holds whole options
    python scripts/plot_training.py "runs/pretrained/${name}"/seed* --out "docs/figures/training_${name}.png" \
        ${PLOT_ARGUMENTS[${name}]:-}
}

# The composed hybrid agents (sdedge_agents.band_split): per seed, the (n, l) agent on the discrete id of the same
# scenario (sdedge_agents.train with the agent's TRAIN_ARGUMENTS), then the band split fitted to the closed form;
# the median seed by test score on the hybrid id is shipped as two files and a card.
compose_and_ship() {
    local name="$1" env_id="$2" discrete_id="$3"
    for seed in "${SEEDS[@]}"; do
        local out="runs/pretrained/${name}/seed${seed}"
        local command="OMP_NUM_THREADS=1 nice python -m sdedge_agents.train --env ${discrete_id} --algo maskable_ppo --seed ${seed} --out ${out}/batch --eval-every 20000 --eval-episodes 20 --checkpoint-every 100000 --no-progress-bar ${TRAIN_ARGUMENTS[${name}]}"
        rm -rf "${out}"
        mkdir -p "${out}/batch"
        eval "${command}"
        echo "${command}" > "${out}/batch/command.txt"
        OMP_NUM_THREADS=1 nice python -m sdedge_agents.band_split fit --env "${env_id}" --seed "${seed}" \
            --batch-model "${out}/batch/model.zip" --out "${out}/composed"
        python -m sdedge_agents.evaluate --env "${env_id}" --episodes 100 --seed 500 --policies "composed:${out}/composed" \
            --json "${out}/test.json" --no-progress > /dev/null
    done
    local median_seed
    median_seed=$(python - "${name}" "${SEEDS[@]}" <<'PY'
import json, sys
from pathlib import Path
name, *seeds = sys.argv[1:]
score = {s: next(r["score"] for r in json.loads(Path(f"runs/pretrained/{name}/seed{s}/test.json").read_text())["results"]
                 if r["policy"].startswith("composed:")) for s in seeds}
print(sorted(seeds, key=score.get)[len(seeds) // 2])
PY
)
    local shipped="runs/pretrained/${name}/seed${median_seed}"
    python -m sdedge_agents.pretrained ship "${name}" --run "${shipped}/composed" \
        --command "$(cat "${shipped}/batch/command.txt") && $(python -c "import json, sys; print(json.load(open(sys.argv[1]))['command'])" "${shipped}/composed/run.json")" \
        --episodes 100 --seed 500
}

declare -A AGENTS=(
    [maskable-ppo-small]="sdedge/EdgeSD-Small-v0 maskable_ppo"
    [maskable-ppo-small-stochastic]="sdedge/EdgeSD-Small-Stochastic-v0 maskable_ppo"
    [maskable-ppo-paper]="sdedge/EdgeSD-v0 maskable_ppo"
    [maskable-ppo-paper-stochastic]="sdedge/EdgeSD-Paper-Stochastic-v0 maskable_ppo"
    [ppo-paper-hybrid]="sdedge/EdgeSD-Paper-Hybrid-v0 ppo"
    [ppo-uplink-hybrid]="sdedge/EdgeSD-Uplink-Hybrid-v0 ppo"
    [maskable-ppo-online]="sdedge/EdgeSD-Online-v0 maskable_ppo"
    [maskable-ppo-reference-paper]="sdedge/EdgeSD-v0 maskable_ppo"
    [maskable-ppo-reference-paper-stochastic]="sdedge/EdgeSD-Paper-Stochastic-v0 maskable_ppo"
    [maskable-ppo-reference-lrdecay-paper]="sdedge/EdgeSD-v0 maskable_ppo"
    [dagger-paper]="sdedge/EdgeSD-v0 maskable_ppo imitate"
    [dagger-paper-stochastic]="sdedge/EdgeSD-Paper-Stochastic-v0 maskable_ppo imitate"
    [dagger-uplink-hybrid]="sdedge/EdgeSD-Uplink-Hybrid-v0 ppo imitate"
    [maskable-ppo-reference-online]="sdedge/EdgeSD-Online-v0 maskable_ppo"
    [maskable-ppo-reference-context-online]="sdedge/EdgeSD-Online-v0 maskable_ppo"
    [maskable-ppo-reference-context-group-online]="sdedge/EdgeSD-Online-v0 maskable_ppo group"
    [composed-reference-paper-hybrid]="sdedge/EdgeSD-Paper-Hybrid-v0 sdedge/EdgeSD-v0 compose"
    [composed-reference-uplink-hybrid]="sdedge/EdgeSD-Uplink-Hybrid-v0 sdedge/EdgeSD-Uplink-v0 compose"
    [group-ppo-paper]="sdedge/EdgeSD-v0 maskable_ppo group"
    [dagger-group-paper]="sdedge/EdgeSD-v0 maskable_ppo group"
    [maskable-ppo-reference-group-paper]="sdedge/EdgeSD-v0 maskable_ppo group"
    [dagger-posterior-paper-stochastic]="sdedge/EdgeSD-Paper-Stochastic-v0 maskable_ppo imitate"
    [dagger-posterior-group-paper-stochastic]="sdedge/EdgeSD-Paper-Stochastic-v0 maskable_ppo group"
    [dagger-context-paper]="sdedge/EdgeSD-v0 maskable_ppo imitate"
    [dagger-context-group-paper]="sdedge/EdgeSD-v0 maskable_ppo group"
    [maskable-ppo-reference-chain-group-paper]="sdedge/EdgeSD-v0 maskable_ppo group"
)
# Agents trained with more than the harness defaults of agents/hyperparams.yml: their train arguments.
declare -A TRAIN_ARGUMENTS=(
    # RL from reward with the reference reward (the action's advantage over the best constant action, the
    # env's reward="reference") and the sequence policy (agents/slot_policy.py); docs/BENCHMARK.md's ablation.
    [maskable-ppo-reference-paper]="--policy slot --timesteps 300000 --env-kwargs reward=reference --hyperparams gae_lambda=0.9"
    [maskable-ppo-reference-paper-stochastic]="--policy slot --timesteps 300000 --env-kwargs reward=reference --hyperparams gae_lambda=0.9"
    # The same with the learning rate decayed linearly from 1e-3 to 0 over the run (rl-zoo3's lin_).
    [maskable-ppo-reference-lrdecay-paper]="--policy slot --timesteps 300000 --env-kwargs reward=reference --hyperparams gae_lambda=0.9 learning_rate=lin_1e-3"
    # Online: the reference reward (max-batch-with-timeout replayed on the episode's arrivals), trained across
    # loads 0.3..1.0 (one per training env), the sequence policy of the online layout.
    [maskable-ppo-reference-online]="--policy slot --timesteps 500000 --loads 0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0 --env-kwargs reward=reference --hyperparams gae_lambda=0.9 learning_rate=lin_1e-3"
    # ... with the speculation-length head reading the batch its batch-size head chooses.
    [maskable-ppo-reference-context-online]="--policy slot --timesteps 500000 --loads 0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0 --env-kwargs reward=reference --hyperparams gae_lambda=0.9 learning_rate=lin_1e-3 policy_kwargs=dict(net_arch=[128,128],speculation_context=True)"
    # The composed agents' (n, l) half: the lr-decay recipe on the discrete id.
    [composed-reference-paper-hybrid]="--policy slot --timesteps 300000 --env-kwargs reward=reference --hyperparams gae_lambda=0.9 learning_rate=lin_1e-3"
    [composed-reference-uplink-hybrid]="--policy slot --timesteps 300000 --env-kwargs reward=reference --hyperparams gae_lambda=0.9 learning_rate=lin_1e-3"
    # sdedge_agents.group_ppo (a group baseline instead of a critic): from the default reward, and the shipped
    # dagger-paper fine-tuned by it (RL from a good start; rebuild dagger-paper first if it is rebuilt at all).
    [group-ppo-paper]="--timesteps 1000000 --learning-rate lin_1e-3"
    [dagger-group-paper]="--timesteps 300000 --learning-rate lin_3e-4 --init agents/pretrained/dagger-paper.zip"
    # Each seed of maskable-ppo-reference-lrdecay-paper fine-tuned the same way (RL from reward throughout; rebuild
    # that agent first: ${seed} is expanded when the command runs).
    [maskable-ppo-reference-group-paper]='--timesteps 300000 --learning-rate lin_3e-4 --init runs/pretrained/maskable-ppo-reference-lrdecay-paper/seed${seed}/model.zip'
    # DAgger from the posterior window planner (the DP on the hints' posterior), then each seed fine-tuned by
    # group_ppo (rebuild dagger-posterior-paper-stochastic first).
    [dagger-posterior-paper-stochastic]="--teacher posterior-window-planner"
    [dagger-posterior-group-paper-stochastic]='--timesteps 300000 --learning-rate lin_3e-4 --init runs/pretrained/dagger-posterior-paper-stochastic/seed${seed}/model.zip'
    # DAgger whose speculation-length head reads the batch its batch-size head chooses.
    [dagger-context-paper]="--speculation-context"
    # ... and each of its seeds fine-tuned by group_ppo (rebuild dagger-context-paper first).
    [dagger-context-group-paper]='--timesteps 300000 --learning-rate lin_3e-4 --init runs/pretrained/dagger-context-paper/seed${seed}/model.zip'
    # Each seed of maskable-ppo-reference-context-online fine-tuned by group_ppo across loads (rebuild it first).
    # The lr-decay recipe trained with the env playing the service-chain l (scripts/ablation_reward.sh
    # reference-slot-lambda0.9-linlr-chain, run it first), each seed fine-tuned by group_ppo with the option on.
    [maskable-ppo-reference-chain-group-paper]='--timesteps 300000 --learning-rate lin_3e-4 --env-kwargs speculation=service_chain --init runs/ablation/reference-slot-lambda0.9-linlr-chain/seed${seed}/model.zip'
    [maskable-ppo-reference-context-group-online]='--timesteps 300000 --episodes 8 --group-size 8 --learning-rate lin_1e-4 --env-kwargs reward=reference --loads 0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0 --init runs/pretrained/maskable-ppo-reference-context-online/seed${seed}/model.zip'
)
# Their learning curves' y range where the first evaluation (an untrained policy, +50..+320 %) would flatten the rest.
declare -A PLOT_ARGUMENTS=(
    [maskable-ppo-reference-paper]="--ymax 15"
    [maskable-ppo-reference-paper-stochastic]="--ymax 15"
    [maskable-ppo-reference-lrdecay-paper]="--ymax 15"
)
ORDER=(maskable-ppo-small maskable-ppo-small-stochastic maskable-ppo-paper maskable-ppo-paper-stochastic
       ppo-paper-hybrid ppo-uplink-hybrid maskable-ppo-online maskable-ppo-reference-paper
       maskable-ppo-reference-paper-stochastic maskable-ppo-reference-lrdecay-paper dagger-paper dagger-paper-stochastic
       dagger-uplink-hybrid maskable-ppo-reference-online composed-reference-paper-hybrid composed-reference-uplink-hybrid
       group-ppo-paper dagger-group-paper maskable-ppo-reference-group-paper dagger-posterior-paper-stochastic
       dagger-posterior-group-paper-stochastic dagger-context-paper
       dagger-context-group-paper maskable-ppo-reference-context-online maskable-ppo-reference-context-group-online
       maskable-ppo-reference-chain-group-paper)

# Arguments: the agents to rebuild (default: all, in ORDER). Two invocations with different agents can run
# side by side (one core each); they append to the same results table.
mkdir -p runs/pretrained
if [ ! -f runs/pretrained/results.md ]; then
    printf '%s\n' '| id | agent | mean latency (s) ± 95 %, test episodes 500..599 | gap to oracle | score |' \
        '|---|---|---:|---:|---:|' > runs/pretrained/results.md
fi
for name in "${@:-${ORDER[@]}}"; do
    if [ -z "${AGENTS[${name}]+x}" ]; then
        echo "unknown agent ${name}; allowed: ${ORDER[*]}" >&2
        exit 2
    fi
    # shellcheck disable=SC2086  # the table's value is "ID ALGO [TRAINER]" or "ID DISCRETE_ID compose"
    read -r -a spec <<< "${AGENTS[${name}]}"
    if [ "${spec[2]:-}" = compose ]; then
        compose_and_ship "${name}" "${spec[0]}" "${spec[1]}"
    else
        train_and_ship "${name}" ${AGENTS[${name}]}
    fi
done
