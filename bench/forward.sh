#!/usr/bin/env bash
# Forwarding throughput through the net-vm: iperf3 from a VM namespace to
# an upstream namespace, through the net-vm namespace,
#   (a) plain routing, no ruleset;
#   (a2) only what any NAT router pays: conntrack and masquerade;
#   (b) netvm's full ruleset for a Ghaf-like description;
#   (c) netvm's ruleset for 1,000 VMs and 10,000 VM-to-VM rules;
# prints the median Gbit/s of interleaved rounds, the ratios b/a and c/a,
# and the time `netvm apply` took for (c). Needs root, iproute2, nftables, conntrack, iperf3. Traffic stays
# in the namespaces it creates and removes.
# Usage: [ROUNDS=21] bench/forward.sh [seconds-per-run]   (default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-2}
. bench/common.sh
bench_setup forward "iperf3 nftables conntrack iproute2 python3" iperf3 nft conntrack ip python3
UP=nvf$$u; NV=nvf$$n; VM=nvf$$v

# Descriptions: (b) a small Ghaf-like system, (c) 1,000 VMs x 10 rules.
cat > "$WORK/small.toml" <<TOML
[network]
subnet = "10.99.0.0/16"
mac_prefix = "02:ad:00:00"
[netvm.uplink]
interface = "eth0"
addressing = "static"
address = "203.0.113.2/24"
gateway = "203.0.113.1"
[[vm]]
name = "gui-vm"
kind = "system"
allow = [{ to = "bench-vm", proto = "tcp", ports = 9000 }]
[[vm]]
name = "audio-vm"
kind = "system"
[[vm]]
name = "bench-vm"
ip = "10.99.0.101"
mac = "02:ad:00:00:00:65"
allow = [{ to = "audio-vm", proto = "tcp", ports = 4713 }]
TOML
python3 - "$WORK/large.toml" <<'PY'
import random, sys
random.seed(7)
n = 1000
lines = ['[network]', 'subnet = "10.99.0.0/16"', 'mac_prefix = "02:ad:00:00"',
         '[netvm.uplink]', 'interface = "eth0"', 'addressing = "static"',
         'address = "203.0.113.2/24"', 'gateway = "203.0.113.1"']
for i in range(n):
    lines.append('[[vm]]')
    lines.append(f'name = "vm{i}"')
    if i == 0:
        lines += ['ip = "10.99.0.101"', 'mac = "02:ad:00:00:00:65"']
    rules = []
    for _ in range(10):
        to = random.randrange(n)
        while to == i:
            to = random.randrange(n)
        port = random.randrange(1, 60000)
        rules.append(f'{{ to = "vm{to}", proto = "tcp", ports = "{port}-{port + random.randrange(0, 10)}" }}')
    lines.append('allow = [' + ', '.join(rules) + ']')
open(sys.argv[1], 'w').write('\n'.join(lines) + '\n')
PY

bench_netns $UP; bench_netns $NV; bench_netns $VM
ip link add u0 netns $UP type veth peer name eth0 netns $NV
ip link add ethint0 netns $NV type veth peer name eth0 netns $VM
ip -n $UP addr add 203.0.113.1/24 dev u0; ip -n $UP link set u0 up
ip -n $UP route add 10.99.0.0/16 via 203.0.113.2
ip -n $VM link set eth0 address 02:ad:00:00:00:65
ip -n $VM addr add 10.99.0.101/16 dev eth0; ip -n $VM link set eth0 up
ip -n $VM route add default via 10.99.0.1

one_run() { # one iperf3 run from the VM to the upstream, in Gbit/s
  ip netns exec $UP iperf3 -s -1 -D >/dev/null 2>&1; sleep 0.3
  ip netns exec $VM iperf3 -c 203.0.113.1 -t "$SECS" -J | python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9))'
}
median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# veth throughput on 2 cores drifts by tens of percent from run to run, so
# the cases are interleaved round by round and each reported as a median.
ROUNDS=${ROUNDS:-21}
# The first apply sets the net-vm's addresses, sysctls and routes; (a)
# then runs with its table deleted.
ip netns exec $NV "$NETVM" apply "$WORK/small.toml" --role net-vm >/dev/null
printf '%s\n' 'table inet netvm' 'delete table inet netvm' 'table inet netvm {' \
  'chain forward { type filter hook forward priority 0; ct state established accept; accept; }' \
  'chain nat_out { type nat hook postrouting priority srcnat; oifname "eth0" masquerade; }' '}' > "$WORK/ctnat.nft"
RA=""; RA2=""; RB=""; RC=""; APPLY=""
for round in $(seq "$ROUNDS"); do
  ip netns exec $NV nft delete table inet netvm 2>/dev/null || true
  RA="$RA $(one_run)"
  ip netns exec $NV nft -f "$WORK/ctnat.nft"
  RA2="$RA2 $(one_run)"
  ip netns exec $NV "$NETVM" apply "$WORK/small.toml" --role net-vm >/dev/null
  RB="$RB $(one_run)"
  start=$(date +%s.%N)
  ip netns exec $NV "$NETVM" apply "$WORK/large.toml" --role net-vm >/dev/null
  APPLY="$APPLY $(python3 -c "print('%.2f' % ($(date +%s.%N) - $start))")"
  RC="$RC $(one_run)"
  echo "round $round: (a)$(echo $RA | awk '{print $NF}') (a2)$(echo $RA2 | awk '{print $NF}') (b)$(echo $RB | awk '{print $NF}') (c)$(echo $RC | awk '{print $NF}') Gbit/s" >&2
done
RULES=$(ip netns exec $NV nft -s list set inet netvm flows | grep -o ' \. tcp \. ' | wc -l)
A=$(echo $RA | median); A2=$(echo $RA2 | median); B=$(echo $RB | median); C=$(echo $RC | median); APPLY=$(echo $APPLY | median)

ratio() { python3 -c "print('%.2f' % ($1 / $2))"; }
# A 90% bootstrap interval of median(x)/median(y): how far the noise of
# this machine lets the ratio be trusted.
interval() {
  python3 - "$1" "$2" <<'PY'
import random, statistics, sys
x = [float(v) for v in sys.argv[1].split()]
y = [float(v) for v in sys.argv[2].split()]
random.seed(1)
r = sorted(statistics.median(random.choices(x, k=len(x))) / statistics.median(random.choices(y, k=len(y))) for _ in range(4000))
print("%.2f-%.2f" % (r[len(r) // 20], r[-len(r) // 20]))
PY
}
echo
echo "| case | Gbit/s (median) | ratio to (a) | 90% interval | ratio to (a2) |"
echo "|---|---|---|---|---|"
echo "| (a) plain routing, no ruleset | $A | 1.00 | | $(ratio $A $A2) |"
echo "| (a2) conntrack + masquerade only | $A2 | $(ratio $A2 $A) | $(interval "$RA2" "$RA") | 1.00 |"
echo "| (b) netvm ruleset, Ghaf-like system | $B | $(ratio $B $A) | $(interval "$RB" "$RA") | $(ratio $B $A2) |"
echo "| (c) netvm ruleset, 1,000 VMs, $RULES VM-to-VM rules | $C | $(ratio $C $A) | $(interval "$RC" "$RA") | $(ratio $C $A2) |"
echo
echo "netvm apply for (c): $APPLY s (median)"
echo "runs (a):$RA  (a2):$RA2  (b):$RB  (c):$RC"
