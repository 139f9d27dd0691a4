#!/usr/bin/env bash
# Forwarding throughput through the net-vm: iperf3 from a VM namespace to
# an upstream namespace, through the net-vm namespace,
#   (a) plain routing, no ruleset;
#   (b) netvm's full ruleset for a Ghaf-like description;
#   (c) netvm's ruleset for 1,000 VMs and 10,000 VM-to-VM rules;
# prints Gbit/s, the ratios b/a and c/a, and the time `netvm apply` took
# for (c). Needs root, iproute2, nftables, conntrack, iperf3. Traffic stays
# in the namespaces it creates and removes.
# Usage: bench/forward.sh [seconds-per-run]   (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-5}
for tool in iperf3 nft conntrack ip python3; do
  command -v "$tool" >/dev/null || { echo "bench/forward.sh needs $tool: apt-get install -y iperf3 nftables conntrack iproute2 python3" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "bench/forward.sh must run as root" >&2; exit 1; }
cargo build --release --locked -q -p netvm
NETVM=$PWD/target/release/netvm
WORK=$(mktemp -d /tmp/netvm-bench-forward.XXXXXX)
UP=nvf$$u; NV=nvf$$n; VM=nvf$$v
cleanup() {
  for ns in $UP $NV $VM; do
    ip netns pids $ns 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del $ns 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

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

ip netns add $UP; ip netns add $NV; ip netns add $VM
for ns in $UP $NV $VM; do ip -n $ns link set lo up; done
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
gbits() { # the median of three runs (veth throughput on 2 cores is noisy)
  { one_run; one_run; one_run; } | sort -n | sed -n 2p
}

ip netns exec $NV "$NETVM" apply "$WORK/small.toml" --role net-vm >/dev/null
ip netns exec $NV nft delete table inet netvm
A=$(gbits); echo "(a) plain routing: $A Gbit/s" >&2
ip netns exec $NV "$NETVM" apply "$WORK/small.toml" --role net-vm >/dev/null
B=$(gbits); echo "(b) netvm ruleset, small system: $B Gbit/s" >&2
start=$(date +%s.%N)
ip netns exec $NV "$NETVM" apply "$WORK/large.toml" --role net-vm >/dev/null
APPLY=$(python3 -c "import sys; print('%.2f' % ($(date +%s.%N) - $start))")
RULES=$(ip netns exec $NV nft -s list set inet netvm flows | grep -o ' \. tcp \. ' | wc -l)
C=$(gbits); echo "(c) netvm ruleset, 1,000 VMs / $RULES rules: $C Gbit/s (apply took $APPLY s)" >&2

ratio() { python3 -c "print('%.2f' % ($1 / $2))"; }
echo
echo "| case | Gbit/s | ratio to (a) |"
echo "|---|---|---|"
echo "| (a) plain routing, no ruleset | $A | 1.00 |"
echo "| (b) netvm ruleset, Ghaf-like system | $B | $(ratio $B $A) |"
echo "| (c) netvm ruleset, 1,000 VMs, $RULES VM-to-VM rules | $C | $(ratio $C $A) |"
echo
echo "netvm apply for (c): $APPLY s"
