"""`tierbot init`: write a repository's tierbot.yaml from what is in it, asking about each part.

What is proposed, and why, is `bot.cli.proposal` (which neither asks nor runs). This is the edge that
does: it finds the repository's root, refuses to replace a tierbot.yaml without `--force`, asks about
the command and the environment, runs the command once in the working tree when no outputs directory
holds files yet (or reads the one that does), asks about each metric file, table and mask, and writes
the file only once the project's loader has read it back as what was accepted. `--yes` accepts all.

The trial run is the user's command in their own working tree, as they would run it: `/bin/sh -c
COMMAND` from the root, in its own process group (stopped whole on timeout or Ctrl-C), with the
repository's `.venv` or `venv` first on PATH when it has one, else the Python tierbot runs on: building
the environment from the requirements is `tierbot run`'s job, not init's, and init says so.

Exit status: 0 written; 2 refused (no git repository, a tierbot.yaml already there, no command);
3 the command failed, timed out or wrote no directory (nothing written); 4 interrupted.
"""

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Annotated

import click
import typer
from rich.console import Console

from bot.backends.process import stop_group
from bot.cli.outcome import Exit
from bot.cli.proposal import (
    GENERATED_REQUIREMENTS,
    Choice,
    Proposal,
    has_files,
    outputs_of,
    propose,
    snapshot,
    spec_text,
    written_directory,
)
from bot.cli.proposal_outputs import OutputsProposal
from bot.errors import TierbotError
from bot.render.templates import term_text, visible
from bot.spec import SPEC_FILE

console = Console()
err = Console(stderr=True)
GRACE_SECONDS = 5.0


class InitRefused(TierbotError):
    """`tierbot init` cannot write here; `bot.cli.main` exits 2 with the message."""


@dataclass(frozen=True)
class Questions:
    """Each proposal is a question; `--yes` answers them all with the proposal."""

    yes: bool

    def confirm(self, question: str) -> bool:
        return self.yes or typer.confirm(question, default=True)

    def prompt(self, question: str, default: str | None) -> str:
        if self.yes and default is not None:
            return default
        return str(typer.prompt(question, default=default)).strip()


def repository_root(path: Path) -> Path:
    done = subprocess.run(
        ["git", "-C", str(path), "rev-parse", "--show-toplevel"], capture_output=True, text=True
    )
    if done.returncode != 0 or not done.stdout.strip():
        raise InitRefused(
            f"{path} is not inside a git repository. tierbot runs a branch's committed code, so "
            "tierbot.yaml belongs at the root of one: `git init` (and commit your code) first."
        )
    return Path(done.stdout.strip()).resolve()


def outputs_within(root: Path, value: str) -> str:
    """`--outputs` as the spec takes it: a directory inside the repository, relative to its root."""
    path = Path(value).expanduser()
    if path.is_absolute():
        try:
            path = path.resolve().relative_to(root)
        except ValueError:
            raise InitRefused(f"--outputs {value} is not inside the repository {root}") from None
    relative = PurePosixPath(path.as_posix())
    if ".." in relative.parts or str(relative) in ("", "."):
        raise InitRefused(f"--outputs {value}: name a directory inside the repository, not its root or above")
    return str(relative)


def _trial_path(root: Path) -> tuple[str, str, bool]:
    """PATH for the trial run, the Python it runs with in words, and whether that is the repository's."""
    path = os.environ.get("PATH", "")
    for venv in (".venv", "venv"):
        if (root / venv / "bin" / "python").exists():
            return f"{root / venv / 'bin'}{os.pathsep}{path}", f"the repository's {venv}", True
    here = Path(sys.executable).parent
    return f"{here}{os.pathsep}{path}", f"{sys.executable} (the Python tierbot runs on)", False


def run_once(root: Path, command: str, timeout: float, path: str) -> int | None:
    """The command's exit status; None when it ran out of time. Its output goes to this terminal."""
    process = subprocess.Popen(
        ["/bin/sh", "-c", command], cwd=root, env=os.environ | {"PATH": path}, start_new_session=True
    )
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_group(process, GRACE_SECONDS)
        return None
    except KeyboardInterrupt:
        stop_group(process, GRACE_SECONDS)
        raise


