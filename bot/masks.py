"""`compare.mask` patterns: what masks lines that change every run (timestamps, ids) before comparing,
compiled by RE2 so that a pattern from any branch matches in time linear in the text."""

import re

import re2

MaskPattern = re2._Regexp  # RE2's compiled pattern; the module names no public type for it
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a bad pattern is the user's error, said in theirs, not a line on stderr
_RE2_OPTIONS.never_nl = True  # a mask runs over a whole file at once and must still see one line at a time
_LOOKAROUND = {
    "(?=": "lookahead (?=…)",
    "(?!": "negative lookahead (?!…)",
    "(?<=": "lookbehind (?<=…)",
    "(?<!": "negative lookbehind (?<!…)",
    "(?P": "a named backreference (?P=name)",
}


def compile_mask(pattern: str) -> MaskPattern:
    """A `compare.mask` pattern, compiled by RE2 in multi-line mode (`^` and `$` match at line ends).

    Masks come from any branch, forks' too, and RE2 matches in time linear in the text whatever the
    pattern: Python's backtracking `re` spent seconds on `(a+)+$` against a 26-character line, holding the
    GIL, so the whole bot. ValueError says what RE2 lacks when the pattern uses what only `re` has.
    """
    try:
        re2.compile(pattern, _RE2_OPTIONS)  # alone first: an error quotes the user's pattern, not ours
    except re2.error as exc:
        raise ValueError(_mask_error(pattern, exc)) from None
    return re2.compile("(?m)" + pattern, _RE2_OPTIONS)


def _mask_error(pattern: str, exc: re2.error) -> str:
    detail = exc.args[0].decode() if isinstance(exc.args[0], bytes) else str(exc.args[0])
    construct = detail.rpartition(": ")[2]
    if detail.startswith("invalid perl operator") and construct in _LOOKAROUND:
        feature = _LOOKAROUND[construct]
    elif detail.startswith("invalid escape sequence") and re.fullmatch(r"\\[1-9]", construct):
        feature = f"a backreference ({construct})"
    else:
        return f"mask pattern {pattern!r} is not a regular expression in RE2 syntax: {detail}"
    return (
        f"mask pattern {pattern!r} uses {feature}, which masks do not support: masks use RE2 syntax, "
        f"which has no backtracking (https://github.com/google/re2/wiki/Syntax)"
    )
