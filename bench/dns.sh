#!/usr/bin/env bash
# DNS: netvm's server against dnsmasq, same machine, same run. dnsperf in
# a client namespace asks 192.168.100.1 in a server namespace (netvm or
# dnsmasq, one at a time), which forwards to a dnsmasq upstream in an
# upstream namespace that answers every name under bench.example:
#   (a) local names: 90 VM names and their PTRs, answered by the server;
#   (b) cached upstream names: 1,000 names, asked once to warm the cache,
#       then every query a cache hit;
# prints the median queries/s of interleaved rounds, average latency, and
# each server's CPU time per 1,000 queries, with netvm/dnsmasq ratios.
# Needs root, dnsperf, dnsmasq, iproute2, python3. Traffic stays in the
# namespaces it creates and removes.
# Usage: [ROUNDS=3] bench/dns.sh [seconds-per-run]   (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
. bench/common.sh
bench_setup dns "dnsperf dnsmasq-base iproute2 python3" dnsperf dnsmasq ip python3
CL=nvd$$c; SV=nvd$$s; UP=nvd$$u

# The system: 90 app VMs (vm1..vm90 at .101-.190), no per-client limit
# (dnsperf is one client), a cache as large as dnsmasq's.
python3 - "$WORK/system.toml" <<'PY'
import sys
lines = ['[netvm.uplink]', 'interface = "eth0"', 'addressing = "static"',
         'address = "203.0.113.2/24"', 'gateway = "203.0.113.1"',
         '[dns]', 'cache_size = 10000', 'client_rate = 0']
for i in range(1, 91):
    lines += ['[[vm]]', f'name = "vm{i}"']
open(sys.argv[1], 'w').write('\n'.join(lines) + '\n')
PY
# The same names for dnsmasq, from netvm's own address plan.
"$NETVM" plan "$WORK/system.toml" --format json | python3 -c '
import json, sys
plan = json.load(sys.stdin)
for row in plan["addresses"]:
    print(row["ip"], row["fqdn"])' > "$WORK/hosts"
python3 - "$WORK" <<'PY'
import sys
work = sys.argv[1]
with open(f"{work}/local.txt", "w") as f:
    for i in range(1, 91):
        f.write(f"vm{i}.internal A\n")
        f.write(f"{100 + i}.100.168.192.in-addr.arpa PTR\n")
with open(f"{work}/cached.txt", "w") as f:
    for k in range(1000):
        f.write(f"name{k}.bench.example A\n")
PY

bench_netns $CL; bench_netns $SV; bench_netns $UP
ip link add c0 netns $CL type veth peer name ethint0 netns $SV
ip link add u0 netns $UP type veth peer name eth0 netns $SV
ip -n $CL addr add 192.168.100.50/24 dev c0; ip -n $CL link set c0 up
ip -n $SV addr add 192.168.100.1/24 dev ethint0; ip -n $SV link set ethint0 up
ip -n $SV addr add 203.0.113.2/24 dev eth0; ip -n $SV link set eth0 up
ip -n $UP addr add 203.0.113.1/24 dev u0; ip -n $UP link set u0 up
ip netns exec $UP dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces \
  --listen-address=203.0.113.1 --address=/bench.example/198.51.100.7 --local-ttl=3600 \
  --pid-file= --user=root --cache-size=0 &

start_netvm() {
  ip netns exec $SV "$NETVM" dns serve "$WORK/system.toml" --interface ethint0 \
    --upstream 203.0.113.1 > "$WORK/netvm.log" &
  SERVER=$!
}
start_dnsmasq() {
  ip netns exec $SV dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces \
    --listen-address=192.168.100.1 --server=203.0.113.1 --cache-size=10000 \
    --domain=internal --local=/internal/ --local=/100.168.192.in-addr.arpa/ \
    --addn-hosts="$WORK/hosts" --local-ttl=300 --pid-file= --user=root &
  SERVER=$!
}
# The server process's own pid (ip netns exec execs it, so $! is it).
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$SERVER/stat"; }
wait_answering() {
  for _ in $(seq 50); do
    ip netns exec $CL dnsperf -s 192.168.100.1 -d "$WORK/local.txt" -n 1 -t 1 2>/dev/null \
      | grep -q "Queries completed: *180 " && return 0
    sleep 0.2
  done
  echo "the server under test does not answer" >&2; exit 1
}
# measure FILE: "qps latency_ms cpu_ms_per_1000 response-codes"
measure() {
  local before after out
  before=$(cpu_ticks)
  out=$(ip netns exec $CL dnsperf -s 192.168.100.1 -d "$1" -l "$SECS" -c 4 -q 200 -T 1 2>&1)
  after=$(cpu_ticks)
  echo "$out" | python3 -c '
import re, sys
text, ticks = sys.stdin.read(), int(sys.argv[1])
qps = float(re.search(r"Queries per second:\s+([\d.]+)", text).group(1))
done = int(re.search(r"Queries completed:\s+(\d+)", text).group(1))
lat = float(re.search(r"Average Latency \(s\):\s+([\d.]+)", text).group(1)) * 1000
codes = re.search(r"Response codes:\s+(.*)", text).group(1).replace(" ", "").replace(",", "+")
print("%.0f %.3f %.2f %s" % (qps, lat, ticks * 10 / (done / 1000), codes))' $((after - before))
}

ROUNDS=${ROUNDS:-3}
declare -A RESULTS
for round in $(seq "$ROUNDS"); do
  for server in netvm dnsmasq; do
    "start_$server"; wait_answering
    # Warm the cache: every upstream name once.
    ip netns exec $CL dnsperf -s 192.168.100.1 -d "$WORK/cached.txt" -n 1 -c 4 -q 200 >/dev/null 2>&1
    for case in local cached; do
      RESULTS[$server.$case]+="$(measure "$WORK/$case.txt");"
    done
    kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
    echo "round $round $server (q/s latency-ms cpu-ms/1000 rcodes): local ${RESULTS[$server.local]} cached ${RESULTS[$server.cached]}" >&2
  done
done

echo
python3 - "${RESULTS[netvm.local]}" "${RESULTS[dnsmasq.local]}" "${RESULTS[netvm.cached]}" "${RESULTS[dnsmasq.cached]}" <<'PY'
import statistics, sys
def runs(arg):
    return [tuple(float(v) for v in r.split()[:3]) for r in arg.split(";") if r.strip()]
def med(rows, i):
    return statistics.median(r[i] for r in rows)
print("| case | netvm q/s | dnsmasq q/s | q/s ratio | netvm latency ms | dnsmasq latency ms | netvm CPU ms/1000 q | dnsmasq CPU ms/1000 q | CPU ratio (dnsmasq/netvm) |")
print("|---|---|---|---|---|---|---|---|---|")
for name, n, d in [("(a) local names", sys.argv[1], sys.argv[2]), ("(b) cached upstream names", sys.argv[3], sys.argv[4])]:
    n, d = runs(n), runs(d)
    print("| %s | %.0f | %.0f | %.2f | %.3f | %.3f | %.2f | %.2f | %.2f |" % (
        name, med(n, 0), med(d, 0), med(n, 0) / med(d, 0), med(n, 1), med(d, 1),
        med(n, 2), med(d, 2), med(d, 2) / med(n, 2)))
print()
print("runs (q/s, latency ms, CPU ms/1000, response codes): netvm local", sys.argv[1], "dnsmasq local", sys.argv[2], "netvm cached", sys.argv[3], "dnsmasq cached", sys.argv[4])
PY
