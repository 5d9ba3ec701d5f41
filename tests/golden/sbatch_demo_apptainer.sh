#!/bin/bash

# Parameters
#SBATCH --array=0-4%2
#SBATCH --cpus-per-task=4
#SBATCH --error=/scratch/runs/demo/slurm/%A_%a_0_log.err
#SBATCH --gpus-per-node=1
#SBATCH --job-name=pcsweep-demo
#SBATCH --mail-type=END
#SBATCH --mem=8GB
#SBATCH --nodes=1
#SBATCH --open-mode=append
#SBATCH --output=/scratch/runs/demo/slurm/%A_%a_0_log.out
#SBATCH --partition=gpu
#SBATCH --signal=USR2@90
#SBATCH --time=30
#SBATCH --wckey=submitit

# setup
export JAX_PLATFORMS=cuda
export XLA_PYTHON_CLIENT_PREALLOCATE=false
export JAX_COMPILATION_CACHE_DIR=/scratch/runs/.jax_cache
export HDF5_USE_FILE_LOCKING=FALSE
export PYTHONPATH=<code>${PYTHONPATH:+:$PYTHONPATH}

# command
export SUBMITIT_EXECUTOR=slurm
srun --unbuffered --output /scratch/runs/demo/slurm/%A_%a_%t_log.out --error /scratch/runs/demo/slurm/%A_%a_%t_log.err apptainer exec --nv --bind /scratch/runs,<code> /scratch/pcsweep.sif python -u -m submitit.core._submit /scratch/runs/demo/slurm
