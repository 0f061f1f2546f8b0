"""A remote engine over mutual TLS (`backend_options: {docker_host: tcp://…, tls_*}`), on the wire.

The machine's engine, made remote by `tests.fakes.tls_engine.TlsEngine`: a TLS endpoint on 127.0.0.1
that, like `dockerd --tlsverify`, lets in only clients with a certificate of its CA, and pipes the rest
to the engine's socket. The runs, the availability checks and the reaper go through the real code paths
and the real SDK, and the tests assert on what crossed the TLS endpoint.

REQUESTS_CA_BUNDLE is set, as on this machine and many CI hosts: requests lets it replace the CA a client
is given (psf/requests#3829), which used to make every private-CA engine untrusted.
"""

import os
import re
import shutil
import uuid
from collections.abc import Iterator

import certifi
import pytest

from bot.backends import availability, backend_for, mark_availability
from bot.backends.docker_reaper import Reaped, reap_engines
from bot.errors import TierUnavailable
from bot.tiers import Tier, TierSet

from ..fakes.local_backend import RecordingWatcher
from ..fakes.tls_engine import ENGINE_SOCKET, Pki, TlsEngine
from .conftest import BASE_IMAGE, containers_of, docker_job, docker_tier

pytestmark = pytest.mark.docker

DEFAULT_ENGINE = "the default Docker Engine (DOCKER_HOST)"
TLSVERIFY = "an engine with --tlsverify accepts only a client certificate signed by its CA"
A_CONTAINER = re.compile(r"^/containers/(?!create$|json$)[^/]+")


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return Pki.issue(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_engine(engine, pki) -> Iterator[TlsEngine]:
    """The machine's engine (the one `engine` checked), served over TLS."""
    host = os.environ.get("DOCKER_HOST") or f"unix://{ENGINE_SOCKET}"
    if not host.startswith("unix://"):
        pytest.skip(f"the TLS engine pipes to a unix socket; DOCKER_HOST is {host}")
    with TlsEngine(pki, socket_path=host.removeprefix("unix://")) as served:
        yield served


@pytest.fixture
def remote(tls_engine, monkeypatch) -> TlsEngine:
    """The TLS engine, recording afresh, with REQUESTS_CA_BUNDLE set (see the module docstring)."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    tls_engine.forget()
    return tls_engine


def remote_tier(remote: TlsEngine, pki: Pki, name: str = "remote", **tls) -> Tier:
    """A docker tier on the TLS engine, with the operator's three files unless `tls` says otherwise (None
    leaves an option out)."""
    options = {
        "docker_host": remote.docker_host,
        "tls_ca_cert": str(pki.ca),
        "tls_client_cert": str(pki.client.cert),
        "tls_client_key": str(pki.client.key),
    } | tls
    return docker_tier(name=name, **{key: value for key, value in options.items() if value is not None})


def operations(remote: TlsEngine) -> list[tuple[str, str]]:
    """The requests that crossed the TLS endpoint, each container named `{c}`."""
    return [(method, A_CONTAINER.sub("/containers/{c}", path)) for method, path in remote.requests()]


def test_an_experiment_runs_to_success_on_a_remote_engine_over_mutual_tls(
    engine, remote, pki, docker_settings, workdir
):
    nonce = uuid.uuid4().hex  # a Dockerfile of its own: the build streams over TLS too
    (workdir / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nRUN echo built-{nonce} > /opt/marker\n")
    (workdir / "data.txt").write_text("sent over TLS\n")
    command = "cat /opt/marker data.txt && mkdir out && echo 0.93 > out/metrics.txt && cp data.txt out/"
    job = docker_job(workdir, command, remote_tier(remote, pki), dockerfile=workdir / "Dockerfile")
    watcher = RecordingWatcher()

    outcome = backend_for(job.tier, docker_settings).run(job, watcher)

    assert (outcome.state, outcome.exit_code) == ("succeeded", 0), outcome.reason + outcome.log_tail
    assert watcher.phases == ["building", "running"]
    assert f"built-{nonce}" in watcher.lines and "sent over TLS" in watcher.lines  # the logs stream
    out = outcome.workspace / "out"  # get_archive, over TLS
    assert (out / "metrics.txt").read_text() == "0.93\n"
    assert (out / "data.txt").read_text() == "sent over TLS\n"
    shutil.rmtree(outcome.workspace)
    assert containers_of(engine, job.run_id) == []

    # Every request went through the TLS endpoint, from the tier's client certificate and none other.
    assert remote.refused == [] and set(remote.admitted) == {"tierbot-client"}
    done = operations(remote)
    lifecycle = [
        ("GET", "/version"),  # availability, then the run's own client
        ("POST", "/build"),
        ("POST", "/containers/create"),
        ("PUT", "/containers/{c}/archive"),  # the code in
        ("POST", "/containers/{c}/start"),
        ("GET", "/containers/{c}/logs"),
        ("POST", "/containers/{c}/wait"),
        ("GET", "/containers/{c}/archive"),  # the outputs out
        ("DELETE", "/containers/{c}"),
    ]
    assert [step for step in lifecycle if step not in done] == []
    assert done.index(("PUT", "/containers/{c}/archive")) < done.index(("POST", "/containers/{c}/start"))
    assert done[-1] == ("DELETE", "/containers/{c}")


@pytest.mark.parametrize("stranger", [False, True], ids=["no-client-certificate", "another-CAs-certificate"])
def test_a_client_the_engine_does_not_trust_leaves_the_tier_unavailable_saying_why(
    remote, pki, docker_settings, stranger
):
    if stranger:
        tier = remote_tier(
            remote, pki, tls_client_cert=str(pki.stranger.cert), tls_client_key=str(pki.stranger.key)
        )
        hint = f"is tls_client_cert {pki.stranger.cert} signed by the CA the engine trusts?"
        alert, engine_saw = "tlsv1 alert unknown ca", "CERTIFICATE_VERIFY_FAILED"
    else:
        tier = remote_tier(remote, pki, tls_client_cert=None, tls_client_key=None)
        hint = "the tier gives no client certificate (backend_options tls_client_cert, tls_client_key)"
        alert, engine_saw = "tlsv13 alert certificate required", "PEER_DID_NOT_RETURN_A_CERTIFICATE"

    reason = availability(tier, docker_settings)

    # With TLS 1.3 the engine refuses after the client's side of the handshake is done: the client reads
    # the engine's alert, or only that it hung up, as the race goes. Both are told the same way.
    told = {
        f"{remote.docker_host} refused the TLS handshake ({said}): {TLSVERIFY}; {hint}"
        for said in (alert, "it hung up")
    }
    assert reason in told, reason
    with pytest.raises(
        TierUnavailable, match=r"^Tier 'remote' is unavailable: tcp://127\.0\.0\.1:\d+ refused"
    ):
        backend_for(tier, docker_settings)
    assert remote.wait_refused(2) == [engine_saw] * 2 and remote.admitted == []  # nothing reached the engine


def test_an_engine_certificate_the_tiers_ca_did_not_sign_is_not_trusted(remote, pki, docker_settings):
    tier = remote_tier(remote, pki, tls_ca_cert=str(pki.stranger_ca))

    reason = availability(tier, docker_settings)

    assert reason.startswith(
        f"{remote.docker_host} is not trusted: its TLS certificate did not verify against "
        f"tls_ca_cert {pki.stranger_ca} (certificate verify failed: "
    ), reason
    assert remote.wait_refused(1) == ["TLSV1_ALERT_UNKNOWN_CA"]  # the client hung up on the engine
    assert remote.admitted == []


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_verify_false_is_obeyed_even_with_a_ca_bundle_in_the_environment(remote, pki, docker_settings):
    # The operator's choice, which REQUESTS_CA_BUNDLE used to overrule: the engine is not verified, and
    # the client certificate still gets the bot in.
    tier = remote_tier(remote, pki, tls_verify=False, tls_ca_cert=str(pki.stranger_ca))
    assert availability(tier, docker_settings) is None
    assert remote.admitted and set(remote.admitted) == {"tierbot-client"}


def test_a_tls_file_that_is_not_there_is_named(remote, pki, docker_settings, tmp_path):
    missing_key = tmp_path / "gone" / "client-key.pem"
    tier = remote_tier(remote, pki, tls_client_key=str(missing_key))
    assert availability(tier, docker_settings) == (
        f"{remote.docker_host} cannot be used: tls_client_key {missing_key} is not a file"
    )
    assert remote.requests() == [] and remote.refused == []  # nothing was tried


def test_tiers_on_two_engines_are_available_together_and_each_engine_is_reaped_once(
    engine, remote, pki, settings
):
    settings = settings.model_copy(update={"docker_instance": f"test-remote-{uuid.uuid4().hex[:8]}"})
    tiers = TierSet(
        tiers=[
            remote_tier(remote, pki, name="remote"),
            remote_tier(remote, pki, name="remote-too"),  # the same engine, by another tier
            docker_tier(name="here").model_copy(update={"default": True}),  # the machine's own socket
        ]
    )

    marked = mark_availability(tiers, settings)

    assert {tier.name: tier.unavailable for tier in marked.tiers} == {
        "remote": None,
        "remote-too": None,
        "here": None,
    }

    # An orphan of this installation's on the engine: whichever address reaches it first removes it.
    name = f"tierbot-{settings.docker_instance}-run-77"
    labels = {"tierbot.instance": settings.docker_instance, "tierbot.run": "77"}
    engine.api.create_container(BASE_IMAGE, command=["true"], name=name, labels=labels)
    remote.forget()
    try:
        reaped = reap_engines(marked.tiers, settings, is_running=lambda _run: False)
    finally:
        if engine.api.containers(all=True, filters={"name": name}):
            engine.api.remove_container(name, force=True, v=True)

    assert set(reaped) == {remote.docker_host, DEFAULT_ENGINE}
    assert all(isinstance(result, Reaped) for result in reaped.values()), reaped
    assert reaped[remote.docker_host].containers == [name]  # removed over TLS
    assert reaped[DEFAULT_ENGINE].containers == []
    # Two tiers on the TLS engine, one visit: the reaper asked it each of its questions once.
    asked = operations(remote)
    assert asked.count(("GET", "/containers/json")) == 1 and asked.count(("GET", "/system/df")) == 1
    assert ("DELETE", "/containers/{c}") in asked
