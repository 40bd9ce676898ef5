# syntax=docker/dockerfile:1
# The MNIST service image. The same image runs the training job (`mnist-train`) and the
# Locust load generator in docker-compose.yml; its default command is the service.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# Build stage: a virtualenv in /opt/venv, copied whole into the runtime stage so that pip,
# its cache and the build backend never reach the final image.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# Dependencies in their own layer, rebuilt only when the declared or pinned versions change:
# the runtime dependencies of pyproject.toml, installed under the same constraints.txt the
# Makefile (and so CI) installs with.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" > requirements.txt \
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
RUN pip install --no-deps -c constraints.txt .


FROM ${PYTHON_IMAGE}
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
COPY --from=build /opt/venv /opt/venv

# Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
WORKDIR /home/mnist
EXPOSE 3000

# /readyz answers 200 only once the model is loaded and warmed; urlopen raises otherwise.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('MNIST_PORT', '3000') + '/readyz', timeout=4)"]

CMD ["mnist-serve"]
