#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into fuzz/corpus/<target>/ from the project's
captured fixtures (collector/tests/fixtures: bytes read from a real Open vSwitch and a real
kernel) and this machine's own rtnetlink and BTF. Run once; libFuzzer adds what it finds."""
import json, os, socket, struct, sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
fx = os.path.join(root, "collector", "tests", "fixtures")
out = os.path.join(root, "fuzz", "corpus")

def put(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())

def read(*p):
    with open(os.path.join(fx, *p), "rb") as f:
        return f.read()

def bodies(name):
    """The captured .bin files hold multipart reply bodies, each after a big-endian u32 length."""
    data, out = read(name), []
    while len(data) >= 4:
        (n,) = struct.unpack_from(">I", data)
        out.append(data[4:4 + n])
        data = data[4 + n:]
    return out

# OpenFlow: whole multipart replies around the captured bodies (OF1.3, type 19).
kinds = {"flow-stats": 1, "table-stats": 3, "port-stats": 4, "group-stats": 6,
         "group-desc": 7, "port-desc": 13}
for name, kind in kinds.items():
    for j, body in enumerate(bodies(f"demo.{name}.bin")[:4]):
        body = body[:65535 - 16]
        msg = struct.pack(">BBHIHH4x", 4, 19, 16 + len(body), 7, kind, 0) + body
        put("openflow_message", f"{name}.{j}.bin", msg)
put("openflow_message", "hello.bin", struct.pack(">BBHIHHI", 4, 0, 16, 1, 1, 8, 0x12))
put("openflow_message", "error.bin", struct.pack(">BBHIHH", 4, 1, 12, 3, 1, 2))

# Flow stats bodies, and the matches and instructions of each flow in them.
for name, body in [(f"{n}.{j}", b) for n in ["demo.flow-stats.bin", "flow-corpus.of13-flow-stats.bin"]
                   for j, b in enumerate(bodies(n)[:8])]:
    put("openflow_flow_stats", name, body)
    off, i = 0, 0
    while off + 56 <= len(body) and i < 40:
        (length,) = struct.unpack_from(">H", body, off)
        if length < 56 or off + length > len(body):
            break
        mtype, mlen = struct.unpack_from(">HH", body, off + 48)
        mpad = (mlen + 7) // 8 * 8
        put("openflow_oxm", f"{name}.{i}.bin", body[off + 52: off + 48 + mlen])
        put("openflow_actions", f"{name}.{i}.bin", body[off + 48 + mpad: off + length])
        off += length
        i += 1

# The instructions of every corpus flow in table 6 (the Nicira actions: learn, bundle,
# multipath, clone, sample, check_pkt_larger, encap, decap), wherever they fall in the reply.
def nicira_seeds():
    k = 0
    for body in bodies("flow-corpus.of13-flow-stats.bin"):
        off = 0
        while off + 56 <= len(body):
            (length,) = struct.unpack_from(">H", body, off)
            if length < 56 or off + length > len(body):
                break
            table = body[off + 2]
            mtype, mlen = struct.unpack_from(">HH", body, off + 48)
            mpad = (mlen + 7) // 8 * 8
            if table == 6:
                put("openflow_actions", f"flow-corpus.nicira.{k}.bin",
                    body[off + 48 + mpad: off + length])
                k += 1
            off += length
nicira_seeds()

# OVSDB: what ovsdb-server sends a monitor client.
iface = {"name": "veth1", "ofport": 2, "external_ids": ["map", [["iface-id", "ns_pod"]]],
         "statistics": ["map", [["rx_packets", 10], ["tx_bytes", 1000]]],
         "link_state": "up", "_uuid": ["uuid", "0e1f8a9c-0000-4000-8000-000000000001"]}
