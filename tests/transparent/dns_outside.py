"""The authoritative DNS server "outside" the gateway (in the origin namespace), for the DNS
responder tests: answers A, AAAA and HTTPS questions from a fixed table over UDP and TCP on
port 53, and logs every question it gets ("NAME TYPE" per line) so a test can tell it was
never asked. Prints "ready" once both sockets listen.

Usage: dns_outside.py ZONE LOG    (ZONE: lines "NAME ADDRESS", or "NAME https" for a record
with alpn h3,h2, an ipv4hint and ech)
"""

import ipaddress
import socket
import struct
import sys
import threading

TTL = 30


def load(path):
    zone = {}
    for line in open(path):
        parts = line.split()
        if len(parts) == 2:
            zone.setdefault(parts[0].lower().rstrip("."), []).append(parts[1])
    return zone


def parse_question(msg):
    i, labels = 12, []
    while msg[i]:
        labels.append(msg[i + 1:i + 1 + msg[i]].decode())
        i += 1 + msg[i]
    qtype = struct.unpack(">H", msg[i + 1:i + 3])[0]
    return ".".join(labels).lower(), qtype, msg[12:i + 5]


def https_rdata():
    alpn = b"\x02h3\x02h2"
    params = struct.pack(">HH", 1, len(alpn)) + alpn
    params += struct.pack(">HH", 4, 4) + bytes([198, 18, 2, 2])
    params += struct.pack(">HH", 5, 3) + b"ech"
    return struct.pack(">H", 1) + b"\x00" + params


def answer(msg, zone, log):
    name, qtype, question = parse_question(msg)
    with open(log, "a") as f:
        f.write(f"{name} {qtype}\n")
    values = zone.get(name)
    records = []
    for value in values or []:
        if value == "https" and qtype == 65:
            records.append((65, https_rdata()))
            continue
        try:
            ip = ipaddress.ip_address(value)
        except ValueError:
            continue
        if ip.version == 4 and qtype == 1:
            records.append((1, ip.packed))
        if ip.version == 6 and qtype == 28:
            records.append((28, ip.packed))
    rcode = 3 if values is None else 0
    header = struct.pack(">HHHHHH", struct.unpack(">H", msg[:2])[0], 0x8400 | rcode, 1,
                         len(records), 0, 0)
    body = b"".join(b"\xc0\x0c" + struct.pack(">HHIH", t, 1, TTL, len(r)) + r
                    for t, r in records)
    return header + question + body


def serve_udp(sock, zone, log):
    while True:
        msg, peer = sock.recvfrom(4096)
        try:
            sock.sendto(answer(msg, zone, log), peer)
        except Exception as e:  # a malformed question: no answer
            print(e, file=sys.stderr)


def serve_tcp(sock, zone, log):
    while True:
        conn, _ = sock.accept()
        with conn:
            try:
                length = struct.unpack(">H", conn.recv(2))[0]
                msg = b""
                while len(msg) < length:
                    msg += conn.recv(length - len(msg))
                reply = answer(msg, zone, log)
                conn.sendall(struct.pack(">H", len(reply)) + reply)
            except Exception as e:
                print(e, file=sys.stderr)


def main():
    zone, log = load(sys.argv[1]), sys.argv[2]
    udp = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    udp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    udp.bind(("::", 53))
    tcp = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    tcp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("::", 53))
    tcp.listen(16)
    threading.Thread(target=serve_tcp, args=(tcp, zone, log), daemon=True).start()
    print("ready", flush=True)
    serve_udp(udp, zone, log)


main()
