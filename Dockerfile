# The tierbot image: `tierbot serve` (GitHub and Slack webhooks, workers, /healthz, /metrics) as a
# non-root user, and the CLI (`docker run --rm tierbot demo`).
#
#   docker build -t tierbot .
#   docker run -d -p 8000:8000 -v tierbot-data:/data -e TIERBOT_GITHUB_WEBHOOK_SECRET=... tierbot
#
# BASE: any Debian-based image with Python 3.11+ and its venv module: python:3.11-slim (the default),
# or Debian's own python3 with python3-venv (as tierbot-base:bookworm, which tests/docker builds on).
# apt-get must be able to reach Debian's archive when the base has no git.
#
# Without an index reachable from the build (no network, or a proxy whose certificate the base does
# not trust), put every wheel pip needs in wheelhouse/ of the build context (for example
# `pip download -d wheelhouse '.[postgres,docker]' hatchling` on a Debian-compatible host with Python 3.11):
# pip then installs from it alone (--no-index). tests/docker/test_bot_image.py builds this way.
#
# With `--network host` and a --port other than 8000, set HEALTHCHECK_URL to match.
ARG BASE=python:3.11-slim

# The venv is built in a stage of its own: the sources and a wheelhouse never reach the final image.
FROM ${BASE} AS build
RUN python3 -m venv /opt/tierbot
WORKDIR /src
COPY . .
# postgres: replicas on one database; docker: docker tiers, on engines the tiers name (docker_host).
RUN if [ -d wheelhouse ]; then set -- --no-index --find-links wheelhouse; fi \
    && /opt/tierbot/bin/pip install --no-cache-dir --disable-pip-version-check "$@" '.[postgres,docker]'

FROM ${BASE}
# git at run time: tierbot mirrors and checks out repositories (over HTTPS, hence ca-certificates).
RUN if ! command -v git >/dev/null; then \
        apt-get update \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends git ca-certificates \
        && apt-get clean && rm -rf /var/lib/apt/lists/*; \
    fi
# The same base as the build stage, so the venv's python links to the same interpreter.
COPY --from=build /opt/tierbot /opt/tierbot
# A fixed numeric uid (and `USER` by number) so orchestrators can verify non-root without /etc/passwd;
# the data dir private (0700) as `serve` wants it, which otherwise tightens it and warns.
RUN groupadd --gid 10001 tierbot \
    && useradd --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin tierbot \
    && install -d -m 0700 -o 10001 -g 10001 /data

ENV PATH=/opt/tierbot/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TIERBOT_DATA_DIR=/data \
    HEALTHCHECK_URL=http://127.0.0.1:8000/healthz
VOLUME /data
USER 10001:10001
WORKDIR /home/tierbot
EXPOSE 8000
# Python's urllib, not curl (slim bases have none): a 503 (database unreachable) raises, so it fails.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/opt/tierbot/bin/python", "-c", "import os, urllib.request as u; u.urlopen(os.environ['HEALTHCHECK_URL'], timeout=4)"]
ENTRYPOINT ["tierbot"]
CMD ["serve", "--host", "0.0.0.0"]
