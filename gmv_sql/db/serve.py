"""`gmv db serve`: a localhost TCP port in front of the database, for BI tools that cannot use a Unix socket.

The embedded server listens only on a Unix socket (no network exposure by default); this forwards
bytes between TCP clients and that socket, so authentication and TLS stay PostgreSQL's own.
"""

from __future__ import annotations

import asyncio
import os

from psycopg.conninfo import conninfo_to_dict


def backend_address(url: str) -> tuple[str, str | int]:
    """('unix', socket path) or ('tcp', 'host:port') of the server behind a libpq URL."""
    params = conninfo_to_dict(url)
    host = params.get("host") or "/tmp"
    port = int(params.get("port") or 5432)
    if host.startswith("/"):
        return "unix", os.path.join(host, f".s.PGSQL.{port}")
    return "tcp", f"{host}:{port}"


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def _serve(url: str, host: str, port: int, ready) -> None:
    kind, target = backend_address(url)

    async def handle(client_reader, client_writer):
        try:
            if kind == "unix":
                up_reader, up_writer = await asyncio.open_unix_connection(target)
            else:
                up_host, up_port = str(target).rsplit(":", 1)
                up_reader, up_writer = await asyncio.open_connection(up_host, int(up_port))
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(_pipe(client_reader, up_writer), _pipe(up_reader, client_writer))

    server = await asyncio.start_server(handle, host, port)
    ready(server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


def serve(url: str, host: str, port: int, ready) -> None:
    """Forward host:port to the database until interrupted; ready(port) is called once listening."""
    try:
        asyncio.run(_serve(url, host, port, ready))
    except KeyboardInterrupt:
        pass
