# The tierbot image: the CLI, workers and (in later releases) the bot server.
#   docker build -t tierbot .            (BASE may name any Debian-based image with Python 3.11+)
#   docker run --rm -v tierbot-data:/data tierbot demo
ARG BASE=python:3.11-slim
FROM ${BASE}

RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY templates ./templates
COPY examples ./examples
COPY hooks ./hooks
RUN pip install --no-cache-dir '.[postgres]' && rm -rf /src

RUN useradd --create-home --uid 10001 tierbot && mkdir /data && chown tierbot /data
USER tierbot
ENV TIERBOT_DATA_DIR=/data
VOLUME /data
WORKDIR /home/tierbot
ENTRYPOINT ["tierbot"]
CMD ["--help"]
