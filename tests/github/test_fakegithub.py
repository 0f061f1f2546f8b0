"""FakeGitHub behaves like api.github.com for the real PyGithub: state, links, auth, limits and faults."""

import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from github import (
    Auth,
    BadCredentialsException,
    Github,
    GithubException,
    GithubIntegration,
    GithubRetry,
    RateLimitExceededException,
)

from ..fakes.fakegithub import FakeGitHub

REPO = "acme/models"
HEAD = "a1" * 20
OTHER = "b2" * 20


@pytest.fixture
def fake():
    with FakeGitHub() as running:
        running.add_repo(REPO)
        running.add_pull(REPO, 7, head_sha=HEAD, head_ref="better")
        yield running
        assert running.errors == []  # no request hit a bug in the fake itself


def client(fake: FakeGitHub, auth: Auth.Auth | None = None, **options) -> Github:
    """PyGithub as a test wants it: no throttling sleeps; PyGithub's default retry unless given."""
    options = {"seconds_between_requests": None, "seconds_between_writes": None} | options
    return Github(base_url=fake.url, auth=auth or Auth.Token(fake.token), **options)


def app_client(fake: FakeGitHub, installation: int = 1, **options) -> Github:
    app = Auth.AppAuth(fake.app_id, fake.app_private_key_pem)
    return client(fake, app.get_installation_auth(installation), **options)


def statuses(fake: FakeGitHub, method: str, path: str) -> list[int]:
    return [r.status for r in fake.calls(method, path)]


# -- comments, reactions, links --------------------------------------------------------------------------


def test_comments_are_created_listed_across_pages_edited_and_deleted(fake):
    for n in range(64):
        fake.add_comment(REPO, 7, f"comment {n}", user="alice")
    pull = client(fake).get_repo(REPO).get_pull(7)

    mine = pull.create_issue_comment("tierbot report")
    listed = list(pull.get_issue_comments())
    assert [c.body for c in listed] == [f"comment {n}" for n in range(64)] + ["tierbot report"]
    pages = fake.calls("GET", f"/repos/{REPO}/issues/7/comments")
    assert [r.query.get("page") for r in pages] == [None, "2", "3"]  # followed rel="next" three times
    assert pull.get_issue_comments().totalCount == 65  # PyGithub reads rel="last" with per_page=1

    mine.edit("tierbot report, v2")
    assert fake.comments[mine.id].body == "tierbot report, v2"
    assert fake.comments[mine.id].edits == ["tierbot report"]
    assert pull.get_issue_comment(mine.id).body == "tierbot report, v2"
    mine.delete()
    assert mine.id not in fake.comments
    assert statuses(fake, "DELETE", f"/repos/{REPO}/issues/comments/{mine.id}") == [204]
    with pytest.raises(GithubException) as gone:
        pull.get_issue_comment(mine.id)
    assert gone.value.status == 404


def test_every_url_and_link_points_at_the_fake(fake):
    for n in range(3):
        fake.add_comment(REPO, 7, f"comment {n}")
    gh = client(fake)
    pull = gh.get_repo(REPO).get_pull(7)
    comment = pull.create_issue_comment("hello")
    urls = [pull.url, pull.html_url, pull.issue_url, pull.head.repo.url, pull.user.url, comment.url]
    urls += [comment.html_url, comment.issue_url, comment.user.url, comment.user.html_url]
    assert all(url.startswith(fake.url + "/") for url in urls), urls

    answer = httpx.get(
        f"{fake.url}/repos/{REPO}/issues/7/comments",
        params={"per_page": 2, "page": 2},
        headers={"Authorization": f"token {fake.token}"},
    )
    links = answer.headers["link"]
    assert f'<{fake.url}/repos/{REPO}/issues/7/comments?per_page=2&page=1>; rel="prev"' in links
    assert f'<{fake.url}/repos/{REPO}/issues/7/comments?per_page=2&page=1>; rel="first"' in links
    assert "next" not in links and len(answer.json()) == 2


def test_the_bot_authors_comments_as_the_app_or_as_the_tokens_user(fake):
    by_app = app_client(fake).get_repo(REPO).get_pull(7).create_issue_comment("from the app")
    by_token = client(fake).get_repo(REPO).get_issue(7).create_comment("from a token")
    assert (by_app.user.login, by_app.user.type) == ("tierbot[bot]", "Bot")
    assert (by_token.user.login, by_token.user.type) == ("tierbot-user", "User")
    assert [c.user.login for c in fake.comments_on(REPO, 7)] == ["tierbot[bot]", "tierbot-user"]


