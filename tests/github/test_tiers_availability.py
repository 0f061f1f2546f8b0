"""Tiers whose backend this installation cannot run: marked wherever tiers are shown, refused before
anything is queued, and never the silent default. The tiers stay pure: availability is data the
composition root hands them (`mark_availability(load_tiers(...), settings)`, as `Pipeline` builds them)."""

import re
from pathlib import Path

import pytest

from bot.backends import availability, backend_for, mark_availability
from bot.errors import SpecInvalid, TierForbidden, TierUnavailable
from bot.github.views import render
from bot.slack.views import help_text, tiers_text
from bot.tiers import BUILTIN, Requester, Tier, TierSet, load_tiers

from ..fakes.github_bot import REPO, comment, heads, make_bot, open_pull, replies, settle
from ..golden import check_golden

# A tier this installation cannot run: AWS Batch, with no artifact store in S3 to send code through.
NO_STORE = (
    "AWS Batch tiers send the code and the outputs through the artifact store: set TIERBOT_ARTIFACT_STORE "
    "to s3://bucket/prefix"
)
BATCH = {"backend": "batch", "memory": "4GiB", "backend_options": {"region": "us-east-1", "job_queue": "q"}}
TIERS = """\
tiers:
  - name: local
    description: this machine
    default: true
  - name: gpu-small
    description: one T4
    backend: batch
    memory: 4GiB
    backend_options: {region: us-east-1, job_queue: gpus}
  - name: cluster
    backend: batch
    memory: 4GiB
    backend_options: {region: us-east-1, job_queue: big}
    access: {slack_users: [U0ADA], github_users: [ada]}
"""
ADA = Requester(name="ada", slack_user="U0ADA", github_login="ada")
ANYONE = Requester(name="someone")


def tiers_file(tmp_path: Path, text: str = TIERS) -> Path:
    path = tmp_path / "tiers.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def marked(settings, tmp_path: Path) -> TierSet:
    return mark_availability(load_tiers(tiers_file(tmp_path)), settings)


def test_each_backend_says_whether_it_can_run_here(settings):
    assert availability(Tier(name="here"), settings) is None
    # docker's and batch's own answers: tests/docker/test_docker_tiers.py, tests/aws/
    assert availability(Tier(name="t", **BATCH), settings) == NO_STORE


def test_availability_is_data_handed_to_a_copy_of_the_tiers(settings, tmp_path: Path, marked: TierSet):
    loaded = load_tiers(tiers_file(tmp_path))
    assert [t.unavailable for t in loaded.tiers] == [None, None, None]  # the file alone cannot know
    assert [t.unavailable for t in marked.tiers] == [
        None,
        NO_STORE,
        NO_STORE,
    ]
    assert BUILTIN.with_availability({"local": "gone"}).default.unavailable == "gone"
    assert BUILTIN.default.unavailable is None  # the shared built-in set is left alone
    assert mark_availability(BUILTIN, settings).default.unavailable is None
    assert marked.get("gpu-small").fingerprint() == loaded.get("gpu-small").fingerprint()


def test_a_tiers_file_cannot_claim_availability(tmp_path: Path):
    with pytest.raises(SpecInvalid, match="tiers\\[0\\]._unavailable: unknown field"):
        load_tiers(tiers_file(tmp_path, "tiers:\n  - name: a\n    _unavailable: no\n"))


def test_choosing_an_unavailable_tier_is_refused_with_why(marked: TierSet):
    said = f"Tier 'gpu-small' is unavailable: {NO_STORE}. Tiers you may use: local."
    with pytest.raises(TierUnavailable, match=f"^{re.escape(said)}$"):
        marked.choose("gpu-small", ANYONE)
    with pytest.raises(TierForbidden):  # whom it is for is said first: another installation won't help
        marked.choose("cluster", ANYONE)
    with pytest.raises(TierUnavailable, match="AWS Batch tiers send the code"):
        marked.choose("cluster", ADA)
    assert marked.choose(None, ADA).name == "local"


def test_an_unavailable_default_is_never_chosen_silently(settings, tmp_path: Path):
    text = (
        "tiers:\n  - name: gpu\n    default: true\n    backend: batch\n    memory: 4GiB\n"
        "    backend_options: {region: us-east-1, job_queue: gpus}\n  - name: local\n"
    )
    tiers = mark_availability(load_tiers(tiers_file(tmp_path, text)), settings)
    unavailable = "^The default tier 'gpu' is unavailable: AWS Batch tiers send the code"
    with pytest.raises(TierUnavailable, match=unavailable):
        tiers.choose(None, ANYONE)
    assert tiers.choose("local", ANYONE).name == "local"


def test_a_run_queued_for_a_tier_that_cannot_run_fails_with_why(settings):
    with pytest.raises(TierUnavailable, match="Tier 'gpu' is unavailable: AWS Batch tiers send the code"):
        backend_for(Tier(name="gpu", **BATCH), settings)


def test_slack_and_github_texts_mark_unavailable_tiers(marked: TierSet):
    slack = "\n---\n".join([help_text(marked), tiers_text(marked)])
    check_golden("slack-tiers-unavailable.md", slack + "\n")
    default_gone = marked.with_availability(
        {"local": "the engine does not answer", "gpu-small": marked.get("gpu-small").unavailable}
    )
    github = render("help.md.j2", tiers=default_gone.usable_by(ANYONE), default_tier=default_gone.default)
    check_golden("github-help-unavailable.md", github)


# -- on the wire: a pull request asks for help and for an unavailable tier ------------------------------


@pytest.fixture
def bot(settings, hosted, tmp_path, fake):
    running = make_bot(settings.model_copy(update={"tiers_file": tiers_file(tmp_path)}), tmp_path, fake)
    yield running
    running.stop()


def test_a_pull_request_hears_which_tiers_cannot_run_and_runs_nothing_there(bot, fake, simple_repo):
    open_pull(fake, simple_repo)
    fake.set_permission(REPO, "octocat", "write")
    comment(bot, fake, "/run help")
    comment(bot, fake, "/run experiment on gpu-small")
    settle(bot)
    helped, refused = replies(fake)
    said = NO_STORE.replace("_", "\\_")  # in Markdown; the refusal is quoted as code
    assert f"- `gpu-small` (unavailable: {said}): one T4" in helped
    assert f"Tier 'gpu-small' is unavailable: {NO_STORE}. Tiers you may use: local." in refused
    assert heads(bot) == []
