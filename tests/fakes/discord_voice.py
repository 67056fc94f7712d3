"""A loopback stand-in for Discord's voice servers: the voice gateway websocket (v8) and the UDP voice server.

It follows Discord's documented voice connection flow (developer docs, "Voice Connections"):

1. the client opens ``wss://{endpoint}/?v=8``; the server sends HELLO (op 8, ``heartbeat_interval``);
2. the client sends IDENTIFY (op 0: ``server_id``, ``user_id``, ``session_id``, ``token``,
   ``max_dave_protocol_version``); a wrong session or token closes the socket with 4004;
3. the server sends READY (op 2: ``ssrc``, ``ip``, ``port``, ``modes``);
4. the client discovers its address over UDP (request type 0x1 / 74-byte response type 0x2: length 70, SSRC,
   null-padded 64-byte address, big-endian port) and sends SELECT_PROTOCOL (op 1) with one of the offered modes; any
   other mode closes the socket with 4016;
5. the server sends SESSION_DESCRIPTION (op 4: ``mode``, ``secret_key`` as 32 integers,
   ``dave_protocol_version``);
6. heartbeats (op 3 with ``t`` and ``seq_ack``) are answered with HEARTBEAT_ACK (op 6); every server message
   carries ``seq`` (v8), which ``seq_ack`` must echo; SPEAKING (op 5) is recorded;
7. RTP arrives on UDP: a 12-byte header (payload type 0x78, sequence, timestamp, SSRC), the AEAD ciphertext
   and a 4-byte nonce suffix; for the ``*_rtpsize`` modes the header is the additional data and the nonce is
   the suffix padded with zeros to 12 (AES-GCM) or 24 (XChaCha20) bytes.

Only the AEAD modes are offered (Discord removed the xsalsa20 modes in November 2024).  The fake never offers DAVE
(``dave_protocol_version`` 0): DAVE's MLS group needs Discord's external sender, which cannot be reproduced
honestly offline; the live smoke test covers it.

The websocket is served over TLS (hikari builds ``wss://`` from the endpoint Discord gives), with a self-signed
certificate for 127.0.0.1 that the test trusts through ``SSL_CERT_FILE``.  One REST route stands in for
``GET /guilds/{id}``, which hikari-wave calls while connecting.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import json
import secrets
import socket
import ssl
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import av
import numpy as np
from aiohttp import WSMsgType, web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

from tests.fakes._server import LocalServer

if TYPE_CHECKING:
    from pathlib import Path

AEAD_MODES = ("aead_aes256_gcm_rtpsize", "aead_xchacha20_poly1305_rtpsize")
OPUS_SILENCE = b"\xf8\xff\xfe"
SAMPLE_RATE = 48_000


@dataclass(frozen=True)
class RtpPacket:
    """One datagram as it arrived, split along the rtpsize layout."""

    raw: bytes
    version: int
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    header: bytes  # the additional authenticated data
    ciphertext: bytes  # includes the 16-byte tag
    nonce: bytes  # the 4-byte suffix


@dataclass
class Script:
    """How the fake misbehaves, if at all."""

    #: Close the gateway with this code right after IDENTIFY (e.g. 4017: DAVE required).
    close_after_identify: int | None = None
    #: Close the gateway with this code right after SELECT_PROTOCOL (e.g. 4016: unknown encryption mode).
    close_after_select: int | None = None
    modes: tuple[str, ...] = AEAD_MODES


@dataclass
class GatewaySession:
    """What one voice gateway connection saw."""

    query: dict[str, str]
    identify: dict[str, Any] | None = None
    select_protocol: dict[str, Any] | None = None
    heartbeats: list[dict[str, Any]] = field(default_factory=list)
    speaking: list[dict[str, Any]] = field(default_factory=list)
    sent_seq: int = 0
    closed_with: int | None = None


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "voice.discord.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "voice-cert.pem"
    key_path = directory / "voice-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, fake: FakeDiscordVoice) -> None:
        self.fake = fake
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.DatagramTransport", transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        # Documented as 74 bytes; hikari-wave 0.7.0a1 sends 78 (70 zero bytes after the SSRC), which Discord accepts.
        if len(data) >= 74 and struct.unpack_from(">H", data, 0)[0] == 0x1:
            (length, ssrc) = struct.unpack_from(">HI", data, 2)
            self.fake.discoveries.append((length, ssrc))
            address = addr[0].encode("ascii").ljust(64, b"\x00")
            assert self.transport is not None
            self.transport.sendto(struct.pack(">HHI", 0x2, 70, ssrc) + address + struct.pack(">H", addr[1]), addr)
            return
        self.fake.receive_rtp(data)


class FakeDiscordVoice(LocalServer):
    """Discord's voice gateway and voice server on 127.0.0.1."""

    def __init__(self, directory: Path, *, script: Script | None = None, ssrc: int = 0x1234) -> None:
        self.directory = directory
        self.script = script or Script()
        self.ssrc = ssrc
        self.secret_key = secrets.token_bytes(32)
        self.heartbeat_interval_ms = 500
        #: What IDENTIFY must carry; the test sets these to what it dispatched in the gateway events.
        self.expected_session_id: str | None = None
        self.expected_token: str | None = None
        self.sessions: list[GatewaySession] = []
        self.discoveries: list[tuple[int, int]] = []
        self.packets: list[RtpPacket] = []
        self.guilds_fetched: list[str] = []
        self._sockets: set[web.WebSocketResponse] = set()
        self._runner: web.AppRunner | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._packet_event = asyncio.Event()
        self.ws_port = 0
        self.rest_port = 0
        self.udp_port = 0
        self.ca_file, self._key_file = _self_signed(directory)

    # --- lifecycle ---

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/", self._gateway)
        app.router.add_get("/api/v10/guilds/{guild_id}", self._guild)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.ca_file, self._key_file)
        ws_sock = _bound_socket()
        rest_sock = _bound_socket()
        self.ws_port = ws_sock.getsockname()[1]
        self.rest_port = rest_sock.getsockname()[1]
        await web.SockSite(self._runner, ws_sock, ssl_context=context).start()
        await web.SockSite(self._runner, rest_sock).start()
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _Udp(self), local_addr=("127.0.0.1", 0))
        self._udp = transport
        self.udp_port = transport.get_extra_info("sockname")[1]

    async def close(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._udp is not None:
            self._udp.close()

    @property
    def endpoint(self) -> str:
        """What VOICE_SERVER_UPDATE carries (Discord sends it without a scheme)."""
        return f"127.0.0.1:{self.ws_port}"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}/api/v10"

    # --- Discord closing a live connection ---

    async def disconnect_all(self, code: int) -> None:
        """Close every open voice gateway socket with ``code`` (e.g. 4014: kicked or channel deleted)."""
        for ws in list(self._sockets):
            await ws.close(code=code, message=b"closed by the test")
        for session in self.sessions:
            if session.closed_with is None:
                session.closed_with = code

    # --- REST ---

    async def _guild(self, request: web.Request) -> web.Response:
        guild_id = request.match_info["guild_id"]
        self.guilds_fetched.append(guild_id)
        return web.json_response(guild_payload(guild_id))

    # --- the voice gateway ---

    async def _send(self, ws: web.WebSocketResponse, session: GatewaySession, op: int, d: dict[str, Any]) -> None:
        session.sent_seq += 1
        await ws.send_str(json.dumps({"op": op, "d": d, "seq": session.sent_seq}))

    async def _close(self, ws: web.WebSocketResponse, session: GatewaySession, code: int) -> None:
        session.closed_with = code
        await ws.close(code=code, message=b"closed by the fake voice gateway")

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        session = GatewaySession(query=dict(request.query))
        self.sessions.append(session)
        self._sockets.add(ws)
        try:
            await ws.send_str(json.dumps({"op": 8, "d": {"heartbeat_interval": self.heartbeat_interval_ms}}))
            async for message in ws:
                if message.type is not WSMsgType.TEXT:
                    continue
                payload = json.loads(message.data)
                op, d = payload.get("op"), payload.get("d") or {}
                if op == 0:
                    session.identify = d
                    if (self.expected_session_id and d.get("session_id") != self.expected_session_id) or (
                        self.expected_token and d.get("token") != self.expected_token
                    ):
                        await self._close(ws, session, 4004)
                        break
                    if self.script.close_after_identify is not None:
                        await self._close(ws, session, self.script.close_after_identify)
                        break
                    await self._send(
                        ws,
                        session,
                        2,
                        {"ssrc": self.ssrc, "ip": "127.0.0.1", "port": self.udp_port, "modes": list(self.script.modes)},
                    )
                elif op == 1:
                    session.select_protocol = d
                    mode = (d.get("data") or {}).get("mode")
                    if mode not in self.script.modes:
                        await self._close(ws, session, 4016)
                        break
                    if self.script.close_after_select is not None:
                        await self._close(ws, session, self.script.close_after_select)
                        break
                    await self._send(
                        ws,
                        session,
                        4,
                        {"mode": mode, "secret_key": list(self.secret_key), "dave_protocol_version": 0},
                    )
                elif op == 3:
                    session.heartbeats.append(d)
                    await self._send(ws, session, 6, {"t": d.get("t")})
                elif op == 5:
                    session.speaking.append(d)
        finally:
            self._sockets.discard(ws)
        return ws

    # --- RTP ---

    def receive_rtp(self, data: bytes) -> None:
        if len(data) < 12 + 16 + 4:
            return
        first = data[0]
        header_size = 12 + 4 * (first & 0x0F)
        if first & 0x10:
            header_size += 4  # rtpsize: the extension's 4-byte header is authenticated, its body encrypted
        sequence, timestamp, ssrc = struct.unpack_from(">HII", data, 2)
        self.packets.append(
            RtpPacket(
                raw=data,
                version=first >> 6,
                payload_type=data[1] & 0x7F,
                sequence=sequence,
                timestamp=timestamp,
                ssrc=ssrc,
                header=data[:header_size],
                ciphertext=data[header_size:-4],
                nonce=data[-4:],
            )
        )
        self._packet_event.set()

    async def wait_for_packets(self, count: int, within: float = 30.0) -> None:
        async with asyncio.timeout(within):
            while len(self.packets) < count:
                self._packet_event.clear()
                await self._packet_event.wait()

    @property
    def mode(self) -> str | None:
        for session in reversed(self.sessions):
            if session.select_protocol:
                return (session.select_protocol.get("data") or {}).get("mode")
        return None

    def repeated_nonces(self) -> dict[bytes, int]:
        """Nonce suffixes that sealed more than one packet (with this session's key), and how often."""
        counts: dict[bytes, int] = {}
        for packet in self.packets:
            counts[packet.nonce] = counts.get(packet.nonce, 0) + 1
        return {nonce: n for nonce, n in counts.items() if n > 1}

    def open(self, packet: RtpPacket) -> bytes:
        """Authenticate and decrypt one packet with the session key; raises if it does not authenticate."""
        mode = self.mode
        if mode == "aead_aes256_gcm_rtpsize":
            plain = AESGCM(self.secret_key).decrypt(packet.nonce + bytes(8), packet.ciphertext, packet.header)
        elif mode == "aead_xchacha20_poly1305_rtpsize":
            from nacl.bindings import crypto_aead_xchacha20poly1305_ietf_decrypt

            plain = crypto_aead_xchacha20poly1305_ietf_decrypt(
                packet.ciphertext, packet.header, packet.nonce + bytes(20), self.secret_key
            )
        else:
            msg = f"no AEAD mode was selected ({mode!r})"
            raise AssertionError(msg)
        if packet.raw[0] & 0x10:
            (words,) = struct.unpack_from(">H", packet.header, len(packet.header) - 2)
            plain = plain[4 * words :]
        return plain

    def opus_frames(self) -> list[bytes]:
        """Every packet's Opus payload, in sequence order (each authenticated)."""
        return [self.open(p) for p in sorted(self.packets, key=lambda p: p.sequence)]


