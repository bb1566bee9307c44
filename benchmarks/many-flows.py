#!/usr/bin/env python3
"""Write a synthetic pcapng of N one-packet UDP flows through a Docker host's MASQUERADE (issue 14, section 5).

    benchmarks/many-flows.py [--flows N] [--containers C] [--servers D] [--veths K] [--gap-us G] [--seed S] [--out FILE]

Every flow is one DNS-like query to port 53 from a container: flow i comes from container i mod C (default 250
containers, 172.17.0.2, .3, ...), goes to DNS server i mod D and uses source port 1024 + (i div D) mod 64,000.
MASQUERADE keeps the ports, as it does when they are free: so that no two flows share a translated 5-tuple (which
conntrack could not tell apart), D defaults to ceil(N / 64,000) servers (198.51.100.2-254, then 203.0.113.1-254 and
192.0.2.1-254; N <= 48.7 million). Each query is written three times, as a Docker host captures it (dumpcap on its
interfaces):

    IDB 0..K-1  vethNNNNNNN   the container's host veth (default: one per container, K = C; with --veths K < C the
                              containers share them: container c on veth c mod K), receive timestamp t
    IDB K       docker0       the same frame, the same timestamp t (the kernel reuses the receive stamp)
    IDB K+1     ens3          after routing and MASQUERADE: source 198.51.100.1 (ports kept), TTL 63, new MACs,
                              the IP checksum rewritten, t + 12..75 us

IP IDs and DNS query ids count up per container from a random start (the containers' IP ID starts all differ), so no
two packets within 16 million flows of each other have the same (IP ID, query id): every copy has exactly one match, and
the expected answer is unambiguous (random 16-bit ids would give about one lookalike pair per second at 100,000 flows/s).
Flows start one after another with gaps of 1..2G-1 us (mean G, default 10: 100,000 queries per second). The file is
in time order (an egress copy is written once no earlier packet is pending). Frames are 73 bytes (Ethernet, IPv4,
UDP with checksum 0, a 31-byte query for h<7 hex digits>.corp A IN), so each Enhanced Packet Block is 108 bytes and
the default N = 1,000,000 gives 3,000,000 packets and 324 MB. Timestamps are microseconds (if_tsresol 6), snaplen 256.
Python 3 standard library only; the bytes are written directly, and the same seed gives the same file.
"""
import argparse
import heapq
import os
import random
import struct
import sys
import time

SERVERS = [bytes([198, 51, 100, h]) for h in range(2, 255)] + [bytes([203, 0, 113, h]) for h in range(1, 255)] \
    + [bytes([192, 0, 2, h]) for h in range(1, 255)]
PORTS = 64000
EGRESS_IP = bytes([198, 51, 100, 1])
DOCKER0_MAC = bytes.fromhex("0242b0a0c001")
EGRESS_MAC = bytes.fromhex("525400120001")
UPSTREAM_MAC = bytes.fromhex("525400120002")
T0_US = 1_796_000_000_000_000   # a fixed start time, so that the same seed gives the same file


def block(btype, body):
    n = 12 + len(body)
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def option(code, value):
    pad = (-len(value)) % 4
    return struct.pack("<HH", code, len(value)) + value + b"\0" * pad


def shb():
    opts = option(4, b"benchmarks/many-flows.py") + option(0, b"")
    return block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + opts)


def idb(name):
    opts = option(2, name.encode()) + option(9, bytes([6])) + option(0, b"")
    return block(1, struct.pack("<HHI", 1, 0, 256) + opts)


