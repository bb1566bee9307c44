#!/usr/bin/env python3
"""Independent expected answers for `vethtrace replay` (issues 3 and 14), from tshark field output only.

    derive-journeys.py --topology TOPO.tsv [--name NAME] [--out FILE.json] CAPTURE [CAPTURE...]
    derive-journeys.py --topology TOPO.tsv --fields FIELDS.tsv ...   (use saved tshark output)

Python 3 standard library only; shares no code and no idea of "fingerprint hash" with VethTrace.
Every packet is described by `tshark -T fields` (first occurrence of each field, i.e. the outer
headers); several files are merged by frame.time_epoch. Then:

Observation
    one IP frame on one interface: t (integer ns, parsed from the 9-decimal frame.time_epoch with
    Decimal, so no float rounding), interface, addresses/ports, and the match key below.
    Interfaces are named as docs/DESIGN.md says ("Interface names"): pcapng if_name, classic pcap file base name, SLL2
    `if<ifindex>`; the topology file maps them to names/labels/roles (see TOPOLOGY below).

Match key (ignores addresses, ports, TTL, checksums, ICMP identifier)
    IPv4: ip.id, ip.proto, ip.len, ip.frag_offset, ip.flags.mf, plus
          TCP tcp.seq_raw, tcp.ack_raw, tcp.flags | UDP udp.length | ICMP icmp.type, icmp.code, icmp.seq
    IPv6: ipv6.plen, ipv6.nxt, ipv6.flow, plus the same transport part (ICMPv6: type, code, echo seq)

Journeys
    Observations are taken in (t, file order, frame number) order. An observation joins the most
    recent open journey with the same key whose first observation is at most --window-ms (default
    1000 ms) earlier and which has not yet visited this interface; otherwise it starts a new one.
    A journey with observations on >= 2 interfaces is a "journey"; one with a single observation is
    a "singleton". Within a journey observations are ordered by t; equal t (the kernel reuses the
    receive timestamp along an ingress path) are ordered by the topology (--ties topology, default):
    each next observation is the tied interface nearest in the interface tree to the previous
    observation (or, for ties at the start, built backwards from the following observation).
    --ties capture keeps the capture order (frame number within one file, then file order).

Hops and percentiles
    For every consecutive pair of a journey, delta = t[i+1] - t[i] in ns. Per (from, to) pair:
    count, min, p50, p90, p99, max, and how many deltas are exactly 0 (reused timestamp).
    Percentile = nearest rank: with the n deltas sorted ascending v[1] <= ... <= v[n],
    Pp = v[ceil(p * n / 100)] (computed in integers), and max = v[n]. Values are given in ns and
    in us (= ns / 1000, 3 decimals, not rounded to whole us).

NAT mappings
    A journey whose first and last observations are on different sides (inside = container, veth,
    bridge; outside = egress, upstream) and whose 5-tuple differs between them:
      outbound (inside -> outside) with a changed source: inside = source before, outside = source
        after, peer = destination after;
      inbound (outside -> inside) with a changed destination: inside = destination after,
        outside = destination before, peer = source before.
    Both directions of one translation therefore give the same (proto, inside, outside, peer).
    Kind: snat if the earliest packet of that translation travelled outbound (the flow was opened
    from the container), dnat if it travelled inbound (a published port). packets = number of
    journeys of both directions; deduplicated by (kind, proto, inside, outside, peer).
    Endpoints: ip:port, [v6]:port, bare ip for ICMP/ICMPv6.

Losses
    Flow = (proto, src, dst) in the inside view (NAT undone with the mappings above; src/dst are
    ip:port endpoints), direction included. Packets matched by sequence range (below) are not loss
    candidates. The flow's reach = the largest interface-tree distance from the flow's usual
    (most common) first interface to the last interface of any of its journeys (singletons
    included). A journey or singleton of the flow whose last interface is nearer than that is lost
    after that interface; reported per (flow, last interface) with the src/dst as first captured.
    A flow none of whose packets gets further than the others is never "lost" by this rule.

Segmentation (GRO/GSO)
    TCP data packets (tcp.len > 0) are also matched by sequence range within the connection
    (inside view): for every pair of adjacent interfaces (tree edge), both ways, each data packet on
    `on` is classified against the data packets on `vs`: equal_range (same [seq, seq+len)),
    segment_covered_by_super (a larger packet on `vs` covers it), super_of_segments (smaller
    packets on `vs` cover it without a gap), or uncovered. For super-packets: segments per
    super-packet, and the signed times t(first segment) - t(super) and t(last segment) - t(super)
    (first = lowest sequence; if a range was seen twice, the copy nearest in time). Every
    super-packet is listed with its segment frames. Exact journeys that skip an interface are
    counted, and `hops_segment_aware` recomputes the hop table with the skipped interface inserted
    at the time of its first covering segment.

Issue 14 options (off by default; without them the output is what it was)
    --inside-net CIDR (repeatable, the bridge subnets): a flow from an inside address to an address outside all of
        them is expected at the nearest egress interface, also when none of its packets got there (a port blocked
        outright); its journeys that end earlier are losses with "expected_by": "topology" and "expected_at".
    --bridge-copies side: in a journey seen on two ports (veth/tunnel neighbours) of one bridge, the bridge's own copy
        is a side copy (handed up after br_forward): left out of the chain, the hops and the tie ordering, listed under
        the journey's side_copies; the hop between the two ports gets "via_bridge".
    --nat-aggregate: also nat_aggregate, one row per (kind, proto, inside address, outside address, peer).
    Always on, and without effect on captures that have none: link-scoped packets (fe80::/10, ff02::/16, MLD and ND,
    169.254/16, 224.0.0.0/24, IGMP) carry their addresses, first MLD record and ND target in the key, are grouped only
    within one L2 domain (the interface tree without its inside-outside edges) and within 10 ms, and are never NAT or
    loss; MLD behind a Hop-by-Hop header is named icmpv6. DNS messages add dns.id to the UDP key.

Summary
    packets = all frames read; ip_packets = IPv4/IPv6 frames; journeys = key groups on >= 2
    interfaces; lost = journeys reported in losses; complete = journeys - lost; singletons = IP
    frames seen on one interface only (those matched by sequence range are counted separately);
    tie_groups = equal-timestamp groups inside journeys, and how many of them the topology order
    puts differently from the capture order.

TOPOLOGY file (TSV, '#' comments): key, name, label, role, attach
    key    pcapng interface id (one file) | "<file base name>:<id>" (several pcapng files) |
           file base name (classic pcap) | sll ifindex (LINUX_SLL2)
    name   the interface name vethtrace must print (if_name / file base name / --ifname mapping)
    label  unique label used in this output (e.g. eth0(vt-c1) when two containers' eth0 are captured)
    role   container | veth | bridge | tunnel | egress | upstream
    attach for a container's eth0: the label of its host veth; for any other interface, when given, its
           neighbour towards the egress (the overlay's chain across two hosts), instead of the role order
"""
import argparse
import bisect
import collections
import decimal
import ipaddress
import json
import os
import subprocess
import sys