def _failed(message: str) -> typer.Exit:
    err.print(f"[red]error:[/] {term_text(message)} Nothing was written.")
    return typer.Exit(Exit.EXPERIMENT)


def choose_command(proposal: Proposal, given: str | None, ask: Questions) -> Choice:
    if given:
        return Choice(given, "given with --command")
    for number, choice in enumerate(proposal.commands, 1):
        console.print(f"  {number}. [bold]{term_text(choice.value)}[/]  [dim]({term_text(choice.why)})[/]")
    if not proposal.commands and ask.yes:
        raise InitRefused(
            "no command found (no dvc.yaml stage, Makefile train target, train.py or main.py): "
            "name it with --command"
        )
    default = proposal.commands[0].value if proposal.commands else None
    answer = ask.prompt("Command that runs the experiment", default)
    return next(
        (c for c in proposal.commands if c.value == answer), Choice(answer, "given at `tierbot init`")
    )


def accept_environment(proposal: Proposal, ask: Questions) -> None:
    env = proposal.environment
    if env.requirements and env.generated:
        count = len(env.generated)
        if not ask.confirm(f"Write {GENERATED_REQUIREMENTS} from pyproject.toml's {count} dependencies?"):
            env.requirements = env.generated = None
    elif env.requirements and not ask.confirm(
        f"Build the environment from {visible(env.requirements.value)}?"
    ):
        env.requirements = None
    if env.dockerfile and not ask.confirm(f"Build {env.dockerfile.value} on container tiers?"):
        env.dockerfile = None
    for note in env.notes:
        console.print(f"[yellow]Note:[/] {term_text(note)}")


def trial_run(root: Path, proposal: Proposal, timeout: float, given_outputs: bool) -> None:
    """Run the command once; set the proposal's outputs directory to the one it wrote."""
    command = proposal.commands[0].value
    path, python, own = _trial_path(root)
    console.print(f"Running [bold]{term_text(command)}[/] in {term_text(root)} with {term_text(python)}.")
    if proposal.environment.requirements and not own:
        console.print(
            f"[dim]{term_text(proposal.environment.requirements.value)} is not installed for this trial run "
            "(`tierbot run` builds it). If a package is missing, install it here, or point --outputs at "
            "the directory of an earlier run.[/]"
        )
    before = snapshot(root)
    status = run_once(root, command, timeout, path)
    if status is None:
        raise _failed(f"`{command}` did not finish within {timeout:g} s (--timeout).")
    if status != 0:
        raise _failed(f"`{command}` exited with status {status}: fix it, or pass --no-run or --outputs DIR.")
    directory, counts = written_directory(before, snapshot(root))
    if given_outputs and not has_files(root / proposal.outputs):
        raise _failed(f"`{command}` wrote nothing in {proposal.outputs}/ (--outputs).")
    if not given_outputs:
        if directory is None:
            at_root = " (only files at the repository root)" if counts else ""
            raise _failed(
                f"`{command}` wrote no directory{at_root}. tierbot collects one outputs directory: make "
                "the command write into one, e.g. outputs/, or name it with --outputs."
            )
        proposal.outputs = directory
    for top, count in sorted(counts.items()):
        if top != proposal.outputs:
            where = "the repository root" if top == "." else f"{top}/"
            console.print(
                f"[yellow]Note:[/] it also wrote {count} file(s) in {term_text(where)}, not collected."
            )


def accept_outputs(found: OutputsProposal, ask: Questions) -> OutputsProposal:
    """The proposals for the outputs that the user accepts."""
    accepted = OutputsProposal(
        images=list(found.images),
        other=list(found.other),
        builtin=list(found.builtin),
        unkeyed=list(found.unkeyed),
        notes=list(found.notes),
    )
    for m in found.metrics:
        rules = ", ".join(f"{g.path} ({g.direction or 'no direction'})" for g in m.metrics) or "no rules"
        console.print(f"Metrics in [bold]{term_text(m.file)}[/]: {term_text(rules)}")
        if ask.confirm(f"Compare {visible(m.file)} as metrics, with these directions?"):
            accepted.metrics.append(m)
    for t in found.tables:
        if ask.confirm(f"Guard the table {visible(t.file)} with key column {visible(t.key)} ({t.why})?"):
            accepted.tables.append(t)
        else:
            accepted.unkeyed.append(
                replace(t, why=f"declined at `tierbot init` (key {t.key} would pair its rows)")
            )
    for token in found.masks:
        seen = f"{visible(token.example)} ({token.what}, seen in {visible(token.file)})"
        if ask.confirm(f"Mask tokens like {seen} in text outputs?"):
            accepted.masks.append(token)
    for token in found.builtin:
        console.print(
            f"[dim]{term_text(token.example)} ({token.what}) in {term_text(token.file)} is masked already.[/]"
        )
    return accepted


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    try:
        yield
    except (KeyboardInterrupt, click.exceptions.Abort):
        err.print("[yellow]Interrupted; nothing was written.[/]")
        raise typer.Exit(Exit.INTERRUPTED) from None


