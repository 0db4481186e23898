"""SLURM: the tasks of an `srun` job step become a TensorFlow cluster, without TF_CONFIG.

Supercomputers schedule with SLURM, and TensorFlow already knows how to read a job step:
`tf.distribute.cluster_resolver.SlurmClusterResolver` turns SLURM_PROCID,
SLURM_STEP_NUM_TASKS, SLURM_STEP_NODELIST and SLURM_STEP_TASKS_PER_NODE into a cluster.
When TF_CONFIG is not set and the step has more than one task, `cluster_from_env` asks it
for this task's place and the trainer proceeds as under TF_CONFIG: every task is one
synchronous worker (`--strategy=multi_worker`), SLURM_PROCID 0 the chief.

  #SBATCH --nodes=4 --ntasks-per-node=1     (`onemodel-launch --slurm` prints a script)
  srun onemodel-train --strategy=multi_worker --output_dir=... --gin_file=...

Ports: SLURM's reservation (`srun --resv-ports`, SLURM_STEP_RESV_PORTS) when there is
one, else TensorFlow's default base 8888, one port per task of a node. GPUs are bound by
SLURM (`--gpus-per-task`), not here.
"""

import os
import shlex

import tensorflow as tf

from onemodel.errors import UserError

DEFAULT_PORT = 8888  # SlurmClusterResolver's own default port base


def in_job_step() -> bool:
  """True inside a job step of more than one task (srun -n 2 or more)."""
  try:
    return "SLURM_PROCID" in os.environ and \
        int(os.environ.get("SLURM_STEP_NUM_TASKS", "1")) > 1
  except ValueError as e:
    raise UserError(f"SLURM_STEP_NUM_TASKS={os.environ['SLURM_STEP_NUM_TASKS']!r} is "
                    "not a number") from e


def _port_base() -> int:
  ports = os.environ.get("SLURM_STEP_RESV_PORTS", "")  # e.g. '12000-12003' or '12000'
  try:
    return int(ports.split(",")[0].split("-")[0]) if ports else DEFAULT_PORT
  except ValueError as e:
    raise UserError(f"SLURM_STEP_RESV_PORTS={ports!r} is not a port range") from e


def cluster_from_env() -> dict:
  """TF_CONFIG's content for this task of a multi-task SLURM job step ({} outside one)."""
  if not in_job_step():
    return {}
  resolver_lib = tf.distribute.cluster_resolver
  try:
    num_tasks = int(os.environ["SLURM_STEP_NUM_TASKS"])
    # The resolver lays tasks out by accelerator slots and finds none on a CPU node (it
    # would run nvidia-smi, then place no task at all): give every task one slot (no
    # node holds more than all the tasks), and leave the devices as SLURM bound them.
    resolver = resolver_lib.SlurmClusterResolver(
        jobs={"worker": num_tasks}, port_base=_port_base(), gpus_per_node=num_tasks,
        gpus_per_task=1, auto_set_gpu=False)
    spec = resolver.cluster_spec().as_dict()
  except (KeyError, ValueError, RuntimeError) as e:
    raise UserError(f"SLURM job step environment not understood ({e}); set TF_CONFIG "
                    "instead (see README, 'Clusters')") from e
  kind, index = resolver.get_task_info()
  if kind is None:
    raise UserError(f"SLURM_PROCID={os.environ['SLURM_PROCID']} is outside the step's "
                    f"{num_tasks} tasks")
  return {"cluster": spec, "task": {"type": kind, "index": index}}


def sbatch_script(num_workers: int, train_args, job_name: str = "onemodel") -> str:
  """An sbatch script that runs `onemodel-train train_args` on `num_workers` nodes, one
  synchronous worker per node (each uses its node's cores)."""
  command = " ".join(shlex.quote(a) for a in
                     ["onemodel-train", "--strategy=multi_worker", *train_args])
  return "\n".join([
      "#!/bin/bash",
      f"#SBATCH --job-name={job_name}",
      f"#SBATCH --nodes={num_workers}",
      "#SBATCH --ntasks-per-node=1",
      "#SBATCH --output=%x-%j.out",
      "# SLURM sends SIGTERM before it kills a task at the time limit or a preemption:",
      "# every worker saves the step reached, and the same script resumes from it.",
      "#SBATCH --signal=TERM@120",
      "",
      "# One task per node; onemodel-train builds the cluster from SLURM's environment",
      "# (SlurmClusterResolver), worker 0 being the chief. --resv-ports: ports reserved",
      "# by SLURM for this step, so two jobs on one node do not collide.",
      f"srun --resv-ports={num_workers} --kill-on-bad-exit=1 {command}",
      ""])
