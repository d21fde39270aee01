# Shared environment for the STFuse sbatch scripts (sourced, not run). Every value can be overridden
# by exporting it before `sbatch` (sbatch passes the submitting shell's environment by default).

# Run from the checkout the job was submitted from: the configs and outputs/ are relative to it.
cd "${SLURM_SUBMIT_DIR:-$PWD}"

# Layout: one task per GPU (--ntasks-per-node = GPUs per node). SLURM_NTASKS_PER_NODE reads "8" or "8(x2)".
_tasks_per_node="${SLURM_NTASKS_PER_NODE:-${SLURM_GPUS_ON_NODE:-1}}"
GPUS="${GPUS:-${_tasks_per_node%%(*}}"
NODES="${NODES:-${SLURM_JOB_NUM_NODES:-1}}"

# Data: STFUSE_DATA (the tests' variable) or DATA_ROOT; the embedded synthetic default when absent.
DATA_ROOT="${DATA_ROOT:-${STFUSE_DATA:-$PWD/../shared/data}}"

# One data-loading/compute thread budget per task.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}"

# NCCL: fail fast on a stuck collective instead of hanging until the time limit; say why.
export TORCH_NCCL_ASYNC_ERROR_HANDLING="${TORCH_NCCL_ASYNC_ERROR_HANDLING:-1}"
export NCCL_DEBUG="${NCCL_DEBUG:-WARN}"
# export NCCL_SOCKET_IFNAME=ib0   # pin the interface when nodes have several (site-specific)

# W&B (only used with --config experiments/loggers/wandb.yaml in ARGS): compute nodes often have no
# internet, so offline unless told otherwise; `wandb sync outputs/wandb/wandb/offline-run-*` later.
# A requeued job keeps its SLURM job id, so it resumes the same W&B run.
export WANDB_MODE="${WANDB_MODE:-offline}"
export WANDB_RUN_ID="${WANDB_RUN_ID:-${SLURM_JOB_NAME:-stfuse}-${SLURM_JOB_ID:-local}}"
export WANDB_RESUME="${WANDB_RESUME:-allow}"

export NO_ALBUMENTATIONS_UPDATE=1
export PYTHONUNBUFFERED=1

# Install (or check) the venv once, on the batch host, before srun starts one task per GPU: otherwise
# every task would run pip at the same time.
make --no-print-directory install