def test_reactions_are_created_once_per_user_and_content(fake):
    command = fake.add_comment(REPO, 7, "/run simple", user="alice")
    comment = client(fake).get_repo(REPO).get_pull(7).get_issue_comment(command.id)

    first, again = comment.create_reaction("eyes"), comment.create_reaction("eyes")
    assert first.id == again.id
    assert statuses(fake, "POST", f"/repos/{REPO}/issues/comments/{command.id}/reactions") == [201, 200]
    assert [(r.user.login, r.content) for r in fake.comments[command.id].reactions] == [
        ("tierbot-user", "eyes")
    ]
    assert comment.get_reactions().totalCount == 1
    with pytest.raises(GithubException) as refused:
        comment.create_reaction("thumbsup")
    assert refused.value.status == 422


def test_comment_bodies_longer_than_65536_characters_are_refused(fake):
    pull = client(fake).get_repo(REPO).get_pull(7)
    pull.create_issue_comment("x" * 65536)
    with pytest.raises(GithubException) as refused:
        pull.create_issue_comment("x" * 65537)
    assert refused.value.status == 422
    assert refused.value.data["errors"][0]["message"] == "Body is too long (maximum is 65536 characters)"
    assert len(fake.comments_on(REPO, 7)) == 1


# -- check runs ----------------------------------------------------------------------------------------


def test_check_run_create_update_list_keeps_the_history(fake):
    repo = app_client(fake).get_repo(REPO)
    check = repo.create_check_run(
        name="tierbot / simple", head_sha=HEAD, external_id="run-1", status="queued"
    )
    check.edit(status="in_progress", output={"title": "Running", "summary": "2 of 5 steps"})
    rerun = {"label": "Rerun", "description": "Run this experiment again", "identifier": "rerun"}
    check.edit(
        conclusion="success",
        output={"title": "No regression", "summary": "accuracy 0.95 (+0.05)", "text": "details"},
        actions=[rerun],
        details_url="https://tierbot.example/runs/1",
    )

    listed = list(repo.get_commit(HEAD).get_check_runs(check_name="tierbot / simple"))
    assert [(c.id, c.status, c.conclusion, c.external_id) for c in listed] == [
        (check.id, "completed", "success", "run-1")
    ]
    assert listed[0].output.summary == "accuracy 0.95 (+0.05)" and listed[0].completed_at is not None
    assert listed[0].url == f"{fake.url}/repos/{REPO}/check-runs/{check.id}"
    assert listed[0].pull_requests[0].number == 7
    history = fake.check_runs[check.id].history
    assert [(h["status"], h["conclusion"], h["title"]) for h in history] == [
        ("queued", None, None),
        ("in_progress", None, "Running"),
        ("completed", "success", "No regression"),
    ]
    assert (
        history[-1]["actions"] == [rerun] and history[-1]["details_url"] == "https://tierbot.example/runs/1"
    )
    assert repo.get_check_run(check.id).status == "completed"


def test_listing_check_runs_shows_the_latest_of_each_name_unless_asked_for_all(fake):
    repo = app_client(fake).get_repo(REPO)
    old = repo.create_check_run(name="tierbot / simple", head_sha=HEAD, external_id="run-1")
    new = repo.create_check_run(name="tierbot / simple", head_sha=HEAD, external_id="run-2")
    other = repo.create_check_run(name="tierbot / other", head_sha=HEAD)
    repo.create_check_run(name="tierbot / simple", head_sha=OTHER)

    commit = repo.get_commit(HEAD)
    assert sorted(c.id for c in commit.get_check_runs()) == [new.id, other.id]
    assert sorted(c.id for c in commit.get_check_runs(filter="all")) == [old.id, new.id, other.id]
    assert (
        commit.get_check_runs(filter="all").totalCount == 3
    )  # per_page=1 and rel="last" of the wrapped list
    assert [c.id for c in repo.get_commit("better").get_check_runs(check_name="tierbot / other")] == [
        other.id
    ]


