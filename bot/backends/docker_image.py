"""The image a docker run starts from, built by the engine at most once per environment.

Two recipes, each named by a hash of everything that goes into it, so that an image tagged
`tierbot-env:<hash>` on the engine *is* the environment and an unchanged repository builds nothing
(one image lookup, a few milliseconds):

- the repository's Dockerfile (`environment.dockerfile`), built with the repository as its context. The
  hash covers the Dockerfile's path and each file the engine would receive (after `.dockerignore`, and
  never `.git`, which changes with every commit): names, contents, executable bits and link targets, not
  modification times, which are new in every checkout. A `FROM` tag that moves upstream is not seen:
  change the Dockerfile to rebuild.
- else the tier's base image (`backend_options.image`) with a venv at /opt/tierbot/venv holding the
  requirements file, if any; without one a bare venv, so that `python` means the same on every tier. The
  hash covers the base image's id and the requirements file. A requirements file is built alone, so
  it cannot name other files of the repository (`-r other.txt`, `./wheels/…`): use a Dockerfile for that.

Builds run on `backend_options.build_network`; their steps run as the nobody user where the recipe is
ours. Output streams into the run's log; cancellation and a one-hour limit cut the stream, which makes
the engine stop the build.
"""

import io
import os
import stat
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Protocol

import docker
import xxhash

from bot.backends import Job, Watcher
from bot.backends.docker_options import LABEL_INSTANCE, DockerOptions
from bot.backends.docker_stream import Interruptible, Lines
from bot.backends.process import POLL_SECONDS, LogSink
from bot.errors import TierbotError
from bot.outputs import file_hash
from bot.units import format_duration

REPOSITORY = "tierbot-env"
RECIPE = "tierbot-env/2"  # part of every hash: a change to the recipes below rebuilds everything
BUILD_SECONDS = 3600.0
ABORT_JOIN_SECONDS = 5.0
VENV = "/opt/tierbot/venv"
NOBODY = "65534:65534"
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class EnvironmentFailed(TierbotError):
    pass


class EnvironmentCancelled(TierbotError):
    pass


def environment_image(
    client: docker.DockerClient,
    job: Job,
    options: DockerOptions,
    labels: dict[str, str],
    sink: LogSink,
    watcher: Watcher,
) -> str:
    """The tag of the job's environment image, built now unless the engine has it already."""
    if job.dockerfile is not None:
        recipe: _Recipe = _DockerfileRecipe(job.workdir, job.dockerfile)
    elif options.image is not None:
        recipe = _BaseRecipe(client, options.image, job.requirements, labels[LABEL_INSTANCE])
    else:
        raise EnvironmentFailed(
            f"tier {job.tier.name!r} has no base image (backend_options.image) and the repository names no "
            "Dockerfile (environment.dockerfile in tierbot.yaml)"
        )
    tag = f"{REPOSITORY}:{recipe.key()}"
    if _exists(client, tag):
        sink.line(f"[tierbot: reusing the environment image {tag} ({recipe.shown})]")
        return tag
    sink.line(f"[tierbot: building the environment image {tag} ({recipe.shown})]")
    with recipe.context() as context:
        kwargs = {"dockerfile": recipe.dockerfile, "network_mode": options.build_network}
        _build(client, context, tag, labels, kwargs, sink, watcher)
    return tag


