"""Redacting a run's log: a 10 MB log of ordinary training output with a few secrets in it, redacted
whole (as a stored comparison or a served report is), in the batches a burst of output arrives in, and
line by line (as a slow trickle of output is written).

Target (issue 12): ≤ 0.2 s for 10 MB. Prints the best and median of --repeat runs of each.
"""

import argparse
import random
import statistics
import string
import time

from bot.redact import Redactor

SECRETS = [
    "GITHUB_TOKEN=ghp_" + "a1B2c3D4e5" * 4,
    "git clone https://x-access-token:ghs_Q9w8E7r6T5y4U3i2O1p0aSdFgHjKlZxCvB@github.com/acme/m.git",
    "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "curl -H 'Authorization: token ghp_0123456789abcdefghijABCDEFGHIJ012345'",
    "the webhook secret is s3cr3t-webhook-value-42",
]


def make_log(size: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    words = ["epoch", "loss", "accuracy", "lr", "batch", "step", "val", "train", "through", "high", "tokens"]
    lines, total = [], 0
    while total < size:
        if rng.random() < 0.0005:
            line = rng.choice(SECRETS)
        else:
            line = (
                " ".join(
                    f"{rng.choice(words)}={rng.random():.6f}" if rng.random() < 0.6 else rng.choice(words)
                    for _ in range(rng.randint(4, 12))
                )
                + " "
                + "".join(rng.choices(string.ascii_letters, k=rng.randint(0, 20)))
            )
        lines.append(line)
        total += len(line) + 1
    return "\n".join(lines)


def timed(function, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--megabytes", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    log = make_log(int(args.megabytes * 1024 * 1024))
    redactor = Redactor({"TIERBOT_GITHUB_WEBHOOK_SECRET": ["s3cr3t-webhook-value-42"], "X": ["x" * 40]})
    out = redactor(log)
    assert "s3cr3t-webhook" not in out and "wJalrXUtnFEMI" not in out and "ghp_0123" not in out
    lines = log.split("\n")
    print(f"log: {len(log) / 1e6:.1f} MB, {len(lines)} lines, {out.count('‹redacted:')} redactions")
    whole = timed(lambda: redactor(log), args.repeat)
    batches, batch, size = [], [], 0
    for line in lines:  # as the log pump hands a burst over: whole lines, about 64 KiB at a time
        batch.append(line)
        size += len(line) + 1
        if size >= 64 * 1024:
            batches.append(batch)
            batch, size = [], 0
    batches.append(batch)

    def streamed(groups: list[list[str]]) -> None:
        redact = redactor.lines()
        for group in groups:
            redact(group)

    runs = {
        "whole text": whole,
        "64 KiB batches": timed(lambda: streamed(batches), args.repeat),
        "line by line": timed(lambda: streamed([[line] for line in lines]), args.repeat),
    }
    for name, times in runs.items():
        best, median = min(times), statistics.median(times)
        print(f"{name:>15}: best {best:.3f} s, median {median:.3f} s (target ≤ 0.2 s)")
    print("(line by line is a trickle of output: one call a line, its cost spread over the run)")


if __name__ == "__main__":
    main()
