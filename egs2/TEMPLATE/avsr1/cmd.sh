# cmd.sh — how avsr.sh runs its jobs (sourced by avsr.sh).
# Each variable is a command prefix put in front of a job; empty = run it on
# this machine. Kaldi's run.pl/queue.pl are not needed (nor shipped with
# ESPnet's pip package). Examples for Slurm, inside an salloc/sbatch
# allocation:
#   cpu_cmd="srun --ntasks=1 --cpus-per-task=8"    # stages 2, 3 and 7 jobs
#   decode_cmd="srun --ntasks=1 --cpus-per-task=1" # each decoding job (stage 11)
#   train_cmd="srun --ntasks=1 --gres=gpu:1"       # training with --dist_launcher local
# For multi-GPU / multi-node training use --dist_launcher torchrun|slurm
# (see the header of avsr.sh) instead of train_cmd.
cpu_cmd=""
decode_cmd=""
train_cmd=""
