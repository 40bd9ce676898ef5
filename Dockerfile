# syntax=docker/dockerfile:1
# The MNIST service image (the default, last target), which also runs the training job
# (`mnist-train`), and the Locust image (target `load`) that docker-compose.yml's load
# profile runs. See README, "Containers".

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# Build stage: a virtualenv in /opt/venv, copied whole into the runtime stage so that pip,
# its cache and the build backend never reach the final image.
FROM ${PYTHON_IMAGE} AS build
# Wheels in ./wheelhouse (deploy/containers/wheelhouse.sh) are used when present; with
# --build-arg PIP_NO_INDEX=1 they are the only source, for builds without a package index.
ARG PIP_NO_INDEX=0
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PIP_FIND_LINKS=/wheelhouse
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# Dependencies in their own layer, rebuilt only when the declared or pinned versions change:
# the runtime dependencies of pyproject.toml, installed under the same constraints.txt the
# Makefile (and so CI) installs with. The wheelhouse is bind-mounted, never copied.
COPY pyproject.toml constraints.txt ./
RUN --mount=type=bind,source=wheelhouse,target=/wheelhouse \
    python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" > requirements.txt \
    && pip install -c constraints.txt -r requirements.txt

# The project itself; --no-deps keeps this layer to our own code.
COPY README.md ./
COPY mnist_core ./mnist_core
COPY runtime ./runtime
COPY training ./training
COPY service ./service
COPY batch ./batch
COPY load ./load
COPY harness ./harness
RUN --mount=type=bind,source=wheelhouse,target=/wheelhouse \
    pip install --no-deps -c constraints.txt .
# TensorFlow's C++ headers (430 MB of its 1.9 GB) are for building extensions, not for
# running: without them the serving image is a fifth smaller.
RUN rm -rf /opt/venv/lib/python3.11/site-packages/tensorflow/include

# The load extra (Locust, aiohttp, matplotlib) on top, for the `load` image only: the
# serving image does not carry it.
FROM build AS build-load
RUN --mount=type=bind,source=wheelhouse,target=/wheelhouse \
    python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['load'], sep='\n')" > load.txt \
    && pip install -c constraints.txt -r load.txt


FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    BENTOML_DO_NOT_TRACK=true \
    MNIST_HOST=0.0.0.0 \
    MNIST_PORT=3000 \
    MNIST_MODEL_DIR=/models/mnist

# /models exists and belongs to the service user so that a named volume mounted there
# starts out writable by the training job.
RUN useradd --create-home --uid 10001 --user-group mnist \
    && mkdir /models \
    && chown mnist:mnist /models
WORKDIR /home/mnist


FROM runtime AS load
COPY --from=build-load /opt/venv /opt/venv
USER 10001:10001
ENV LOCUST_LOCUSTFILE=/opt/venv/lib/python3.11/site-packages/load/locustfile.py
CMD ["locust"]


FROM runtime AS serve
COPY --from=build /opt/venv /opt/venv
# Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
# BentoML creates its home (default ~/bentoml) at startup; under /tmp, a root filesystem
# mounted read-only needs only /tmp writable.
ENV BENTOML_HOME=/tmp/bentoml
EXPOSE 3000

# /readyz answers 200 only once the model is loaded and warmed; urlopen raises otherwise.
# (podman keeps a HEALTHCHECK only in the docker image format: `podman build --format docker`.)
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('MNIST_PORT', '3000') + '/readyz', timeout=4)"]

CMD ["mnist-serve"]
