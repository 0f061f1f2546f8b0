"""Typed errors. Each carries a message a user can act on; doors show `str(error)` where the user asked."""


class TierbotError(Exception):
    """Base for every error that is the user's to fix (bad input), not a bug."""

    needs_person = False  # True: the requester cannot fix it alone (someone else must run or allow it)


class SpecInvalid(TierbotError):
    """tierbot.yaml (or a tiers file) failed validation; `problems` lists `file:line: field: message`."""

    def __init__(self, file: str, problems: list[str]):
        self.file = file
        self.problems = problems
        super().__init__(f"{file} is invalid:\n" + "\n".join(f"  {p}" for p in problems))


class SettingsInvalid(TierbotError):
    """The bot's own settings (`TIERBOT_*`, the `TIERBOT_CONFIG` file) failed validation: the operator's
    to fix; `problems` names each variable and what it must be."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("tierbot's settings are invalid:\n" + "\n".join(f"  {p}" for p in problems))


class TierUnknown(TierbotError):
    pass


class TierForbidden(TierbotError):
    needs_person = True


class TierUnavailable(TierbotError):
    """The tier exists, but its backend cannot run in this installation; the message says why."""


class RefNotFound(TierbotError):
    pass


class RepositoryUnavailable(TierbotError):
    pass


class OutputsRejected(TierbotError):
    """The outputs directory broke a safety rule (traversal, symlink out of the workspace, limits)."""


class RunNotFound(TierbotError):
    pass