FIELDS = [
    "frame.number", "frame.interface_id", "frame.interface_name", "frame.time_epoch", "frame.len",
    "frame.cap_len", "sll.ifindex", "sll.pkttype",
    "ip.src", "ip.dst", "ip.proto", "ip.id", "ip.len", "ip.frag_offset", "ip.flags.mf", "ip.ttl",
    "ipv6.src", "ipv6.dst", "ipv6.nxt", "ipv6.plen", "ipv6.flow",
    "tcp.srcport", "tcp.dstport", "tcp.seq_raw", "tcp.ack_raw", "tcp.flags", "tcp.len",
    "udp.srcport", "udp.dstport", "udp.length",
    "icmp.type", "icmp.code", "icmp.seq", "icmp.ident",
    "icmpv6.type", "icmpv6.code", "icmpv6.echo.sequence_number", "vxlan.vni",
    "icmpv6.mldr.nb_mcast_records", "icmpv6.mldr.mar.multicast_address", "icmpv6.nd.ns.target_address",
    "icmpv6.nd.na.target_address", "dns.id",
]
TSHARK_OPTS = [
    "-n", "-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE",
    "-o", "tcp.desegment_tcp_streams:FALSE", "-o", "tcp.relative_sequence_numbers:FALSE",
    "-o", "tcp.analyze_sequence_numbers:FALSE", "-o", "tcp.check_checksum:FALSE",
    "-o", "udp.check_checksum:FALSE", "-o", "ip.check_checksum:FALSE",
]
INSIDE = {"container", "veth", "bridge", "tunnel"}
OUTSIDE = {"egress", "upstream"}
ROLE_UP = ["container", "veth", "bridge", "tunnel", "egress", "upstream"]
PCTS = (50, 90, 99)
PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6"}


# ------------------------------------------------------------------------------------------------ input
def run_tshark(path):
    text = run_tshark_occurrence(path, "f")
    if "\tvxlan" not in text.split("\n", 1)[0] or not any(
            r.get("vxlan.vni") for r in parse_fields(text)):
        return text
    # VXLAN: a frame's first ip/tcp/udp/icmp fields are the outer headers; the packet it carries (the one matched
    # across hops) is the last occurrence. Rows of VXLAN frames are taken from a second, last-occurrence pass.
    last = {r["frame.number"]: r for r in parse_fields(run_tshark_occurrence(path, "l"))}
    lines = [text.split("\n", 1)[0]]
    for r in parse_fields(text):
        if r.get("vxlan.vni"):
            r = last[r["frame.number"]]
        lines.append("\t".join(r[f] for f in FIELDS))
    return "\n".join(lines) + "\n"


def run_tshark_occurrence(path, occurrence):
    cmd = ["tshark", "-r", path] + TSHARK_OPTS + ["-T", "fields"]
    for f in FIELDS:
        cmd += ["-e", f]
    cmd += ["-E", "header=y", "-E", "separator=/t", "-E", f"occurrence={occurrence}", "-E", "quote=n"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"tshark failed on {path}: {res.stderr.strip()}")
    return res.stdout


def tshark_version():
    try:
        out = subprocess.run(["tshark", "-v"], capture_output=True, text=True).stdout
        return out.splitlines()[0].strip()
    except (OSError, IndexError):
        return "unknown"


def parse_fields(text):
    lines = text.splitlines()
    header = lines[0].split("\t")
    for line in lines[1:]:
        if not line:
            continue
        vals = line.split("\t")
        vals += [""] * (len(header) - len(vals))
        yield dict(zip(header, vals))


def to_int(v, base=10):
    if v == "" or v is None:
        return None
    v = v.split(",")[0]
    if v.startswith("0x"):
        return int(v, 16)
    return int(v, base)


def epoch_ns(s):
    d = decimal.Decimal(s)
    return int(d * 1_000_000_000)


def read_topology(path):
    rows = []
    with open(path) as fh:
        for line in fh:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            parts = line.split("\t") + [""] * 5
            key, name, label, role, attach = parts[:5]
            if role not in ROLE_UP:
                sys.exit(f"{path}: unknown role {role!r} for {key}")
            rows.append({"key": key, "name": name, "label": label or name, "role": role, "attach": attach})
    return rows


# ------------------------------------------------------------------------------------------------ model
class Obs:
    __slots__ = ("seq", "file", "frame", "iface", "t", "ver", "proto", "src", "dst", "sport", "dport",
                 "key", "tcp_seq", "tcp_len", "frame_len", "ip_len", "link_scoped")


# Link-scoped control packets repeat with identical bytes (MLD reports are sent twice, DAD NS per address): their
# copies on one link are microseconds apart, so they are grouped within 10 ms only.
LINK_WINDOW_NS = 10_000_000
ICMPV6_LINK_TYPES = {130, 131, 132, 133, 134, 135, 136, 137, 143}   # MLD, RS, RA, NS, NA, redirect, MLDv2


