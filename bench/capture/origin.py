r"""The capture bench's origin: `\x01ping` is answered `pong` (then the connection closes),
`\x01bulk N` gets N MiB. Binary, not text: a captured connection whose first bytes look like an
HTTP request line is served as HTTP. asyncio, one thread: a new connection costs it little."""
import asyncio
import sys

CHUNK = b"x" * (1 << 20)


async def serve(reader, writer):
    line = (await reader.readline()).lstrip(b"\x01")
    if line.startswith(b"bulk"):
        for _ in range(int(line.split()[1])):
            writer.write(CHUNK)
            await writer.drain()
    else:
        writer.write(b"pong\n")
    await writer.drain()
    writer.close()


async def main():
    server = await asyncio.start_server(serve, sys.argv[1], int(sys.argv[2]), backlog=1024)
    async with server:
        await server.serve_forever()


asyncio.run(main())
