"""Locust users that model the service's real clients, sending real MNIST test images.

- ``InteractiveUser``: one image per ``POST /predict``, as a form or an app would.
- ``BatchUser``: 64-1,000 images per request, as JSON (``/predict``) or as a .npy upload
  (``/predict_npy``).
- ``ImageUploadUser``: PNG files rendered from test images (``/predict_image``).
- ``OpenInferenceUser``, ``TFServingUser``: the standard protocols (``/v2`` binary and
  JSON as Triton's clients send them, ``/v1/models/mnist:predict``); off unless given a
  weight (``--v2-weight``, ``--tfserving-weight``).

Every response is checked (status, shape, probabilities, the version header); protocol
failures are Locust failures with the reason. Wrong labels are counted, not failed: the
accuracy seen under load is printed at the end and written to ``--accuracy-file`` (in a
distributed run the workers send their counts to the master).

Weights and sizes are Locust options, each also settable by environment variable::

    locust -f load/locustfile.py --host http://127.0.0.1:3000 --interactive-weight 8 \\
        --batch-min 64 --batch-max 1000
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gevent
from locust import FastHttpUser, between, events, task
from locust.env import Environment
from locust.runners import MasterRunner
from locust.stats import CSV_STATS_INTERVAL_SEC

from load import protocol_payloads as standard
from load.checks import ProtocolError, Verdict, check_predictions
from load.payloads import Payload, TestImages, batch_payloads, batch_sizes, load_test_images

log = logging.getLogger("load")

# Distinct bodies per request kind: enough to vary images and sizes, few enough to
# encode in a second before the load starts.
SINGLE_BODIES = 500
BATCH_BODIES = 8
UPLOAD_BODIES = 50


@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    group = parser.add_argument_group("MNIST load mix")
    group.add_argument(
        "--interactive-weight",
        type=int,
        default=8,
        env_var="MNIST_LOAD_INTERACTIVE_WEIGHT",
        help="relative number of single-image users (0 disables them)",
    )
    group.add_argument(
        "--batch-weight",
        type=int,
        default=1,
        env_var="MNIST_LOAD_BATCH_WEIGHT",
        help="relative number of batch users (0 disables them)",
    )
    group.add_argument(
        "--upload-weight",
        type=int,
        default=1,
        env_var="MNIST_LOAD_UPLOAD_WEIGHT",
        help="relative number of PNG upload users (0 disables them)",
    )
    for protocol in ("v2", "tfserving"):
        group.add_argument(
            f"--{protocol}-weight",
            type=int,
            default=0,
            env_var=f"MNIST_LOAD_{protocol.upper()}_WEIGHT",
            help=f"relative number of {protocol} protocol users (default 0: none)",
        )
    group.add_argument(
        "--batch-min", type=int, default=64, env_var="MNIST_LOAD_BATCH_MIN", help="images"
    )
    group.add_argument(
        "--batch-max", type=int, default=1000, env_var="MNIST_LOAD_BATCH_MAX", help="images"
    )
    group.add_argument(
        "--binary-share",
        type=float,
        default=0.5,
        env_var="MNIST_LOAD_BINARY_SHARE",
        help="share of batch requests sent as .npy rather than JSON (0..1)",
    )
    group.add_argument(
        "--upload-max",
        type=int,
        default=4,
        env_var="MNIST_LOAD_UPLOAD_MAX",
        help="PNG files per upload request: 1 up to this many",
    )
    group.add_argument(
        "--think-time",
        type=float,
        default=0.0,
        env_var="MNIST_LOAD_THINK_TIME",
        help="upper bound of the random pause between a user's requests, seconds",
    )
    group.add_argument(
        "--accuracy-file",
        default="",
        env_var="MNIST_LOAD_ACCURACY_FILE",
        help="write the accuracy seen under load to this JSON file",
    )


class Pools:
    """Pre-encoded payloads shared by all users, cycled endlessly."""

    def __init__(self, test: TestImages, options: Any) -> None:
        low, high = options.batch_min, options.batch_max
        binary = round(BATCH_BODIES * min(max(options.binary_share, 0.0), 1.0))
        npy = batch_payloads(test, batch_sizes(low, high, binary, seed=1), "npy", seed=1)
        as_json = batch_payloads(test, batch_sizes(low, high, BATCH_BODIES - binary), "json")
        self.single = itertools.cycle(batch_payloads(test, [1] * SINGLE_BODIES, "json"))
        self.batch = itertools.cycle([("npy", p) for p in npy] + [("json", p) for p in as_json])
        upload_sizes = [1 + i % max(options.upload_max, 1) for i in range(UPLOAD_BODIES)]
        self.upload = itertools.cycle(batch_payloads(test, upload_sizes, "png", seed=3))
        windows = [test.window(i * 97, size) for i, size in enumerate(batch_sizes(1, high, 8))]
        self.v2 = itertools.cycle(
            [standard.v2_payload(w, binary=i % 2 == 0) for i, w in enumerate(windows)]
        )
        self.tfserving = itertools.cycle([standard.tfserving_payload(w) for w in windows])


class Accuracy:
    """Right and wrong labels across all users (greenlets of one process: no lock needed)."""

    def __init__(self) -> None:
        self.correct = 0
        self.total = 0
        self._reported = (0, 0)

    def add(self, correct: int, total: int) -> None:
        self.correct += correct
        self.total += total

    def unreported(self) -> tuple[int, int]:
        """Counts added since the last call, for a worker's report to its master."""
        correct, total = self.correct - self._reported[0], self.total - self._reported[1]
        self._reported = (self.correct, self.total)
        return correct, total

    def summary(self) -> dict[str, float | int | None]:
        rate = self.correct / self.total if self.total else None
        return {"images": self.total, "correct": self.correct, "accuracy": rate}


