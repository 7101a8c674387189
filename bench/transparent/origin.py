"""The benchmark's origin: a minimal HTTP/1.1 responder on [::]:80 (asyncio), answering every
request with a short body and closing when asked. Prints "ready" once it listens."""

import asyncio

BODY = b"ok\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"


async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            close = b"connection: close" in head.lower()
            writer.write(RESPONSE + (b"Connection: close\r\n" if close else b"") + b"\r\n" + BODY)
            await writer.drain()
            if close:
                break
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    writer.close()


async def main():
    server = await asyncio.start_server(handle, host="::", port=80, backlog=1024)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
