#!/usr/bin/env python3
"""How far out of time order one capture ring delivers packets (issue 15: the slack whole-host follow's orderer needs).

    tcpdump -i any -s 96 -B 32768 --time-stamp-precision=nano -w ring.pcap    # during the load, then Ctrl-C
    benchmarks/ring-order.py ring.pcap

Reads a pcap (nanosecond or microsecond) in file order, which for one handle is the order of its ring, and says for each
packet how far its stamp lies behind the newest stamp before it: the largest such inversion is what an orderer fed from
that one ring must hold packets for. Independent of VethTrace (its own figure is out_of_order_max_us in follow's any
capture record). LINUX_SLL2 files also name the ifindexes of the worst pair.
"""
import collections
import struct
import sys

path = sys.argv[1]
with open(path, 'rb') as f:
    header = f.read(24)
    magic = struct.unpack('<I', header[:4])[0]
    if magic not in (0xa1b23c4d, 0xa1b2c3d4):
        sys.exit(f"{path}: not a little-endian pcap file")
    scale = 1 if magic == 0xa1b23c4d else 1000
    linktype = struct.unpack('<I', header[20:24])[0]
    newest, newest_if, packets = -1, None, 0
    inversions = []
    worst = (0, None, None, 0)
    thresholds = [1e3, 1e4, 1e5, 1e6, 1e7, 1e8]
    above = collections.Counter()
    while True:
        record = f.read(16)
        if len(record) < 16:
            break
        seconds, fraction, captured, _ = struct.unpack('<IIII', record)
        data = f.read(captured)
        stamp = seconds * 1_000_000_000 + fraction * scale
        ifindex = struct.unpack('>I', data[4:8])[0] if linktype == 276 and len(data) >= 20 else None
        packets += 1
        if stamp < newest:
            behind = newest - stamp
            inversions.append(behind)
            for threshold in thresholds:
                if behind > threshold:
                    above[threshold] += 1
            if behind > worst[0]:
                worst = (behind, ifindex, newest_if, packets)
        else:
            newest, newest_if = stamp, ifindex
inversions.sort()
print(f"{path}: {packets} packets, {len(inversions)} stamped before a packet ahead of them in the ring ({100 * len(inversions) / max(1, packets):.2f} %)")
if inversions:
    def quantile(q):
        return inversions[min(len(inversions) - 1, int(q * len(inversions)))] / 1e3
    print(f"  how far behind: median {quantile(0.5):.1f} us, p99 {quantile(0.99):.1f} us, max {inversions[-1] / 1e3:.1f} us"
          f" (packet {worst[3]}, ifindex {worst[1]} behind ifindex {worst[2]})")
    print("  packets more than: " + ", ".join(f"{t / 1e3:g} us: {above[t]}" for t in thresholds))
