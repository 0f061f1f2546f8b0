"""FakeSlack's state (`Workspace`), its Web API methods (`METHODS`) and Block Kit validation.

Method names, arguments, answers and error codes are Slack's (docs.slack.dev/reference/methods); the
`invalid_blocks` details ("no more than 50 items allowed [json-pointer:/blocks]") follow the wording
users have reported from Slack; where that wording is unknown, a comment says so.
"""

import copy
import itertools
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_TEXT = 40_000  # chat.* top-level `text`: longer is `msg_too_long`
MAX_BLOCKS = {"message": 50, "home": 100}
KNOWN_BLOCKS = {
    "section",
    "header",
    "context",
    "divider",
    "actions",
    "image",
    "rich_text",
    "input",
    "markdown",
}
TEXT_TYPES = {"plain_text", "mrkdwn"}
APP_TOKEN_METHODS = {"apps.connections.open"}  # called with the app-level token (xapp-…), not the bot's


@dataclass
class Reply:
    status: int
    body: dict | str  # a dict is sent as JSON, a str as text/plain
    headers: dict[str, str] = field(default_factory=dict)


class SlackError(Exception):
    """An `ok: false` answer. Slack sends these with HTTP 200 (except rate limits and outages)."""

    def __init__(self, error: str, messages: list[str] | None = None, **extra: Any):
        super().__init__(error)
        body: dict[str, Any] = {"ok": False, "error": error} | extra
        if messages:  # Slack repeats the details, prefixed, in response_metadata
            body["errors"] = messages
            body["response_metadata"] = {"messages": [f"[ERROR] {m}" for m in messages]}
        self.reply = Reply(200, body)


class Workspace:
    """One Slack team with one bot user; everything tests configure or inspect. All under `lock`."""

    def __init__(self, team_id: str = "T0FAKE", team: str = "acme", bot_user_id: str = "U0BOT"):
        self.lock = threading.RLock()
        self.team_id, self.team, self.bot_user_id, self.bot_id = team_id, team, bot_user_id, "B0BOT"
        self.token = "xoxb-1000-2000-fakeslacktoken"
        self.app_token = "xapp-1-A0FAKE-1000-fakeslackapptoken"  # Socket Mode: see fakeslack_socket
        self.socket_url: str | None = None  # set by a running FakeSocketMode
        self.socket_tickets: set[str] = set()  # issued by apps.connections.open, each good for one link
        self.users: dict[str, dict] = {}
        self.usergroups: dict[str, list[str]] = {}
        self.channels: dict[str, dict] = {}
        self._messages: dict[str, list[dict]] = {}  # channel → messages, oldest first
        self._ephemerals: dict[str, list[dict]] = {}
        self._homes: dict[str, dict] = {}  # user id → published Home view
        self._responses: dict[str, list[dict]] = {}  # response_url name → payloads, oldest first
        self._clock = itertools.count(1)

    def next_ts(self) -> str:
        """Unique, increasing, shaped like Slack's: seconds '.' microseconds."""
        micros = next(self._clock) * 100
        return f"{1_700_000_000 + micros // 1_000_000}.{micros % 1_000_000:06d}"

    # -- configuration ------------------------------------------------------------------------------

    def add_user(
        self, user_id: str, name: str, email: str | None = None, real_name: str | None = None
    ) -> None:
        real_name = real_name or name
        profile = {"real_name": real_name, "display_name": name, "email": email or f"{name}@example.com"}
        with self.lock:
            self.users[user_id] = {
                "id": user_id,
                "team_id": self.team_id,
                "name": name,
                "real_name": real_name,
                "deleted": False,
                "is_bot": False,
                "tz": "Etc/UTC",
                "profile": profile,
            }

    def add_usergroup(self, usergroup_id: str, user_ids: list[str]) -> None:
        with self.lock:
            self.usergroups[usergroup_id] = list(user_ids)

    def add_channel(self, channel_id: str, name: str) -> None:
        """Only for conversations.info: posting works in any channel id (see the module docstring)."""
        with self.lock:
            self.channels[channel_id] = {
                "id": channel_id,
                "name": name,
                "is_channel": True,
                "is_member": True,
            }

    # -- state tests read: copies, so what a test holds does not change under it -----------------------

    def messages(self, channel: str) -> list[dict]:
        with self.lock:
            return copy.deepcopy(self._messages.get(channel, []))

    def message(self, channel: str, ts: str) -> dict | None:
        return next((m for m in self.messages(channel) if m["ts"] == ts), None)

    def ephemerals(self, channel: str) -> list[dict]:
        with self.lock:
            return copy.deepcopy(self._ephemerals.get(channel, []))

    def home(self, user_id: str) -> dict | None:
        with self.lock:
            return copy.deepcopy(self._homes.get(user_id))

    def responses(self, name: str) -> list[dict]:
        with self.lock:
            return copy.deepcopy(self._responses.get(name, []))


