#!/usr/bin/env bash
# DHCPv4 throughput: netvm, Kea (memfile) and dnsmasq, each on the same
# veth pair in the same run, ramping the rate, measured twice:
#
#  1. perfdhcp (Kea's load generator): the highest rate whose 4-way
#     exchanges (DISCOVER-OFFER-REQUEST-ACK) complete with under 1% drops,
#     the latency there, the server's CPU time per 1000 exchanges, and the
#     leases on disk afterwards. On a 2-core machine perfdhcp itself needs
#     most of a core and cannot send much above 10,000 exchanges/s, so
#     this table is bounded by the client.
#  2. `netvm dhcp load`, a lighter generator (one thread, one socket): the
#     highest rate at which every client is bound with under 1% of its
#     messages retransmitted, a fresh server per step.
#  3. The agent as deployed: `netvm agent` (its ruleset, anti-spoofing
#     guard and `endpoints` set, which every new pool lease joins before
#     its ACK) beside `netvm dhcp serve`, both driven by `netvm dhcp load`
#     from a client namespace without an address (as a new VM is): the
#     highest rate as in 2, the REQUEST-to-ACK latency at 1,000 new
#     clients/s, and the server's CPU per exchange.
#
# Then the ratios netvm/Kea and netvm/dnsmasq, and agent/standalone.
#
# Needs root and: perfdhcp (kea-admin), kea-dhcp4 (kea-dhcp4-server),
# dnsmasq (dnsmasq-base). Traffic stays in two namespaces it creates and
# removes. Usage: bench/dhcp.sh [seconds-per-step]   (default 4)
set -euo pipefail
cd "$(dirname "$0")/.."
STEP=${1:-4}
RATES="250 500 1000 2000 3000 3500 4000 4500 5000 5500 6000 6500 7000 7500 8000 8500 9000 9500 10000 11000 12000 14000 16000 18000 20000 24000 28000 32000"
LOAD_RATES="250 500 1000 2000 3000 4000 5000 6000 8000 10000 12000 15000 18000 21000 24000 28000 32000 36000 40000 48000 56000 64000"
AGENT_RATES="250 500 1000 2000 3000 4000 5000 6000 8000 10000 12000 15000 18000 21000 24000 28000 32000 36000 40000"
. bench/common.sh
bench_setup dhcp "kea-admin kea-dhcp4-server dnsmasq-base iproute2" perfdhcp kea-dhcp4 dnsmasq ip
S=nvb$$s; C=nvb$$c
bench_netns $S; bench_netns $C
ip link add bs0 netns $S type veth peer name bc0 netns $C
ip -n $S link set bs0 up; ip -n $C link set bc0 up
ip -n $S addr add 10.16.0.1/12 dev bs0
ip -n $C addr add 10.16.0.2/12 dev bc0   # perfdhcp relays from here (giaddr)

cat > "$WORK/netvm.toml" <<TOML
[network]
subnet = "10.16.0.0/12"
mac_prefix = "02:ad:00"
[netvm.uplink]
interface = "up0"
[dhcp]
pool = "10.16.1.0-10.31.255.254"
lease_time = "1h"
relays = ["10.16.0.2"]
[dhcp.limits]
per_mac_rate = 1000
per_mac_burst = 1000
TOML
cat > "$WORK/kea.json" <<JSON
{ "Dhcp4": {
  "interfaces-config": { "interfaces": [ "bs0" ] },
  "lease-database": { "type": "memfile", "persist": true, "name": "$WORK/kea-leases.csv", "lfc-interval": 0 },
  "valid-lifetime": 3600,
  "subnet4": [ { "id": 1, "subnet": "10.16.0.0/12", "pools": [ { "pool": "10.16.1.0 - 10.31.255.254" } ] } ],
  "loggers": [ { "name": "kea-dhcp4", "severity": "WARN", "output_options": [ { "output": "$WORK/kea.log" } ] } ]
} }
JSON

