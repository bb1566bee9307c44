#!/usr/bin/env python3
"""Hold every packet of one NFQUEUE queue for a fixed time, then accept it (Python 3 stdlib only).

    nfq-delay.py --queue 7 --delay-us 5000 [--log FILE]

Used by tests/lab/record-replay-scenarios.sh (scenario "delay") because the lab kernel has no
sch_netem (CONFIG_NET_SCH_NETEM is not set). The recording script sends the packets it wants delayed
to this queue with an iptables rule such as

    iptables -t mangle -I FORWARD -i docker0 -o vt-up0 -j NFQUEUE --queue-num 7 --queue-bypass

Each packet is held from the moment this program reads it from the netlink socket until
(read time + delay), then gets an NF_ACCEPT verdict; the packet then continues through the rest of
netfilter (filter FORWARD with DOCKER-USER, nat POSTROUTING) as usual. Verdicts are issued in
arrival order. Each packet is logged as one TSV line:

    packet_id  ip_id(hex)  proto  ip_len  t_read_ns  hold_ns  verdict_call_ns

t_read_ns is CLOCK_REALTIME when the packet was read; hold_ns is the time from that read until the
verdict was sent (>= the delay); verdict_call_ns is how long the verdict sendmsg() took (the kernel
reinjects the packet synchronously inside that call: routing, NAT, the transmit on the egress...).
Run it with real-time priority (chrt -f 50) so that the hold does not overshoot by milliseconds
on a busy machine; it polls the socket (select timeout 0) during the last 2 ms before a packet is
due.

The program talks nfnetlink_queue directly (NETLINK_NETFILTER, NFNL_SUBSYS_QUEUE); it exits on
SIGTERM/SIGINT after accepting everything it still holds, and unbinds the queue.
"""
import argparse
import collections
import os
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_PAYLOAD = 10
NFQNL_CFG_CMD_BIND = 1
NFQNL_CFG_CMD_UNBIND = 2
NFQNL_COPY_PACKET = 2
NLM_F_REQUEST = 1
NLM_F_ACK = 4
NLMSG_ERROR = 2
NLMSG_DONE = 3
NF_ACCEPT = 1
AF_INET = 2


def nla(attr_type, payload):
    n = 4 + len(payload)
    return struct.pack("=HH", n, attr_type) + payload + b"\0" * ((4 - n % 4) % 4)


class Queue:
    def __init__(self, num):
        self.num = num
        self.seq = 0
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.bind((0, 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)

    def send(self, msg_type, attrs, flags=NLM_F_REQUEST):
        self.seq += 1
        body = struct.pack("!BBH", 0, 0, self.num) + b"".join(attrs)  # nfgenmsg: family, version, res_id (BE)
        hdr = struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg_type, flags, self.seq, 0)
        self.sock.send(hdr + body)

    def config(self, attrs):
        self.send(NFQNL_MSG_CONFIG, attrs, NLM_F_REQUEST | NLM_F_ACK)
        data = self.sock.recv(65536)
        _, t, _, _, _ = struct.unpack_from("=IHHII", data, 0)
        if t == NLMSG_ERROR:
            (err,) = struct.unpack_from("=i", data, 16)
            if err != 0:
                raise OSError(-err, "nfqueue config: " + os.strerror(-err))

    def bind(self, copy_range=64):
        self.config([nla(NFQA_CFG_CMD, struct.pack("!BBH", NFQNL_CFG_CMD_BIND, 0, AF_INET))])
        self.config([nla(NFQA_CFG_PARAMS, struct.pack("!IB", copy_range, NFQNL_COPY_PACKET))])

    def unbind(self):
        try:
            self.config([nla(NFQA_CFG_CMD, struct.pack("!BBH", NFQNL_CFG_CMD_UNBIND, 0, AF_INET))])
        except OSError:
            pass

    def verdict(self, packet_id, verdict=NF_ACCEPT):
        self.send(NFQNL_MSG_VERDICT, [nla(NFQA_VERDICT_HDR, struct.pack("!II", verdict, packet_id))])

    def packets(self, data):
        """Yield (packet_id, payload) for every NFQNL_MSG_PACKET in one recv() buffer."""
        off = 0
        while off + 16 <= len(data):
            n, t, _, _, _ = struct.unpack_from("=IHHII", data, off)
            if n < 16:
                break
            if t == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                a = off + 16 + 4
                pid, payload = None, b""
                while a + 4 <= off + n:
                    alen, atype = struct.unpack_from("=HH", data, a)
                    if alen < 4:
                        break
                    val = data[a + 4:a + alen]
                    atype &= 0x7FFF
                    if atype == NFQA_PACKET_HDR:
                        (pid,) = struct.unpack_from("!I", val, 0)
                    elif atype == NFQA_PAYLOAD:
                        payload = val
                    a += (alen + 3) & ~3
                if pid is not None:
                    yield pid, payload
            off += (n + 3) & ~3


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queue", type=int, required=True)
    ap.add_argument("--delay-us", type=int, required=True)
    ap.add_argument("--log", default="-")
    args = ap.parse_args()
    delay_ns = args.delay_us * 1000

    q = Queue(args.queue)
    q.bind()
    log = sys.stdout if args.log == "-" else open(args.log, "w", buffering=1)
    log.write("# packet_id\tip_id\tproto\tip_len\tt_read_ns\thold_ns\tverdict_call_ns\n")
    print(f"nfq-delay: bound queue {args.queue}, holding packets {args.delay_us} us", file=sys.stderr, flush=True)

    held = collections.deque()  # (due_monotonic_ns, packet_id, t_read_real_ns, t_read_mono_ns, info)
    stopping = False

    def on_signal(_s, _f):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def release(due_only=True):
        now = time.monotonic_ns()
        while held and (not due_only or held[0][0] <= now):
            _, pid, t_real, t_mono, info = held.popleft()
            t0 = time.monotonic_ns()
            q.verdict(pid)
            now = time.monotonic_ns()
            hold = t0 - t_mono
            log.write(f"{pid}\t{info[0]}\t{info[1]}\t{info[2]}\t{t_real}\t{hold}\t{now - t0}\n")

    spin_ns = 2_000_000  # poll (select timeout 0) during the last 2 ms before a packet is due
    while not stopping:
        if held:
            remaining = held[0][0] - time.monotonic_ns()
            timeout = 0.0 if remaining <= spin_ns else (remaining - spin_ns) / 1e9
        else:
            timeout = 0.2
        try:
            r, _, _ = select.select([q.sock], [], [], timeout)
        except InterruptedError:
            continue
        if r:
            data = q.sock.recv(1 << 20)
            t_mono = time.monotonic_ns()
            t_real = time.time_ns()
            for pid, payload in q.packets(data):
                info = ("", "", "")
                if len(payload) >= 20 and payload[0] >> 4 == 4:
                    ip_len, ip_id = struct.unpack_from("!HH", payload, 2)
                    info = (f"0x{ip_id:04x}", payload[9], ip_len)
                held.append((t_mono + delay_ns, pid, t_real, t_mono, info))
        release()
    release(due_only=False)
    q.unbind()
    print("nfq-delay: stopped", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
