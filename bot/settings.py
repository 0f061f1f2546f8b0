"""Configuration, declared once: `TIERBOT_*` environment variables, or a YAML file named by
`TIERBOT_CONFIG`. Everything below reads a `Settings` passed to it, never the environment."""

import os
import re
import tempfile
from pathlib import Path
from typing import Literal

import yaml
from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    YamlConfigSettingsSource,
)

from bot.errors import SettingsInvalid
from bot.yaml_errors import dotted, expected, explain

_S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def _default_data_dir() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "tierbot"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TIERBOT_", extra="ignore", populate_by_name=True)

    data_dir: Path = Field(default_factory=_default_data_dir, description="Database, caches, outputs.")
    database_url: str | None = Field(None, description="SQLAlchemy URL; SQLite in data_dir when unset.")
    tiers_file: Path | None = None
    git_url_template: str | None = Field(None, description="e.g. file:///srv/mirrors/{full_name}.git")
    github_api_url: str = "https://api.github.com"
    github_webhook_secret: SecretStr | None = Field(
        None,
        description="Webhook secret; several, comma-separated, while rotating. Unset refuses all deliveries.",
    )
    github_run_drafts: bool = Field(False, description="Run draft pull requests too.")
    github_token: SecretStr | None = Field(None, description="A token (plain token mode).")
    github_app_id: int | None = Field(None, description="GitHub App id (App mode, with the private key).")
    github_private_key: SecretStr | None = Field(None, description="The App's private key (PEM).")
    github_retries: int = Field(3, ge=0, description="Retries of idempotent GitHub calls on 5xx and limits.")
    github_max_wait_seconds: float = Field(60.0, ge=0, description="Longest wait for a GitHub rate limit.")
    slack_api_url: str = "https://slack.com/api/"
    slack_bot_token: SecretStr | None = Field(None, description="The Slack app's bot token (xoxb-…).")
    slack_signing_secret: SecretStr | None = Field(None, description="Verifies requests from Slack.")
    slack_app_token: SecretStr | None = Field(None, description="xapp-… token: Socket Mode, no public URL.")
    slack_default_repository: str | None = Field(None, description="For channels without `/run use`.")
    slack_retries: int = Field(3, ge=0, description="Retries of Slack calls on rate limits and 5xx.")
    slack_notify: dict[str, str] = Field(
        default_factory=dict,
        description='Channel per repository for PR verdicts, e.g. {"acme/models": "C0123"}.',
    )
    slack_github_logins: dict[str, str] = Field(
        default_factory=dict,
        description='Slack user id → GitHub login, vouched for by the operator: {"U0123": "ada"}. Others '
        "link theirs with `/run link` (GitHub's device flow, needs github_oauth_client_id).",
    )
    slack_open_repositories: dict[str, Literal["read", "write"]] = Field(
        default_factory=dict,
        description='Repositories every workspace member may read or run: {"acme/demo": "write"}.',
    )
    github_oauth_client_id: str | None = Field(
        None, description="Client id of a GitHub (OAuth) App with device flow enabled: `/run link`."
    )

    public_url: str | None = Field(
        None,
        description="Where `tierbot serve` is reachable, e.g. https://tierbot.example.com: report links.",
    )
    report_secret: SecretStr | None = Field(
        None, description="Signs report links; a random one is kept in the data dir when unset."
    )
    report_link_days: int = Field(
        30, ge=1, description="Days a report link works; PR comments and Slack messages get fresh ones."
    )
    sandbox_tier: str | None = Field(
        None,
        description="The tier a fork's approved commit runs on, whatever tier was asked (a docker tier "
        "without network): forks never run on local tiers, unless local_forks.",
    )
    local_forks: bool = Field(
        False,
        description="Unsafe: let a fork's approved commit run on local tiers, on this machine, as "
        "sandbox_user (only a user switch between it and the bot).",
    )
    sandbox_user: str = Field(
        "nobody",
        description="When tierbot runs as root: the unprivileged user untrusted code (a fork's) runs as on "
        "local tiers. Not root, and not a user that owns anything of tierbot's.",
    )
    sandbox_dir: Path = Field(
        default_factory=lambda: Path(tempfile.gettempdir()) / "tierbot-sandbox",
        description="Where untrusted runs get their workspaces: outside data_dir, reachable by sandbox_user.",
    )
    sandbox_python: str = Field(
        "python3",
        description="The Python untrusted runs' environments are built with: one sandbox_user can run "
        "(tierbot's own may live where it cannot, e.g. under /root).",
    )
    docker_instance: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="Labels this installation's Docker containers and images (tierbot.instance), so its "
        "reaper removes only its own; when unset, one derived from the database URL (replicas sharing a "
        "database share it).",
    )
    docker_image_budget: int = Field(
        20 * 1024**3,
        ge=0,
        description="Bytes of environment images kept on each Docker Engine; the reaper removes the oldest "
        "beyond it.",
    )

    redact: SecretStr | None = Field(
        None,
        description="More secret values, comma-separated, that never reach GitHub, Slack or a report.",
    )
    # Cloud credentials in the worker's environment: the S3 artifact store's (passed to boto3 explicitly:
    # hardening removes them from the environment), always redacted.
    aws_access_key_id: SecretStr | None = Field(
        None, validation_alias=AliasChoices("TIERBOT_AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID")
    )
    aws_secret_access_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("TIERBOT_AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY")
    )
    aws_session_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("TIERBOT_AWS_SESSION_TOKEN", "AWS_SESSION_TOKEN")
    )
    aws_endpoint_url: str | None = Field(
        None,
        validation_alias=AliasChoices("TIERBOT_AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL"),
        description="An S3-compatible endpoint (MinIO, Ceph, a test server) instead of AWS's.",
    )
    artifact_store: str | None = Field(
        None,
        description="Where outputs, run logs and reports live: unset, the data dir (this host only); a path "
        "every replica mounts (/mnt/shared/tierbot); or s3://bucket/prefix (install tierbot[aws]).",
    )

    @field_validator("artifact_store")
    @classmethod
    def _artifact_store(cls, value: str | None) -> str | None:
        """The store's place, normalized (no trailing slash); a clear refusal of anything else."""
        if not value:
            return None
        usage = "set it to a path every replica mounts (/mnt/shared/tierbot) or to s3://bucket/prefix"
        if value.startswith("s3://"):
            bucket, _, prefix = value.removeprefix("s3://").partition("/")
            if not _S3_BUCKET.match(bucket):
                raise ValueError(
                    f"{value!r}: {bucket!r} is not an S3 bucket name (3 to 63 "
                    "lowercase letters, digits, dots and hyphens); " + usage
                )
            prefix = prefix.strip("/")
            return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        if "://" in value:
            raise ValueError(f"{value!r}: only s3:// URLs are stores; " + usage)
        if not Path(value).is_absolute():
            raise ValueError(f"{value!r} is not an absolute path; " + usage)
        return str(Path(value))

    lease_seconds: float = Field(30.0, gt=0, description="A worker that stops heartbeating loses its run.")
    max_attempts: int = Field(2, ge=1, description="Times a run is started before a dead worker fails it.")
    poll_seconds: float = Field(0.5, gt=0, description="How often an idle worker looks for queued runs.")
    shutdown_grace_seconds: float = Field(
        10.0,
        ge=0,
        description="On SIGTERM, how long runs being executed may go on before they are handed back to "
        "the queue for another replica (a second SIGTERM exits at once).",
    )
    reap_seconds: float = Field(
        300.0, gt=0, description="How often a worker removes what ended runs left on the backends' engines."
    )
    remote_poll_seconds: float = Field(
        5.0,
        gt=0,
        description="How often a remote job (AWS Batch) is first asked for its state and log; it backs off "
        "to 12 times that (60 s) while nothing changes.",
    )
    bundle_retention_seconds: float = Field(
        86400.0,
        ge=0,
        description="How long a code bundle stays in the artifact store's bundles/ after its last use.",
    )
    progress_seconds: float = Field(
        10.0, gt=0, description="How often a running run's last log line is shown in Slack and on GitHub."
    )

    compare_memory_limit: str | None = Field(None, description="Cap for table diffs, e.g. 2GB (spills).")
    compare_threads: int | None = Field(
        None, ge=1, description="Threads for table diffs; all cores if unset."
    )

    # What a client may make `tierbot serve` hold before its request is verified (bot/limits.py).
    max_request_bytes: int = Field(
        25 * 1024**2, ge=1024, description="Largest request body read; GitHub's webhooks are at most 25 MB."
    )
    request_read_seconds: float = Field(
        10.0, gt=0, description="Time a request's body has to arrive; a slower one is answered 408."
    )
    max_connections: int = Field(
        1000, ge=1, description="Connections served at once; beyond them, requests are answered 503."
    )

    max_output_files: int = Field(10_000, ge=1)
    max_output_bytes: int = Field(5 * 1024**3, ge=1)
    max_log_bytes: int = Field(10 * 1024**2, ge=1024)

    def __init__(self, **values) -> None:
        """Settings from the keywords, the environment and the config file; a bad value is a
        `SettingsInvalid` naming the variable and what it must be, never pydantic's words."""
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise SettingsInvalid(_problems(exc)) from None
        except SettingsError as exc:  # a mapping or list setting whose text is not JSON
            raise SettingsInvalid([_not_json(str(exc))]) from None
        except (OSError, yaml.YAMLError) as exc:
            problem = " ".join(str(exc).split())  # YAML's is on several lines
            raise SettingsInvalid(
                [f"TIERBOT_CONFIG: {os.environ.get('TIERBOT_CONFIG')}: {problem}"]
            ) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources = [init_settings, env_settings]
        config = os.environ.get("TIERBOT_CONFIG")
        if config:
            if not Path(config).is_file():  # pydantic-settings would read a mistyped path as empty
                raise FileNotFoundError(f"no such file (from {Path.cwd()})")
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config))
        return tuple(sources)

    @property
    def github_web_url(self) -> str:
        """GitHub's web (and git) host for its API URL: api.github.com → github.com, and GitHub
        Enterprise's https://HOST/api/v3 → https://HOST."""
        url = self.github_api_url.rstrip("/")
        if url == "https://api.github.com":
            return "https://github.com"
        return url.removesuffix("/api/v3")

    @property
    def git_url(self) -> str:
        """Where `owner/name` repositories are fetched from."""
        return self.git_url_template or f"{self.github_web_url}/{{full_name}}.git"

    @property
    def github_secrets(self) -> list[str]:
        if self.github_webhook_secret is None:
            return []
        return [
            part.strip() for part in self.github_webhook_secret.get_secret_value().split(",") if part.strip()
        ]

    def secret_values(self) -> dict[str, list[str]]:
        """Every secret value set here, by the variable that holds it: each `SecretStr` setting (the
        comma-separated ones split), and the database URL's password."""
        found: dict[str, list[str]] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                text = value.get_secret_value()
                split = name in ("github_webhook_secret", "redact")
                found[f"TIERBOT_{name.upper()}"] = [p.strip() for p in text.split(",")] if split else [text]
        if self.database_url:
            from sqlalchemy.engine import make_url

            password = make_url(self.database_url).password
            if password:
                found["TIERBOT_DATABASE_URL"] = [str(password)]
        return found

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'tierbot.db'}"

    @property
    def blobs_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def mirrors_dir(self) -> Path:
        return self.data_dir / "mirrors"

    @property
    def worktrees_dir(self) -> Path:
        return self.data_dir / "worktrees"

    @property
    def envs_dir(self) -> Path:
        return self.data_dir / "envs"

    @property
    def reports_dir(self) -> Path:
        return self.data_dir / "reports"


def _source(field: str) -> str:
    """Where a setting was read: its environment variable, else the `TIERBOT_CONFIG` file's key."""
    if field not in Settings.model_fields:
        return field  # an alias is its variable's name (AWS_ACCESS_KEY_ID)
    variable = f"TIERBOT_{field.upper()}"
    config = os.environ.get("TIERBOT_CONFIG")
    return f"{field} in {config}" if config and variable not in os.environ else variable


def _problems(exc: ValidationError) -> list[str]:
    errors = exc.errors(include_url=False)
    values = {err["loc"][0]: err.get("input") for err in errors if err["loc"]}
    explained = explain(Settings, values, None, errors)
    return list(dict.fromkeys(f"{_place(path)}: {message}" for path, message in explained if path))


def _place(path: tuple) -> str:
    within = f" ({dotted(path[1:])})" if len(path) > 1 else ""  # a mapping's key: `owner/repo`
    return _source(str(path[0])) + within


def _not_json(error: str) -> str:
    """pydantic-settings reads a mapping or list setting as JSON and names the field it failed on."""
    field = re.search(r'field "(\w+)"', error)
    if field is None:
        return error
    name = field.group(1)
    return f"{_source(name)}: must be {expected(Settings.model_fields[name].annotation)} written in JSON"