def is_link_scoped(ver, src, dst, proto, icmpv6_type=None):
    """Link-local addresses and link-scoped multicast never cross a router (and are never NATed):
    IPv6 fe80::/10 source or destination, ff02::/16 destination, and MLD / neighbour discovery (hop limit 255 or 1,
    never forwarded, whatever the addresses); IPv4 169.254.0.0/16, 224.0.0.0/24, IGMP."""
    if ver == 6 and icmpv6_type in ICMPV6_LINK_TYPES:
        return True
    try:
        s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    except ValueError:
        return False
    if ver == 6:
        return s.is_link_local or d.is_link_local or d in ipaddress.ip_network("ff02::/16")
    return proto == 2 or s.is_link_local or d.is_link_local or d in ipaddress.ip_network("224.0.0.0/24")


def endpoint(ver, ip, port, proto):
    if proto in (1, 58) or port is None:
        return ip
    return f"[{ip}]:{port}" if ver == 6 else f"{ip}:{port}"


def iface_key(rec, file_name, prefix_pcapng):
    base = os.path.basename(file_name)
    if rec.get("frame.interface_id", "") != "" and rec.get("frame.interface_name", "") != "":
        iid = rec["frame.interface_id"]
        return f"{base}:{iid}" if prefix_pcapng else iid
    if rec.get("sll.ifindex"):
        return rec["sll.ifindex"]
    return os.path.splitext(base)[0]


def make_obs(rec, file_idx, file_name, prefix_pcapng, seq):
    ver = None
    if rec.get("ip.proto"):
        ver = 4
    elif rec.get("ipv6.nxt"):
        ver = 6
    if ver is None:
        return None
    o = Obs()
    o.seq = seq
    o.file = file_idx
    o.frame = int(rec["frame.number"])
    o.t = epoch_ns(rec["frame.time_epoch"])
    o.frame_len = to_int(rec["frame.len"])
    o.iface = iface_key(rec, file_name, prefix_pcapng)   # as the topology file names it
    if ver == 4:
        o.proto = to_int(rec["ip.proto"])
        o.src, o.dst = rec["ip.src"], rec["ip.dst"]
        o.ip_len = to_int(rec["ip.len"])
        base_key = ("4", to_int(rec["ip.id"]), o.proto, o.ip_len, to_int(rec["ip.frag_offset"]) or 0,
                    to_int(rec["ip.flags.mf"]) or 0)
    else:
        o.proto = to_int(rec["ipv6.nxt"])
        o.src, o.dst = rec["ipv6.src"], rec["ipv6.dst"]
        o.ip_len = to_int(rec["ipv6.plen"])
        base_key = ("6", o.ip_len, o.proto, to_int(rec["ipv6.flow"]))
    o.ver = ver
    o.sport = o.dport = None
    o.tcp_seq = o.tcp_len = None
    if rec.get("vxlan.vni"):
        # Inside VXLAN the outer UDP header is still in the udp fields when the inner packet is not UDP:
        # take the transport the inner IP header names.
        if o.proto != 17:
            rec = dict(rec, **{"udp.srcport": "", "udp.dstport": "", "udp.length": ""})
    if rec.get("tcp.seq_raw"):
        o.sport, o.dport = to_int(rec["tcp.srcport"]), to_int(rec["tcp.dstport"])
        o.tcp_seq, o.tcp_len = to_int(rec["tcp.seq_raw"]), to_int(rec["tcp.len"]) or 0
        l4 = ("tcp", o.tcp_seq, to_int(rec["tcp.ack_raw"]), to_int(rec["tcp.flags"]))
    elif rec.get("udp.length"):
        o.sport, o.dport = to_int(rec["udp.srcport"]), to_int(rec["udp.dstport"])
        l4 = ("udp", to_int(rec["udp.length"]))
        if rec.get("dns.id"):
            # DNS: the query id too (NAT leaves it alone); many one-packet flows repeat 16-bit IP IDs within a window
            l4 = l4 + ("dns", to_int(rec["dns.id"]))
    elif rec.get("icmp.type"):
        l4 = ("icmp", to_int(rec["icmp.type"]), to_int(rec["icmp.code"]), to_int(rec["icmp.seq"]))
    elif rec.get("icmpv6.type"):
        l4 = ("icmpv6", to_int(rec["icmpv6.type"]), to_int(rec["icmpv6.code"]),
              to_int(rec["icmpv6.echo.sequence_number"]))
    else:
        l4 = ()
    icmpv6_type = to_int(rec.get("icmpv6.type", ""))
    if ver == 6 and o.proto == 0 and icmpv6_type is not None:
        o.proto = 58   # ICMPv6 behind a Hop-by-Hop header (MLD): named by the upper protocol; ipv6.nxt stays in the key
    o.link_scoped = is_link_scoped(ver, o.src, o.dst, o.proto, icmpv6_type)
    if o.link_scoped:
        # Link-scoped packets are not rewritten on their link, so the addresses belong to the key; so do the MLD
        # record and the ND target, which tell apart the identical-looking reports of several interfaces.
        l4 = l4 + ("link", o.src, o.dst, rec.get("icmpv6.mldr.nb_mcast_records", ""),
                   rec.get("icmpv6.mldr.mar.multicast_address", ""), rec.get("icmpv6.nd.ns.target_address", ""),
                   rec.get("icmpv6.nd.na.target_address", ""))
    o.key = base_key + l4
    return o


def tuple5(o):
    return (o.proto, o.src, o.dst, o.sport, o.dport)