start_server() {
  rm -f "$WORK"/netvm-leases "$WORK"/kea-leases.csv* "$WORK"/dnsmasq.leases
  case $1 in
    netvm) ip netns exec $S "$NETVM" dhcp serve "$WORK/netvm.toml" --interface bs0 --journal "$WORK/netvm-leases" > "$WORK/netvm.log" 2>&1 & ;;
    kea) KEA_LOCKFILE_DIR=$WORK KEA_PIDFILE_DIR=$WORK ip netns exec $S kea-dhcp4 -c "$WORK/kea.json" > "$WORK/kea.out" 2>&1 & ;;
    dnsmasq) ip netns exec $S dnsmasq -d -k --port=0 --interface=bs0 --bind-interfaces \
               --dhcp-range=10.16.1.0,10.31.255.254,255.240.0.0,1h --dhcp-lease-max=2000000 \
               --no-ping --dhcp-leasefile="$WORK/dnsmasq.leases" --pid-file="$WORK/dnsmasq.pid" > "$WORK/dnsmasq.log" 2>&1 & ;;
  esac
  SERVER_PID=$!
  sleep 1.5
}

cpu_ticks() { awk '{print $14 + $15}' /proc/$1/stat; }

# perfdhcp prints two blocks (DISCOVER-OFFER, REQUEST-ACK) of statistics.
run_step() { # rate -> "sent acks avg_do avg_ra max_ra"
  ip netns exec $C perfdhcp -4 -g single -l bc0 -r "$1" -R 60000 -p "$STEP" -W 500000 2>/dev/null | awk '
    /sent packets:/ { n++; sent[n] = $3 }
    /received packets:/ { recv[n] = $3 }
    /^avg delay: [0-9]/ { avg[n] = $3 }
    /^max delay:/ { max[n] = $3 }
    END { printf "%d %d %s %s %s\n", sent[1], recv[2], avg[1], avg[2], max[2] }'
}

declare -A BEST LAT MAXLAT CPU LEASES STOP
for server in netvm kea dnsmasq; do
  start_server $server
  BEST[$server]=0; LAT[$server]=-; MAXLAT[$server]=-; CPU[$server]=-; STOP[$server]="never (the ramp ended)"
  for rate in $RATES; do
    before=$(cpu_ticks $SERVER_PID)
    read -r sent acks avg_do avg_ra max_ra <<< "$(run_step $rate)"
    after=$(cpu_ticks $SERVER_PID)
    drop=$(awk -v s="$sent" -v a="$acks" 'BEGIN { if (s == 0) print 100; else printf "%.2f", 100 * (s - a) / s }')
    achieved=$(( acks / STEP ))
    printf '%-8s rate %6s/s: %7s exchanges, %6s/s done, %6s%% dropped\n' $server $rate "$sent" $achieved "$drop" >&2
    if awk -v d="$drop" 'BEGIN { exit !(d < 1) }'; then
      BEST[$server]=$achieved
      LAT[$server]=$(awk -v a="$avg_do" -v b="$avg_ra" 'BEGIN { printf "%.2f", a + b }')
      MAXLAT[$server]=$max_ra
      CPU[$server]=$(awk -v t=$((after - before)) -v n="$acks" -v hz="$(getconf CLK_TCK)" 'BEGIN { if (n) printf "%.1f", 1000 * 1000 * t / hz / n; else print "-" }')
    else
      STOP[$server]="$rate/s: $achieved/s done, $drop% dropped"
      break
    fi
  done
  kill $SERVER_PID; wait $SERVER_PID 2>/dev/null || true
  case $server in
    netvm) LEASES[$server]=$("$NETVM" leases --file "$WORK/netvm-leases" --format json | grep -c '"ip"' || true) ;;
    kea) LEASES[$server]=$(tail -n +2 "$WORK"/kea-leases.csv* 2>/dev/null | cut -d, -f1 | sort -u | wc -l) ;;
    dnsmasq) LEASES[$server]=$(wc -l < "$WORK/dnsmasq.leases" 2>/dev/null || echo 0) ;;
  esac
done