@pytest.mark.parametrize(
    "fields, problem",
    [
        ({"status": "completed"}, '"conclusion" wasn\'t supplied'),
        ({"output": {"title": "t", "summary": "é" * 32768}}, "summary exceeds a maximum bytesize of 65535"),
        ({"output": {"title": "t", "summary": "s", "text": "x" * 65536}}, "text exceeds a maximum bytesize"),
        ({"conclusion": "great"}, "is not a valid enum value"),
        (
            {"actions": [{"label": "L", "description": "D", "identifier": f"i{n}"} for n in range(4)]},
            "3 actions",
        ),
        ({"actions": [{"label": "L" * 21, "description": "D", "identifier": "i"}]}, '"label"'),
        ({"actions": [{"label": "L", "description": "D" * 41, "identifier": "i"}]}, '"description"'),
        ({"actions": [{"label": "L", "description": "D", "identifier": "i" * 21}]}, '"identifier"'),
    ],
)
def test_check_runs_are_validated_like_github(fake, fields, problem):
    repo = app_client(fake, retry=None).get_repo(REPO)
    check = repo.create_check_run(name="tierbot / simple", head_sha=HEAD)
    with pytest.raises(GithubException) as refused:
        check.edit(**fields)
    data = refused.value.data
    assert refused.value.status == 422
    assert problem in " ".join([data["message"]] + [e["message"] for e in data.get("errors", [])])
    assert len(fake.check_runs[check.id].history) == 1  # nothing of a refused update was kept
    with pytest.raises(GithubException):
        repo.create_check_run(name="tierbot / simple", head_sha=HEAD, **fields)
    assert len(fake.check_runs) == 1


def test_check_run_summaries_up_to_65535_bytes_are_accepted(fake):
    repo = app_client(fake).get_repo(REPO)
    check = repo.create_check_run(
        name="n", head_sha=HEAD, conclusion="neutral", output={"title": "t", "summary": "s" * 65535}
    )
    assert fake.check_runs[check.id].status == "completed"  # a conclusion completes the run


def test_only_a_github_app_may_write_check_runs(fake):
    with pytest.raises(GithubException) as refused:
        client(fake).get_repo(REPO).create_check_run(name="tierbot / simple", head_sha=HEAD)
    assert refused.value.status == 403
    assert refused.value.data["message"] == "You must authenticate via a GitHub App."


# -- permissions and teams -------------------------------------------------------------------------------


def test_collaborator_permissions(fake):
    fake.add_repo("acme/public", private=False)
    for login, role in [("ada", "admin"), ("wes", "write"), ("max", "maintain"), ("tri", "triage")]:
        fake.set_permission(REPO, login, role)
    repo = client(fake).get_repo(REPO)
    assert [repo.get_collaborator_permission(u) for u in ("ada", "wes", "max", "tri", "stranger")] == [
        "admin",
        "write",
        "write",
        "read",
        "none",
    ]
    assert repo.get_collaborator_role_name("max") == "maintain"
    assert client(fake).get_repo("acme/public").get_collaborator_permission("stranger") == "read"
    assert fake.calls("GET", f"/repos/{REPO}/collaborators/ada/permission")[0].status == 200


def test_team_membership(fake):
    fake.add_team("acme", "ml-leads", members=["alice"], maintainers=["bob"])
    gh = client(fake)
    team = gh.get_organization("acme").get_team_by_slug("ml-leads")
    assert team.url.startswith(f"{fake.url}/organizations/")
    assert team.has_in_members(gh.get_user("alice")) and not team.has_in_members(gh.get_user("eve"))
    assert team.get_team_membership("bob").role == "maintainer"


# -- authentication --------------------------------------------------------------------------------------


def test_an_installation_token_is_issued_for_a_valid_app_jwt_and_used(fake):
    gh = app_client(fake)
    assert gh.get_repo(REPO).get_pull(7).head.sha == HEAD

    (grant,) = fake.calls("POST", "/app/installations/1/access_tokens")
    assert grant.status == 201 and grant.headers["authorization"].startswith("Bearer ")
    claims = jwt.decode(grant.headers["authorization"][7:], options={"verify_signature": False})
    assert claims["iss"] == str(fake.app_id) and claims["exp"] - claims["iat"] <= 600
    (token,) = fake.installation_tokens
    assert token.value.startswith("ghs_") and 3590 < (token.expires_at.timestamp() - time.time()) <= 3600
    assert fake.calls("GET", f"/repos/{REPO}")[0].headers["authorization"] == f"token {token.value}"

    app = GithubIntegration(
        auth=Auth.AppAuth(fake.app_id, fake.app_private_key_pem),
        base_url=fake.url,
        seconds_between_requests=None,
        seconds_between_writes=None,
    )
    assert app.get_app().slug == "tierbot"
    assert app.get_repo_installation("acme", "models").id == 1
    assert app.get_access_token(1).expires_at > datetime.now(UTC) + timedelta(minutes=59)


