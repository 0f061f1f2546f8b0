"""What Slack shows of deployments: one message per deployment, updated in place as it goes (waiting
for its run, deploying, then live, failed, refused or skipped; retired once replaced), with a *Rollback*
button while it is live; the lines of `/run deployments`; the answer to a rollback. Pure: deployments
in, text or `{"text", "blocks"}` out; every mrkdwn text comes from `templates/slack/deploy.slack.j2`."""

from bot.render.templates import plain, template
from bot.slack.views import context, section
from bot.store.models import Deployment, DeploymentState

ROLLBACK_ACTION = "tierbot_rollback"


def _texts():
    return template("slack/deploy.slack.j2", "slack").module


def deploy_message(d: Deployment, report: str | None) -> dict:
    """`report`: the deploy report's link, shown only when it is a web one (a file here helps nobody)."""
    texts = _texts()
    link = report if report and report.startswith(("https://", "http://")) else None
    asked = (d.requested_by or {}).get("name") or "tierbot"
    blocks = [
        section(str(texts.title(d))),
        section(str(texts.status(d))),
        context(str(texts.about(link, asked))),
    ]
    if d.state == DeploymentState.live:
        blocks.append(rollback_actions(d))
    return {"text": str(texts.fallback(d)), "blocks": blocks}


def rollback_actions(d: Deployment) -> dict:
    """The *Rollback* button of a live deployment: its value is the deployment's id; the door checks who
    clicked (`deploy_access`) and whether it is still live."""
    confirm = f"{d.environment} serves again the release it served before {d.sha[:7]}."
    button = {
        "type": "button",
        "action_id": ROLLBACK_ACTION,
        "text": {"type": "plain_text", "text": "Rollback"},
        "style": "danger",
        "value": str(d.id),
        "confirm": {
            "title": {"type": "plain_text", "text": "Roll back?"},
            "text": {"type": "plain_text", "text": str(plain(confirm))[:300]},
            "confirm": {"type": "plain_text", "text": "Roll back"},
            "deny": {"type": "plain_text", "text": "Keep it"},
        },
    }
    return {"type": "actions", "block_id": f"deployment-{d.id}", "elements": [button]}


def deployments_text(repository: str, environment: str | None, deployments: list[Deployment]) -> str:
    """`/run deployments`: newest first, each with its state, commit, when it ended (or was asked
    for), the URL of the live one and why the others failed."""
    shown = [(d, (d.finished_at or d.created_at).strftime("%Y-%m-%d %H:%M UTC")) for d in deployments]
    return str(_texts().listing(repository, environment, shown)).strip()


def rolling_back_text(rollback: Deployment, channel: str | None) -> str:
    """The answer to a rollback: what is rolled back, and the channel where its message follows."""
    return str(_texts().rolling_back(rollback, channel))
