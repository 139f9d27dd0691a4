#!/usr/bin/env bash
# The agent at rest: `netvm agent` serving the default lab (`netvm lab up`,
# namespaces: five VMs with their leases, DNS, NAT, the ruleset), no
# traffic, for a window of seconds; beside it dnsmasq serving DHCP and DNS
# for the same five leases on a namespace of its own, measured in the
# same window. For each: processes it started (`sched:sched_process_fork`
# in its threads), context switches per second and CPU time (perf's
# counters over every thread), its threads, and its resident memory
# (VmRSS, and VmHWM, the peak) at the end.
#
# Targets (issue 15): 0 processes, <= 2 context switches/s, RSS <= 8 MiB.
#
# Needs root and: perf (linux-perf), dnsmasq (dnsmasq-base), udhcpc.
# Traffic stays in namespaces it creates and removes (the lab's, id 97,
# and one pair of its own). Usage: bench/idle.sh [seconds]   (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
WINDOW=${1:-60}
LAB_ID=97
. bench/common.sh
bench_setup idle "linux-perf dnsmasq-base udhcpc iproute2 python3" perf dnsmasq udhcpc ip python3
trap '"$NETVM" lab down --id $LAB_ID >/dev/null 2>&1 || true; bench_cleanup' EXIT

"$NETVM" lab down --id $LAB_ID >/dev/null 2>&1 || true
"$NETVM" lab up --id $LAB_ID > "$WORK/lab-up.txt"
AGENT=$(pgrep -f "netvm agent /run/netvm-lab/$LAB_ID/" | head -1 || true)
[ -n "$AGENT" ] || { echo "no agent found in lab $LAB_ID" >&2; exit 1; }

# dnsmasq with the same five leases: a server namespace and a client
# namespace on one veth pair, the clients' MACs reserved as in the lab.
S=nvb$$s; C=nvb$$c
bench_netns $S; bench_netns $C
ip link add ds0 netns $S type veth peer name dc0 netns $C
ip -n $S link set ds0 up; ip -n $C link set dc0 up
ip -n $S addr add 192.168.100.1/24 dev ds0
HOSTS=()
while read -r mac ip; do HOSTS+=("--dhcp-host=$mac,$ip"); done < <(
  "$NETVM" leases --file /run/netvm-lab/$LAB_ID/leases --format json |
    python3 -c 'import json,sys; [print(l["mac"], l["ip"]) for l in json.load(sys.stdin) if l.get("mac")]')
ip netns exec $S dnsmasq -d -k --interface=ds0 --bind-interfaces --no-resolv --no-hosts \
  --dhcp-range=192.168.100.200,192.168.100.250,255.255.255.0,1h "${HOSTS[@]}" \
  --dhcp-leasefile="$WORK/dnsmasq.leases" --pid-file= --user=root > "$WORK/dnsmasq.log" 2>&1 &
DNSMASQ=$!
disown $DNSMASQ  # bench_cleanup kills it; no "Killed" from bash
sleep 1
# The same number of leases, from one client each (udhcpc with each MAC).
for host in "${HOSTS[@]}"; do
  mac=${host#--dhcp-host=}; mac=${mac%%,*}
  ip -n $C link set dc0 address "$mac"
  ip netns exec $C udhcpc -i dc0 -n -q -t 3 -T 1 -s /bin/true >/dev/null 2>&1 || true
done
sleep 5

measure() { # pid -> "forks ctxsw/s cpu_ms threads rss_kib hwm_kib"
  perf stat -x, -e sched:sched_process_fork,context-switches,task-clock -p "$1" -- sleep "$WINDOW" 2> "$WORK/perf.$1" >/dev/null
  awk -F, -v w="$WINDOW" -v pid="$1" '
    # A counter of a process that never ran in the window reads "<not counted>".
    { v = ($1 ~ /^[0-9.]+$/) ? $1 : 0 }
    $3 == "sched:sched_process_fork" { forks = v }
    $3 == "context-switches" { cs = v }
    $3 == "task-clock" { cpu = v }
    END {
      getline threads < ("/proc/" pid "/stat"); split(threads, f, " ")
      printf "%s %.2f %.1f %s ", forks, cs / w, cpu, f[20]
    }' "$WORK/perf.$1"
  awk '/^VmRSS/ { r = $2 } /^VmHWM/ { h = $2 } END { printf "%s %s\n", r, h }' /proc/"$1"/status
}

echo "measuring the agent (pid $AGENT) and dnsmasq (pid $DNSMASQ) at rest for $WINDOW s" >&2
measure "$AGENT" > "$WORK/agent.idle" &
MEASURING=$!
measure "$DNSMASQ" > "$WORK/dnsmasq.idle"
wait $MEASURING
read -r a_forks a_cs a_cpu a_threads a_rss a_hwm < "$WORK/agent.idle"
read -r d_forks d_cs d_cpu d_threads d_rss d_hwm < "$WORK/dnsmasq.idle"
echo
echo "| at rest, $WINDOW s, ${#HOSTS[@]} leases | processes started | context switches/s | CPU ms | threads | RSS (MiB) | peak RSS (MiB) |"
echo "|---|---|---|---|---|---|---|"
mib() { awk -v k="$1" 'BEGIN { printf "%.2f", k / 1024 }'; }
echo "| netvm agent (DHCP, DNS, uplink client, events, control) | $a_forks | $a_cs | $a_cpu | $a_threads | $(mib "$a_rss") | $(mib "$a_hwm") |"
echo "| dnsmasq 2.90 (DHCP, DNS) | $d_forks | $d_cs | $d_cpu | $d_threads | $(mib "$d_rss") | $(mib "$d_hwm") |"
echo
awk -v a="$a_cs" -v d="$d_cs" -v ar="$a_rss" -v dr="$d_rss" 'BEGIN {
  printf "agent/dnsmasq: context switches %s   RSS %.2fx\n", (d > 0 ? sprintf("%.1fx", a / d) : "n/a (dnsmasq made none)"), ar / dr }'
echo "targets: 0 processes (agent: $a_forks), <= 2 context switches/s (agent: $a_cs), RSS <= 8 MiB (agent: $(mib "$a_rss"))"
