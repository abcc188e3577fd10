#!/usr/bin/env bash
# Stop the daemons tests/cluster/start_slurm.sh STATE_DIR started (by the PIDs it recorded), nothing else.
set -uo pipefail
STATE=${1:?usage: stop_slurm.sh STATE_DIR}
[[ -f "$STATE/pids" ]] || exit 0
tac "$STATE/pids" | while read -r pid; do  # slurmd, slurmctld, then munged
    kill "$pid" 2>/dev/null || continue
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
done
rm -f "$STATE/pids"
grep -qs "^# cmbflow test cluster" /etc/slurm/slurm.conf && rm -f /etc/slurm/slurm.conf
exit 0
