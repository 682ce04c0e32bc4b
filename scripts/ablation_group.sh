#!/usr/bin/env bash
# The group-baseline rows of docs/BENCHMARK.md ("Learning from reward: a group baseline instead of a critic"):
# sdedge_agents.group_ppo (PPO's clipped surrogate, no critic; 16 episodes an update, each replayed by 8 rollouts of
# the stochastic policy, advantage = the rollout's return minus its group's mean) with the sequence policy of
# agents/slot_policy.py, training seeds 1000, 2000, 3000 per row, one run at a time, into runs/group/<row>/seed<S>/
# (evaluations.csv every 25k steps on the validation episodes). Rows named stochastic-* train on
# sdedge/EdgeSD-Paper-Stochastic-v0, online-* on sdedge/EdgeSD-Online-v0, the others on sdedge/EdgeSD-v0.
#
#     bash scripts/ablation_group.sh [row ...]      # default: default-lin_1e-3
#     ABLATION_SEEDS="2000" bash scripts/ablation_group.sh default-lin_1e-3      # some seeds only
#
# Then `python scripts/ablation_summary.py` evaluates every model on the held-out test episodes 500..599.
# shellcheck source=scripts/ablation_common.sh
source "$(dirname "$0")/ablation_common.sh"

row_arguments() {
    case "$1" in
        # The default reward (the return is minus the episode's mean latency): no shaping, no reference policy.
        default-lin_1e-3) echo "--timesteps 1000000 --learning-rate lin_1e-3" ;;
        # The same at SB3's usual rate: it stays at the best constant action (stopped at 100k steps, seed 1000).
        default-lin_3e-4) echo "--timesteps 1000000 --learning-rate lin_3e-4" ;;
        # The speculation-length head also reads the most likely batch's tasks (slot_policy's speculation_context).
        context-lin_1e-3-500k) echo "--timesteps 500000 --learning-rate lin_1e-3 --speculation-context" ;;
        # sdedge/EdgeSD-Paper-Stochastic-v0: the rollouts of a group share the episode's acceptance draws too.
        stochastic-default-lin_1e-3) echo "--timesteps 1000000 --learning-rate lin_1e-3" ;;
        # sdedge/EdgeSD-Online-v0 across loads 0.3..1.0 (the leader of episode i at load i mod 8): a group shares the
        # episode's arrival times (an input-driven baseline). Episodes are ~100 steps, so 8 episodes an update.
        online-default-loads) echo "--timesteps 500000 --learning-rate lin_1e-3 --episodes 8 --loads 0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0" ;;
        *) echo "unknown row $1" >&2; return 2 ;;
    esac
}

row_env() {
    case "$1" in
        stochastic-*) echo "sdedge/EdgeSD-Paper-Stochastic-v0" ;;
        online-*) echo "sdedge/EdgeSD-Online-v0" ;;
        *) echo "sdedge/EdgeSD-v0" ;;
    esac
}

rows=("$@")
if [ ${#rows[@]} -eq 0 ]; then
    rows=(default-lin_1e-3)
fi
for row in "${rows[@]}"; do
    arguments=$(row_arguments "${row}")
    run_row runs/group "${row}" "python -m sdedge_agents.group_ppo --env $(row_env "${row}")" \
        "--eval-every 25000 --eval-episodes 20 --checkpoint-every 100000 ${arguments}"
done
echo "$(date +%H:%M:%S) done"
