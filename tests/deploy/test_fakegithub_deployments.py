"""The fake GitHub's Deployments API, through PyGithub as the bot talks to it: deployments created and
listed (filtered, newest first), statuses posted and listed newest first, GitHub's validation, and
`auto_inactive` for earlier non-production deployments only."""

import pytest
from github import Auth, Github, GithubException

from ..fakes.fakegithub import FakeGitHub

REPO = "acme/models"
SHA = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"


@pytest.fixture
def repo():
    with FakeGitHub() as fake:
        fake.add_repo(REPO)
        gh = Github(base_url=fake.url, auth=Auth.Token(fake.token), seconds_between_requests=None, retry=None)
        yield gh.get_repo(REPO)
        assert fake.errors == []


def test_deployments_and_their_statuses(repo):
    first = repo.create_deployment(ref=SHA, environment="staging", payload={"n": 1}, required_contexts=[])
    second = repo.create_deployment(ref=SHA, environment="staging", payload={"n": 2}, required_contexts=[])
    repo.create_deployment(ref=SHA, environment="production", required_contexts=[])
    first.create_status("success", environment_url="http://a")
    second.create_status("in_progress")
    second.create_status("success", environment_url="http://b")

    listed = repo.get_deployments(sha=SHA, environment="staging")
    assert [d.payload for d in listed] == [{"n": 2}, {"n": 1}]
    assert [s.state for s in second.get_statuses()] == ["success", "in_progress"]
    assert [s.state for s in first.get_statuses()] == ["inactive", "success"]  # GitHub's auto_inactive
    assert repo.get_deployment(first.id).environment == "staging"


def test_production_deployments_stay_as_they_were_and_bad_statuses_are_refused(repo):
    first = repo.create_deployment(ref=SHA, required_contexts=[])
    second = repo.create_deployment(ref=SHA, required_contexts=[])
    first.create_status("success")
    second.create_status("success")
    assert [s.state for s in first.get_statuses()] == ["success"]  # production: never auto-inactivated
    with pytest.raises(GithubException) as refused:
        first.create_status("done")
    assert refused.value.status == 422
    with pytest.raises(GithubException) as too_long:
        first.create_status("failure", description="x" * 141)
    assert too_long.value.status == 422
