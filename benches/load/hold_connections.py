"""Opens N keep-alive connections, sends one request on each, keeps them open, and
touches READY_FILE once they are all established; runs until killed."""
import asyncio
import sys

host, port, count, ready = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

async def hold(index, held):
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET /held/{index} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
    await writer.drain()
    await reader.readuntil(b"\r\n\r\n")
    held.append(writer)

async def main():
    held = []
    for start in range(0, count, 500):
        await asyncio.gather(*(hold(i, held) for i in range(start, min(start + 500, count))))
    open(ready, "w").close()
    await asyncio.sleep(3600)

asyncio.run(main())
