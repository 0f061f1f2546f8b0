"""A Docker tier's own options (`backend_options` in the tiers file), its engine, and whether it can run.

The tiers file stays backend-neutral (`bot.tiers`): each backend reads and checks its own options. A
docker tier says which engine runs it (`docker_host`, with TLS for a remote one; the SDK's usual
`DOCKER_HOST` when unset), which image runs repositories without a Dockerfile (`image`, an operator's
base with Python), and how the container is confined (`network`, `shm_size`, `pids_limit`, `tmp_size`).

Nothing here imports the docker SDK at module level: `missing` runs at start for every tier, in
installations that may not have the `tierbot[docker]` extra, and must answer in a moment either way.
"""

from __future__ import annotations

import os
import re
import ssl
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.errors import TierbotError
from bot.settings import Settings
from bot.tiers import Tier
from bot.units import format_size, parse_size

if TYPE_CHECKING:
    import docker

LABEL_RUN = "tierbot.run"
LABEL_INSTANCE = "tierbot.instance"
PING_SECONDS = 3.0  # `missing` must stay quick even when a remote engine is down
NOT_INSTALLED = "the docker Python package is not installed (pip install 'tierbot[docker]')"
# The alerts an engine sends a client whose certificate it refuses: OpenSSL's (unknown ca), Go's (bad
# certificate; certificate required, in TLS 1.3, when there is none).
CLIENT_REFUSED = re.compile(r"ALERT_(BAD_CERTIFICATE|CERTIFICATE_REQUIRED|UNKNOWN_CA|ACCESS_DENIED)")


class DockerOptionsInvalid(TierbotError):
    pass


class EngineUnreachable(TierbotError):
    pass


class DockerOptions(BaseModel):
    """`backend_options` of a docker tier."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    image: str | None = Field(
        None,
        description="Base image (with python3 and its venv module) for repositories without a Dockerfile.",
    )
    network: Literal["none", "bridge", "host"] = Field(
        "none", description="The experiment's network; only `none` may run a fork's code."
    )
    build_network: Literal["none", "bridge", "host"] = Field(
        "bridge",
        description="The network while building environments (pip, a Dockerfile's RUN steps). `host` "
        "reaches the engine host's own services, so it never builds a fork's environment.",
    )
    shm_size: int | str | None = Field(
        None, description="/dev/shm size, e.g. 1GiB (Docker's 64 MiB if unset)."
    )
    pids_limit: int = Field(4096, ge=16, description="Processes and threads the experiment may have at once.")
    tmp_size: int | str = Field(
        "1GiB", validate_default=True, description="Size of the experiment's /tmp (counted in its memory)."
    )
    docker_host: str | None = Field(
        None, description="The engine, e.g. tcp://gpu-host:2376; DOCKER_HOST if unset."
    )
    tls_verify: bool = Field(True, description="Verify a TCP engine's certificate (with tls_ca_cert).")
    tls_ca_cert: str | None = Field(None, description="CA certificate (PEM file) of a TCP engine.")
    tls_client_cert: str | None = Field(
        None, description="Client certificate (PEM file), with tls_client_key."
    )
    tls_client_key: str | None = Field(None, description="Client key (PEM file), with tls_client_cert.")

    @field_validator("shm_size", "tmp_size")
    @classmethod
    def _size(cls, value: int | str | None) -> int | None:
        return None if value is None else parse_size(value)

    @property
    def uses_tls(self) -> bool:
        return bool(self.tls_ca_cert or self.tls_client_cert or self.tls_client_key)

    @property
    def engine_name(self) -> str:
        """How people know this engine: its address, or the default's."""
        return self.docker_host or "the default Docker Engine (DOCKER_HOST)"


def options_of(tier: Tier) -> DockerOptions:
    """The tier's docker options, or DockerOptionsInvalid naming each bad option."""
    options = tier.options_as(DockerOptions, DockerOptionsInvalid)
    if bool(options.tls_client_cert) != bool(options.tls_client_key):
        raise DockerOptionsInvalid(
            f"tier {tier.name!r}: backend_options tls_client_cert and tls_client_key go together"
        )
    return options


