#!/bin/bash

# Parameters
#SBATCH --cpus-per-task=1
#SBATCH --error=/scratch/runs/demo/slurm/%j_0_log.err
#SBATCH --job-name=pcsweep-demo
#SBATCH --nodes=1
#SBATCH --open-mode=append
#SBATCH --output=/scratch/runs/demo/slurm/%j_0_log.out
#SBATCH --signal=USR2@90
#SBATCH --time=5
#SBATCH --wckey=submitit

# setup
export JAX_PLATFORMS=cpu
export XLA_PYTHON_CLIENT_PREALLOCATE=false
export JAX_COMPILATION_CACHE_DIR=/scratch/runs/.jax_cache
export HDF5_USE_FILE_LOCKING=FALSE
export PYTHONPATH=<code>${PYTHONPATH:+:$PYTHONPATH}

# command
export SUBMITIT_EXECUTOR=slurm
srun --unbuffered --output /scratch/runs/demo/slurm/%j_%t_log.out --error /scratch/runs/demo/slurm/%j_%t_log.err <python> -u -m submitit.core._submit /scratch/runs/demo/slurm
