"""A remote Docker Engine over mutual TLS, made of the machine's own engine: what `dockerd --tlsverify`
is to a client, on 127.0.0.1, without touching the daemon.

`Pki` issues throwaway certificates as an operator would for a remote engine (a CA, a server certificate
for 127.0.0.1, a client certificate), and a stranger's CA with a client certificate of its own.
`TlsEngine` listens on a free port, demands a client certificate signed by the CA (as Docker's
--tlsverify does), and pipes each accepted connection's bytes both ways to the engine's unix socket. It
is a plain byte pipe, so streamed and hijacked responses (logs, wait, attach) pass as they come; and it
records what crossed the wire: who was let in, whose handshake was refused and why, and each request
line.

One difference from dockerd a reader may meet: OpenSSL sends the CA along with the server's certificate
(it completes the chain from its trust store), so a client given the wrong CA reads "self-signed
certificate in certificate chain" where Go's engine makes it "unable to get local issuer certificate".
"""

from __future__ import annotations

import bisect
import contextlib
import datetime
import ipaddress
import itertools
import re
import selectors
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ENGINE_SOCKET = "/var/run/docker.sock"
REQUEST_LINE = re.compile(rb"(GET|HEAD|POST|PUT|DELETE) (/[^ ?]*)\S* HTTP/1\.[01]\r\n")
API_VERSION = re.compile(r"^/v[0-9.]+")
HANDSHAKE_SECONDS = 10.0
CHUNK = 1 << 16


@dataclass(frozen=True)
class Credentials:
    """A certificate and its key, as PEM files."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    """The files of a remote engine's TLS, as an operator hands them to tierbot."""

    ca: Path  # what signed the engine's and the client's certificates
    server: Credentials  # the engine's, for 127.0.0.1
    client: Credentials  # tierbot's, signed by `ca`
    stranger_ca: Path  # another CA, which signed nothing of the engine's
    stranger: Credentials  # a client certificate of the other CA's

    @classmethod
    def issue(cls, directory: Path) -> Pki:
        directory.mkdir(parents=True, exist_ok=True)
        ca_key, ca_cert = _authority("tierbot test engine CA")
        stranger_key, stranger_cert = _authority("someone else's CA")
        return cls(
            ca=_write_cert(directory / "ca.pem", ca_cert),
            server=_leaf(directory, "server", ca_key, ca_cert, ExtendedKeyUsageOID.SERVER_AUTH),
            client=_leaf(directory, "client", ca_key, ca_cert, ExtendedKeyUsageOID.CLIENT_AUTH),
            stranger_ca=_write_cert(directory / "stranger-ca.pem", stranger_cert),
            stranger=_leaf(
                directory, "stranger", stranger_key, stranger_cert, ExtendedKeyUsageOID.CLIENT_AUTH
            ),
        )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(subject: str, issuer: x509.Name, key: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )


