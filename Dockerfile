# syntax=docker/dockerfile:1
# tideover: the kube-scheduler extender, as a container image.
#   docker build -t tideover:0.1.0 .
#   docker run --rm tideover:0.1.0 check-config /etc/tideover/tideover.yaml   (with the file mounted)
# Runtime dependencies only (no [dev] extras); runs as uid 10001; listens on 8888 (server.port).
# For reproducible builds, pin the base image by digest: python:3.11-slim@sha256:...

ARG PYTHON_IMAGE=python:3.11-slim

# --- build: tideover's wheel, installed with its runtime dependencies into a virtualenv ---------------------
# Two ways, chosen by what the build context holds:
#   - online (the default): pip builds tideover's wheel here and installs its dependencies from PyPI;
#   - offline (wheelhouse/ in the context, as e2e/kind/up.sh makes it with `pip wheel` on the host): every
#     wheel, tideover's included, comes from wheelhouse/ and nothing is downloaded (--no-index). The kind suite
#     builds this way, on a machine whose containers cannot reach PyPI.
FROM ${PYTHON_IMAGE} AS build
# So that scripts/test.sh can remove this stage's image after a run (docker image prune --filter label=...).
LABEL tideover.io/image=build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# README.m[d] and wheelhous[e]: globs, so that each is copied when present without failing when it is not
# (pyproject.toml always matches). A directory's contents land in /src: the wheels as /src/*.whl.
COPY pyproject.toml README.m[d] wheelhous[e] ./
COPY extender/ extender/
COPY scoring/ scoring/
# python3, not python: Debian's own Python images have no `python` command.
RUN python3 -m venv /opt/tideover \
 && if ls /src/*.whl >/dev/null 2>&1; then \
      /opt/tideover/bin/pip install --no-index --find-links /src tideover; \
    else \
      pip wheel --no-deps --wheel-dir /wheels . && /opt/tideover/bin/pip install /wheels/tideover-*.whl; \
    fi

# --- final: the virtualenv on a clean base, as a non-root user ------------------------------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="tideover" \
      org.opencontainers.image.description="Kubernetes scheduler extender: spill to the AKS virtual node only while VMSS capacity is pending" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="0.1.0"
# Numeric user, so that runAsNonRoot can verify it without a passwd lookup.
RUN groupadd --system --gid 10001 tideover \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin tideover
# Same path as in the build stage: the virtualenv's scripts refer to it.
COPY --from=build /opt/tideover /opt/tideover
# Logs unbuffered (straight to the container log); no .pyc writes (the root filesystem is read-only in
# the Deployment, and the wheel's modules were compiled at install).
ENV PATH=/opt/tideover/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
EXPOSE 8888
ENTRYPOINT ["tideover"]
CMD ["serve", "--config", "/etc/tideover/tideover.yaml"]