# Part 2: the lighter generator, a fresh server per step.
declare -A LOAD_BEST
for server in netvm kea dnsmasq; do
  LOAD_BEST[$server]=0
  for rate in $LOAD_RATES; do
    start_server $server
    summary=$(ip netns exec $C "$NETVM" dhcp load --interface bc0 --clients $((rate * STEP)) --rate $rate \
                --seconds $((STEP * 3)) --seed $rate --acks "$WORK/acks.jsonl")
    kill $SERVER_PID; wait $SERVER_PID 2>/dev/null || true
    read -r sent retx bound <<< "$(echo "$summary" | sed -E 's/.*"sent":([0-9]+).*"retransmissions":([0-9]+).*"bound":([0-9]+).*/\1 \2 \3/')"
    printf '%-8s load %6s/s: %7s bound of %7s, %6s retransmissions\n' $server $rate "$bound" $((rate * STEP)) "$retx" >&2
    if [ "$bound" -eq $((rate * STEP)) ] && [ $((retx * 100)) -lt "$sent" ]; then
      LOAD_BEST[$server]=$rate
    else
      break
    fi
  done
done

# Part 3: the agent as deployed beside the standalone server, the same
# generator, a fresh pair of namespaces and a fresh server per step. The
# client side has no address (DHCP from 0.0.0.0, as a new VM), so the
# agent's guard lets it in as it would a VM.
cat > "$WORK/agent.toml" <<TOML
[network]
subnet = "10.16.0.0/12"
mac_prefix = "02:ad:00"
[netvm.uplink]
interface = "up0"
addressing = "static"
address = "198.51.100.2/24"
gateway = "198.51.100.1"
[dhcp]
pool = "10.16.1.0-10.31.255.254"
lease_time = "1h"
[dhcp.limits]
per_mac_rate = 1000
per_mac_burst = 1000
TOML
pair_up() { # kind -> starts the server in $A, client interface dc0 in $D
  A=nvb$$a$RANDOM; D=nvb$$d$RANDOM
  bench_netns $A; bench_netns $D
  ip link add as0 netns $A address 02:ad:00:00:00:01 type veth peer name dc0 netns $D
  ip -n $A link set as0 up; ip -n $D link set dc0 up
  ip -n $A link add up0 type veth peer name up1; ip -n $A link set up0 up; ip -n $A link set up1 up
  rm -f "$WORK"/p3-journal*
  case $1 in
    serve) ip -n $A addr add 10.16.0.1/12 dev as0
           ip netns exec $A "$NETVM" dhcp serve "$WORK/agent.toml" --interface as0 --journal "$WORK/p3-journal" > "$WORK/p3.log" 2>&1 & ;;
    agent) ip netns exec $A "$NETVM" agent "$WORK/agent.toml" --journal "$WORK/p3-journal" --control "$WORK/p3.sock" > "$WORK/p3.log" 2>&1 & ;;
  esac
  SERVER_PID=$!
  for _ in $(seq 100); do
    if [ $1 = serve ] && grep -q '"event":"ready"' "$WORK/p3.log"; then break; fi
    if [ $1 = agent ] && grep -q '"event":"ready"' "$WORK/p3.log"; then break; fi
    sleep 0.1
  done
  sleep 0.5
}
pair_down() {
  kill $SERVER_PID; wait $SERVER_PID 2>/dev/null || true
  ip netns pids $A | xargs -r kill -9 2>/dev/null || true
  ip netns del $A; ip netns del $D
}
p3_load() { # rate clients -> load summary JSON
  ip netns exec $D "$NETVM" dhcp load --interface dc0 --clients "$2" --rate "$1" \
    --seconds $((STEP * 3)) --seed $(( ($1 + RANDOM) % 60000 )) --acks "$WORK/p3-acks.jsonl"
}
field() { echo "$1" | sed -E "s/.*\"$2\":([0-9]+).*/\1/"; }
declare -A P3_BEST P3_LAT P3_P99 P3_CPU
for kind in serve agent; do
  P3_BEST[$kind]=0
  # Latency and CPU at 1,000 new clients/s.
  pair_up $kind
  before=$(cpu_ticks $SERVER_PID)
  summary=$(p3_load 1000 $((1000 * STEP)))
  after=$(cpu_ticks $SERVER_PID)
  pair_down
  P3_LAT[$kind]=$(field "$summary" ack_latency_us_avg)
  P3_P99[$kind]=$(field "$summary" ack_latency_us_p99)
  P3_CPU[$kind]=$(awk -v t=$((after - before)) -v n="$(field "$summary" acks)" -v hz="$(getconf CLK_TCK)" 'BEGIN { if (n) printf "%.1f", 1000 * 1000 * t / hz / n; else print "-" }')
  printf '%-8s 1000/s: ACK latency avg %s us, p99 %s us, %s ms CPU / 1000 exchanges\n' $kind "${P3_LAT[$kind]}" "${P3_P99[$kind]}" "${P3_CPU[$kind]}" >&2
  for rate in $AGENT_RATES; do
    pair_up $kind
    summary=$(p3_load $rate $((rate * STEP)))
    pair_down
    sent=$(field "$summary" sent); retx=$(field "$summary" retransmissions); bound=$(field "$summary" bound)
    printf '%-8s load %6s/s: %7s bound of %7s, %6s retransmissions\n' $kind $rate "$bound" $((rate * STEP)) "$retx" >&2
    if [ "$bound" -eq $((rate * STEP)) ] && [ $((retx * 100)) -lt "$sent" ]; then
      P3_BEST[$kind]=$rate
    else
      break
    fi
  done
