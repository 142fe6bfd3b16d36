# syntax=docker/dockerfile:1
# tideover: the kube-scheduler extender, as a container image.
#   docker build -t tideover:0.1.0 .
#   docker run --rm tideover:0.1.0 check-config /etc/tideover/tideover.yaml   (with the file mounted)
# Runtime dependencies only (no [dev] extras); runs as uid 10001; listens on 8888 (server.port).
# For reproducible builds, pin the base image by digest: python:3.11-slim@sha256:...

ARG PYTHON_IMAGE=python:3.11-slim

# --- build: the locked runtime dependencies and tideover's wheel, installed into a virtualenv --------------------
# Every dependency at the version and hash of requirements/runtime.txt (pip install --require-hashes; refresh the
# lock with bash scripts/lock.sh), tideover itself with --no-deps. Two ways, chosen by what the build context holds:
#   - online (the default): the dependencies from PyPI, tideover's wheel built here;
#   - offline (wheelhouse/ in the context, as e2e/kind/up.sh makes it with `pip wheel -r requirements/runtime.txt` on
#     the host): every wheel, tideover's included, comes from wheelhouse/ and nothing is downloaded (--no-index).
#     The kind suite builds this way, on a machine whose containers cannot reach PyPI.
FROM ${PYTHON_IMAGE} AS build
# So that scripts/test.sh can remove this stage's image after a run (docker image prune --filter label=...).
LABEL tideover.io/image=build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# README.m[d] and wheelhous[e]: globs, so that each is copied when present without failing when it is not
# (pyproject.toml always matches). A directory's contents land in /src: the wheels as /src/*.whl.
COPY pyproject.toml README.m[d] wheelhous[e] ./
COPY requirements/runtime.txt requirements/runtime.txt
COPY extender/ extender/
COPY scoring/ scoring/
# python3, not python: Debian's own Python images have no `python` command.
RUN python3 -m venv /opt/tideover \
 && if ls /src/*.whl >/dev/null 2>&1; then \
      /opt/tideover/bin/pip install --no-index --find-links /src --require-hashes -r requirements/runtime.txt \
      && /opt/tideover/bin/pip install --no-index --no-deps /src/tideover-*.whl; \
    else \
      /opt/tideover/bin/pip install --require-hashes -r requirements/runtime.txt \
      && /opt/tideover/bin/pip wheel --no-deps --wheel-dir /wheels . \
      && /opt/tideover/bin/pip install --no-deps /wheels/tideover-*.whl; \
    fi
# Slim: what tideover never runs. pip and setuptools (nothing is installed at run time); the kubernetes client's
# asyncio variant kubernetes/aio (68 MB with its bytecode; tideover uses the synchronous client only, and
# tests/test_image.py checks that the code imports no kubernetes.aio); the test suites packages ship.
RUN /opt/tideover/bin/python -m pip uninstall --yes --quiet pip setuptools \
 && rm -rf /opt/tideover/lib/python3*/site-packages/kubernetes/aio \
 && find /opt/tideover/lib -depth -type d -name tests -path "*/site-packages/*" -exec rm -rf {} + \
 && /opt/tideover/bin/python -c "import extender.cli, kubernetes.client, numpy, uvicorn, grpc"

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
