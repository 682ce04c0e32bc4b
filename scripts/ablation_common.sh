# Sourced by scripts/ablation_reward.sh and scripts/ablation_group.sh: the repository root as the working
# directory, one thread per run (runs share 2 cores), SEEDS from $ABLATION_SEEDS (default 1000 2000 3000), and
# run_row, which trains one row's seeds.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1
read -r -a SEEDS <<< "${ABLATION_SEEDS:-1000 2000 3000}"

# run_row ROOT ROW HEAD TAIL: for each seed S of SEEDS, `HEAD --seed S --out ROOT/ROW/seedS TAIL` in a fresh run
# directory, with the command written to its command.txt first (an interrupted run keeps it).
run_row() {
    local root="$1" row="$2" head="$3" tail="$4"
    local seed out command
    for seed in "${SEEDS[@]}"; do
        out="${root}/${row}/seed${seed}"
        command="${head} --seed ${seed} --out ${out} ${tail}"
        rm -rf "${out}"
        mkdir -p "${out}"
        echo "${command}" > "${out}/command.txt"
        echo "$(date +%H:%M:%S) ${command}"
        ${command}
    done
}