done

echo
echo "| server | durable leases | max 4-way exchanges/s (<1% drops) | avg latency (ms) | max latency (ms) | server CPU ms / 1000 exchanges | leases on disk |"
echo "|---|---|---|---|---|---|---|"
echo "| netvm | fdatasync before ACK | ${BEST[netvm]} | ${LAT[netvm]} | ${MAXLAT[netvm]} | ${CPU[netvm]} | ${LEASES[netvm]} |"
echo "| Kea 2.2 memfile | written, not synced | ${BEST[kea]} | ${LAT[kea]} | ${MAXLAT[kea]} | ${CPU[kea]} | ${LEASES[kea]} |"
echo "| dnsmasq 2.90 | written, not synced | ${BEST[dnsmasq]} | ${LAT[dnsmasq]} | ${MAXLAT[dnsmasq]} | ${CPU[dnsmasq]} | ${LEASES[dnsmasq]} |"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
echo
echo "perfdhcp: netvm/Kea: $(ratio ${BEST[netvm]} ${BEST[kea]})x   netvm/dnsmasq: $(ratio ${BEST[netvm]} ${BEST[dnsmasq]})x"
echo "perfdhcp CPU per exchange: Kea/netvm: $(ratio ${CPU[kea]} ${CPU[netvm]})x   dnsmasq/netvm: $(ratio ${CPU[dnsmasq]} ${CPU[netvm]})x"
echo "where the perfdhcp ramp stopped: netvm ${STOP[netvm]}; Kea ${STOP[kea]}; dnsmasq ${STOP[dnsmasq]}"
echo
echo "| server | max rate, all bound, <1% retransmitted (netvm dhcp load) |"
echo "|---|---|"
for server in netvm kea dnsmasq; do echo "| $server | ${LOAD_BEST[$server]} |"; done
echo
echo "netvm dhcp load: netvm/Kea: $(ratio ${LOAD_BEST[netvm]} ${LOAD_BEST[kea]})x   netvm/dnsmasq: $(ratio ${LOAD_BEST[netvm]} ${LOAD_BEST[dnsmasq]})x"
echo
echo "| new pool clients (netvm dhcp load, no address) | max rate, all bound, <1% retransmitted | REQUEST-ACK avg (us) at 1000/s | p99 (us) | server CPU ms / 1000 exchanges |"
echo "|---|---|---|---|---|"
echo "| netvm dhcp serve | ${P3_BEST[serve]} | ${P3_LAT[serve]} | ${P3_P99[serve]} | ${P3_CPU[serve]} |"
echo "| netvm agent (ruleset, endpoints before ACK) | ${P3_BEST[agent]} | ${P3_LAT[agent]} | ${P3_P99[agent]} | ${P3_CPU[agent]} |"
echo
echo "agent/standalone: rate $(ratio ${P3_BEST[agent]} ${P3_BEST[serve]})x (target >= 0.8)   ACK latency $(ratio ${P3_LAT[agent]} ${P3_LAT[serve]})x (target <= 1.5)   CPU per exchange $(ratio ${P3_CPU[agent]} ${P3_CPU[serve]})x"
