# syntax=docker/dockerfile:1
# Two stages: build a wheel with its dependencies in a virtual environment, then copy that environment into a
# slim runtime image with espeak-ng (the local voice when edge-tts fails), running as a non-root user.  Audio is
# decoded, and Opus encoded, by PyAV's bundled libraries: no ffmpeg program is needed.

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/hypotez
COPY pyproject.toml README.md ./
COPY hypotez ./hypotez
RUN /opt/hypotez/bin/pip install --no-compile ".[postgres]"

FROM python:3.11-slim-bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends espeak-ng \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 hypotez \
    && mkdir -p /data \
    && chown hypotez:hypotez /data
COPY --from=build /opt/hypotez /opt/hypotez
ENV PATH="/opt/hypotez/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    HYPOTEZ_DATA_DIR=/data
USER 10001:10001
WORKDIR /home/hypotez
VOLUME ["/data"]
EXPOSE 8080
# hikari shuts down cleanly (closing the gateway and the database) on SIGINT.
STOPSIGNAL SIGINT
ENTRYPOINT ["hypotez"]
CMD ["run"]
