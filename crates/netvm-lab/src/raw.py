# netvm lab verify: frames the layer-2 attacks need (forged ARP, a rogue
# DHCP server's offer, a rogue IPv6 router advertisement) and a capture
# that counts frames carrying a token. Run inside a lab namespace:
#   raw.py arp IFACE DST_MAC SENDER_MAC SENDER_IP TARGET_IP
#   raw.py dhcp IFACE SOURCE_IP TOKEN
#   raw.py ra IFACE TOKEN
#   raw.py na IFACE TARGET_LLADDR TARGET_IP6   (unsolicited, override, to ff02::1)
#   raw.py capture IFACE SECONDS TOKEN...
import socket, struct, sys, time

def mac(s): return bytes(int(x, 16) for x in s.split(':'))
def ipb(s): return socket.inet_aton(s)
def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff
def own_mac(iface): return open('/sys/class/net/%s/address' % iface).read().strip()
def send(iface, frame, count=3):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    for _ in range(count):
        s.send(frame)
        time.sleep(0.05)

cmd = sys.argv[1]
if cmd == 'arp':
    iface, dst, smac, sip, tip = sys.argv[2:7]
    tmac = '00:00:00:00:00:00' if dst == 'ff:ff:ff:ff:ff:ff' else dst
    arp = struct.pack('!HHBBH', 1, 0x0800, 6, 4, 2) + mac(smac) + ipb(sip) + mac(tmac) + ipb(tip)
    send(iface, mac(dst) + mac(smac) + b'\x08\x06' + arp)
elif cmd == 'dhcp':
    iface, sip, token = sys.argv[2:5]
    src = own_mac(iface)
    bootp = struct.pack('!BBBBIHH', 2, 1, 6, 0, 0x1234, 0, 0x8000) + ipb('0.0.0.0') + ipb('10.66.0.50') \
        + ipb(sip) + ipb('0.0.0.0') + mac('02:ad:00:00:00:03') + b'\0' * 10
    sname = token.encode()[:63].ljust(64, b'\0')
    opts = b'\x63\x82\x53\x63' + b'\x35\x01\x02' + b'\x36\x04' + ipb(sip) + b'\x33\x04\x00\x00\x0e\x10' \
        + b'\x01\x04\xff\xff\xff\x00' + b'\x03\x04' + ipb(sip) + b'\xff'
    payload = bootp + sname + b'\0' * 128 + opts
    udp = struct.pack('!HHHH', 67, 68, 8 + len(payload), 0) + payload
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, ipb(sip), ipb('255.255.255.255'))
    ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
    send(iface, b'\xff' * 6 + mac(src) + b'\x08\x00' + ip + udp)
elif cmd == 'ra':
    iface, token = sys.argv[2:4]
    m = mac(own_mac(iface))
    ll = b'\xfe\x80' + b'\0' * 6 + bytes([m[0] ^ 2]) + m[1:3] + b'\xff\xfe' + m[3:6]
    dst = b'\xff\x02' + b'\0' * 13 + b'\x01'
    body = struct.pack('!BBHBBHII', 134, 0, 0, 64, 0, 1800, 0, 0)
    pio = struct.pack('!BBBBIII', 3, 4, 64, 0xc0, 86400, 14400, 0) + b'\x20\x01\x0d\xb8\x00\x66' + b'\0' * 10
    tok = token.encode()
    pad = (8 - (len(tok) + 2) % 8) % 8
    topt = bytes([253, (len(tok) + 2 + pad) // 8]) + tok + b'\0' * pad
    icmp = body + pio + topt
    pseudo = ll + dst + struct.pack('!I', len(icmp)) + b'\0\0\0\x3a'
    icmp = icmp[:2] + struct.pack('!H', csum(pseudo + icmp)) + icmp[4:]
    ip6 = struct.pack('!IHBB', 0x60000000, len(icmp), 58, 255) + ll + dst
    send(iface, b'\x33\x33\x00\x00\x00\x01' + m + b'\x86\xdd' + ip6 + icmp)
elif cmd == 'na':
    iface, tlla, target = sys.argv[2:5]
    m = mac(own_mac(iface))
    ll = b'\xfe\x80' + b'\0' * 6 + bytes([m[0] ^ 2]) + m[1:3] + b'\xff\xfe' + m[3:6]
    dst = b'\xff\x02' + b'\0' * 13 + b'\x01'
    icmp = struct.pack('!BBHI', 136, 0, 0, 0x20000000) + socket.inet_pton(socket.AF_INET6, target) \
        + bytes([2, 1]) + mac(tlla)
    pseudo = ll + dst + struct.pack('!I', len(icmp)) + b'\0\0\0\x3a'
    icmp = icmp[:2] + struct.pack('!H', csum(pseudo + icmp)) + icmp[4:]
    ip6 = struct.pack('!IHBB', 0x60000000, len(icmp), 58, 255) + ll + dst
    send(iface, b'\x33\x33\x00\x00\x00\x01' + m + b'\x86\xdd' + ip6 + icmp)
elif cmd == 'capture':
    iface, secs = sys.argv[2], float(sys.argv[3])
    tokens = [t.encode() for t in sys.argv[4:]]
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    s.bind((iface, 0))
    s.settimeout(0.2)
    seen = {t: 0 for t in tokens}
    print('capturing', flush=True)
    end = time.time() + secs
    while time.time() < end:
        try:
            f = s.recv(65535)
        except socket.timeout:
            continue
        for t in tokens:
            if t in f:
                seen[t] += 1
    for t, n in seen.items():
        print('seen', t.decode(), n, flush=True)