POOLS: Pools | None = None
ACCURACY = Accuracy()


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    global POOLS
    options = environment.parsed_options
    if options is None:
        return
    weights = {
        InteractiveUser: options.interactive_weight,
        BatchUser: options.batch_weight,
        ImageUploadUser: options.upload_weight,
        OpenInferenceUser: options.v2_weight,
        TFServingUser: options.tfserving_weight,
    }
    for user_class, weight in weights.items():
        user_class.weight = max(weight, 0)
    # Locust drops weight-0 classes when it builds the environment, before options apply.
    kept = [u for u in environment.user_classes if u.weight > 0]
    if not kept:
        raise SystemExit("every user class has weight 0: nothing to run")
    environment.user_classes[:] = kept
    think = max(options.think_time, 0.0)
    for user_class in weights:
        user_class.wait_time = between(0, think)
    if not isinstance(environment.runner, MasterRunner):
        POOLS = Pools(load_test_images(), options)
    # gevent's loop caches the time and has not run since Locust's imports: a --run-time
    # timer started from that stale clock expired at once on a slow start (a 2 s run
    # stopped after 0.3 s). Reading the clock now makes the run last what was asked.
    gevent.get_hub().loop.update_now()


# In a distributed run each worker counts its own labels and ships them to the master.
@events.report_to_master.add_listener
def _report_accuracy(data: dict[str, Any], **_: Any) -> None:
    data["mnist_labels"] = ACCURACY.unreported()


@events.worker_report.add_listener
def _collect_accuracy(data: dict[str, Any], **_: Any) -> None:
    correct, total = data.get("mnist_labels", (0, 0))
    ACCURACY.add(correct, total)


@events.test_stop.add_listener
def _let_csv_catch_up(environment: Environment, **_: Any) -> None:
    # Locust's CSV writer runs every CSV_STATS_INTERVAL_SEC and is not flushed at exit, so
    # without this pause the CSV files miss the last second of requests.
    options = environment.parsed_options
    if options is not None and getattr(options, "csv_prefix", None):
        gevent.sleep(CSV_STATS_INTERVAL_SEC + 0.25)


