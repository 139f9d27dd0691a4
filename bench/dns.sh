#!/usr/bin/env bash
# DNS throughput: netvm's server and dnsmasq, one at a time on the same
# address in the same run. dnsperf in a client namespace asks
# 192.168.100.1 in a server namespace, which forwards to a dnsmasq in an
# upstream namespace answering every name under bench.example (TTL 3600):
#   (a) local names: the 90 VMs' A records and 30 of their PTRs;
#   (b) cached upstream names: 1,000 names, each asked once first, so
#       every measured query is a cache hit.
# dnsperf (one thread, 4 sockets) sends without a rate limit, 100 queries
# outstanding (neither server loses any). On a 2-core machine it needs a core of its own and the
# server gets the other (both servers answer on one thread; a second
# dnsperf thread only takes CPU from the server), so the server's CPU time
# per 1000 queries is printed too: the figure least moved by the client.
# With DNSPERF_OPTS="... -q 500", dnsmasq "loses" queries: 500 at once
# overflow its default socket receive buffer (netvm asks for 4 MiB) and
# ~307 are dropped; they time out (-t, 5 s) and go again together, and so
# on: ~307 per 5 s, so dnsmasq then has only ~190 outstanding.
# Rounds are interleaved (ROUNDS, default 3); medians are shown.
#
# Needs root and: dnsperf, dnsmasq (dnsmasq-base), iproute2, python3. Traffic
# stays in three namespaces it creates and removes.
# Usage: [ROUNDS=3] [SKIP_NETVM=1] [DNSPERF_OPTS="-c 4 -T 1 -q 100"] bench/dns.sh [seconds-per-run]   (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
ROUNDS=${ROUNDS:-3}
OPTS=${DNSPERF_OPTS:--c 4 -T 1 -q 100}
SERVERS="netvm dnsmasq"; [ -z "${SKIP_NETVM:-}" ] || SERVERS=dnsmasq
. bench/common.sh
bench_setup dns "dnsperf dnsmasq-base iproute2 python3" dnsperf dnsmasq ip python3
CL=nvd$$c; SV=nvd$$s; UP=nvd$$u
bench_netns $CL; bench_netns $SV; bench_netns $UP
ip link add c0 netns $CL type veth peer name ethint0 netns $SV
ip link add u0 netns $UP type veth peer name eth0 netns $SV
ip -n $CL addr add 192.168.100.50/24 dev c0; ip -n $CL link set c0 up
ip -n $SV addr add 192.168.100.1/24 dev ethint0; ip -n $SV link set ethint0 up
ip -n $SV addr add 203.0.113.2/24 dev eth0; ip -n $SV link set eth0 up
ip -n $UP addr add 203.0.113.1/24 dev u0; ip -n $UP link set u0 up

# The description (no per-client rate: dnsperf is one client; netvm's
# default of 500/s would drop most of its queries), the same names for
# dnsmasq (from netvm's plan, else the rule: net-vm .1, app VMs from .101),
# and the query files.
python3 - "$NETVM" "$WORK" <<'PY'
import json, subprocess, sys
netvm, work = sys.argv[1:]
lines = ['[network]', 'subnet = "192.168.100.0/24"', '[netvm.uplink]', 'interface = "eth0"',
         'addressing = "static"', 'address = "203.0.113.2/24"', 'gateway = "203.0.113.1"',
         '[dns]', 'cache_size = 10000', 'client_rate = 0']
for i in range(1, 91):
    lines += ['[[vm]]', f'name = "vm{i}"']
open(f"{work}/system.toml", "w").write("\n".join(lines) + "\n")
try:
    plan = json.loads(subprocess.run([netvm, "plan", f"{work}/system.toml", "--format", "json"],
                                     capture_output=True, check=True).stdout)
    hosts = [(row["ip"], row["fqdn"]) for row in plan["addresses"]]
except (OSError, subprocess.CalledProcessError, ValueError, KeyError):
    hosts = [("192.168.100.1", "net-vm.internal")] + [(f"192.168.100.{100 + i}", f"vm{i}.internal") for i in range(1, 91)]
