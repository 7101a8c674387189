"""The benchmark's origin: a minimal HTTP/1.1 responder on port 80 (IPv4 and IPv6) (asyncio), answering every
request with a short body and closing when asked, and `GET /bulk` with BULK_MB MiB (the first
argument, default 256) of zeros. With a certificate and key (the second and third arguments),
the same over TLS on port 443. Prints "ready" once it listens."""

import asyncio
import ssl
import sys

BULK_MB = int(sys.argv[1]) if len(sys.argv) > 1 else 256
CHUNK = bytes(1 << 20)

BODY = b"ok\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"


async def send_bulk(writer):
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (BULK_MB << 20))
    for _ in range(BULK_MB):
        writer.write(CHUNK)
        await writer.drain()


async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            close = b"connection: close" in head.lower()
            if head.startswith(b"GET /bulk "):
                await send_bulk(writer)
                continue
            writer.write(RESPONSE + (b"Connection: close\r\n" if close else b"") + b"\r\n" + BODY)
            await writer.drain()
            if close:
                break
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    writer.close()


async def main():
    # host=None: every family (asyncio sets IPV6_V6ONLY on a "::" socket, which left IPv4 out).
    server = await asyncio.start_server(handle, host=None, port=80, backlog=1024)
    servers = [server]
    if len(sys.argv) > 3:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(sys.argv[2], sys.argv[3])
        servers.append(
            await asyncio.start_server(handle, host=None, port=443, backlog=1024, ssl=tls)
        )
    print("ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


asyncio.run(main())
