"""A stand-in for Microsoft's Edge read-aloud service, speaking its websocket protocol, for the real ``edge_tts``.

``edge_tts.Communicate`` connects to ``wss://speech.platform.bing.com/...`` (``edge_tts.constants.WSS_URL``),
sends a ``Path:speech.config`` and a ``Path:ssml`` text message, and reads back ``Path:turn.start``, ``Path:response``,
``Path:audio.metadata`` text messages, binary ``Path:audio`` messages (a 2-byte big-endian header length, the
headers, then mp3 bytes) and finally ``Path:turn.end``.  This server does the same over TLS on a local port:

- a test certificate authority signs a certificate for the service's host name; edge-tts's TLS context
  (``edge_tts.communicate._SSL_CTX``, built from certifi) is swapped for one that trusts it while the service runs;
- a resolver in the connector that :meth:`EdgeTTSService.synthesize` hands edge-tts sends the host name to the
  local port, so the request line, the query (token, ``Sec-MS-GEC``, connection id) and the headers are edge-tts's own.

Each connection follows the next step of a script: ``"speak"`` (the requested text, spoken by espeak-ng and encoded
to 24 kHz 48 kbit/s mono mp3 like the real service), ``"forbidden"`` (a 403 handshake, as when the
``Sec-MS-GEC`` token is refused), ``"silent"`` (a turn with no audio), ``"hang"`` (never answers) and ``"garbage"``
(a binary frame without headers).  When the script runs out, it speaks.
"""

from __future__ import annotations

import asyncio
import datetime
import io
import json
import re
import socket
import ssl
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from xml.sax.saxutils import unescape

import aiohttp
import av
import edge_tts.communicate
import edge_tts.typing
import edge_tts.voices
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hypotez.voice.tts import edge_synthesize

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["EdgeTTSService", "SpokenRequest", "Step", "mp3_of"]

HOST = "speech.platform.bing.com"
PATH = "/consumer/speech/synthesize/readaloud/edge/v1"
VOICES_PATH = "/consumer/speech/synthesize/readaloud/voices/list"

Step = Literal["speak", "forbidden", "silent", "hang", "garbage"]


@dataclass
class SpokenRequest:
    """What one connection asked for, as the service read it."""

    query: dict[str, str]
    headers: dict[str, str]
    config: str = ""
    ssml: str = ""
    voice: str = ""
    rate: str = ""
    pitch: str = ""
    text: str = ""


def mp3_of(text: str, *, espeak: str = "espeak-ng") -> bytes:
    """``text`` spoken by espeak-ng, as the service's mp3 (24 kHz, mono, 48 kbit/s)."""
    wav = subprocess.run(
        [espeak, "--stdout", "--stdin", "-v", "en-us"], input=text.encode(), capture_output=True, check=True
    ).stdout
    out = io.BytesIO()
    with av.open(out, "w", format="mp3") as output, av.open(io.BytesIO(wav), mode="r") as source:
        stream = output.add_stream("libmp3lame", rate=24_000, layout="mono")
        stream.bit_rate = 48_000
        resampler = av.AudioResampler(format="s16p", layout="mono", rate=24_000)
        for frame in source.decode(audio=0):
            for resampled in resampler.resample(frame):
                output.mux(stream.encode(resampled))
        for resampled in resampler.resample(None):
            output.mux(stream.encode(resampled))
        output.mux(stream.encode(None))
    return out.getvalue()


def _certificates(directory: Path) -> tuple[Path, Path, str]:
    """A CA and a server certificate for HOST signed by it: (cert file, key file, CA PEM)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hypotez test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = directory / "server.pem", directory / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file, ca.public_bytes(serialization.Encoding.PEM).decode()


class _LocalResolver(AbstractResolver):
    """Resolves the service's host name to the local server; nothing else resolves."""

    def __init__(self, port: int) -> None:
        self.port = port

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host != HOST:
            raise OSError(f"{host} cannot be reached from the tests")
        return [ResolveResult(hostname=host, host="127.0.0.1", port=self.port, family=socket.AF_INET, proto=0, flags=0)]

    async def close(self) -> None:
        return None


class _SharedConnector(aiohttp.TCPConnector):
    """A connector that outlives the sessions edge-tts opens on it.

    ``Communicate`` answers a 403 by opening a second session on the same connector, but the first session closes
    a connector it was given, so the retry would fail with "Session is closed".  (The product passes no connector:
    each session makes its own.)  ``finish`` closes it for real.
    """

    async def close(self, *, abort_ssl: bool = False) -> None:
        return None

    async def finish(self) -> None:
        await super().close()


def _frame(path: str, request_id: str, body: str, content_type: str = "application/json; charset=utf-8") -> str:
    return f"X-RequestId:{request_id}\r\nContent-Type:{content_type}\r\nPath:{path}\r\n\r\n{body}"


def _audio_frame(request_id: str, audio: bytes, *, content_type: bool = True) -> bytes:
    headers = f"X-RequestId:{request_id}\r\n"
    if content_type:
        headers += "Content-Type:audio/mpeg\r\n"
    headers += f"X-StreamId:{uuid.uuid4().hex.upper()}\r\nPath:audio\r\n"
    encoded = headers.encode()
    return len(encoded).to_bytes(2, "big") + encoded + audio


def _ssml_body(message: str) -> str:
    return message.split("\r\n\r\n", 1)[1] if "\r\n\r\n" in message else ""