open(f"{work}/hosts", "w").write("".join(f"{ip} {name}\n" for ip, name in hosts))
with open(f"{work}/local.txt", "w") as f:
    for i in range(1, 91):
        f.write(f"vm{i}.internal A\n")
        if i % 3 == 0:
            f.write(f"{100 + i}.100.168.192.in-addr.arpa PTR\n")
with open(f"{work}/cached.txt", "w") as f:
    f.writelines(f"name{k}.bench.example A\n" for k in range(1000))
PY
grep -qx '192.168.100.105 vm5.internal' "$WORK/hosts" || { echo "unexpected address plan: $(head -3 "$WORK/hosts")" >&2; exit 1; }

ip netns exec $UP dnsmasq --keep-in-foreground --log-facility=- --no-resolv --no-hosts --port=53 --bind-interfaces \
  --listen-address=203.0.113.1 --address=/bench.example/203.0.113.7 --local-ttl=3600 \
  --pid-file= > "$WORK/upstream.log" 2>&1 &
UPSTREAM=$!
ask() { # NAMESPACE SERVER NAME TYPE -> "ttl data" of the first answer
  ip netns exec "$1" dig +time=1 +tries=1 +noall +answer @"$2" "$3" "$4" | awk 'n++ == 0 { print $2, $5 }'
}
for _ in $(seq 50); do [ -n "$(ask $SV 203.0.113.1 name0.bench.example A)" ] && break; sleep 0.2; done
[ "$(ask $SV 203.0.113.1 name0.bench.example A)" = "3600 203.0.113.7" ] \
  || { echo "the upstream dnsmasq does not answer name0.bench.example with TTL 3600" >&2; exit 1; }

start_server() {
  case $1 in
    netvm) ip netns exec $SV "$NETVM" dns serve "$WORK/system.toml" --interface ethint0 \
             --upstream 203.0.113.1 > "$WORK/netvm.log" 2>&1 & ;;
    dnsmasq) ip netns exec $SV dnsmasq --keep-in-foreground --log-facility=- --no-resolv --no-hosts \
               --bind-interfaces --listen-address=192.168.100.1 --server=203.0.113.1 --cache-size=10000 \
               --domain=internal --local=/internal/ --local=/100.168.192.in-addr.arpa/ \
               --addn-hosts="$WORK/hosts" --local-ttl=300 --pid-file= --user=root > "$WORK/dnsmasq.log" 2>&1 & ;;
  esac
  SERVER=$!   # ip netns exec execs the server: this is its pid
  local answer=
  for _ in $(seq 50); do
    answer=$(ask $CL 192.168.100.1 vm5.internal A) && [ -n "$answer" ] && break
    kill -0 $SERVER 2>/dev/null || break
    sleep 0.2
  done
  [ "${answer#* }" = 192.168.100.105 ] || { echo "$1 does not answer: $(tail -3 "$WORK/$1.log")" >&2; exit 1; }
  [ "$(ask $CL 192.168.100.1 105.100.168.192.in-addr.arpa PTR | cut -d' ' -f2)" = vm5.internal. ] \
    || { echo "$1 does not answer the PTR of vm5" >&2; exit 1; }
  # Warm the cache (at most 100 outstanding: dnsmasq forwards 150 at once).
  ip netns exec $CL dnsperf -s 192.168.100.1 -d "$WORK/cached.txt" -n 1 -c 4 -q 100 -t 2 2>&1 \
    | grep 'Response codes: *NOERROR 1000 ' >/dev/null || { echo "$1: the warming pass did not get 1000 answers" >&2; exit 1; }
  [ "$(ask $CL 192.168.100.1 name999.bench.example A | cut -d' ' -f2)" = 203.0.113.7 ] \
    || { echo "$1 does not forward" >&2; exit 1; }
}
stop_server() {
  [ "$1" = dnsmasq ] && { kill -USR1 $SERVER; sleep 0.3; }   # its counters, into its log
  kill $SERVER; wait $SERVER 2>/dev/null || true
  case $1 in   # every measured query should have been answered from memory
    netvm) grep -o '"forwarded":[0-9]*' "$WORK/netvm.log" | tail -1 | sed 's/"forwarded":/  netvm forwarded upstream: /' >&2 || true ;;
    dnsmasq) grep -o 'queries forwarded [0-9]*' "$WORK/dnsmasq.log" | tail -1 | sed 's/^/  dnsmasq /' >&2 || true ;;
  esac
}