def decode_opus(frames: list[bytes]) -> np.ndarray[Any, np.dtype[np.float32]]:
    """What a listener hears: the frames decoded with PyAV's Opus decoder, mono float at 48 kHz."""
    decoder: Any = av.CodecContext.create("opus", "r")
    decoder.sample_rate = SAMPLE_RATE
    decoder.layout = "stereo"
    chunks: list[np.ndarray[Any, np.dtype[np.float32]]] = []
    for frame in frames:
        for decoded in decoder.decode(av.Packet(frame)):
            samples = decoded.to_ndarray().astype(np.float32)
            if decoded.format.name.startswith("s16"):
                samples /= 32768.0
            if not decoded.format.is_planar:
                samples = samples.reshape(-1, decoded.layout.nb_channels).T
            chunks.append(samples.mean(axis=0))
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)


def guild_payload(guild_id: str) -> dict[str, Any]:
    """A documented Guild object (GET /guilds/{id}?with_counts=true)."""
    return {
        "id": guild_id,
        "name": "Voice test server",
        "icon": None,
        "splash": None,
        "discovery_splash": None,
        "owner_id": "1",
        "afk_channel_id": None,
        "afk_timeout": 300,
        "widget_enabled": False,
        "widget_channel_id": None,
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "roles": [],
        "emojis": [],
        "stickers": [],
        "features": [],
        "mfa_level": 0,
        "application_id": None,
        "system_channel_id": None,
        "system_channel_flags": 0,
        "rules_channel_id": None,
        "max_presences": None,
        "max_members": 500000,
        "vanity_url_code": None,
        "description": None,
        "banner": None,
        "premium_tier": 0,
        "premium_subscription_count": 0,
        "preferred_locale": "en-US",
        "public_updates_channel_id": None,
        "max_video_channel_users": 25,
        "max_stage_video_channel_users": 50,
        "approximate_member_count": 2,
        "approximate_presence_count": 2,
        "nsfw_level": 0,
        "premium_progress_bar_enabled": False,
        "safety_alerts_channel_id": None,
        "incidents_data": None,
    }


def _bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.set_inheritable(False)
    return sock


__all__ = [
    "AEAD_MODES",
    "OPUS_SILENCE",
    "FakeDiscordVoice",
    "GatewaySession",
    "RtpPacket",
    "Script",
    "decode_opus",
    "guild_payload",
]