def _authority(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    cert = (
        _builder(common_name, _name(common_name), key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _leaf(
    directory: Path,
    role: str,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    purpose: x509.ObjectIdentifier,
) -> Credentials:
    """A certificate for `role` (its common name, `tierbot-<role>`), signed by the CA; the server's names
    127.0.0.1, which is what the client checks against the address it dialled."""
    key = ec.generate_private_key(ec.SECP256R1())
    authority = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    builder = (
        _builder(f"tierbot-{role}", ca_cert.subject, key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
        .add_extension(authority, critical=False)
    )
    if purpose == ExtendedKeyUsageOID.SERVER_AUTH:
        names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    key_path = directory / f"{role}-key.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    return Credentials(
        _write_cert(directory / f"{role}.pem", builder.sign(ca_key, hashes.SHA256())), key_path
    )


def _write_cert(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


class TlsEngine:
    """The engine behind `socket_path`, served on 127.0.0.1 over mutual TLS. `start`/`stop`, or `with`."""

    def __init__(self, pki: Pki, socket_path: str = ENGINE_SOCKET):
        self._socket_path = socket_path
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca))
        self._context.load_cert_chain(pki.server.cert, pki.server.key)
        self._context.verify_mode = ssl.CERT_REQUIRED  # --tlsverify: no certificate of the CA's, no entry
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._admitted: list[str] = []  # the client certificate's common name, per connection let in
        self._refused: list[str] = []  # why, per handshake that failed
        self._sent: list[_Sent] = []  # what each admitted client sent to the engine
        self._arrivals = itertools.count()  # orders what arrived on different connections
        self._open: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._acceptor = threading.Thread(target=self._accept, daemon=True, name="tls-engine")

    @property
    def docker_host(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def start(self) -> TlsEngine:
        self._acceptor.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept
        self._listener.close()
        self._acceptor.join(timeout=5)
        with self._lock:
            still_open = list(self._open)
        for sock in still_open:  # connections a client kept alive end with the engine
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> TlsEngine:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- what crossed the wire ----------------------------------------------------------------------

    @property
    def admitted(self) -> list[str]:
        with self._lock:
            return list(self._admitted)

    @property
    def refused(self) -> list[str]:
        with self._lock:
            return list(self._refused)

    def wait_refused(self, count: int, seconds: float = 5.0) -> list[str]:
        """The refusals, once there are `count` of them or `seconds` have passed: the engine's side of a
        handshake may end after the client has already given up."""
        deadline = time.monotonic() + seconds
        while len(self.refused) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.refused

    def requests(self) -> list[tuple[str, str]]:
        """(method, path) of each request admitted clients made, in the order they arrived on all
        connections, without the API version and the query: ("POST", "/containers/create")."""
        with self._lock:
            arrived = [request for sent in self._sent for request in sent.requests()]
        return [request for _arrival, request in sorted(arrived)]

    def forget(self) -> None:
        """Record afresh: what a test did before is not what it asserts on."""
        with self._lock:
            self._admitted.clear()
            self._refused.clear()
            self._sent.clear()

    # -- serving: a thread that accepts, and one per connection ---------------------------------------

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return  # stopped
            threading.Thread(target=self._connection, args=(raw,), daemon=True, name="tls-conn").start()

    def _connection(self, raw: socket.socket) -> None:
        """The handshake, as blocking OpenSSL does it (so a refused client gets the alert, as Go's server
        sends one), then the pipe, in this one thread: one OpenSSL object is never used by two."""
        raw.settimeout(HANDSHAKE_SECONDS)
        try:
            client = self._context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            with self._lock:
                self._refused.append(getattr(exc, "reason", None) or type(exc).__name__)
            raw.close()
            return
        subject = dict(pair[0] for pair in client.getpeercert()["subject"])
        sent = _Sent(self._arrivals, self._lock)
        with self._lock:
            self._admitted.append(subject["commonName"])
            self._sent.append(sent)
        try:
            engine = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            engine.connect(self._socket_path)
        except OSError:
            client.close()
            return
        with self._lock:
            self._open.update((client, engine))
        try:
            _pipe(client, engine, sent)
        finally:
            with self._lock:
                self._open.difference_update((client, engine))
            for sock in (client, engine):
                with contextlib.suppress(OSError):
                    sock.close()


class _Sent:
    """What one client sent, each chunk stamped with when it arrived among all connections' chunks."""

    def __init__(self, arrivals: itertools.count, lock: threading.Lock):
        self._arrivals, self._lock = arrivals, lock
        self._data = bytearray()
        self._ends: list[int] = []  # where each chunk ends in `_data`
        self._stamps: list[int] = []

    def add(self, chunk: bytes) -> None:
        with self._lock:
            self._data += chunk
            self._ends.append(len(self._data))
            self._stamps.append(next(self._arrivals))

    def requests(self) -> list[tuple[int, tuple[str, str]]]:
        """Each request line, stamped with the arrival of the chunk that completed it (under the lock)."""
        found = []
        for match in REQUEST_LINE.finditer(self._data):
            arrival = self._stamps[bisect.bisect_left(self._ends, match.end())]
            path = API_VERSION.sub("", match[2].decode())
            found.append((arrival, (match[1].decode(), path)))
        return found


def _pipe(client: ssl.SSLSocket, engine: socket.socket, sent: _Sent) -> None:
    """Bytes both ways until either side closes: an HTTP client or engine that closes its end is done
    with the connection (TLS has no half-close to honour). What OpenSSL has already decrypted is not
    on the socket any more, so it is drained (`pending`) before waiting for more."""
    client.settimeout(None)
    with selectors.DefaultSelector() as selector:
        selector.register(client, selectors.EVENT_READ)
        selector.register(engine, selectors.EVENT_READ)
        while True:
            ready = [key.fileobj for key, _ in selector.select()]
            try:
                if client in ready:
                    data = client.recv(CHUNK)
                    while data and client.pending():
                        data += client.recv(client.pending())
                    if not data:
                        return
                    sent.add(data)
                    engine.sendall(data)
                if engine in ready:
                    data = engine.recv(CHUNK)
                    if not data:
                        return
                    client.sendall(data)
            except OSError:  # ssl.SSLError is one: a side went away
                return