cpu_ticks() { awk '{ print $14 + $15 }' /proc/$SERVER/stat; }
# measure FILE -> "q/s avg-latency-ms lost completed server-CPU-ms not-NOERROR"
measure() {
  local before after
  before=$(cpu_ticks)
  ip netns exec $CL dnsperf -s 192.168.100.1 -d "$1" -l "$SECS" $OPTS > "$WORK/dnsperf.out" 2>&1
  after=$(cpu_ticks)
  awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" '
    /Queries completed:/ { done = $3 }
    /Response codes:/ { for (i = 3; i < NF; i++) if ($i == "NOERROR") ok = $(i + 1) }
    /Queries lost:/ { lost = $3 }
    /Queries per second:/ { qps = $4 }
    /Average Latency \(s\):/ { lat = $4 * 1000 }
    END { printf "%.0f %.3f %d %d %.0f %d\n", qps, lat, lost, done, 1000 * t / hz, done - ok }' "$WORK/dnsperf.out"
}

RESULTS=()
for round in $(seq "$ROUNDS"); do
  for server in $SERVERS; do
    start_server $server
    for case in local cached; do
      read -r qps lat lost completed cpu bad <<< "$(measure "$WORK/$case.txt")"
      printf 'round %s %-7s %-6s: %6s q/s, %6s ms avg, %5s lost, %s not NOERROR, server CPU %4s ms (%s%% of the run)\n' \
        "$round" $server $case "$qps" "$lat" "$lost" "$bad" "$cpu" $((cpu / SECS / 10)) >&2
      RESULTS+=("$server $case $qps $lat $lost $completed $cpu $bad")
    done
    stop_server $server
  done
done
kill $UPSTREAM; wait $UPSTREAM 2>/dev/null || true

echo
echo "dnsperf $OPTS -l $SECS, no rate limit; medians of $ROUNDS rounds; lost: median per run"
printf '%s\n' "${RESULTS[@]}" > "$WORK/results"
python3 - "$WORK/results" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    server, case, *values = line.split()
    runs.setdefault((server, case), []).append([float(v) for v in values])
def med(server, case, i, fmt="%.0f"):
    rows = runs.get((server, case))
    return fmt % statistics.median(r[i] for r in rows) if rows else "-"
def cpu(server, case):  # server CPU ms per 1000 answered queries
    rows = [r for r in runs.get((server, case), []) if r[3]]
    return "%.1f" % statistics.median(1000 * r[4] / r[3] for r in rows) if rows else "-"
print("| case | netvm q/s | dnsmasq q/s | netvm/dnsmasq | latency (avg ms) netvm | dnsmasq | lost netvm | dnsmasq "
      "| server CPU ms / 1000 q netvm | dnsmasq |")
print("|---|---|---|---|---|---|---|---|---|---|")
for case, title in [("local", "(a) local names (90 A + 30 PTR)"), ("cached", "(b) cached upstream names (1,000 A)")]:
    n, d = med("netvm", case, 0), med("dnsmasq", case, 0)
    ratio = "%.2f" % (float(n) / float(d)) if "-" not in (n, d) and float(d) else "n/a"
    cells = [title, n, d, ratio, med("netvm", case, 1, "%.3f"), med("dnsmasq", case, 1, "%.3f"),
             med("netvm", case, 2), med("dnsmasq", case, 2), cpu("netvm", case), cpu("dnsmasq", case)]
    print("| " + " | ".join(cells) + " |")
bad = sum(r[5] for rows in runs.values() for r in rows)
if bad:
    print(f"\nWARNING: {bad:.0f} answers were not NOERROR (see the rounds above)")
PY
