#!/usr/bin/env bash
# `make demo`: a virtual cluster (head + 3 workers) brought up by `piherd up`, then an
# MPI job (mpi4py: rank, size, host, allreduce sum) run on the 3 workers through Slurm
# (sbatch + mpirun, then srun), then with mpiexec and piherd's host file over SSH,
# as the cluster's admin user. The virtual cluster is removed on exit, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
PIHERD=.venv/bin/piherd
NAME=demo

cleanup() {
  echo "== piherd sim down --name $NAME"
  "$PIHERD" sim down --name "$NAME" || true
}
trap cleanup EXIT

echo "== piherd sim up --workers 3 --name $NAME"
CLUSTER=$("$PIHERD" sim up --workers 3 --name "$NAME" | tail -1)
echo "cluster file: $CLUSTER"

echo "== piherd up -f $CLUSTER"
"$PIHERD" up -f "$CLUSTER"

# Everything below talks to the head over SSH as the admin user, like a person would.
STATE=$(dirname "$CLUSTER")
HEAD_ADDR=$(.venv/bin/python - "$CLUSTER" <<'PY'
import sys
from pathlib import Path
from piherd.services import load
from piherd.services.storage import StorageSettings
c = load(Path(sys.argv[1]))
print(c.head.address, c.admin_user, c.services.get(StorageSettings).mount, c.network.subnet)
PY
)
read -r ADDR ADMIN SHARED SUBNET <<<"$HEAD_ADDR"
SSH=(ssh -F "$STATE/ssh_config" -o "HostKeyAlias=node01" "$ADMIN@$ADDR")

echo "== waiting for 3 idle Slurm nodes"
for _ in $(seq 60); do
  idle=$("${SSH[@]}" sinfo -h -N -t idle -o %N | sort -u | wc -l)
  [ "$idle" -ge 3 ] && break
  sleep 2
done
"${SSH[@]}" sinfo

echo "== sbatch: an mpi4py job over the 3 workers"
"${SSH[@]}" tee "$SHARED/demo_mpi.py" >/dev/null <<'PY'
from mpi4py import MPI
import socket
comm = MPI.COMM_WORLD
total = comm.allreduce(comm.Get_rank() + 1, op=MPI.SUM)
print(f"rank={comm.Get_rank()} size={comm.Get_size()} host={socket.gethostname()} sum={total}")
PY
"${SSH[@]}" tee "$SHARED/demo_job.sh" >/dev/null <<SH
#!/bin/sh
#SBATCH --nodes=3
#SBATCH --ntasks-per-node=1
#SBATCH --output=$SHARED/demo-%j.out
export OMPI_MCA_btl_vader_single_copy_mechanism=none
mpirun --mca btl_tcp_if_include $SUBNET --mca oob_tcp_if_include $SUBNET python3 $SHARED/demo_mpi.py
SH
JOB=$("${SSH[@]}" "cd $SHARED && sbatch --parsable --wait demo_job.sh")
echo "== job $JOB output"
"${SSH[@]}" cat "$SHARED/demo-$JOB.out"

echo "== srun: the same program, ranks started by Slurm (MpiDefault=pmix, see docs/jobs.md)"
"${SSH[@]}" "cd $SHARED && srun -N3 python3 demo_mpi.py"

echo "== mpiexec with piherd's host file, over SSH as $ADMIN (the how-tos' way)"
"${SSH[@]}" "cd $SHARED && mpiexec -machinefile /etc/piherd/hosts.openmpi --map-by node -n 3 python3 demo_mpi.py"
