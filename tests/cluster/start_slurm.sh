#!/usr/bin/env bash
# Start a one-node SLURM cluster on this machine for the cluster test: Debian's munge and
# SLURM 22.05, daemons started by hand (no systemd), no accounting (jobs are queried with
# squeue; MinJobAge=3600 keeps every finished job of a test run visible).
#
#   tests/cluster/start_slurm.sh STATE_DIR     -> STATE_DIR/slurm.conf, installed as /etc/slurm/slurm.conf
#                                                 (job steps read that path), and STATE_DIR/pids
#   tests/cluster/stop_slurm.sh STATE_DIR      -> stops exactly the daemons started here
#
# Exit status 3: this machine cannot run SLURM (not root, no apt-get, install failed); the
# test skips with that reason. Any other failure is an error.
set -euo pipefail
STATE=${1:?usage: start_slurm.sh STATE_DIR}
cannot() { echo "start_slurm.sh: $*" >&2; exit 3; }

[[ $(id -u) == 0 ]] || cannot "needs root (installs packages, runs slurmd)"
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null \
   || ! command -v sbatch >/dev/null; then
    command -v apt-get >/dev/null || cannot "SLURM is not installed and there is no apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q munge slurmctld slurmd slurm-client >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q munge slurmctld slurmd slurm-client >/dev/null 2>&1; } \
        || cannot "apt-get could not install munge slurmctld slurmd slurm-client"
fi

mkdir -p "$STATE"/{spool,state,log}
STATE=$(cd "$STATE" && pwd)
: > "$STATE/pids"

# munge: the daemon runs as user munge (it refuses root) with Debian's default paths, which
# user munge can reach (a private STATE_DIR may not be). An already working munged is reused.
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
    chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
fi
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 1 50); do [[ -s /run/munge/munged.pid ]] && break; sleep 0.1; done
    cat /run/munge/munged.pid >> "$STATE/pids"
fi

# The node as slurmd sees it (CPUs, memory), named localhost (the machine's hostname may not resolve).
NODE=$(slurmd -C | head -1 | sed -E 's/^NodeName=[^ ]+/NodeName=localhost/; s/ UpTime=.*//')
cat > "$STATE/slurm.conf" <<CONF
# cmbflow test cluster (tests/cluster/start_slurm.sh)
ClusterName=cmbflow
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/state
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=1024
MinJobAge=3600
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
$NODE State=UNKNOWN
PartitionName=main Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
# Steps inside a job (srun) read the default path, whatever SLURM_CONF says outside: install
# the file there, unless another cluster's configuration is in the way.
if [[ -e /etc/slurm/slurm.conf ]] && ! grep -q "^# cmbflow test cluster" /etc/slurm/slurm.conf; then
    cannot "/etc/slurm/slurm.conf belongs to another cluster; not replacing it"
fi
install -D -m 0644 "$STATE/slurm.conf" /etc/slurm/slurm.conf
export SLURM_CONF=/etc/slurm/slurm.conf

slurmctld
slurmd -N localhost
for _ in $(seq 1 100); do  # both daemonize and write their PID files
    [[ -s "$STATE/slurmctld.pid" && -s "$STATE/slurmd.pid" ]] && break
    sleep 0.1
done
cat "$STATE/slurmctld.pid" "$STATE/slurmd.pid" >> "$STATE/pids"

for _ in $(seq 1 300); do
    if [[ $(sinfo -h -n localhost -o %T 2>/dev/null) == idle ]]; then
        echo "start_slurm.sh: node localhost idle"
        exit 0
    fi
    sleep 0.2
done
echo "start_slurm.sh: the node did not become idle in 60 s; logs in $STATE/log" >&2
sinfo -N -l >&2 || true
exit 1
