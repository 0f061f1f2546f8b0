"""`tierbot costs` as a user runs it, after real runs on a priced tier; a run over budget refused in the
terminal; `--json` in the documented shape; and its text, pinned by tests/golden/costs.term.txt
(rendered from a hand-built month)."""

from rich.console import Console

from bot.cli.costs import costs_text
from bot.costs import BudgetSpend, MonthCosts, Spend, month_of
from bot.store.models import utcnow

from ..conftest import GitRepo
from ..fakes.cli import json_document, stderr_of
from ..golden import check_golden


def test_costs_after_a_run_and_a_refusal_over_budget(tierbot, simple_repo: GitRepo, tmp_path):
    month = month_of(utcnow())
    assert f"No priced runs in {month}." in tierbot("costs").stdout
    tiers = tmp_path / "tiers.yaml"  # each run's estimate: 30 min at $1.20 an hour
    tiers.write_text(
        f"budgets:\n  - {{repository: {simple_repo.path}, monthly: 1, contact: '#ml-platform'}}\n"
        "tiers:\n  - {name: local, cost_per_hour: 1.2, max_runtime: 30m}\n"
    )
    env = {"TIERBOT_TIERS_FILE": str(tiers)}
    repo = ("--repo", str(simple_repo))
    refused = tierbot("compare", "better", *repo, env=env)  # the branch and main: $1.20
    assert refused.returncode == 2
    assert f"Over budget: this request is estimated at $1.20, and the repository {simple_repo.path}" in (
        stderr_of(refused)
    )
    ran = tierbot("run", "better", *repo, env=env)
    assert ran.returncode == 0, ran.stdout + ran.stderr

    shown = tierbot("costs", env=env)
    assert shown.returncode == 0, shown.stderr
    lines = [" ".join(line.split()) for line in shown.stdout.splitlines()]
    assert lines[:2] == [
        f"Costs in {month} (UTC, USD; runs not ended yet at their estimates)",
        "<$0.01 in all",
    ]
    budget, repository = (  # a long path keeps its end in a 40-character column
        f"…{f'repository {simple_repo.path}'[-39:]} <$0.01 of $1.00 $1.00 left ask #ml-platform",
        f"…{str(simple_repo.path)[-39:]} <$0.01 1 run",
    )
    assert budget in lines and repository in lines and "local <$0.01 1 run" in lines

    document = json_document(tierbot("costs", "--json", "--month", month, env=env))
    found = document["costs"]
    assert (document["command"], found["month"], found["currency"]) == ("costs", month, "USD")
    (budget,) = found["budgets"]
    assert (budget["kind"], budget["name"], budget["monthly"]) == ("repository", str(simple_repo.path), 1.0)
    assert 0 < found["total"] == budget["spent"] < 0.01
    run = json_document(tierbot("show", "1", "--json", env=env))["runs"][0]
    assert run["estimated_cost"] == 0.6 and run["actual_cost"] == found["total"]

    wrong = tierbot("costs", "--month", "2026-13", env=env)
    assert (
        wrong.returncode == 2 and f"A month is written YYYY-MM, e.g. {month}; not '2026-13'." in wrong.stderr
    )


def budget(words: str, kind: str, monthly: float, spent: float, contact: str | None = None) -> BudgetSpend:
    name = words.split()[1]
    return BudgetSpend(
        budget=words,
        kind=kind,
        name=name,
        monthly=monthly,
        spent=spent,
        left=monthly - spent,
        contact=contact,
    )


def test_costs_text_golden():
    """Columns aligned, amounts in people's words, a name that looks like markup shown as it is."""
    month = MonthCosts(
        month="2026-11",
        currency="USD",
        total=212.5,
        repositories=[
            Spend(name="acme/models", spent=200.0, runs=31),
            Spend(name="acme/[red]x", spent=12.5, runs=1),
        ],
        tiers=[Spend(name="gpu-small", spent=212.49, runs=30), Spend(name="local", spent=0.01, runs=2)],
        budgets=[
            budget("repository acme/models", "repository", 200, 200, contact="#ml-platform"),
            budget("team acme/ml", "github_team", 500, 460),
            budget("group S0ML", "slack_group", 100, 12.5),
        ],
    )
    console = Console(record=True, width=120)
    console.print(costs_text(month), highlight=False, emoji=False)
    check_golden("costs.term.txt", console.export_text())