msgs = {
    "update.json": {"id": None, "method": "update",
                    "params": [None, {"Interface": {"0e1f8a9c-0000-4000-8000-000000000001": {"new": iface}}}]},
    "reply.json": {"id": 1, "error": None, "result": {"Bridge": {"u1": {"new": {"name": "br0", "ports": ["set", [["uuid", "u2"]]]}}}}},
    "echo.json": {"id": "echo", "method": "echo", "params": []},
    "delete.json": {"id": None, "method": "update", "params": [None, {"Port": {"u2": {"old": {"name": "p"}}}}]},
}
for n, m in msgs.items():
    put("ovsdb_message", n, json.dumps(m))

# IPVS: a captured generic-netlink dump.
for j, d in enumerate(bodies(os.path.join("ipvs", "read.bin"))):
    put("ipvs_netlink", f"datagram{j}.bin", d)

# rtnetlink: this machine's own RTM_NEWLINK payloads (ifinfomsg + attributes).
try:
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    req = struct.pack("=IHHII", 32, 18, 0x301, 1, 0) + struct.pack("=BxHiII", 0, 0, 0, 0, 0)
    s.send(req)
    n = 0
    done = False
    while not done and n < 8:
        buf = s.recv(1 << 16)
        off = 0
        while off + 16 <= len(buf):
            length, mtype = struct.unpack_from("=IH", buf, off)
            if mtype == 3 or length < 16:
                done = True
                break
            if mtype == 16:
                put("rtnetlink_link", f"link{n}.bin", buf[off + 16: off + length])
                n += 1
            off += (length + 3) & ~3
except OSError as e:
    print("rtnetlink seed skipped:", e, file=sys.stderr)

# BTF: the unit test's sample (a struct with an anonymous union).
strings = b"\0outer\0a\0x\0y\0b\0int\0inner2\0c\0d\0"
def s_(name):
    return strings.index(b"\0" + name.encode() + b"\0") + 1
words = [s_("int"), 1 << 24, 4, 32,
         0, 2 << 24, 0,
         0, (5 << 24) | 2, 8, s_("x"), 2, 0, s_("y"), 1, 0,
         s_("outer"), (4 << 24) | 3, 24, s_("a"), 1, 0, 0, 3, 64, s_("b"), 1, 128,
         s_("inner2"), (4 << 24) | 2, 8, s_("c"), 1, 0, s_("d"), 1, 32]
types = b"".join(struct.pack("<I", w) for w in words)
btf = struct.pack("<HBBIIIII", 0xeb9f, 1, 0, 24, 0, len(types), len(types), len(strings)) + types + strings
put("btf", "sample.bin", btf)

# Flow text: the captured dumps, a few hundred lines each.
for name in ["flow-corpus.txt", "flow-corpus.dump-flows-of13.txt"]:
    put("flow_text", name, read(name))
rich = read("flows", "rich.txt").decode()
put("flow_text", "rich.txt", rich)
# Datapath flows: OVS's documented syntax (odp.at) and a real userspace datapath's dump.
for name in ["dp-odp.txt", "dp-real.txt"]:
    put("flow_text", name, read("flows", name))
put("flow_text", "datapath.txt",
    "recirc_id(0),in_port(2),eth(src=02:00:00:00:00:01,dst=02:00:00:00:00:02),eth_type(0x0800),"
    "ipv4(src=10.0.0.1,proto=6,frag=no),tcp(dst=80), packets:3, bytes:300, used:0.5s, flags:S, "
    "actions:ct(commit,zone=5,nat(src=10.0.0.2)),recirc(0x1)\n")

for i, f in enumerate(["nw_src=10.0.0.1 and n_packets>0", "(tcp or udp) and not ct_state~=+trk",
                       "nw_dst~=10.96.0.1 || output.port=3", "reg0=0x5/0xff", "ct.zone=5",
                       "not (table=1 and priority>10) or cookie!=0x2"]):
    put("flow_filter", f"f{i}.txt", f)

for i, t in enumerate(["192.168.0.10", "tcp:10.0.0.1:6653", "tcp:[fd00::1]:6653", "node-1.example",
                       "unix:/var/run/openvswitch/br-int.mgmt", "10.0.0.0/8:6653", "[fd00::]/64:16633"]):
    put("target", f"t{i}.txt", t)
