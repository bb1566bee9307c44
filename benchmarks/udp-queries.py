#!/usr/bin/env python3
"""DNS-like UDP traffic for benchmarks/record-multihop.sh: many one-exchange flows.

  udp-queries.py serve ADDR PORT                 answer every datagram with the same bytes (until killed)
  udp-queries.py query ADDR PORT SECONDS RATE    for SECONDS, about RATE queries a second, each from a fresh
                                                 socket (so a fresh source port: one flow per query), waiting
                                                 at most 0.2 s for its answer; prints "sent N answered M"

The datagrams are shaped like DNS queries for an A record (12-byte header, one question), so tshark decodes
them on port 53. Python 3 standard library only.
"""
import socket
import struct
import sys
import time


def query_bytes(qid: int) -> bytes:
    name = b"\x07bench16\x07example\x00"
    return struct.pack("!HHHHHH", qid & 0xFFFF, 0x0100, 1, 0, 0, 0) + name + struct.pack("!HH", 1, 1)


def serve(addr: str, port: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    print(f"listening on {addr}:{port}", flush=True)
    while True:
        data, peer = s.recvfrom(2048)
        s.sendto(data, peer)


def query(addr: str, port: int, seconds: float, rate: float) -> None:
    end = time.monotonic() + seconds
    gap = 1.0 / rate
    sent = answered = 0
    next_at = time.monotonic()
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if now < next_at:
            time.sleep(next_at - now)
        next_at += gap
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.2)
        try:
            s.sendto(query_bytes(sent), (addr, port))
            sent += 1
            s.recvfrom(2048)
            answered += 1
        except OSError:
            pass
        finally:
            s.close()
    print(f"sent {sent} answered {answered}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) == 6 and sys.argv[1] == "query":
        query(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
