"""Report links over HTTP, against the real app: a fresh link opens its report; an expired one says so
and where a fresh one is; a token for another comparison or repository, or a tampered one, opens
nothing; and a real `tierbot serve` never writes a token to its access log."""

from datetime import date, timedelta

import httpx
import pytest

from bot import signed_links, wiring
from bot.request import RunRequest

from ..fakes.cli import serving
from ..fakes.github_bot import Bot
from ..golden import check_golden


@pytest.fixture
def served(settings, simple_repo):
    """A running bot with one comparison done (id 1) and linked at its own URL."""
    bot = Bot(wiring.pipeline(settings))
    bot.pipeline.settings.public_url = bot.url
    bot.pipeline.submit(RunRequest(repository=str(simple_repo), ref="better", base="main"))
    bot.drain()
    yield bot
    bot.stop()


def link(bot: Bot, on: date | None = None, repository: str | None = None, comparison_id: int = 1) -> str:
    comparison = bot.pipeline.comparison(comparison_id)
    repository = repository or comparison.head_run.repository
    return signed_links.report_url(
        bot.pipeline.settings, comparison_id, repository, comparison.report_path, on
    )


def test_a_fresh_link_opens_the_report_and_stays_the_same_all_day(served):
    fresh = served.pipeline.report_context(served.pipeline.comparison(1)).report_url
    until = signed_links.today() + timedelta(days=30)
    assert fresh.startswith(f"{served.url}/reports/1?token={until:%Y%m%d}.")
    assert "&" not in fresh  # one parameter: nothing to escape in Markdown, Slack or HTML
    page = served.client.get(fresh)
    assert page.status_code == 200 and "accuracy" in page.text
    assert served.pipeline.report_context(served.pipeline.comparison(1)).report_url == fresh


def test_an_expired_link_says_when_and_where_a_fresh_one_is(served):
    issued = signed_links.today() - timedelta(days=31)  # it worked until yesterday
    page = served.client.get(link(served, on=issued))
    assert page.status_code == 410 and page.headers["content-type"].startswith("text/html")
    assert f"until the end of {issued + timedelta(days=30)} (UTC)" in page.text
    assert "/run status 1" in page.text and "accuracy" not in page.text
    assert served.client.get(link(served, on=issued + timedelta(days=1))).status_code == 200  # its last day


def test_tokens_for_another_repository_or_comparison_or_tampered_open_nothing(served):
    fresh = link(served)
    day, mac = fresh.split("token=")[1].split(".")
    later = (signed_links.today() + timedelta(days=400)).strftime("%Y%m%d")
    refused = [
        link(served, repository="acme/other"),  # the same comparison id, minted for another repository
        fresh.replace("/reports/1?", "/reports/2?"),  # another comparison
        fresh.replace(f"token={day}.", f"token={later}."),  # a longer life, by editing the day
        fresh.replace(mac, mac[:-1] + ("0" if mac[-1] != "0" else "1")),
        f"{served.url}/reports/1?token={mac}",
        f"{served.url}/reports/1?token={day}.é{mac[1:]}",
        f"{served.url}/reports/1",
    ]
    for url in refused:
        answer = served.client.get(url)
        assert (answer.status_code, answer.json()) == (404, {"detail": "no such report"}), url


def test_the_expired_page(settings):
    check_golden("report-expired.html", signed_links.expired_page(settings, "20260131.x", 12))


def test_serve_logs_report_requests_without_their_token(settings):
    token = "20991231.0123456789abcdef0123456789abcdef"
    with serving(settings.data_dir, TIERBOT_PUBLIC_URL="http://tierbot.test") as served:
        answer = httpx.get(f"{served.url}/reports/1?token={token}")
    assert answer.status_code == 404
    (logged,) = [line for line in served.output.splitlines() if "/reports/1" in line]
    assert '"GET /reports/1 HTTP/1.1" 404' in logged
    assert token not in served.output and token.split(".")[1] not in served.output