@events.quitting.add_listener
def _on_quitting(environment: Environment, **_: Any) -> None:
    summary = ACCURACY.summary()
    rate = summary["accuracy"]
    shown = f"{rate:.4f}" if isinstance(rate, float) else "n/a"
    log.info("accuracy under load: %s over %s images", shown, summary["images"])
    options = environment.parsed_options
    if options is not None and options.accuracy_file:
        path = Path(options.accuracy_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=2) + "\n")


def _pool(name: str) -> Iterator[Any]:
    if POOLS is None:
        raise RuntimeError("payload pools are built by the init event")
    pool: Iterator[Any] = getattr(POOLS, name)
    return pool


class CheckedUser(FastHttpUser):
    """A user whose every answer is checked, and whose labels count towards accuracy."""

    abstract = True
    # Connection errors are reported as failures rather than raised.
    network_timeout = 60.0
    connection_timeout = 10.0

    def post_checked(
        self,
        path: str,
        payload: Payload | standard.ProtocolPayload,
        name: str,
        check: Callable[[Any], Verdict],
    ) -> None:
        # The context reaches request listeners: capacity runs count images from it.
        with self.client.post(
            path,
            data=payload.body,
            headers=payload.headers,
            name=name,
            catch_response=True,
            context={"images": len(payload.labels)},
        ) as response:
            if response.status_code == 0:
                response.failure(f"connection error: {response.error}")
                return
            try:
                verdict = check(response)
            except ProtocolError as exc:
                response.failure(str(exc))
            else:
                ACCURACY.add(verdict.correct, verdict.total)
                response.success()


class MnistUser(CheckedUser):
    abstract = True

    def send(self, path: str, payload: Payload, name: str) -> None:
        def check(response: Any) -> Verdict:
            return check_predictions(
                response.status_code,
                response.content or b"",
                payload.labels,
                model_version_header=response.headers.get("X-Model-Version"),
                filenames=payload.filenames,
            )

        self.post_checked(path, payload, name, check)


class InteractiveUser(MnistUser):
    weight = 8

    @task
    def predict_one(self) -> None:
        self.send("/predict", next(_pool("single")), "/predict [1 image]")


class BatchUser(MnistUser):
    weight = 1

    @task
    def predict_batch(self) -> None:
        encoding, payload = next(_pool("batch"))
        if encoding == "npy":
            self.send("/predict_npy", payload, "/predict_npy [batch]")
        else:
            self.send("/predict", payload, "/predict [batch JSON]")


class ImageUploadUser(MnistUser):
    weight = 1

    @task
    def predict_images(self) -> None:
        self.send("/predict_image", next(_pool("upload")), "/predict_image [PNG]")


class ProtocolUser(CheckedUser):
    """A client of a standard protocol: its own bodies and its own answer check."""

    abstract = True

    def call(self, path: str, payload: standard.ProtocolPayload, name: str) -> None:
        self.post_checked(path, payload, name, lambda response: self.check(response, payload))

    def check(self, response: Any, payload: standard.ProtocolPayload) -> Verdict:
        raise NotImplementedError


class OpenInferenceUser(ProtocolUser):
    weight = 1

    @task
    def infer(self) -> None:
        payload = next(_pool("v2"))
        kind = "binary" if standard.HEADER_LENGTH in payload.headers else "JSON"
        self.call(standard.V2_INFER, payload, f"{standard.V2_INFER} [{kind}]")

    def check(self, response: Any, payload: standard.ProtocolPayload) -> Verdict:
        body = response.content or b""
        return standard.check_v2(response.status_code, body, response.headers, payload.labels)


class TFServingUser(ProtocolUser):
    weight = 1

    @task
    def predict(self) -> None:
        self.call(standard.TF_PREDICT, next(_pool("tfserving")), standard.TF_PREDICT)

    def check(self, response: Any, payload: standard.ProtocolPayload) -> Verdict:
        body = response.content or b""
        return standard.check_tfserving(response.status_code, body, payload.labels)