# -- Block Kit --------------------------------------------------------------------------------------------


def block_problems(blocks: Any, pointer: str, limit: int) -> list[str]:
    """What Slack would say is wrong with `blocks` (found at JSON pointer `pointer`); [] when valid."""
    if not isinstance(blocks, list):
        return [f"must be an array [json-pointer:{pointer}]"]  # wording is a guess
    if len(blocks) > limit:
        return [f"no more than {limit} items allowed [json-pointer:{pointer}]"]
    problems: list[str] = []
    for n, block in enumerate(blocks):
        problems += _block(block, f"{pointer}/{n}")
    return problems


def _block(block: Any, at: str) -> list[str]:
    if not isinstance(block, dict) or block.get("type") not in KNOWN_BLOCKS:
        return [f"failed to match all allowed schemas [json-pointer:{at}]"]
    problems = _length(block.get("block_id"), 255, f"{at}/block_id", optional=True)
    kind = block["type"]
    if kind == "section":
        if "text" not in block and "fields" not in block:
            problems.append(f"must provide either text or fields [json-pointer:{at}]")  # wording is a guess
        if "text" in block:
            problems += _text(block["text"], f"{at}/text", 3000)
        fields = block.get("fields", [])
        problems += _items(fields, 10, f"{at}/fields", minimum=0)
        for n, item in enumerate(fields if isinstance(fields, list) else []):
            problems += _text(item, f"{at}/fields/{n}", 2000)
    elif kind == "header":
        problems += _text(block.get("text"), f"{at}/text", 150, plain=True)
    elif kind == "context":
        problems += _items(block.get("elements"), 10, f"{at}/elements")
    elif kind == "actions":
        problems += _items(block.get("elements"), 25, f"{at}/elements")
    elif kind == "image":
        problems += _length(block.get("image_url"), 3000, f"{at}/image_url")
        problems += _length(block.get("alt_text"), 2000, f"{at}/alt_text")
    elif kind == "rich_text":
        problems += _items(block.get("elements"), 10_000, f"{at}/elements", minimum=0)
    return problems


def _text(obj: Any, at: str, limit: int, plain: bool = False) -> list[str]:
    if not isinstance(obj, dict) or obj.get("type") not in ({"plain_text"} if plain else TEXT_TYPES):
        return [f"failed to match all allowed schemas [json-pointer:{at}]"]
    return _length(obj.get("text"), limit, f"{at}/text")


def _length(value: Any, limit: int, at: str, optional: bool = False) -> list[str]:
    if value is None and optional:
        return []
    if not isinstance(value, str):
        return [f"must be a string [json-pointer:{at}]"]  # wording is a guess
    if not value:
        return [f"must be more than 0 characters [json-pointer:{at}]"]
    if len(value) > limit:
        return [f"must be less than {limit + 1} characters [json-pointer:{at}]"]
    return []


def _items(value: Any, limit: int, at: str, minimum: int = 1) -> list[str]:
    if not isinstance(value, list):
        return [f"must be an array [json-pointer:{at}]"]
    if len(value) < minimum:
        return [f"must provide at least {minimum} items [json-pointer:{at}]"]  # wording is a guess
    if len(value) > limit:
        return [f"no more than {limit} items allowed [json-pointer:{at}]"]
    return []


def check_message(args: dict, require_content: bool = True) -> None:
    """Slack's checks on a chat.* message: text length, presence of content, blocks."""
    text = args.get("text")
    if text is not None and len(str(text)) > MAX_TEXT:
        raise SlackError("msg_too_long")
    if require_content and not text and not args.get("blocks") and not args.get("attachments"):
        raise SlackError("no_text")
    if "blocks" in args:
        problems = block_problems(args["blocks"], "/blocks", MAX_BLOCKS["message"])
        if problems:
            raise SlackError("invalid_blocks", problems)


# -- Web API methods: (workspace, arguments) → answer body --------------------------------------------------

Method = Callable[[Workspace, dict], dict]
METHODS: dict[str, Method] = {}


def method(name: str) -> Callable[[Method], Method]:
    def register(handler: Method) -> Method:
        METHODS[name] = handler
        return handler

    return register


def required(args: dict, name: str, error: str = "invalid_arguments") -> str:
    value = args.get(name)
    if value in (None, ""):
        raise SlackError(error)
    return str(value)


@method("auth.test")
def auth_test(ws: Workspace, args: dict) -> dict:
    return {
        "url": f"https://{ws.team}.slack.com/",
        "team": ws.team,
        "user": "tierbot",
        "team_id": ws.team_id,
        "user_id": ws.bot_user_id,
        "bot_id": ws.bot_id,
        "is_enterprise_install": False,
    }