@dataclass
class EdgeTTSService:
    """The service on a local TLS port; use as ``async with EdgeTTSService() as service``."""

    espeak: str = "espeak-ng"
    chunk_size: int = 4096
    requests: list[SpokenRequest] = field(default_factory=list[SpokenRequest])
    connections: int = 0
    _script: list[Step] = field(default_factory=list[Step])
    _runner: web.AppRunner | None = None
    _port: int = 0
    _tempdir: tempfile.TemporaryDirectory[str] | None = None
    #: What the voice list endpoint answers (``edge_tts.list_voices``); ``None``: a 500.
    voice_list: list[dict[str, object]] | None = field(default_factory=list[dict[str, object]])
    voice_list_requests: int = 0
    _saved_ssl: tuple[ssl.SSLContext, ssl.SSLContext] | None = None

    def script(self, *steps: Step) -> None:
        """What the next connections do, in order."""
        self._script.extend(steps)

    async def synthesize(self, text: str, voice: str, rate: str, pitch: str, /) -> bytes:
        """The real ``edge_synthesize`` (and ``edge_tts.Communicate``) against this service."""
        connector = _SharedConnector(resolver=_LocalResolver(self._port))
        try:
            return await edge_synthesize(text, voice, rate, pitch, connector=connector)
        finally:
            await connector.finish()

    async def __aenter__(self) -> EdgeTTSService:
        self._tempdir = tempfile.TemporaryDirectory()
        cert_file, key_file, ca_pem = _certificates(Path(self._tempdir.name))
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ctx.load_cert_chain(cert_file, key_file)
        client_ctx = ssl.create_default_context(cadata=ca_pem)
        self._saved_ssl = (
            edge_tts.communicate._SSL_CTX,  # pyright: ignore[reportPrivateUsage]
            edge_tts.voices._SSL_CTX,  # pyright: ignore[reportPrivateUsage]
        )
        edge_tts.communicate._SSL_CTX = client_ctx  # pyright: ignore[reportPrivateUsage]
        edge_tts.voices._SSL_CTX = client_ctx  # pyright: ignore[reportPrivateUsage]

        app = web.Application()
        app.router.add_get(PATH, self._handle)
        app.router.add_get(VOICES_PATH, self._voices)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock, ssl_context=server_ctx).start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._saved_ssl is not None:
            edge_tts.communicate._SSL_CTX, edge_tts.voices._SSL_CTX = self._saved_ssl  # pyright: ignore[reportPrivateUsage]
        if self._tempdir is not None:
            self._tempdir.cleanup()

    async def list_voices(self) -> list[edge_tts.typing.Voice]:
        """The real ``edge_tts.list_voices`` against this service."""
        connector = _SharedConnector(resolver=_LocalResolver(self._port))
        try:
            return await edge_tts.list_voices(connector=connector)
        finally:
            await connector.finish()

    async def _voices(self, request: web.Request) -> web.Response:
        self.voice_list_requests += 1
        if "trustedclienttoken" not in request.query or "Sec-MS-GEC" not in request.query:
            return web.Response(status=403)
        if self.voice_list is None:
            return web.Response(status=500, text="Internal Server Error")
        return web.json_response(self.voice_list)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.connections += 1
        step: Step = self._script.pop(0) if self._script else "speak"
        spoken = SpokenRequest(query=dict(request.query), headers=dict(request.headers))
        self.requests.append(spoken)
        if step == "forbidden":
            return web.Response(status=403, text="Forbidden")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        if step == "hang":
            async for _ in ws:
                pass
            return ws
        messages: list[str] = []
        while len(messages) < 2:
            message = await ws.receive()
            if message.type != aiohttp.WSMsgType.TEXT:
                return ws
            messages.append(str(message.data))
        spoken.config, spoken.ssml = messages
        self._read_ssml(spoken)
        request_id = uuid.uuid4().hex
        await ws.send_str(_frame("turn.start", request_id, '{"context":{"serviceTag":"test"}}'))
        if step == "garbage":
            await ws.send_bytes(b"\x00")
        elif step == "speak":
            await ws.send_str(_frame("response", request_id, '{"context":{"serviceTag":"test"}}'))
            audio = await asyncio.to_thread(mp3_of, spoken.text, espeak=self.espeak)
            boundary = {"Text": spoken.text, "Length": len(spoken.text), "BoundaryType": "SentenceBoundary"}
            data = {"Offset": 1_000_000, "Duration": 10_000_000, "text": boundary}
            metadata = json.dumps({"Metadata": [{"Type": "SentenceBoundary", "Data": data}]})
            await ws.send_str(_frame("audio.metadata", request_id, metadata))
            for start in range(0, len(audio), self.chunk_size):
                await ws.send_bytes(_audio_frame(request_id, audio[start : start + self.chunk_size]))
            await ws.send_bytes(_audio_frame(request_id, b"", content_type=False))
        await ws.send_str(_frame("turn.end", request_id, "{}"))
        await ws.close()
        return ws

    @staticmethod
    def _read_ssml(spoken: SpokenRequest) -> None:
        body = _ssml_body(spoken.ssml)
        voice = re.search(r"<voice name='([^']*)'>", body)
        prosody = re.search(r"<prosody pitch='([^']*)' rate='([^']*)'[^>]*>(.*)</prosody>", body, re.DOTALL)
        spoken.voice = voice[1] if voice else ""
        if prosody:
            spoken.pitch, spoken.rate, spoken.text = prosody[1], prosody[2], unescape(prosody[3])
