"""Where an environment's stable URL listens and what it is called, for the targets that serve on this
machine (local, docker): `deploy_targets.<environment>.local` (or `.docker`) in the tiers file.

    deploy_targets:
      production:
        local:
          listen: "0.0.0.0:8500"                 # the proxy's address and port
          url: https://models.acme.com/iris      # what people are given (a load balancer, a DNS name)

Without `listen`, the proxy listens on 127.0.0.1, on a port tierbot picks once and keeps (a demo, one
person's machine). Without `url`, people are given the listen address (this machine's name when it
listens on every interface). A configured port another program holds fails the deployment saying so:
the URL people were given never moves silently.
"""

import ipaddress
import socket
from typing import NamedTuple

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator

from bot.deploy.target_options import target_options
from bot.tiers import TierSet

LOOPBACK = "127.0.0.1"
_EVERY_INTERFACE = {"0.0.0.0": LOOPBACK, "::": "::1"}  # where tierbot itself reaches a proxy listening there


class Listen(NamedTuple):
    host: str
    port: int  # 0: a port tierbot picks and keeps

    @property
    def local_host(self) -> str:
        """Where tierbot reaches the proxy on this machine."""
        return _EVERY_INTERFACE.get(self.host, self.host)

    @property
    def public_host(self) -> str:
        """The host a URL people are given names."""
        return socket.gethostname() if self.host in _EVERY_INTERFACE else self.host


class StableAddress(BaseModel):
    """`deploy_targets.<environment>.local` (or `.docker`) in the tiers file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    listen: str | None = Field(
        None,
        description='The proxy\'s address and port, HOST:PORT ("0.0.0.0:8500", "[::]:8500"); unset: '
        "127.0.0.1 on a port tierbot picks and keeps.",
    )
    url: AnyHttpUrl | None = Field(
        None, description="The URL people are given (GitHub, Slack, tierbot deployments); unset: listen's."
    )

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        if value is not None:
            parse_listen(value)
        return value

    @property
    def address(self) -> Listen:
        return parse_listen(self.listen) if self.listen else Listen(LOOPBACK, 0)

    def url_for(self, port: int) -> str:
        """The stable URL people are given, once the proxy listens on `port`."""
        if self.url is not None:
            return str(self.url).rstrip("/")
        host = self.address.public_host
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def parse_listen(value: str) -> Listen:
    """`HOST:PORT` (an IPv6 address in brackets); ValueError in the operator's words."""
    host, colon, port = value.rpartition(":")
    if not colon or not host:
        raise ValueError(f"write the address and port to listen on, e.g. 0.0.0.0:8500, not {value!r}")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"the port in {value!r} must be a number from 1 to 65535")
    if host.startswith("["):
        host = host.strip("[]")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} in {value!r} is not an IPv6 address") from None
    elif ":" in host:
        raise ValueError(f"write an IPv6 address in brackets, e.g. [::]:8500, not {value!r}")
    return Listen(host, int(port))


def stable_address(tiers: TierSet, environment: str, target: str) -> StableAddress:
    """The environment's address for `target` (local or docker): the tiers file's, else the defaults."""
    return target_options(tiers, environment, target, StableAddress)