def ip_checksum(hdr):
    s = sum(struct.unpack("!10H", hdr))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--flows", type=int, default=1_000_000)
    ap.add_argument("--containers", type=int, default=250)
    ap.add_argument("--servers", type=int, default=0, help="default: ceil(flows / 64000)")
    ap.add_argument("--veths", type=int, default=0, help="default: one per container")
    ap.add_argument("--gap-us", type=int, default=10)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--out", default="out/bench/many-flows.pcapng")
    args = ap.parse_args()
    if args.veths == 0:
        args.veths = args.containers
    if args.servers == 0:
        args.servers = max(1, -(-args.flows // PORTS))
    if not 1 <= args.servers <= len(SERVERS) or args.flows > args.servers * PORTS:
        ap.error(f"--servers must be 1..{len(SERVERS)} and at least flows / {PORTS}")
    if args.flows < 1 or args.veths < 1 or args.gap_us < 1 or not 1 <= args.containers <= 65000:
        ap.error("--flows, --veths and --gap-us must be positive, --containers 1..65000")
    rnd = random.Random(args.seed)
    K = args.veths
    veth_names = [f"veth{rnd.getrandbits(28):07x}" for _ in range(K)]
    docker0, egress = K, K + 1
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    started = time.monotonic()

    epb_head = struct.Struct("<IIIIIII")   # type, total length, interface, ts high, ts low, caplen, origlen
    frame_len = 73
    epb_len = 28 + 76 + 4
    tail = struct.pack("<I", epb_len)
    pad = b"\0\0\0"
    n_hosts = args.containers
    pack_ip = struct.Struct("!BBHHHBBH4s4s")
    pack_udp = struct.Struct("!HHHH")
    ip_base = rnd.sample(range(65536), n_hosts)
    dns_base = [rnd.getrandbits(16) for _ in range(n_hosts)]
    pending = []   # (t, seq, bytes) egress copies not yet written
    buf = bytearray()
    written = 0
    t = T0_US
    getrandbits = rnd.getrandbits
    randint = rnd.randint
    with open(args.out, "wb") as fh:
        fh.write(shb())
        for name in veth_names + ["docker0", "ens3"]:
            fh.write(idb(name))
        for i in range(args.flows):
            t += randint(1, 2 * args.gap_us - 1)
            while pending and pending[0][0] <= t:
                buf += heapq.heappop(pending)[2]
                written += 1
            c = i % n_hosts
            a = 2 + c
            src = bytes([172, 17, a >> 8, a & 0xFF])
            server = SERVERS[i % args.servers]
            sport = 1024 + (i // args.servers) % PORTS
            mac = bytes([2, 0x42, 172, 17, a >> 8, a & 0xFF])
            k = i // n_hosts   # this container's k-th query
            ipid = (ip_base[c] + k) & 0xFFFF
            qname = b"\x08h%07x\x04corp\x00" % (i & 0xFFFFFFF)
            dns = struct.pack("!HHHHHH", (dns_base[c] + k) & 0xFFFF, 0x0100, 1, 0, 0, 0) + qname + b"\x00\x01\x00\x01"
            udp = pack_udp.pack(sport, 53, 8 + len(dns), 0) + dns
            ip_in = pack_ip.pack(0x45, 0, 20 + len(udp), ipid, 0x4000, 64, 17, 0, src, server)
            ip_in = ip_in[:10] + struct.pack("!H", ip_checksum(ip_in)) + ip_in[12:]
            ip_out = pack_ip.pack(0x45, 0, 20 + len(udp), ipid, 0x4000, 63, 17, 0, EGRESS_IP, server)
            ip_out = ip_out[:10] + struct.pack("!H", ip_checksum(ip_out)) + ip_out[12:]
            inner = DOCKER0_MAC + mac + b"\x08\x00" + ip_in + udp + pad
            outer = UPSTREAM_MAC + EGRESS_MAC + b"\x08\x00" + ip_out + udp + pad
            hi, lo = t >> 32, t & 0xFFFFFFFF
            buf += epb_head.pack(6, epb_len, c % K, hi, lo, frame_len, frame_len) + inner + tail
            buf += epb_head.pack(6, epb_len, docker0, hi, lo, frame_len, frame_len) + inner + tail
            written += 2
            te = t + randint(12, 75)
            heapq.heappush(pending, (te, i, epb_head.pack(6, epb_len, egress, te >> 32, te & 0xFFFFFFFF,
                                                          frame_len, frame_len) + outer + tail))
            if len(buf) > 1 << 22:
                fh.write(buf)
                buf.clear()
        while pending:
            buf += heapq.heappop(pending)[2]
            written += 1
        fh.write(buf)
    size = os.path.getsize(args.out)
    print(f"{args.out}: {args.flows} flows, {written} packets, {size} bytes, "
          f"{(t - T0_US) / 1e6:.3f} s of traffic; written in {time.monotonic() - started:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
