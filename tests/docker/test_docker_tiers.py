"""Whether a docker tier can run here, asked before anything is queued: the SDK, the options, the engine
(reachable, with the base image, with a GPU runtime when the tier has GPUs), and untrusted code."""

import sys

import pytest

from bot.backends import availability, backend_for, mark_availability, untrusted_refusal
from bot.backends.docker_options import NOT_INSTALLED, untrusted
from bot.errors import TierUnavailable
from bot.tiers import Requester, Tier, TierSet

from .conftest import docker_tier

DEFAULT_ENGINE = "the default Docker Engine (DOCKER_HOST)"


@pytest.mark.docker
def test_a_tier_on_a_healthy_engine_is_available(engine, docker_settings):
    assert availability(docker_tier(), docker_settings) is None


def test_an_unreachable_engine_makes_the_tier_unavailable_with_the_reason(docker_free_settings):
    away = docker_tier(name="away", docker_host="tcp://127.0.0.1:9")
    reason = availability(away, docker_free_settings)
    assert reason is not None and reason.startswith("tcp://127.0.0.1:9 cannot be reached: ")
    with pytest.raises(TierUnavailable, match=r"Tier 'away' is unavailable: tcp://127.0.0.1:9 cannot be"):
        backend_for(away, docker_free_settings)
    tiers = mark_availability(TierSet(tiers=[Tier(name="local", default=True), away]), docker_free_settings)
    with pytest.raises(TierUnavailable) as refused:
        tiers.choose("away", Requester())
    assert str(refused.value).endswith("Tiers you may use: local.")


@pytest.mark.docker
def test_gpus_without_the_nvidia_runtime_make_the_tier_unavailable(engine, docker_settings):
    if "nvidia" in (engine.info().get("Runtimes") or {}):
        pytest.skip("this engine has the NVIDIA runtime")
    reason = availability(docker_tier(gpus=1), docker_settings)
    assert reason == f"{DEFAULT_ENGINE} has no NVIDIA runtime for the tier's 1 GPU(s)"


@pytest.mark.docker
def test_more_than_the_engine_has_makes_the_tier_unavailable(engine, docker_settings):
    cpus, memory = engine.info()["NCPU"], engine.info()["MemTotal"]
    big = docker_tier(name="big").model_copy(update={"cpus": cpus + 1})
    assert (
        availability(big, docker_settings)
        == f"{DEFAULT_ENGINE} has {cpus} CPUs; the tier asks for {cpus + 1}"
    )
    huge = docker_tier(memory=f"{memory // 1024**3 + 1}GiB")
    assert availability(huge, docker_settings).startswith(f"{DEFAULT_ENGINE} has ")
    if not engine.api.networks(names=["bridge"]):  # dockerd --bridge=none, as CI starts it
        bridged = availability(docker_tier(network="bridge"), docker_settings)
        assert bridged == f"{DEFAULT_ENGINE} has no bridge network (backend_options.network)"


@pytest.mark.docker
def test_a_base_image_the_engine_lacks_makes_the_tier_unavailable(engine, docker_settings):
    reason = availability(docker_tier(image="tierbot-missing:nowhere"), docker_settings)
    assert reason == f"the image tierbot-missing:nowhere (backend_options.image) is not on {DEFAULT_ENGINE}"


def test_bad_options_are_named(docker_free_settings):
    reason = availability(docker_tier(network="wifi", imagee="x"), docker_free_settings)
    assert reason.startswith("tier 'box' has invalid backend_options: ")
    assert "network: must be 'none', 'bridge' or 'host', not 'wifi'" in reason
    assert "imagee: unknown field; did you mean image?" in reason
    half_tls = docker_tier(docker_host="tcp://h:2376", tls_client_cert="/c.pem")
    assert availability(half_tls, docker_free_settings).endswith(
        "tls_client_cert and tls_client_key go together"
    )


def test_without_the_sdk_docker_tiers_are_unavailable(docker_free_settings, monkeypatch):
    monkeypatch.setitem(sys.modules, "docker", None)  # as in an installation without the docker extra
    assert availability(docker_tier(), docker_free_settings) == NOT_INSTALLED
    assert availability(Tier(name="local"), docker_free_settings) is None


@pytest.mark.docker
def test_untrusted_code_runs_only_where_nothing_reaches_out(engine, docker_settings):
    assert untrusted_refusal(docker_tier(), docker_settings) is None  # docker is the sandbox
    bridged = untrusted(docker_tier(network="bridge"), docker_settings)  # whether or not the engine has one
    assert bridged == (
        "code from outside the repository (a fork's) runs only on docker tiers with network: none; "
        "tier 'box' has network: bridge"
    )
    host_builds = untrusted_refusal(docker_tier(build_network="host"), docker_settings)
    assert host_builds.endswith("tier 'box' has build_network: host")


@pytest.fixture
def docker_free_settings(settings):
    """Settings for what needs no engine."""
    return settings.model_copy(update={"docker_instance": "test-no-engine"})