def test_installation_tokens_are_scoped_to_their_installation(fake):
    fake.add_repo("other/repo", installation_id=2)
    with pytest.raises(GithubException) as hidden:
        app_client(fake, installation=1).get_repo("other/repo")
    assert hidden.value.status == 404
    assert app_client(fake, installation=2).get_repo("other/repo").full_name == "other/repo"


def test_pygithub_refreshes_a_token_20s_before_it_expires(fake):
    fake.installation_token_ttl = 22
    repo = app_client(fake).get_repo(REPO)
    assert len(fake.installation_tokens) == 1
    time.sleep(2.2)
    repo.get_pull(7)
    assert len(fake.installation_tokens) == 2
    assert statuses(fake, "GET", f"/repos/{REPO}/pulls/7") == [200]


def test_expired_bad_and_missing_credentials_get_401(fake):
    gh = app_client(fake, retry=None)
    repo = gh.get_repo(REPO)
    fake.expire_tokens()
    with pytest.raises(BadCredentialsException):
        repo.get_pull(7)  # PyGithub still believes its token is good for an hour
    with pytest.raises(BadCredentialsException):
        client(fake, Auth.Token("ghp_not-a-token")).get_repo(REPO)
    anonymous = httpx.get(f"{fake.url}/repos/{REPO}")
    assert anonymous.status_code == 401 and anonymous.json()["message"] == "Requires authentication"
    assert statuses(fake, "GET", f"/repos/{REPO}*") == [200, 401, 401, 401]


def test_app_jwts_are_checked_like_github(fake):
    def sign(key, **claims) -> int:
        now = int(time.time())
        token = jwt.encode(
            {"iat": now - 60, "exp": now + 300, "iss": str(fake.app_id)} | claims, key, "RS256"
        )
        return httpx.get(f"{fake.url}/app", headers={"Authorization": f"Bearer {token}"}).status_code

    ours = fake.app_private_key_pem
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert sign(ours) == 200
    assert sign(stranger) == 401
    assert sign(ours, exp=int(time.time()) - 1) == 401
    assert sign(ours, exp=int(time.time()) + 3600) == 401  # more than 10 minutes ahead
    assert sign(ours, iss="999") == 401
    assert httpx.get(f"{fake.url}/app", headers={"Authorization": f"token {fake.token}"}).status_code == 401


def test_the_authenticated_user_and_rate_limit(fake):
    gh = client(fake)
    assert gh.get_user().login == "tierbot-user"
    assert gh.get_rate_limit().resources.core.limit == 5000
    with pytest.raises(GithubException) as refused:
        app_client(fake).get_user().login  # noqa: B018
    assert refused.value.status == 403  # "Resource not accessible by integration", as GitHub


# -- faults and rate limits ------------------------------------------------------------------------------


def test_an_injected_502_is_seen_by_pygithub_without_retries(fake):
    pull = client(fake, retry=None).get_repo(REPO).get_pull(7)
    fake.fail_next("POST", f"/repos/{REPO}/issues/7/comments", status=502)
    with pytest.raises(GithubException) as failed:
        pull.create_issue_comment("report")
    assert failed.value.status == 502
    pull.create_issue_comment("report")
    assert statuses(fake, "POST", f"/repos/{REPO}/issues/7/comments") == [502, 201]
    assert [c.body for c in fake.comments_on(REPO, 7)] == ["report"]
    assert [r.injected for r in fake.calls("POST")] == [True, False]


def test_pygithub_retries_a_502_on_post_by_default_which_posts_twice_if_the_502_hid_a_success(fake):
    pull = client(fake).get_repo(REPO).get_pull(7)  # PyGithub's default retry
    fake.fail_next("POST", f"/repos/{REPO}/issues/7/comments", status=502, applied=True)
    pull.create_issue_comment("report")
    assert statuses(fake, "POST", f"/repos/{REPO}/issues/7/comments") == [502, 201]
    assert [c.body for c in fake.comments_on(REPO, 7)] == ["report", "report"]


