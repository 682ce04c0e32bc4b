#!/usr/bin/env bash
# The reward ablation of docs/BENCHMARK.md ("Learning from reward"): MaskablePPO on sdedge/EdgeSD-v0 (rows
# stochastic-*: sdedge/EdgeSD-Paper-Stochastic-v0; uplink-*: sdedge/EdgeSD-Uplink-v0; online-*:
# sdedge/EdgeSD-Online-v0) with the
# harness's hyperparameters (agents/hyperparams.yml), 8 envs, training seeds 1000, 2000, 3000 per row, one run
# at a time, into runs/ablation/<row>/seed<S>/ (evaluations.csv every 20k steps on the validation episodes).
#
#     bash scripts/ablation_reward.sh [row ...]      # default: every row, in this order
#     ABLATION_SEEDS="3000" bash scripts/ablation_reward.sh latency-lambda1      # some seeds only
#
# Every row passes --env-kwargs, so every row trains on the same vectorisation (SB3's DummyVecEnv over
# gymnasium.make; the native vector env has no reward= option) and the same episodes per seed. The
# reference-lambda0.9 row runs to 1M steps with a checkpoint every 100k: its 300k checkpoint is the
# equal-budget row (the learning rate and clip range are constant, so it is the model of a 300k-step run
# up to that run's last update: the checkpoint is taken at 300,000 steps, after 146 updates of 2048
# transitions; a 300k-step run ends after 147, at 301,056 steps).
# Then `python scripts/ablation_summary.py` evaluates every model on the held-out test episodes 500..599.
# shellcheck source=scripts/ablation_common.sh
source "$(dirname "$0")/ablation_common.sh"