class Topology:
    def __init__(self, rows):
        self.rows = {r["key"]: r for r in rows}
        self.by_label = {r["label"]: r for r in rows}
        labels = [r["label"] for r in rows]
        if len(set(labels)) != len(labels):
            sys.exit("topology labels must be unique")
        present = {r["role"] for r in rows}
        self.adj = collections.defaultdict(set)

        def link(a, b):
            self.adj[a].add(b)
            self.adj[b].add(a)

        def first_present(roles):
            for role in roles:
                for r in rows:
                    if r["role"] == role:
                        return r["label"]
            return None

        for r in rows:
            role = r["role"]
            if role != "container" and r["attach"]:
                # An explicit neighbour (the chain of an overlay across two hosts): no guessing from roles.
                if r["attach"] not in self.by_label:
                    sys.exit(f"attach {r['attach']!r} of {r['label']} is not a label in the topology file")
                link(r["label"], r["attach"])
            elif role == "container":
                if r["attach"] and r["attach"] in self.by_label:
                    link(r["label"], r["attach"])
                else:
                    p = first_present(ROLE_UP[1:])
                    if p:
                        link(r["label"], p)
            elif role != "upstream":
                i = ROLE_UP.index(role)
                p = first_present(ROLE_UP[i + 1:])
                if p:
                    link(r["label"], p)
        self.present = present
        self._dist = {}
        # L2 domains: the tree without the edges between an inside and an outside interface (where packets are
        # routed). Link-scoped packets are matched only within one domain.
        self.domain = {}
        for r in rows:
            a = r["label"]
            if a in self.domain:
                continue
            self.domain[a] = a
            q = collections.deque([a])
            while q:
                x = q.popleft()
                for y in self.adj[x]:
                    if y not in self.domain and self.side(y) == self.side(x):
                        self.domain[y] = a
                        q.append(y)

    def bridge_ports(self, label):
        """The ports of a bridge: its neighbours that are veths or tunnels (not the routed egress)."""
        return {x for x in self.adj[label] if self.role(x) in ("veth", "tunnel")}

    def label(self, key):
        r = self.rows.get(key)
        if r is None:
            sys.exit(f"interface key {key!r} is not in the topology file")
        return r["label"]

    def name(self, label):
        return self.by_label[label]["name"]

    def role(self, label):
        return self.by_label[label]["role"]

    def side(self, label):
        return "inside" if self.role(label) in INSIDE else "outside"

    def dist(self, a, b):
        if a not in self._dist:
            d = {a: 0}
            q = collections.deque([a])
            while q:
                x = q.popleft()
                for y in self.adj[x]:
                    if y not in d:
                        d[y] = d[x] + 1
                        q.append(y)
            self._dist[a] = d
        return self._dist[a].get(b, 99)

    def edges(self):
        out = set()
        for a, bs in self.adj.items():
            for b in bs:
                out.add(tuple(sorted((a, b))))
        return sorted(out)