def _exists(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.api.inspect_image(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


class _Recipe(Protocol):
    """How an environment image is built: the repository's Dockerfile, or the tier's base image with
    the requirements."""

    shown: str  # for people: what is built
    dockerfile: str

    def key(self) -> str:
        """The hash that names the image: the same recipe builds nothing the second time."""
        ...

    def context(self) -> IO[bytes]:
        """The build context as a tar file, positioned at its start."""
        ...


class _DockerfileRecipe(_Recipe):
    def __init__(self, root: Path, dockerfile: Path):
        self.root = root
        self.dockerfile = dockerfile.relative_to(root).as_posix()
        self.shown = self.dockerfile
        if not stat.S_ISREG(_lstat(dockerfile).st_mode):  # a link could make the engine read a host file
            raise EnvironmentFailed(f"the Dockerfile {self.dockerfile} is not a file in the repository")
        self._excluded = _dockerignore(root) + [".git"]

    def _paths(self) -> list[str]:
        excluded = list(self._excluded)  # exclude_paths appends to the list it is given
        return sorted(docker.utils.exclude_paths(str(self.root), excluded, dockerfile=self.dockerfile))

    def key(self) -> str:
        digest = xxhash.xxh3_128(f"{RECIPE}\0dockerfile\0{self.dockerfile}\0".encode())
        for relative in self._paths():
            entry = _entry(self.root / relative)
            if entry is not None:
                digest.update(os.fsencode(relative) + b"\0" + entry + b"\0")
        return digest.hexdigest()

    def context(self) -> IO[bytes]:
        # Spooled: a small repository stays in memory, a large one goes to disk, never all in memory.
        spool = tempfile.SpooledTemporaryFile(max_size=16 * 1024**2)  # noqa: SIM115 (the caller closes it)
        excluded = list(self._excluded)
        docker.utils.tar(str(self.root), exclude=excluded, dockerfile=(self.dockerfile, None), fileobj=spool)
        spool.seek(0)
        return spool


def _lstat(path: Path) -> os.stat_result:
    try:
        return path.lstat()
    except OSError:
        raise EnvironmentFailed(f"the Dockerfile {path.name} does not exist in the repository") from None


def _dockerignore(root: Path) -> list[str]:
    """The patterns of the repository's .dockerignore, read as the engine reads them."""
    path = root / ".dockerignore"
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text(errors="replace").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _entry(path: Path) -> bytes | None:
    """What the engine gets of one path, without its times: a link's target, a file's content and mode."""
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        return b"L" + os.fsencode(os.readlink(path))
    if stat.S_ISREG(info.st_mode):
        return (b"X" if info.st_mode & 0o111 else b"F") + file_hash(path).encode()
    return b"D" if stat.S_ISDIR(info.st_mode) else None


class _BaseRecipe(_Recipe):
    dockerfile = "Dockerfile"

    def __init__(self, client: docker.DockerClient, image: str, requirements: Path | None, instance: str):
        self.image, self.instance = image, instance
        try:
            found = client.api.inspect_image(image)
        except docker.errors.ImageNotFound:
            raise EnvironmentFailed(
                f"the base image {image} (backend_options.image) is not on the engine"
            ) from None
        self.base_id: str = found["Id"]
        env = found.get("Config", {}).get("Env") or []
        # An imported image (docker import) has no PATH; `ENV PATH=…:$PATH` would then end in ":", the cwd.
        self.path = next((item[5:] for item in env if item.startswith("PATH=")), _DEFAULT_PATH)
        self.requirements = _read(requirements) if requirements is not None else None
        self.shown = f"{image} with {requirements.name}" if requirements is not None else f"{image} alone"

    def key(self) -> str:
        requirements = b"-" if self.requirements is None else b"+" + self.requirements
        return xxhash.xxh3_128_hexdigest(f"{RECIPE}\0base\0{self.base_id}\0".encode() + requirements)

    def recipe(self) -> str:
        if self.requirements is None:
            install = f"RUN python3 -m venv --without-pip {VENV}\n"  # a second rather than five
        else:
            install = (
                f"COPY --chown={NOBODY} requirements.txt /opt/tierbot/requirements.txt\n"
                f"RUN python3 -m venv {VENV}"
                f" && {VENV}/bin/python -m pip install -r /opt/tierbot/requirements.txt\n"
            )
        return (
            f"FROM {self.base_id}\n"
            f"LABEL {LABEL_INSTANCE}={self.instance}\n"  # first: a failed build's layers are the reaper's too
            "USER root\n"
            f"RUN mkdir -p /opt/tierbot && chown {NOBODY} /opt/tierbot\n"
            f"USER {NOBODY}\n"
            "ENV HOME=/tmp PIP_NO_INPUT=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1\n"
            f"{install}"
            f"ENV VIRTUAL_ENV={VENV} PATH={VENV}/bin:{self.path}\n"
        )

    def context(self) -> IO[bytes]:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            _add(archive, "Dockerfile", self.recipe().encode())
            if self.requirements is not None:
                _add(archive, "requirements.txt", self.requirements)
        buffer.seek(0)
        return buffer


def _read(requirements: Path) -> bytes:
    if not requirements.is_file():
        raise EnvironmentFailed(f"the requirements file {requirements.name} does not exist in the repository")
    return requirements.read_bytes()


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    archive.addfile(info, io.BytesIO(data))


def _build(
    client: docker.DockerClient,
    context: IO[bytes],
    tag: str,
    labels: dict[str, str],
    kwargs: dict[str, Any],
    sink: LogSink,
    watcher: Watcher,
) -> None:
    """Build with the engine, its output into the log, until done, cancelled or out of time."""
    lines = Lines(sink)
    errors: list[str] = []

    def start() -> Iterator[Any]:
        return client.api.build(
            fileobj=context, custom_context=True, tag=tag, labels=labels, rm=True, forcerm=True,
            decode=True, timeout=None, **kwargs,
        )  # fmt: skip

    def consume(item: dict) -> None:
        lines.feed(item.get("stream") or (item["status"] + "\n" if item.get("status") else ""))
        if item.get("error"):
            errors.append(" ".join(str(item["error"]).split()))
            lines.feed(f"{item['error']}\n")

    stream = Interruptible(client.api, start, consume).run()
    deadline = time.monotonic() + BUILD_SECONDS
    while not stream.join(POLL_SECONDS):
        if watcher.cancelled() or time.monotonic() >= deadline:
            stream.abort()
            stream.join(ABORT_JOIN_SECONDS)
            lines.close()
            if watcher.cancelled():
                raise EnvironmentCancelled("cancelled while building the environment image")
            raise EnvironmentFailed(
                f"building the environment image took more than {format_duration(BUILD_SECONDS)}"
            )
    lines.close()
    if stream.error is not None:
        raise EnvironmentFailed(f"the environment image could not be built: {stream.error}")
    if errors:
        raise EnvironmentFailed(f"the environment image could not be built: {errors[-1][:500]}")
