"""Binary files: identity is the manifest's hash, already checked; what is left to say is the size.

Images (share of differing pixels, a diff picture) and tables will get their own modules; until then
they are compared here, by hash and size.
"""

from bot.compare.files import Outcome, Pair, Rules, size_change


def compare_binary(pair: Pair, rules: Rules) -> Outcome:
    """Never reads the file: a changed hash is the whole finding."""
    return Outcome("binary", size_change(pair))
