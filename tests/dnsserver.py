"""A small authoritative DNS server on loopback for tests: UDP and TCP, records set from Python.

`add("example.com", "TXT", "v=spf1 -all")`; names that have no record at all answer NXDOMAIN,
names with records of other types answer NOERROR with no answer. `fail(name)` makes a name SERVFAIL
and `hang(name)` makes it never answer (a time-out).
"""

from __future__ import annotations

import asyncio
import struct
import threading
from collections import defaultdict

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


def _txt(value: str) -> str:
    data = value.encode()
    chunks = [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
    return " ".join('"' + c.decode().replace("\\", "\\\\").replace('"', '\\"') + '"' for c in chunks)


class DnsServer:
    def __init__(self, ttl: int = 300) -> None:
        self.ttl = ttl
        self.records: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        self.failing: set[str] = set()
        self.hanging: set[str] = set()
        self.queries: list[tuple[str, str]] = []
        self.decoy_first = False  # send a reply with another ID before each UDP answer
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._servers: list[asyncio.AbstractServer] = []
        self._transport: asyncio.DatagramTransport | None = None

    # ---- zone ------------------------------------------------------------------------------
    def add(self, name: str, rdtype: str, value: str) -> None:
        self.records[name.lower().rstrip(".")][rdtype.upper()].append(value)

    def fail(self, name: str) -> None:
        self.failing.add(name.lower().rstrip("."))

    def hang(self, name: str) -> None:
        self.hanging.add(name.lower().rstrip("."))

    def answer(self, wire: bytes) -> bytes | None:
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rdtype))
        if name in self.hanging:
            return None
        if name in self.failing:
            response.set_rcode(dns.rcode.SERVFAIL)
            return response.to_wire()
        entry = self.records.get(name)
        if not entry:
            response.set_rcode(dns.rcode.NXDOMAIN)
            return response.to_wire()
        owner = question.name
        for _ in range(8):  # an alias: the CNAME, then the target's records, as a recursive server answers
            if rdtype == "CNAME" or "CNAME" not in entry:
                break
            target = entry["CNAME"][0]
            response.answer.append(dns.rrset.from_text(owner, self.ttl, dns.rdataclass.IN, "CNAME", target))
            owner = dns.name.from_text(target)
            entry = self.records.get(target.lower().rstrip("."), {})
        values = entry.get(rdtype, [])
        if values:
            texts = [_txt(v) for v in values] if rdtype == "TXT" else values
            response.answer.append(dns.rrset.from_text(owner, self.ttl, dns.rdataclass.IN, rdtype, *texts))
        return response.to_wire(max_size=65535)

    # ---- serving ---------------------------------------------------------------------------
    def start(self) -> DnsServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        server = self

        class Udp(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport

            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                reply = server.answer(data)
                if reply is not None:
                    if len(reply) > 512 and b"\x00\x00\x29" not in data:  # no EDNS: truncate
                        query = dns.message.from_wire(data)
                        truncated = dns.message.make_response(query)
                        truncated.flags |= dns.flags.TC
                        reply = truncated.to_wire()
                    if server.decoy_first:
                        decoy = dns.message.from_wire(reply)
                        decoy.id ^= 0x5A5A
                        self.transport.sendto(decoy.to_wire(), addr)  # type: ignore[attr-defined]
                    self.transport.sendto(reply, addr)  # type: ignore[attr-defined]

        async def tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    size = struct.unpack("!H", await reader.readexactly(2))[0]
                    reply = server.answer(await reader.readexactly(size))
                    if reply is None:
                        await asyncio.sleep(3600)
                        return
                    writer.write(struct.pack("!H", len(reply)) + reply)
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        tcp_server = await asyncio.start_server(tcp, "127.0.0.1", 0)
        self.port = tcp_server.sockets[0].getsockname()[1]
        transport, _ = await self._loop.create_datagram_endpoint(Udp, local_addr=("127.0.0.1", self.port))
        self._transport = transport
        self._servers.append(tcp_server)

    def stop(self) -> None:
        async def _stop() -> None:
            for s in self._servers:
                s.close()
            if self._transport is not None:
                self._transport.close()

        asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
