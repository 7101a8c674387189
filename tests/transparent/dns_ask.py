"""A DNS question from the client namespace, as a program that ignores proxies sends it.
Prints "rcode=N" and the answers ("a=IP", "aaaa=IP", "https-alpn=..,..", "https-keys=1,4"),
or "timeout" when nothing came back within two seconds.

Usage: dns_ask.py SERVER NAME TYPE [tcp]    (TYPE: A, AAAA or HTTPS)
"""

import ipaddress
import random
import socket
import struct
import sys

TYPES = {"A": 1, "AAAA": 28, "HTTPS": 65}


def question(name, qtype):
    qid = random.randrange(65536)
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".") if p)
    return qid, struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + b"\x00" + struct.pack(">HH", qtype, 1)


def skip_name(msg, i):
    while True:
        n = msg[i]
        if n == 0:
            return i + 1
        if n & 0xC0 == 0xC0:
            return i + 2
        i += 1 + n


def describe(msg):
    flags, qd, an = struct.unpack(">HHH", msg[2:8])
    out = [f"rcode={flags & 0xF}"]
    i = 12
    for _ in range(qd):
        i = skip_name(msg, i) + 4
    for _ in range(an):
        i = skip_name(msg, i)
        rtype, _, ttl, length = struct.unpack(">HHIH", msg[i:i + 10])
        data = msg[i + 10:i + 10 + length]
        i += 10 + length
        if rtype in (1, 28):
            out.append(("a=" if rtype == 1 else "aaaa=") + str(ipaddress.ip_address(data)))
            out.append(f"ttl={ttl}")
        elif rtype == 65:
            j = skip_name(data, 2)
            keys, alpn = [], []
            while j < len(data):
                key, size = struct.unpack(">HH", data[j:j + 4])
                value = data[j + 4:j + 4 + size]
                keys.append(str(key))
                if key == 1:
                    k = 0
                    while k < len(value):
                        alpn.append(value[k + 1:k + 1 + value[k]].decode())
                        k += 1 + value[k]
                j += 4 + size
            out.append("https-alpn=" + ",".join(alpn))
            out.append("https-keys=" + ",".join(keys))
    return " ".join(out)


def main():
    server, name, kind = sys.argv[1], sys.argv[2], sys.argv[3]
    tcp = len(sys.argv) > 4 and sys.argv[4] == "tcp"
    qid, msg = question(name, TYPES[kind])
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    try:
        if tcp:
            s = socket.create_connection((server, 53), timeout=2)
            s.sendall(struct.pack(">H", len(msg)) + msg)
            length = struct.unpack(">H", s.recv(2))[0]
            reply = b""
            while len(reply) < length:
                reply += s.recv(length - len(reply))
        else:
            s = socket.socket(family, socket.SOCK_DGRAM)
            s.settimeout(2)
            s.sendto(msg, (server, 53))
            reply, _ = s.recvfrom(4096)
    except socket.timeout:
        print("timeout")
        return
    except (ConnectionRefusedError, ConnectionResetError):
        print("refused")
        return
    assert struct.unpack(">H", reply[:2])[0] == qid, "an answer to another question"
    print(describe(reply))


main()
