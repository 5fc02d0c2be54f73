# syntax=docker/dockerfile:1
# The CodePilot operator image. The same image is the weight-fetcher init container of every CodePilot
# (`codepilot fetch`, spec.runtime.fetcherImage), so it carries one entry point, `codepilot`, and the
# Kubernetes object decides the subcommand (`run` for the operator, `fetch` for the init container).
#
#   docker build -t codepilot/codepilot-operator:0.1.0 .
#
# Two stages: the build stage turns the package and every dependency into wheels; the runtime stage
# installs only those wheels (no compiler, no pip cache, no source tree) and runs as a numeric non-root
# user, so Kubernetes can verify runAsNonRoot and the restricted Pod Security Standard holds.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN python -m pip wheel --wheel-dir /wheels .

FROM ${PYTHON_IMAGE} AS runtime
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="codepilot-operator" \
      org.opencontainers.image.description="CodePilot operator and weight fetcher" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# No .pyc writes (the root filesystem is read-only in the pod), unbuffered logs, and a writable HOME
# for libraries that want one (the chart mounts an emptyDir at /tmp).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# The wheels are bind-mounted from the build stage, so they never become a layer of this image; pip,
# setuptools and wheel are removed afterwards: nothing installs packages at run time.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m pip install --no-index --find-links=/wheels codepilot-operator \
    && python -m pip uninstall --yes pip setuptools wheel \
    && codepilot --version
# 65532 is the conventional "nonroot" uid/gid; the chart's podSecurityContext uses the same numbers.
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["codepilot"]
CMD ["run"]
