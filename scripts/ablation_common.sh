# Sourced by scripts/ablation_reward.sh and scripts/ablation_group.sh: the repository root as the working
# directory, one thread per run (runs share 2 cores), and SEEDS from $ABLATION_SEEDS (default 1000 2000 3000).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1
read -r -a SEEDS <<< "${ABLATION_SEEDS:-1000 2000 3000}"