def engine(options: DockerOptions, timeout: float) -> docker.DockerClient:
    """A client of the tier's engine. Raises EngineUnreachable (with the reason) when it does not answer:
    the SDK asks the engine for its API version as it connects."""
    import docker
    import requests

    seconds = int(timeout) or 1
    try:
        if options.docker_host is None:
            return docker.from_env(timeout=seconds)
        if not options.uses_tls:
            return docker.DockerClient(base_url=options.docker_host, timeout=seconds)
        _tls_files(options)
        return _tls_engine(options, seconds)
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise EngineUnreachable(_unreachable(options, exc)) from None


def _tls_files(options: DockerOptions) -> None:
    """Each TLS file the tier names is there (the SDK's own complaint names none of them)."""
    for option in ("tls_ca_cert", "tls_client_cert", "tls_client_key"):
        path = getattr(options, option)
        if path is not None and not os.path.isfile(path):
            raise EngineUnreachable(f"{options.engine_name} cannot be used: {option} {path} is not a file")


def _tls_engine(options: DockerOptions, seconds: int) -> docker.DockerClient:
    """A client of a TCP engine over TLS that trusts what the tier says.

    Why not the SDK's client as it comes: requests lets REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE replace a
    session's CA (psf/requests#3829, docker/docker-py#2433), so with either set, as on many hosts and CI
    machines, a tier's tls_ca_cert was ignored (its engine refused as untrusted) and tls_verify: false
    still verified. A tier that names its CA or turns verification off is therefore deaf to the
    environment, except for its proxies; one that trusts the system's CAs keeps what the environment
    says they are. The SDK asks the engine for its API version as it is made, before its session can be
    told, so a first client, on the oldest version the SDK speaks, asks in its place."""
    import docker
    import requests

    tls = _tls(options)

    def client(version: str) -> docker.DockerClient:
        made = docker.DockerClient(base_url=options.docker_host, tls=tls, timeout=seconds, version=version)
        if made.api.verify is not True:
            made.api.proxies = requests.utils.get_environ_proxies(made.api.base_url)
            made.api.trust_env = False
        return made

    probe = client(docker.constants.MINIMUM_DOCKER_API_VERSION)
    try:
        version = probe.api.version(api_version=False).get("ApiVersion")
    finally:
        probe.close()
    if not isinstance(version, str):
        raise docker.errors.DockerException("its /version has no ApiVersion: is it a Docker Engine?")
    return client(version)


def _tls(options: DockerOptions) -> docker.tls.TLSConfig:
    import docker

    client_cert = (options.tls_client_cert, options.tls_client_key) if options.tls_client_cert else None
    verify: bool | str = False
    if options.tls_verify:  # against the given CA, else the system's
        verify = options.tls_ca_cert or True
    return docker.tls.TLSConfig(client_cert=client_cert, ca_cert=options.tls_ca_cert, verify=verify)


def _unreachable(options: DockerOptions, exc: BaseException) -> str:
    """Why the engine cannot be used, in the tier's terms. The SDK's text nests the whole request around
    OpenSSL's few words, so a TLS failure is told as who refused whom, and which option to look at."""
    name = options.engine_name
    failure = _tls_failure(exc) if options.uses_tls else None
    if failure is None:
        return f"{name} cannot be reached: {_short(exc)}"
    said = _ssl_words(failure)
    if isinstance(failure, ssl.SSLCertVerificationError):
        against = f"tls_ca_cert {options.tls_ca_cert}" if options.tls_ca_cert else "the system's CAs"
        return f"{name} is not trusted: its TLS certificate did not verify against {against} ({said})"
    if isinstance(failure, ssl.SSLEOFError | ConnectionResetError) or CLIENT_REFUSED.search(
        getattr(failure, "reason", None) or ""
    ):
        # An engine that verifies clients (Docker's --tlsverify) alerts or hangs up on one it does not
        # trust; with TLS 1.3 that happens after the client thinks the handshake is done, so the alert
        # may be lost in the hang-up, and both mean the same.
        if options.tls_client_cert is None:
            hint = "the tier gives no client certificate (backend_options tls_client_cert, tls_client_key)"
        else:
            hint = f"is tls_client_cert {options.tls_client_cert} signed by the CA the engine trusts?"
        return (
            f"{name} refused the TLS handshake ({said}): an engine with --tlsverify accepts only a client "
            f"certificate signed by its CA; {hint}"
        )
    return f"{name}: the TLS handshake failed ({said})"