# ------------------------------------------------------------------------------------------------ helpers
def nearest_rank(sorted_vals, p):
    n = len(sorted_vals)
    rank = max(1, (p * n + 99) // 100)   # = ceil(p*n/100) for integer p
    return sorted_vals[rank - 1]


def stats(vals):
    v = sorted(vals)
    d = {"packets": len(v), "min_ns": v[0]}
    for p in PCTS:
        d[f"p{p}_ns"] = nearest_rank(v, p)
    d["max_ns"] = v[-1]
    d["min_us"] = round(v[0] / 1000, 3)
    for p in PCTS:
        d[f"p{p}_us"] = round(d[f"p{p}_ns"] / 1000, 3)
    d["max_us"] = round(v[-1] / 1000, 3)
    d["zero_deltas"] = sum(1 for x in v if x == 0)
    return d


def order_journey(obs, topo, ties):
    obs = sorted(obs, key=lambda o: (o.t, o.file, o.frame))
    if ties == "capture":
        return obs, 0, 0
    groups = []
    for o in obs:
        if groups and groups[-1][0].t == o.t:
            groups[-1].append(o)
        else:
            groups.append([o])
    out = []
    n_tie_groups = n_reordered = 0
    for gi, g in enumerate(groups):
        if len(g) == 1:
            out.append(g[0])
            continue
        n_tie_groups += 1
        rest = list(g)
        placed = []
        if out:
            prev = out[-1].iface
            while rest:
                nxt = min(rest, key=lambda o: (topo.dist(prev, o.iface), o.file, o.frame))
                rest.remove(nxt)
                placed.append(nxt)
                prev = nxt.iface
        elif gi + 1 < len(groups):
            follow = groups[gi + 1][0].iface
            back = []
            while rest:
                nxt = min(rest, key=lambda o: (topo.dist(follow, o.iface), o.file, o.frame))
                rest.remove(nxt)
                back.append(nxt)
                follow = nxt.iface
            placed = back[::-1]
        else:
            placed = rest
        if [o.seq for o in placed] != [o.seq for o in g]:
            n_reordered += 1
        out.extend(placed)
    return out, n_tie_groups, n_reordered


def union_covers(ranges, s, e):
    """True if the sorted [a, b) ranges cover [s, e) without a gap."""
    pos = s
    for a, b in ranges:
        if a > pos:
            return False
        pos = max(pos, b)
        if pos >= e:
            return True
    return pos >= e


def compact_json(obj, ind=0):
    """JSON with one level of indentation per nesting level, but lists/dicts of scalars on one line."""
    sp = " " * ind
    scalar = (str, int, float, bool, type(None))
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        if all(isinstance(v, scalar) for v in obj.values()) and len(obj) <= 8:
            return json.dumps(obj)
        items = [f'{sp} {json.dumps(k)}: {compact_json(v, ind + 1)}' for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + sp + "}"
    if isinstance(obj, list):
        if not obj:
            return "[]"
        if all(isinstance(v, scalar) for v in obj) or all(
                isinstance(v, list) and all(isinstance(x, scalar) for x in v) for v in obj):
            return json.dumps(obj)
        items = [sp + " " + compact_json(v, ind + 1) for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + sp + "]"
    return json.dumps(obj)


def ref(o, files):
    return f"{os.path.basename(files[o.file])}#{o.frame}" if len(files) > 1 else o.frame


# ------------------------------------------------------------------------------------------------ main
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("captures", nargs="*")
    ap.add_argument("--topology", required=True)
    ap.add_argument("--name")
    ap.add_argument("--out", default="-")
    ap.add_argument("--fields", action="append", default=[],
                    help="saved tshark -T fields output (header line, tab separated, FIELDS below) "
                         "instead of running tshark; one per capture, same order")
    ap.add_argument("--save-fields", help="directory to save the tshark output in (one TSV per capture)")
    ap.add_argument("--window-ms", type=int, default=1000)
    ap.add_argument("--ties", choices=("topology", "capture"), default="topology")
    ap.add_argument("--journey-list", choices=("full", "none"), default="full")
    ap.add_argument("--bridge-copies", choices=("hop", "side"), default="hop",
                    help="side: a bridge's copy of a frame it forwarded between two of its ports is a side copy, "
                         "left out of the chain and the hops (issue 14)")
    ap.add_argument("--nat-aggregate", action="store_true",
                    help="also write nat_aggregate: one row per (kind, proto, inside address, outside address, peer)")
    ap.add_argument("--inside-net", action="append", default=[],
                    help="a bridge subnet (repeatable): packets from it to an address outside all of them are "
                         "expected at the egress, also when no packet of their flow got there (issue 14)")
    args = ap.parse_args()
    if not args.captures:
        ap.error("no capture given")

    topo = Topology(read_topology(args.topology))
    files = args.captures
    # pcapng interfaces are keyed by their id; "<file base name>:<id>" only if several pcapng files
    prefix_pcapng = sum(1 for f in files if f.endswith(".pcapng")) > 1
    saw_sll = False
    obs_all = []
    frames_total = 0
    frames_per_iface = collections.Counter()
    non_ip_per_iface = collections.Counter()
    seq = 0
    for fi, path in enumerate(files):
        if args.fields:
            with open(args.fields[fi]) as fh:
                text = fh.read()
        else:
            text = run_tshark(path)
            if args.save_fields:
                os.makedirs(args.save_fields, exist_ok=True)
                with open(os.path.join(args.save_fields, os.path.basename(path) + ".fields.tsv"), "w") as fh:
                    fh.write(text)
        for rec in parse_fields(text):
            frames_total += 1
            saw_sll = saw_sll or bool(rec.get("sll.ifindex"))
            o = make_obs(rec, fi, path, prefix_pcapng, seq)
            if o is None:   # a non-IP frame (ARP): only counted per interface
                k = topo.label(iface_key(rec, path, prefix_pcapng))
                frames_per_iface[k] += 1
                non_ip_per_iface[k] += 1
                continue
            seq += 1
            o.iface = topo.label(o.iface)
            frames_per_iface[o.iface] += 1
            obs_all.append(o)

    obs_all.sort(key=lambda o: (o.t, o.file, o.frame))
    window = args.window_ms * 1_000_000

    # ---- journeys by exact key ----------------------------------------------------------------------
    open_by_key = collections.defaultdict(list)
    groups = []
    for o in obs_all:
        cands = open_by_key[o.key]
        chosen = None
        for g in reversed(cands):
            if o.t - g[0].t > (LINK_WINDOW_NS if o.link_scoped else window):
                continue
            if any(x.iface == o.iface for x in g):
                continue
            if o.link_scoped and topo.domain[o.iface] != topo.domain[g[0].iface]:
                continue
            chosen = g
            break
        if chosen is None:
            chosen = [o]
            cands.append(chosen)
            groups.append(chosen)
        else:
            chosen.append(o)

    side_copies_of = {}   # id(first obs of the group without its side copies) -> [bridge side copies]
    journeys = []      # ordered observation lists with >= 2 interfaces
    singletons = []
    tie_groups = tie_reordered = 0
    for g in groups:
        if args.bridge_copies == "side" and len(g) >= 3:
            # A bridge's copy of a frame it forwarded between two of its ports (east-west, or to a VXLAN port) is
            # handed up after the forward (br_forward, then br_pass_frame_up): a side copy, not a hop.
            ifs = {x.iface for x in g}
            side = [x for x in g if topo.role(x.iface) == "bridge" and len(topo.bridge_ports(x.iface) & ifs) >= 2]
            if side:
                g = [x for x in g if x not in side]
                side_copies_of[id(g[0])] = side
        ordered, ntg, nre = order_journey(g, topo, args.ties)
        tie_groups += ntg
        tie_reordered += nre
        (journeys if len(ordered) >= 2 else singletons).append(ordered)
    journeys.sort(key=lambda j: (j[0].t, j[0].file, j[0].frame))
    singletons.sort(key=lambda j: (j[0].t, j[0].file, j[0].frame))

    def direction(j):
        a, b = topo.side(j[0].iface), topo.side(j[-1].iface)
        if a == "inside" and b == "outside":
            return "outbound"
        if a == "outside" and b == "inside":
            return "inbound"
        return "internal" if a == "inside" else "external"

    # ---- hops ---------------------------------------------------------------------------------------
    hop_deltas = collections.defaultdict(list)
    path_counts = collections.Counter()
    for j in journeys:
        path_counts[(direction(j), tuple(o.iface for o in j))] += 1
        for a, b in zip(j, j[1:]):
            hop_deltas[(a.iface, b.iface)].append(b.t - a.t)
    hops = []
    for (a, b), vals in sorted(hop_deltas.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        h = {"from": topo.name(a), "to": topo.name(b), "from_label": a, "to_label": b,
             "adjacent": topo.dist(a, b) == 1}
        via = [x for x in topo.by_label if topo.role(x) == "bridge" and {a, b} <= topo.bridge_ports(x)]
        if args.bridge_copies == "side" and via:
            h["via_bridge"] = via[0]   # two ports of one bridge: one hop, the bridge's copy is a side copy
        h.update(stats(vals))
        hops.append(h)

    # ---- NAT ----------------------------------------------------------------------------------------
    nat = {}
    unexplained = []
    for j in journeys:
        d = direction(j)
        first, last = j[0], j[-1]
        if tuple5(first) == tuple5(last) or first.link_scoped:
            continue
        ver, proto = first.ver, first.proto
        if d == "outbound" and (first.src, first.sport) != (last.src, last.sport) and \
                (first.dst, first.dport) == (last.dst, last.dport):
            t = (proto, endpoint(ver, first.src, first.sport, proto), endpoint(ver, last.src, last.sport, proto),
                 endpoint(ver, last.dst, last.dport, proto))
        elif d == "inbound" and (first.dst, first.dport) != (last.dst, last.dport) and \
                (first.src, first.sport) == (last.src, last.sport):
            t = (proto, endpoint(ver, last.dst, last.dport, proto), endpoint(ver, first.dst, first.dport, proto),
                 endpoint(ver, first.src, first.sport, proto))
        else:
            unexplained.append({"frames": [ref(o, files) for o in j], "direction": d,
                                "first": list(map(str, tuple5(first))), "last": list(map(str, tuple5(last)))})
            continue
        m = nat.setdefault(t, {"first_t": first.t, "first_dir": d, "first_frame": ref(first, files),
                               "outbound": 0, "inbound": 0})
        m[d] += 1
        if first.t < m["first_t"]:
            m.update(first_t=first.t, first_dir=d, first_frame=ref(first, files))
    nat_list = []
    for (proto, inside, outside, peer), m in sorted(nat.items(), key=lambda kv: kv[1]["first_t"]):
        nat_list.append({"kind": "snat" if m["first_dir"] == "outbound" else "dnat",
                         "proto": PROTO_NAMES.get(proto, str(proto)), "inside": inside, "outside": outside,
                         "peer": peer, "packets": m["outbound"] + m["inbound"],
                         "packets_outbound": m["outbound"], "packets_inbound": m["inbound"],
                         "first_frame": m["first_frame"]})

    # inside-view normalisation of endpoints (outside endpoint seen with a peer -> inside endpoint)
    to_inside = {}
    for (proto, inside, outside, peer) in nat:
        to_inside[(proto, outside, peer)] = inside

    # ---- segmentation: TCP data by sequence range per tree edge -------------------------------------
    def norm_ep(ver, proto, ip, port, peer_ip, peer_port):
        ep = endpoint(ver, ip, port, proto)
        peer = endpoint(ver, peer_ip, peer_port, proto)
        return to_inside.get((proto, ep, peer), ep)

    def inside_view(o):
        """(proto, src, dst) of a packet with NAT undone (outside endpoints -> inside endpoints)."""
        return (o.proto, norm_ep(o.ver, o.proto, o.src, o.sport, o.dst, o.dport),
                norm_ep(o.ver, o.proto, o.dst, o.dport, o.src, o.sport))

    data = collections.defaultdict(lambda: collections.defaultdict(list))  # conn -> iface -> [obs]
    base_seq = {}
    for o in obs_all:
        if o.tcp_seq is None or not o.tcp_len:
            continue
        c = inside_view(o)
        base_seq.setdefault(c, o.tcp_seq)
        data[c][o.iface].append(o)

    def rng(c, o):
        s = (o.tcp_seq - base_seq[c]) % (1 << 32)
        return s, s + o.tcp_len

    seg_edges = []
    covered_obs = set()        # packets whose range is matched on an adjacent interface
    super_groups = {}          # (id(super obs), other iface) -> [segment obs sorted by seq]
    group_list = []
    for a, b in topo.edges():
        for c in sorted(data):
            la, lb = data[c].get(a, []), data[c].get(b, [])
            if not la or not lb:
                continue
            for x_if, y_if, lx, ly in ((a, b, la, lb), (b, a, lb, la)):
                # one side of the pair at a time: classify every packet on x against packets on y
                ys = sorted(((rng(c, o), o) for o in ly), key=lambda r: r[0])
                starts = [r[0][0] for r in ys]
                res = collections.Counter()
                per_super = []
                for o in lx:
                    s, e = rng(c, o)
                    lo = bisect.bisect_left(starts, s - (1 << 18))
                    hi = bisect.bisect_right(starts, e - 1)
                    over = [(r, p) for r, p in ys[lo:hi] if r[1] > s and r[0] < e]
                    eq = [p for r, p in over if r == (s, e)]
                    cov = [p for r, p in over if r[0] <= s and e <= r[1] and r != (s, e)]
                    inner = [(r, p) for r, p in over if s <= r[0] and r[1] <= e and r != (s, e)]
                    if eq:
                        res["equal_range"] += 1
                        covered_obs.add(id(o))
                    elif cov:
                        res["segment_covered_by_super"] += 1
                        covered_obs.add(id(o))
                    elif inner and union_covers(sorted({r for r, _ in inner}), s, e):
                        res["super_of_segments"] += 1
                        covered_obs.add(id(o))
                        # one segment per range (the nearest in time if a range was seen twice)
                        best = {}
                        for r, p in inner:
                            if r not in best or abs(p.t - o.t) < abs(best[r].t - o.t):
                                best[r] = p
                        segs = [best[r] for r in sorted(best)]
                        super_groups[(id(o), y_if)] = segs
                        per_super.append((o, segs))
                    else:
                        res["uncovered"] += 1
                entry = {"connection": {"proto": "tcp", "src": c[1], "dst": c[2]},
                         "on": topo.name(x_if), "on_label": x_if, "vs": topo.name(y_if), "vs_label": y_if,
                         "data_packets": len(lx), **{k: res.get(k, 0) for k in
                         ("equal_range", "segment_covered_by_super", "super_of_segments", "uncovered")}}
                if per_super:
                    n = sorted(len(sg) for _, sg in per_super)
                    entry["segments_per_super"] = {"min": n[0], "max": n[-1], "total": sum(n),
                                                   "mean": round(sum(n) / len(n), 3)}
                    # signed: t(segment on vs) - t(super-packet on on)
                    entry["first_segment_minus_super"] = stats([sg[0].t - o.t for o, sg in per_super])
                    entry["last_segment_minus_super"] = stats([max(p.t for p in sg) - o.t for o, sg in per_super])
                    for o, sg in per_super:
                        r = rng(c, o)
                        group_list.append({"super": ref(o, files), "on": x_if, "segments_on": y_if,
                                           "rel_seq": [r[0], r[1]], "tcp_len": o.tcp_len,
                                           "segments": [ref(p, files) for p in sg],
                                           "first_segment_minus_super_ns": sg[0].t - o.t,
                                           "last_segment_minus_super_ns": max(p.t for p in sg) - o.t})
                if res.get("segment_covered_by_super") or res.get("super_of_segments") or res.get("uncovered"):
                    seg_edges.append(entry)
    # exact journeys that skip an interface lying between two of their hops
    skips = collections.Counter()
    for j in journeys:
        for x, y in zip(j, j[1:]):
            if topo.dist(x.iface, y.iface) > 1:
                skips[(x.iface, y.iface)] += 1

    # segment-aware hops: a journey skipping interface X between a and b, whose super-packet on a (or
    # on b) is made of segments on X, gets X inserted at the time of its first (lowest-sequence) segment
    seg_hop_deltas = collections.defaultdict(list)
    inserted = 0
    for j in journeys:
        seq_ifs = [(j[0].iface, j[0].t)]
        for x, y in zip(j, j[1:]):
            if topo.dist(x.iface, y.iface) == 2:
                mids = [m for m in topo.adj[x.iface] if topo.dist(m, y.iface) == 1]
                for m in mids:
                    sg = super_groups.get((id(x), m)) or super_groups.get((id(y), m))
                    if sg:
                        seq_ifs.append((m, sg[0].t))
                        inserted += 1
                        break
            seq_ifs.append((y.iface, y.t))
        for (a, ta), (b, tb) in zip(seq_ifs, seq_ifs[1:]):
            seg_hop_deltas[(a, b)].append(tb - ta)
    hops_seg = []
    if inserted:
        for (a, b), vals in sorted(seg_hop_deltas.items(), key=lambda kv: (-len(kv[1]), kv[0])):
            h = {"from": topo.name(a), "to": topo.name(b), "from_label": a, "to_label": b,
                 "adjacent": topo.dist(a, b) == 1}
            h.update(stats(vals))
            hops_seg.append(h)

    # ---- losses -----------------------------------------------------------------------------------
    # flows in the inside view (NAT undone), so that packets first seen outside and inside group together;
    # packets matched by sequence range on a neighbouring interface are not loss candidates
    inside_nets = [ipaddress.ip_network(n) for n in args.inside_net]
    egresses = [r["label"] for r in topo.rows.values() if r["role"] == "egress"]

    def ep_ip(ep):
        if ep.startswith("["):
            return ep[1:ep.index("]")]
        return ep.rsplit(":", 1)[0] if ep.count(":") == 1 else ep

    def in_nets(ip):
        try:
            a = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(a.version == n.version and a in n for n in inside_nets)

    def expected_egress(fk, o, start):
        """--inside-net: a packet from a container address to an address outside every bridge subnet is expected at
        the egress (the nearest egress interface in the tree), whether or not any packet of its flow got there."""
        if not inside_nets or not egresses or o.link_scoped or topo.side(start) != "inside":
            return None
        if not in_nets(ep_ip(fk[1])) or in_nets(ep_ip(fk[2])):
            return None
        d = min(topo.dist(start, e) for e in egresses)
        return d, sorted(e for e in egresses if topo.dist(start, e) == d)

    flows = collections.defaultdict(list)
    for j in journeys + singletons:
        if len(j) == 1 and id(j[0]) in covered_obs:
            continue
        if j[0].link_scoped:   # flooded or link-local control traffic has no path to reach: never a loss
            continue
        o = j[0]
        iv = inside_view(o)
        flows[(iv[0], iv[1], iv[2])].append(j)
    losses = collections.OrderedDict()
    for fk, js in flows.items():
        start = collections.Counter(j[0].iface for j in js).most_common(1)[0][0]
        reach = max(topo.dist(start, j[-1].iface) for j in js)
        far = sorted({j[-1].iface for j in js if topo.dist(start, j[-1].iface) == reach})
        expected_by = "flow"
        exp = expected_egress(fk, js[0][0], start)
        if exp is not None and exp[0] > reach:
            reach, far, expected_by = exp[0], [], "topology"
            expected_at = exp[1]
        else:
            expected_at = None
        for j in js:
            if topo.dist(start, j[-1].iface) < reach:
                f = j[0]
                k = (fk, j[-1].iface)
                e = losses.setdefault(k, {
                    "proto": PROTO_NAMES.get(f.proto, str(f.proto)),
                    "src": endpoint(f.ver, f.src, f.sport, f.proto), "dst": endpoint(f.ver, f.dst, f.dport, f.proto),
                    "src_inside_view": fk[1], "dst_inside_view": fk[2],
                    "last_seen": topo.name(j[-1].iface), "last_seen_label": j[-1].iface,
                    "flow_reaches": [topo.name(x) for x in far], "packets": 0,
                    **({"expected_by": expected_by} if args.inside_net else {}),
                    **({"expected_at": [topo.name(x) for x in expected_at]} if expected_at else {}),
                    "path_seen": [o.iface for o in j], "frames": []})
                e["packets"] += 1
                e["frames"].append([ref(o, files) for o in j])
    loss_list = list(losses.values())
    lost_journeys = sum(1 for e in loss_list for fr in e["frames"] if len(fr) >= 2)
    lost_singletons = sum(1 for e in loss_list for fr in e["frames"] if len(fr) == 1)

    # ---- summary ------------------------------------------------------------------------------------
    ip_obs = len(obs_all)
    obs_in_journeys = sum(len(j) for j in journeys)
    single_covered = sum(1 for j in singletons if id(j[0]) in covered_obs)
    summary = {
        "packets": frames_total,
        "ip_packets": ip_obs,
        "journeys": len(journeys),
        "complete": len(journeys) - lost_journeys,
        "lost": lost_journeys,
        "lost_singletons": lost_singletons,
        "singletons": len(singletons),
        "singletons_matched_by_sequence_range": single_covered,
        "ip_packets_in_journeys": obs_in_journeys,
        "tie_groups": tie_groups,
        "tie_groups_not_in_capture_order": tie_reordered,
    }
    if args.bridge_copies == "side":
        summary["bridge_side_copies"] = sum(len(v) for v in side_copies_of.values())
        summary["journeys_with_bridge_side_copy"] = len(side_copies_of)
    n_link = sum(1 for j in journeys if j[0].link_scoped)
    if n_link or any(j[0].link_scoped for j in singletons):
        summary["link_scoped_journeys"] = n_link
        summary["link_scoped_singletons"] = sum(1 for j in singletons if j[0].link_scoped)
    out = collections.OrderedDict()
    out["capture"] = args.name or os.path.basename(files[0])
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out["files"] = [os.path.relpath(os.path.abspath(f), repo) for f in files]
    out["generated_by"] = "tests/lab/derive-journeys.py"
    out["tshark"] = tshark_version() if not args.fields else "saved fields"
    out["method"] = {
        "key": "IPv4: ip.id ip.proto ip.len ip.frag_offset ip.flags.mf; IPv6: ipv6.plen ipv6.nxt ipv6.flow; "
               "+ TCP tcp.seq_raw tcp.ack_raw tcp.flags | UDP udp.length | ICMP(v6) type code seq",
        "window_ms": args.window_ms,
        "ties": args.ties,
        "percentile": "nearest rank: sorted ascending v[1..n], Pp = v[ceil(p*n/100)], max = v[n]; "
                      "computed on integer ns, us = ns/1000 (3 decimals)",
        "timestamps": "frame.time_epoch (9 decimals) parsed with Decimal to integer ns",
    }
    if args.bridge_copies != "hop":
        out["method"]["bridge_copies"] = ("side: a bridge's copy of a frame seen on two of its ports (veth/tunnel) in "
                                          "the same journey is a side copy, not in the chain or the hops")
    if args.inside_net:
        out["method"]["inside_nets"] = args.inside_net
        out["method"]["expected_at_egress"] = ("a flow from an inside net to an address outside all of them is "
                                               "expected at the nearest egress interface")
    out["interfaces"] = [{"label": r["label"], "name": r["name"], "key": r["key"], "role": r["role"],
                          "frames": frames_per_iface.get(r["label"], 0),
                          "non_ip_frames": non_ip_per_iface.get(r["label"], 0)}
                         for r in sorted(topo.rows.values(), key=lambda r: r["key"])]
    if saw_sll:   # LINUX_SLL2: vethtrace names these if<index> unless given --ifname <index>=<name>
        out["ifname_args"] = [f"--ifname {r['key']}={r['name']}"
                              for r in sorted(topo.rows.values(), key=lambda r: int(r["key"]))]
    out["summary"] = summary
    out["paths"] = [{"direction": d, "path": list(p), "path_names": [topo.name(x) for x in p], "journeys": n}
                    for (d, p), n in sorted(path_counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    out["hops"] = hops
    out["nat"] = nat_list
    if args.nat_aggregate:
        # issue 14: one row per (kind, proto, inside address, outside address, peer address:port), flows and packets
        agg = collections.OrderedDict()
        for m in nat_list:
            k = (m["kind"], m["proto"], ep_ip(m["inside"]), ep_ip(m["outside"]), m["peer"])
            a = agg.setdefault(k, {"kind": k[0], "proto": k[1], "inside_address": k[2], "outside_address": k[3],
                                   "peer": k[4], "flows": 0, "packets": 0})
            a["flows"] += 1
            a["packets"] += m["packets"]
        out["nat_aggregate"] = sorted(agg.values(), key=lambda a: (-a["packets"], -a["flows"]))
    out["nat_unexplained_tuple_changes"] = unexplained
    out["losses"] = loss_list
    out["segmentation"] = {
        "edges": seg_edges,
        "journeys_skipping_an_interface": [{"from": a, "to": b, "journeys": n} for (a, b), n in sorted(skips.items())],
        "hops_segment_aware": hops_seg,
        "super_packets": group_list,
    }
    def side_copy_entry(j):
        sc = next((v for o in j for k, v in [(id(o), side_copies_of.get(id(o)))] if v), None)
        if not sc:
            return {}
        return {"side_copies": [{"frame": ref(x, files), "iface": x.iface, "after_first_ns": x.t - j[0].t}
                                for x in sc]}

    if args.journey_list == "full":
        jl = []
        for j in journeys:
            f = j[0]
            jl.append({"frames": [ref(o, files) for o in j], "path": [o.iface for o in j],
                       "direction": direction(j), "proto": PROTO_NAMES.get(f.proto, str(f.proto)),
                       "src": endpoint(f.ver, f.src, f.sport, f.proto), "dst": endpoint(f.ver, f.dst, f.dport, f.proto),
                       "t0": f"{f.t // 1_000_000_000}.{f.t % 1_000_000_000:09d}",
                       "deltas_ns": [b.t - a.t for a, b in zip(j, j[1:])],
                       **({"link_scoped": True} if f.link_scoped else {}),
                       **side_copy_entry(j)})
        out["journeys"] = jl
        # singletons matched by sequence range are only counted (summary), not listed
        out["singletons"] = [{"frame": ref(j[0], files), "iface": j[0].iface,
                              "proto": PROTO_NAMES.get(j[0].proto, str(j[0].proto)),
                              "src": endpoint(j[0].ver, j[0].src, j[0].sport, j[0].proto),
                              "dst": endpoint(j[0].ver, j[0].dst, j[0].dport, j[0].proto),
                              "tcp_len": j[0].tcp_len,
                              } for j in singletons if id(j[0]) not in covered_obs]
    text = compact_json(out) + "\n"
    json.loads(text)   # self-check
    if args.out == "-":
        sys.stdout.write(text)
    else:
        with open(args.out, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
