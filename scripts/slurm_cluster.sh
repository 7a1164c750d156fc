#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for the `slurm` tests and for trying the SLURM
# launcher (docs/cluster.md): installs slurm-wlm and munge from the distribution when missing
# (Debian/Ubuntu, apt-get), writes a munge key and a minimal /etc/slurm/slurm.conf (this machine's
# CPUs and memory, one default partition `debug`), starts munged, slurmctld and slurmd, and waits
# until `sinfo` shows the node up. No systemd needed. Idempotent: when the node already answers it
# only says so (well under a second).
#
#   scripts/slurm_cluster.sh           start (install if needed); exit 0 once the node is up
#   scripts/slurm_cluster.sh --check   exit 0 if a cluster answers, else 1; changes nothing
#   scripts/slurm_cluster.sh --stop    stop the daemons this script started
#
# Exit codes: 0 up; 1 failed to start (the log's tail is printed); 3 cannot start one here
# (not root, no apt-get, or an /etc/slurm/slurm.conf this script did not write) - the tests skip.
# Job accounting (slurmdbd + MariaDB) is left off on purpose: see docs/cluster.md for why.
set -euo pipefail

CONF=/etc/slurm/slurm.conf
MARK="# written by mirror-sweep scripts/slurm_cluster.sh"
LOG_DIR=/var/log/slurm
WAIT_S=${SLURM_CLUSTER_WAIT_S:-30}

say() { echo "slurm_cluster: $*"; }
cannot() { say "cannot start a cluster here: $*" >&2; exit 3; }

node_up() {  # the node is idle, mixed or allocated (not down/drained/unknown)
    local state
    state=$(timeout 5 sinfo --noheader --format=%T 2>/dev/null | head -n1) || return 1
    [[ "$state" =~ ^(idle|mixed|allocated|completing)$ ]]
}

stop() {  # SIGTERM, then wait (up to 10 s) until the daemon is gone
    local pid
    for daemon in slurmd slurmctld; do
        pid=$(cat "/run/$daemon.pid" 2>/dev/null) || continue
        if kill "$pid" 2>/dev/null; then
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
            kill -9 "$pid" 2>/dev/null || true
            say "stopped $daemon"
        fi
        rm -f "/run/$daemon.pid"
    done
}

write_conf() {  # $1: where; this machine as the controller and the only node
    local host node
    host=$(hostname -s)
    node=$(slurmd -C | head -n1 | sed -e "s/^NodeName=[^ ]*//")  # CPUs, cores, RealMemory
    cat >"$1" <<EOF
$MARK: a single-node test cluster.
ClusterName=mirror
SlurmctldHost=$host(127.0.0.1)
AuthType=auth/munge
SlurmUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
# CR_Core_Memory (not CR_Core): memory is a consumable, so --mem is a limit; with CR_Core a step
# has no memory limit and OverMemoryKill below never fires. Jobs without --mem get 1 GB per CPU.
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
MpiDefault=none
ReturnToService=2
# no accounting database: sacct is off; finished jobs stay visible to squeue/scontrol MinJobAge s
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
# per-process memory sampling every second, so a step above its --mem is killed without cgroups
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
JobAcctGatherParams=OverMemoryKill
MinJobAge=300
KillWait=5
InactiveLimit=0
SchedulerType=sched/backfill
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
NodeName=$host NodeAddr=127.0.0.1$node State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

case "${1:-}" in
    --check) command -v sinfo >/dev/null && node_up && exit 0; exit 1 ;;
    --stop) stop; exit 0 ;;
    "") ;;
    *) echo "usage: $0 [--check|--stop]" >&2; exit 2 ;;
esac

start=$(date +%s%N)
if command -v slurmd >/dev/null && node_up; then
    # up, and either someone else's cluster or ours with an unchanged config: nothing to do
    if ! grep -qF "$MARK" "$CONF" 2>/dev/null || { write_conf /tmp/slurm_cluster.conf &&
            cmp -s /tmp/slurm_cluster.conf "$CONF"; }; then
        say "node $(hostname -s) is up (nothing to do)"
        exit 0
    fi
fi
[[ $(id -u) -eq 0 ]] || cannot "not root (a cluster needs root to start; ask for one or run as root)"

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    command -v apt-get >/dev/null || cannot "SLURM is not installed and there is no apt-get"
    say "installing slurm-wlm and munge (apt-get) ..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq slurm-wlm munge >/tmp/slurm_cluster-apt.log 2>&1 || {
        apt-get update -qq >>/tmp/slurm_cluster-apt.log 2>&1
        apt-get install -y -qq slurm-wlm munge >>/tmp/slurm_cluster-apt.log 2>&1
    } || { tail -n 20 /tmp/slurm_cluster-apt.log >&2; say "apt-get install failed" >&2; exit 1; }
fi

if [[ -f $CONF ]] && ! grep -qF "$MARK" "$CONF"; then
    cannot "$CONF exists and was not written by this script (a real cluster's?): left alone"
fi

# munge: a key, and munged running as the munge user
if [[ ! -s /etc/munge/munge.key ]]; then
    mungekey --create --force >/dev/null 2>&1 ||
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=128 2>/dev/null
fi
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged --force
fi

mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd "$LOG_DIR"
write_conf "$CONF.new"
host=$(hostname -s)
if cmp -s "$CONF.new" "$CONF"; then rm "$CONF.new"; else mv "$CONF.new" "$CONF"; stop; fi

running() { [[ -f /run/$1.pid ]] && kill -0 "$(cat /run/$1.pid)" 2>/dev/null; }
running slurmctld || slurmctld
running slurmd || slurmd
for _ in $(seq $((WAIT_S * 5))); do
    if node_up; then
        say "node $host is up ($(sinfo --noheader --format='%P %c CPUs %m MB') ready in" \
            "$(( ($(date +%s%N) - start) / 1000000 )) ms)"
        exit 0
    fi
    state=$(sinfo --noheader --format=%T 2>/dev/null | head -n1 || true)
    if [[ "$state" =~ ^(down|drain|drained) ]]; then  # e.g. after a restart with a new config
        scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true
    fi
    sleep 0.2
done
say "the node did not come up within ${WAIT_S} s; sinfo: $(sinfo 2>&1 | tail -n1)" >&2
tail -n 5 "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" >&2 || true
exit 1
