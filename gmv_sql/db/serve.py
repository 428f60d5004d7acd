"""`gmv db serve`: a TCP port in front of the database, for BI tools that cannot use a Unix socket.

For the embedded server it forwards to the server's own TCP listener on 127.0.0.1, where pg_hba.conf
asks every client for a SCRAM password (embedded.PG_HBA): forwarding to the Unix socket instead would
make every TCP client look like the account running gmv. It also reads each client's startup packet and
refuses superusers unless `--admin` is given, so the admin role is not reachable over TCP by default.
TLS and authentication stay PostgreSQL's own; bytes after the startup packet are passed through.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import signal
from collections.abc import Callable

from psycopg.conninfo import conninfo_to_dict

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
MAX_STARTUP_PACKET = 10_000  # PostgreSQL's own limit on a startup packet


def backend_address(url: str) -> tuple[str, str | int]:
    """('unix', socket path) or ('tcp', 'host:port') of the server behind a libpq URL."""
    params = conninfo_to_dict(url)
    host = params.get("host") or "/tmp"
    port = int(params.get("port") or 5432)
    if host.startswith("/"):
        return "unix", os.path.join(host, f".s.PGSQL.{port}")
    return "tcp", f"{host}:{port}"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def startup_params(packet: bytes) -> dict[str, str]:
    """The key/value pairs of a StartupMessage (length, protocol version, then NUL-separated pairs)."""
    parts = packet[8:].split(b"\0")
    return {
        k.decode("utf-8", "replace"): v.decode("utf-8", "replace")
        for k, v in zip(parts[0::2], parts[1::2], strict=False)
        if k
    }


def error_packet(message: str, sqlstate: str = "28000") -> bytes:
    """A FATAL ErrorResponse, which psql and drivers show as the reason the connection failed."""
    fields = b"SFATAL\0VFATAL\0C" + sqlstate.encode() + b"\0M" + message.encode() + b"\0\0"
    return b"E" + (len(fields) + 4).to_bytes(4, "big") + fields


async def _read_startup(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readexactly(4)
    length = int.from_bytes(head, "big")
    if not 8 <= length <= MAX_STARTUP_PACKET:
        raise ValueError(f"bad startup packet length {length}")
    return head + await reader.readexactly(length - 4)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def _serve(
    upstream: tuple[str, str | int], host: str, port: int, ready, refusal: Callable[[str], str | None]
) -> None:
    kind, target = upstream

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
        try:
            packet = await _read_startup(client_reader)
            code = int.from_bytes(packet[4:8], "big")
            while code in (SSL_REQUEST, GSSENC_REQUEST):
                up_writer.write(packet)
                await up_writer.drain()
                answer = await up_reader.readexactly(1)
                client_writer.write(answer)
                await client_writer.drain()
                if answer != b"N":
                    # The server speaks TLS/GSS (an external server): the startup packet is encrypted,
                    # so it passes through unread and that server's own rules apply.
                    packet = b""
                    break
                packet = await _read_startup(client_reader)
                code = int.from_bytes(packet[4:8], "big")
            if packet and code != CANCEL_REQUEST:
                user = startup_params(packet).get("user", "")
                reason = await asyncio.to_thread(refusal, user)
                if reason:
                    client_writer.write(error_packet(reason))
                    await client_writer.drain()
                    client_writer.close()
                    up_writer.close()
                    return
            if packet:
                up_writer.write(packet)
                await up_writer.drain()
        except (asyncio.IncompleteReadError, ValueError, ConnectionError):
            client_writer.close()
            up_writer.close()
            return
        await asyncio.gather(_pipe(client_reader, up_writer), _pipe(up_reader, client_writer))

    server = await asyncio.start_server(handle, host, port)
    # Ctrl-C and SIGTERM both end serving through the caller's clean-up (serve --admin removes the
    # admin's password then), also where a shell started us with SIGINT ignored.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or Windows
            pass
    ready(server.sockets[0].getsockname()[1])
    async with server:
        await stop.wait()


def serve(
    upstream: tuple[str, str | int],
    host: str,
    port: int,
    ready,
    refusal: Callable[[str], str | None] = lambda user: None,
) -> None:
    """Forward host:port to upstream (backend_address() form) until interrupted; ready(port) is called
    once listening; refusal(user) returns why a login is refused (sent to the client), or None."""
    try:
        asyncio.run(_serve(upstream, host, port, ready, refusal))
    except KeyboardInterrupt:
        pass