def _write(target: Path, text: str) -> None:
    temporary = target.with_name(f".{target.name}.tierbot-init")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, target)


def init(
    repo: Annotated[
        str, typer.Option("--repo", "-C", metavar="PATH", help="The repository (default: the current one).")
    ] = ".",
    command: Annotated[
        str | None,
        typer.Option(
            "--command", metavar="COMMAND", help="The command that runs the experiment (default: proposed)."
        ),
    ] = None,
    outputs: Annotated[
        str | None,
        typer.Option(
            "--outputs", metavar="DIR", help="Its outputs directory, relative to the repository root."
        ),
    ] = None,
    run: Annotated[
        bool | None,
        typer.Option(
            "--run/--no-run",
            help="Run the command once to see its outputs (default: when no outputs directory has files).",
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", metavar="SECONDS", min=1, help="Stop the trial run after this long.")
    ] = 600,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Accept every proposal without asking.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing tierbot.yaml.")] = False,
) -> None:
    """Write tierbot.yaml for a repository: its command, environment and how its outputs are compared."""
    root = repository_root(Path(repo))
    target = root / SPEC_FILE
    if target.exists() and not force:
        raise InitRefused(
            f"{target} already exists: edit it (`tierbot schema` prints its schema), or --force."
        )
    ask = Questions(yes)
    with _interruptible():
        proposal = propose(root, outputs_within(root, outputs) if outputs else None, read_outputs=False)
        proposal.commands = [choose_command(proposal, command, ask)]
        accept_environment(proposal, ask)
        ready = has_files(root / proposal.outputs)
        if run is None:
            question = f"Run `{visible(proposal.commands[0].value)}` once now, to see what it writes?"
            run = not ready and ask.confirm(question)
        if run:
            trial_run(root, proposal, timeout, given_outputs=outputs is not None)
        elif ready:
            console.print(f"Reading the outputs already in {term_text(proposal.outputs)}/.")
        directory = root / proposal.outputs
        if has_files(directory):
            proposal.found = accept_outputs(outputs_of(directory), ask)
        else:
            console.print("[yellow]No outputs were read:[/] the compare section is left for you to fill in.")
        text = spec_text(proposal)
    env = proposal.environment
    if env.requirements and env.generated:
        (root / env.requirements.value).write_text(
            "# Written by `tierbot init` from pyproject.toml's [project] dependencies: keep them in step.\n"
            + "".join(f"{dependency}\n" for dependency in env.generated),
            encoding="utf-8",
        )
    _write(target, text)
    _say_next(root, proposal)


def _say_next(root: Path, proposal: Proposal) -> None:
    env = proposal.environment
    added = [SPEC_FILE] + ([env.requirements.value] if env.requirements and env.generated else [])
    console.print(f"[green]Wrote {term_text(root / SPEC_FILE)}[/] (it validates against `tierbot schema`).")
    ignored = subprocess.run(
        ["git", "-C", str(root), "check-ignore", "-q", "--", proposal.outputs], capture_output=True
    )
    if ignored.returncode == 1:
        console.print(
            f"[yellow]Note:[/] {term_text(proposal.outputs)}/ is not ignored by git: add it to .gitignore so "
            "that outputs are not committed."
        )
    console.print("Next: commit it, then run the experiment as tierbot does:")
    console.print(f"  git add {term_text(' '.join(added))} && git commit -m 'tierbot.yaml'")
    console.print("  tierbot run                 # runs the committed code and stores its outputs")
    console.print("  tierbot compare BRANCH      # a branch's outputs against main's")