@method("apps.connections.open")
def apps_connections_open(ws: Workspace, args: dict) -> dict:
    """A one-time websocket URL shaped like Slack's (wss://wss-primary.slack.com/link/?ticket=…&app_id=…)."""
    if ws.socket_url is None:  # not Slack's behaviour: the test started no FakeSocketMode
        raise SlackError("internal_error", ["no FakeSocketMode is running"])
    ticket = uuid.uuid4().hex
    ws.socket_tickets.add(ticket)
    return {"url": f"{ws.socket_url}?ticket={ticket}&app_id=A0FAKE"}


@method("chat.postMessage")
def chat_post_message(ws: Workspace, args: dict) -> dict:
    channel = required(args, "channel", "channel_not_found")
    check_message(args)
    ts = ws.next_ts()
    message = {
        "type": "message",
        "ts": ts,
        "user": ws.bot_user_id,
        "bot_id": ws.bot_id,
        "team": ws.team_id,
        "text": args.get("text", ""),
        "blocks": args.get("blocks", []),
        "attachments": args.get("attachments", []),
        "thread_ts": args.get("thread_ts"),
        "metadata": args.get("metadata"),
        "edits": 0,  # the fake's own: how many chat.update calls changed it
        "history": [],  # the fake's own: earlier versions, oldest first
    }
    ws._messages.setdefault(channel, []).append(message)
    return {"channel": channel, "ts": ts, "message": public(message)}


@method("chat.update")
def chat_update(ws: Workspace, args: dict) -> dict:
    channel = required(args, "channel", "channel_not_found")
    ts = required(args, "ts", "message_not_found")
    check_message(args)
    message = next((m for m in ws._messages.get(channel, []) if m["ts"] == ts), None)
    if message is None:
        raise SlackError("message_not_found")
    message["history"].append({k: message[k] for k in ("text", "blocks", "attachments")})
    for key in ("text", "blocks", "attachments"):  # what is left out is kept, as Slack does
        if key in args:
            message[key] = args[key]
    message["edits"] += 1
    return {"channel": channel, "ts": ts, "text": message["text"], "message": public(message)}


@method("chat.postEphemeral")
def chat_post_ephemeral(ws: Workspace, args: dict) -> dict:
    channel = required(args, "channel", "channel_not_found")
    user = required(args, "user", "user_not_in_channel")
    check_message(args)
    ts = ws.next_ts()
    ephemeral = {
        "ts": ts,
        "user": user,
        "text": args.get("text", ""),
        "blocks": args.get("blocks", []),
        "attachments": args.get("attachments", []),
        "thread_ts": args.get("thread_ts"),
    }
    ws._ephemerals.setdefault(channel, []).append(ephemeral)
    return {"message_ts": ts}


@method("views.publish")
def views_publish(ws: Workspace, args: dict) -> dict:
    user_id = required(args, "user_id")
    view = args.get("view")
    if not isinstance(view, dict) or view.get("type") != "home":
        raise SlackError("invalid_arguments", ["must be a home view [json-pointer:/view/type]"])  # guess
    # views.* call invalid blocks `invalid_arguments`: views.publish has no `invalid_blocks` error
    problems = block_problems(view.get("blocks"), "/view/blocks", MAX_BLOCKS["home"])
    if problems:
        raise SlackError("invalid_arguments", problems)
    current = ws._homes.get(user_id)
    if args.get("hash") and current is not None and args["hash"] != current["hash"]:
        raise SlackError("hash_conflict")
    published = view | {
        "id": current["id"] if current else f"V{ws.next_ts().replace('.', '')}",
        "team_id": ws.team_id,
        "app_id": "A0FAKE",
        "bot_id": ws.bot_id,
        "hash": ws.next_ts(),
        "private_metadata": view.get("private_metadata", ""),
        "callback_id": view.get("callback_id", ""),
        "external_id": view.get("external_id", ""),
        "state": {"values": {}},
    }
    ws._homes[user_id] = published
    return {"view": published}


@method("usergroups.users.list")
def usergroups_users_list(ws: Workspace, args: dict) -> dict:
    group = required(args, "usergroup", "no_such_subteam")
    if group not in ws.usergroups:
        raise SlackError("no_such_subteam")
    return {"users": list(ws.usergroups[group])}


@method("users.info")
def users_info(ws: Workspace, args: dict) -> dict:
    user = ws.users.get(required(args, "user", "user_not_found"))
    if user is None:
        raise SlackError("user_not_found")
    return {"user": user}


@method("conversations.info")
def conversations_info(ws: Workspace, args: dict) -> dict:
    channel = ws.channels.get(required(args, "channel", "channel_not_found"))
    if channel is None:
        raise SlackError("channel_not_found")
    return {"channel": channel}


def public(message: dict) -> dict:
    """A stored message as Slack returns it: without the fake's bookkeeping and empty fields."""
    hidden = {"edits", "history"}
    return {k: v for k, v in message.items() if k not in hidden and v not in (None, [])}