def test_pygithub_does_not_retry_patch_by_default(fake):
    comment = client(fake).get_repo(REPO).get_pull(7).create_issue_comment("report")
    fake.fail_next("PATCH", f"/repos/{REPO}/issues/comments/*", status=502)
    with pytest.raises(GithubException) as failed:
        comment.edit("report, v2")
    assert failed.value.status == 502
    assert statuses(fake, "PATCH", "*") == [502]


def test_exhausted_retries_raise_requests_retry_error_not_github_exception(fake):
    gh = client(fake, retry=GithubRetry(total=2))
    fake.fail_next("GET", f"/repos/{REPO}", status=503, times=3)
    with pytest.raises(requests.exceptions.RetryError):
        gh.get_repo(REPO)
    assert statuses(fake, "GET", f"/repos/{REPO}") == [503, 503, 503]


def test_primary_rate_limit(fake):
    fake.rate_limit_next("GET", f"/repos/{REPO}", kind="primary")
    asked = int(time.time())
    with pytest.raises(RateLimitExceededException) as limited:
        client(fake, retry=None).get_repo(REPO)
    assert limited.value.status == 403
    assert limited.value.headers["x-ratelimit-remaining"] == "0"
    # The reset is a whole second: the one after the second the fake answered in, as GitHub's.
    assert asked + 1 <= int(limited.value.headers["x-ratelimit-reset"]) <= int(time.time()) + 1

    fake.rate_limit_next("GET", f"/repos/{REPO}", kind="primary")
    started = time.monotonic()
    assert client(fake, retry=GithubRetry(total=3)).get_repo(REPO).full_name == REPO
    assert time.monotonic() - started >= 1  # waited for X-RateLimit-Reset
    assert statuses(fake, "GET", f"/repos/{REPO}") == [403, 403, 200]


@pytest.mark.parametrize("kind, status", [("secondary", 403), ("429", 429)])
def test_secondary_rate_limits(fake, kind, status):
    fake.rate_limit_next("GET", f"/repos/{REPO}", kind=kind)
    with pytest.raises(GithubException) as limited:
        client(fake, retry=None).get_repo(REPO)
    assert limited.value.status == status and limited.value.headers["retry-after"] == "1"
    assert limited.value.data["message"].startswith("You have exceeded a secondary rate limit.")
    if status == 403:
        assert isinstance(limited.value, RateLimitExceededException)

    fake.rate_limit_next("GET", f"/repos/{REPO}", kind=kind)
    started = time.monotonic()
    assert client(fake, retry=GithubRetry(total=3)).get_repo(REPO).full_name == REPO
    assert time.monotonic() - started >= 1  # honoured Retry-After
    assert statuses(fake, "GET", f"/repos/{REPO}") == [status, status, 200]


# -- the server ------------------------------------------------------------------------------------------


def test_concurrent_requests_are_all_served_and_recorded(fake):
    gh = client(fake)
    pull = gh.get_repo(REPO).get_pull(7)
    threads = [threading.Thread(target=pull.create_issue_comment, args=(f"c{n}",)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(c.body for c in fake.comments_on(REPO, 7)) == sorted(f"c{n}" for n in range(20))
    posts = fake.calls("POST", f"/repos/{REPO}/issues/7/comments")
    assert len(posts) == 20 and all(p.status == 201 and p.json["body"].startswith("c") for p in posts)


def test_unknown_paths_are_404_and_recorded(fake):
    answer = httpx.get(
        f"{fake.url}/repos/{REPO}/nothing-here", headers={"Authorization": f"token {fake.token}"}
    )
    assert answer.status_code == 404 and answer.json()["message"] == "Not Found"
    assert fake.calls("GET", "*/nothing-here")[0].status == 404


def test_a_push_moves_the_pull_requests_head(fake):
    gh = client(fake)
    fake.push(REPO, 7, OTHER)
    pull = gh.get_repo("ACME/Models").get_pull(7)  # owner and name match case-insensitively, as on GitHub
    assert (pull.head.sha, pull.head.ref) == (OTHER, "better")
    assert gh.get_repo(REPO).get_commit("better").sha == OTHER


def test_fork_pull_requests_have_the_fork_as_head_repository(fake):
    fake.add_pull(REPO, 8, head_sha=OTHER, head_ref="main", user="someone", fork=True)
    pull = client(fake).get_repo(REPO).get_pull(8)
    assert (pull.head.repo.full_name, pull.head.repo.fork, pull.head.label) == (
        "someone/models",
        True,
        "someone:main",
    )
    assert (pull.base.repo.full_name, pull.base.ref) == (REPO, "main")
