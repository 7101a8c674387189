"""The capture bench's client, inside the sandbox (or on the host for `direct`).

usage: client.py proxy|captured|direct HOST PORT CONNECTIONS BULK_MIB
`proxy`: each connection is a CONNECT tunnel through egress-run's proxy port (127.0.0.1:3128),
as a client honouring HTTPS_PROXY makes it; `captured`: a plain connection to HOST:PORT, which
the sandbox's capture sends to egress; `direct`: the same, on the host. Prints new connections
per second (ping/pong, one connection each, in sequence) and bulk MiB/s (one connection)."""
import socket
import sys
import time

mode, host, port, connections, bulk = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])


def connect():
    if mode != "proxy":
        return socket.create_connection((host, port))
    s = socket.create_connection(("127.0.0.1", 3128))
    s.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        got = s.recv(4096)
        if not got:
            raise SystemExit("the proxy closed the tunnel")
        head += got
    if not head.startswith(b"HTTP/1.1 200"):
        raise SystemExit(head.decode(errors="replace"))
    return s


def read_all(s):
    total = 0
    while True:
        got = s.recv(1 << 20)
        if not got:
            return total
        total += len(got)


start = time.perf_counter()
for _ in range(connections):
    s = connect()
    s.sendall(b"\x01ping\n")
    if read_all(s) != 5:
        raise SystemExit("no pong")
    s.close()
rate = connections / (time.perf_counter() - start)
s = connect()
start = time.perf_counter()
s.sendall(f"\x01bulk {bulk}\n".encode())
got = read_all(s)
mib = got / (1 << 20) / (time.perf_counter() - start)
if got != bulk << 20:
    raise SystemExit(f"bulk: {got} bytes")
print(f"{rate:.0f} {mib:.0f}")