row_arguments() {
    case "$1" in
        latency-lambda1) echo "--timesteps 300000 --env-kwargs reward=latency" ;;
        latency-lambda0.9) echo "--timesteps 300000 --env-kwargs reward=latency --hyperparams gae_lambda=0.9" ;;
        reference-lambda0.9) echo "--timesteps 1000000 --env-kwargs reward=reference --hyperparams gae_lambda=0.9" ;;
        reference-lambda1) echo "--timesteps 300000 --env-kwargs reward=reference" ;;
        # The reference's cost to go as an observation feature (a critic input beyond the window), either reward.
        latency-observe-lambda1) echo "--timesteps 300000 --env-kwargs reward=latency observe_reference=True" ;;
        reference-observe-lambda0.9)
            echo "--timesteps 300000 --env-kwargs reward=reference observe_reference=True --hyperparams gae_lambda=0.9" ;;
        # The reference reward in % of the reference's episode cost (each episode weighed by 1 / V(s_0)).
        relative-lambda0.9) echo "--timesteps 300000 --env-kwargs reward=relative --hyperparams gae_lambda=0.9" ;;
        # Discounting the reference reward: gamma = 0 makes each step a contextual bandit whose reward is the
        # action's exact advantage over the reference (one step of policy improvement over the best constant).
        reference-gamma0) echo "--timesteps 300000 --env-kwargs reward=reference --hyperparams gamma=0.0" ;;
        reference-gamma0.5) echo "--timesteps 300000 --env-kwargs reward=reference --hyperparams gamma=0.5 gae_lambda=0.9" ;;
        # The sequence policy (agents/slot_policy.py: a per-task "the batch ends here" head) from either reward. The
        # reference row is the shipped maskable-ppo-reference-paper's recipe (scripts/train_pretrained.sh).
        latency-slot-lambda0.9) echo "--timesteps 300000 --policy slot --env-kwargs reward=latency --hyperparams gae_lambda=0.9" ;;
        reference-slot-lambda0.9)
            echo "--timesteps 300000 --policy slot --env-kwargs reward=reference --hyperparams gae_lambda=0.9" ;;
        # The sequence policy as a contextual bandit on the reference reward (the rollout planner's objective).
        reference-slot-gamma0) echo "--timesteps 300000 --policy slot --env-kwargs reward=reference --hyperparams gamma=0.0" ;;
        # The shipped recipe with the learning rate decayed linearly to 0 (rl-zoo3's lin_), against the constant
        # rate's late oscillation on the validation episodes.
        reference-slot-lambda0.9-linlr)
            echo "--timesteps 300000 --policy slot --env-kwargs reward=reference --hyperparams gae_lambda=0.9 learning_rate=lin_1e-3" ;;
        # The same with the env playing the service-chain speculation length l*(n) (speculation="service_chain"): the
        # learner chooses n only, trained for the l that is played (docs/MODEL.md, section 11).
        reference-slot-lambda0.9-linlr-chain)
            echo "--timesteps 300000 --policy slot --env-kwargs reward=reference speculation=service_chain --hyperparams gae_lambda=0.9 learning_rate=lin_1e-3" ;;
        # The same with a per-task network twice as wide (slot_width 128, the GRU's and the heads' width): is the
        # function class what keeps the learner at +2.6..+2.8 %?
        reference-slot-lambda0.9-linlr-wide)
            echo "--timesteps 300000 --policy slot --env-kwargs reward=reference --hyperparams gae_lambda=0.9 learning_rate=lin_1e-3 policy_kwargs=dict(net_arch=[128,128],slot_width=128)" ;;
        # sdedge/EdgeSD-Paper-Stochastic-v0 (rows named stochastic-*): the lr-decay recipe, and the same with the
        # summary of the queue beyond the window as observation features (observe_queue=True).
        stochastic-reference-slot-linlr)
            echo "--timesteps 300000 --policy slot --env-kwargs reward=reference --hyperparams gae_lambda=0.9 learning_rate=lin_1e-3" ;;
        # sdedge/EdgeSD-Uplink-v0 (rows named uplink-*): the lr-decay recipe, the (n, l) half of the composed
        # hybrid agent of sdedge_agents.band_split.
        uplink-reference-slot-linlr)
            echo "--timesteps 300000 --policy slot --env-kwargs reward=reference --hyperparams gae_lambda=0.9 learning_rate=lin_1e-3" ;;
        # sdedge/EdgeSD-Online-v0 (rows named online-*), trained across loads 0.3..1.0 (one per training env): the
        # reference reward (max-batch-with-timeout replayed on the episode's arrivals) and its default-reward control.
        online-reference-loads)
            echo "--timesteps 500000 --loads 0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0 --env-kwargs reward=reference --hyperparams gae_lambda=0.9 learning_rate=lin_1e-3" ;;
        online-latency-loads)
            echo "--timesteps 500000 --loads 0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0 --hyperparams gae_lambda=0.9 learning_rate=lin_1e-3" ;;
        # The same with the sequence policy (OnlineMaskableSlotPolicy: the ages as a task feature, a wait logit).
        online-reference-slot-loads)
            echo "--timesteps 500000 --policy slot --loads 0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0 --env-kwargs reward=reference --hyperparams gae_lambda=0.9 learning_rate=lin_1e-3" ;;
        # The same with the speculation head reading the batch of its most likely size (MaskableSlotPolicy's
        # speculation_context, the change that took DAgger on sdedge/EdgeSD-v0 from +3.0 % to +2.2 %).
        online-reference-slot-context-loads)
            echo "--timesteps 500000 --policy slot --loads 0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0 --env-kwargs reward=reference --hyperparams gae_lambda=0.9 learning_rate=lin_1e-3 policy_kwargs=dict(net_arch=[128,128],speculation_context=True)" ;;
        stochastic-reference-slot-linlr-queue)
            echo "--timesteps 300000 --policy slot --env-kwargs reward=reference observe_queue=True --hyperparams gae_lambda=0.9 learning_rate=lin_1e-3" ;;
        # The same as a contextual bandit (gamma 0): each step's reward is the action's advantage over the reference
        # on the episode's own acceptance draws, without the variance of the later draws in the return.
        stochastic-reference-slot-gamma0-linlr-queue)
            echo "--timesteps 300000 --policy slot --env-kwargs reward=reference observe_queue=True --hyperparams gamma=0.0 learning_rate=lin_1e-3" ;;
        *) echo "unknown row $1" >&2; return 2 ;;
    esac
}

row_env() {
    case "$1" in
        stochastic-*) echo "sdedge/EdgeSD-Paper-Stochastic-v0" ;;
        uplink-*) echo "sdedge/EdgeSD-Uplink-v0" ;;
        online-*) echo "sdedge/EdgeSD-Online-v0" ;;
        *) echo "sdedge/EdgeSD-v0" ;;
    esac
}

rows=("$@")
if [ ${#rows[@]} -eq 0 ]; then
    rows=(latency-lambda1 reference-lambda0.9 latency-observe-lambda1 reference-lambda1 latency-lambda0.9
          reference-observe-lambda0.9 relative-lambda0.9)
fi
for row in "${rows[@]}"; do
    arguments=$(row_arguments "${row}")
    run_row runs/ablation "${row}" "python -m sdedge_agents.train --env $(row_env "${row}") --algo maskable_ppo" \
        "--eval-every 20000 --eval-episodes 20 --checkpoint-every 100000 --no-progress-bar ${arguments}"
done
echo "$(date +%H:%M:%S) done"