def _tls_failure(exc: BaseException) -> ssl.SSLError | ConnectionResetError | None:
    """The socket's own error inside the SDK's and requests' wrappers, if TLS (or the peer) cut it."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLError | ConnectionResetError):
            return current
        nested = (current.__cause__, current.__context__, getattr(current, "reason", None), *current.args)
        todo.extend(inner for inner in nested if isinstance(inner, BaseException))
    return None


def _ssl_words(failure: OSError) -> str:
    """OpenSSL's own words, without its source location: "tlsv13 alert certificate required"; or that
    the engine hung up (OpenSSL's "EOF occurred in violation of protocol")."""
    if isinstance(failure, ssl.SSLCertVerificationError) and failure.verify_message:
        return f"certificate verify failed: {failure.verify_message}"
    if isinstance(failure, ssl.SSLEOFError | ConnectionResetError):
        return "it hung up"
    text = failure.strerror or str(failure)
    return re.sub(r"^\[[^\]]*\] | \(_ssl\.c:\d+\)$", "", text)


def _short(exc: BaseException) -> str:
    """The SDK's messages nest the whole request; the last part says what happened."""
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."


def missing(tier: Tier, _settings: Settings) -> str | None:
    """Why this installation cannot run the docker tier, or None: the SDK, the options, the engine (which
    answers as the client connects), and whether it has what the tier asks for."""
    try:
        import docker  # noqa: F401 (only whether it imports)
    except ImportError:
        return NOT_INSTALLED
    try:
        options = options_of(tier)
        client = engine(options, PING_SECONDS)
    except TierbotError as exc:
        return str(exc)
    try:
        return _engine_lacks(client, tier, options)
    finally:
        client.close()


def _engine_lacks(client: docker.DockerClient, tier: Tier, options: DockerOptions) -> str | None:
    """What the tier needs that the engine lacks: a few quick questions, so that a tier that can never
    start there is refused at submit (and marked in `tierbot tiers`) rather than failing once queued."""
    import docker

    name = options.engine_name
    try:
        info = client.info()
        if tier.cpus > info.get("NCPU", tier.cpus):
            return f"{name} has {info['NCPU']} CPUs; the tier asks for {tier.cpus:g}"
        if tier.memory_bytes and tier.memory_bytes > info.get("MemTotal", tier.memory_bytes):
            return f"{name} has {format_size(info['MemTotal'])} of memory; the tier asks for {tier.memory}"
        if tier.gpus and "nvidia" not in (info.get("Runtimes") or {}):
            return f"{name} has no NVIDIA runtime for the tier's {tier.gpus} GPU(s)"
        if options.network != "none" and not client.api.networks(names=[options.network]):
            return f"{name} has no {options.network} network (backend_options.network)"
        if options.image is not None:
            client.api.inspect_image(options.image)
    except docker.errors.ImageNotFound:
        return f"the image {options.image} (backend_options.image) is not on {name}"
    except docker.errors.DockerException as exc:
        return f"{name} cannot be reached: {_short(exc)}"
    return None


def untrusted(tier: Tier, _settings: Settings) -> str | None:
    """Docker is tierbot's sandbox for a fork's code, when nothing lets that code reach out."""
    try:
        options = options_of(tier)
    except DockerOptionsInvalid as exc:
        return str(exc)
    if options.network != "none":
        return (
            f"code from outside the repository (a fork's) runs only on docker tiers with network: none; "
            f"tier {tier.name!r} has network: {options.network}"
        )
    if options.build_network == "host":
        return (
            f"code from outside the repository (a fork's) never builds its environment on the engine "
            f"host's network; tier {tier.name!r} has build_network: host"
        )
    return None


def instance_of(settings: Settings) -> str:
    """What labels this installation's containers and images: the setting, or one derived from the
    database (without its password), so that replicas sharing a database, and a bot restarted after a
    crash, recognize each other's containers."""
    if settings.docker_instance:
        return settings.docker_instance
    import xxhash
    from sqlalchemy.engine import make_url

    shown = make_url(settings.db_url).render_as_string(hide_password=True)
    return xxhash.xxh3_64_hexdigest(shown.encode())[:12]
