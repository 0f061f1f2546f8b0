"""GitHub's route on the HTTP server: each webhook delivery is triaged (`bot.github.webhook`), recorded
once and answered at once."""

from starlette.requests import Request
from starlette.responses import JSONResponse

from bot.doors import Front
from bot.github.webhook import triage


def mount(front: Front) -> None:
    settings = front.pipeline.settings

    async def github_webhook(request: Request) -> JSONResponse:
        with front.timed():
            answer = triage(request.headers, await request.body(), settings.github_secrets)
            result = answer.result
            if answer.delivery is not None:
                result = "queued" if await front.record(answer.delivery) else "duplicate"
            front.count(result)
            status = 200 if result == "duplicate" else answer.status
            return JSONResponse({"result": result, **answer.fields}, status_code=status)

    front.route("/github/webhook", github_webhook)
