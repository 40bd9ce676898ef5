"""docker-compose.yml, as docker-compose itself reads it (no Docker engine needed for that).

Its commands run here where they can: the trainer's skip-or-train script, and the Locust
command line against the repo's locustfile.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_files import REPO, VENV_BIN, compose, dockerfile_instructions, healthcheck_argv

SERVICES = {"trainer", "api", "prometheus", "grafana", "locust-master", "locust-worker"}


def _volumes(service: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """target -> (source, mode) of a service's mounts, in either form docker-compose prints."""
    mounts: dict[str, tuple[str, str]] = {}
    for spec in service.get("volumes", []):
        if isinstance(spec, dict):  # Compose v2 prints the long syntax
            mode = "ro" if spec.get("read_only") else "rw"
            mounts[spec["target"]] = (spec["source"], mode)
        else:
            source, target, *mode = spec.split(":")
            mounts[target] = (source, mode[0] if mode else "rw")
    return mounts


def _ports(service: dict[str, Any]) -> list[tuple[int, int | None]]:
    """(container port, host port or None when Docker picks it) of each published port."""
    return [
        (int(p["target"]), int(p["published"]) if p.get("published") else None)
        for p in service.get("ports", [])
    ]


def _conditions(service: dict[str, Any]) -> dict[str, str]:
    return {name: rule["condition"] for name, rule in service.get("depends_on", {}).items()}


def _unescape(command: str) -> str:
    # docker-compose prints `$$` (a literal dollar for the container's shell) as written.
    return command.replace("$$", "$")


@pytest.mark.parametrize("profile", [[], ["--profile", "load"]], ids=["default", "load"])
def test_compose_file_is_valid(
    docker_compose: str, compose_env: dict[str, str], profile: list[str]
) -> None:
    result = compose(docker_compose, *profile, "config", "-q", env=compose_env)
    assert result.returncode == 0, result.stderr


def test_missing_data_dir_fails_fast_with_a_reason(docker_compose: str) -> None:
    result = compose(docker_compose, "config", "-q")
    assert result.returncode != 0
    assert "set MNIST_DATA_DIR" in result.stderr


def test_services_start_in_order(compose_config: dict[str, Any]) -> None:
    services = compose_config["services"]
    assert set(services) == SERVICES
    assert _conditions(services["api"]) == {"trainer": "service_completed_successfully"}
    assert _conditions(services["grafana"]) == {"prometheus": "service_healthy"}
    assert _conditions(services["locust-master"]) == {"api": "service_healthy"}
    for name, service in services.items():
        for dependency, condition in _conditions(service).items():
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits on {dependency}"


def test_load_generator_is_opt_in(compose_config: dict[str, Any]) -> None:
    profiles = {name: s.get("profiles", []) for name, s in compose_config["services"].items()}
    assert profiles.pop("locust-master") == ["load"]
    assert profiles.pop("locust-worker") == ["load"]
    assert all(p == [] for p in profiles.values()), profiles


def test_api_healthcheck_is_the_image_healthcheck(compose_config: dict[str, Any]) -> None:
    (arguments,) = [args for kind, args in dockerfile_instructions() if kind == "HEALTHCHECK"]
    api = compose_config["services"]["api"]
    assert api["healthcheck"]["test"] == ["CMD", *healthcheck_argv(arguments)]
    assert "/readyz" in " ".join(api["healthcheck"]["test"])


def test_model_and_data_volumes(
    compose_config: dict[str, Any], compose_env: dict[str, str]
) -> None:
    services = compose_config["services"]
    data = (compose_env["MNIST_DATA_DIR"], "ro")
    assert _volumes(services["trainer"]) == {"/models": ("models", "rw"), "/data": data}
    assert _volumes(services["api"]) == {"/models": ("models", "ro")}
    for name in ("locust-master", "locust-worker"):
        assert _volumes(services[name]) == {"/data": data}
        assert services[name]["environment"]["MNIST_DATA_DIR"] == "/data"
    assert services["trainer"]["environment"]["MNIST_MODEL_DIR"] == "/models/mnist"
    assert services["api"]["environment"]["MNIST_MODEL_DIR"] == "/models/mnist"
    assert "models" in compose_config["volumes"]


def test_monitoring_reads_the_repo_configs(compose_config: dict[str, Any]) -> None:
    services = compose_config["services"]
    prometheus = _volumes(services["prometheus"])
    assert prometheus["/etc/prometheus/prometheus.yml"] == (
        str(REPO / "deploy/prometheus/prometheus.yml"),
        "ro",
    )
    grafana = _volumes(services["grafana"])
    provisioning, _ = grafana["/etc/grafana/provisioning"]
    dashboards, _ = grafana["/etc/grafana/dashboards"]
    providers = yaml.safe_load(Path(provisioning, "dashboards/mnist.yml").read_text())
    assert [p["options"]["path"] for p in providers["providers"]] == ["/etc/grafana/dashboards"]
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert Path(dashboards, Path(home).relative_to("/etc/grafana/dashboards")).is_file()
    sources = yaml.safe_load(Path(provisioning, "datasources/prometheus.yml").read_text())
    assert [s["url"] for s in sources["datasources"]] == ["http://prometheus:9090"]
    assert _ports(services["prometheus"]) == [(9090, 9090)]


def test_api_scales_when_the_host_port_is_left_to_docker(
    docker_compose: str, compose_env: dict[str, str], compose_config: dict[str, Any]
) -> None:
    assert _ports(compose_config["services"]["api"]) == [(3000, 3000)]
    result = compose(docker_compose, "config", env={**compose_env, "API_PORTS": "3000"})
    assert result.returncode == 0, result.stderr
    assert _ports(yaml.safe_load(result.stdout)["services"]["api"]) == [(3000, None)]


def test_locust_commands_load_the_locustfile(compose_config: dict[str, Any]) -> None:
    """The compose command lines, run by Locust here with ``--list`` (load it, list users)."""
    local_locustfile = REPO / "load" / "locustfile.py"
    for name in ("locust-master", "locust-worker"):
        service = compose_config["services"][name]
        in_image = service["environment"]["LOCUST_LOCUSTFILE"]
        # The image installs the project into the /opt/venv of its Dockerfile.
        assert in_image == "/opt/venv/lib/python3.11/site-packages/load/locustfile.py"
        argv = [str(VENV_BIN / service["command"][0]), *service["command"][1:], "--list"]
        env = {**os.environ, "LOCUST_LOCUSTFILE": str(local_locustfile)}
        result = subprocess.run(
            argv, env=env, cwd=REPO / "deploy", capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        assert "InteractiveUser" in result.stdout
    master = compose_config["services"]["locust-master"]["command"]
    assert master[master.index("--host") + 1] == "http://api:3000"


def _run_trainer(
    compose_config: dict[str, Any], model_dir: Path, data_dir: Path
) -> subprocess.CompletedProcess[str]:
    trainer = compose_config["services"]["trainer"]
    shell, flag, script = trainer["command"]
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
        "MNIST_MODEL_DIR": str(model_dir),
        "MNIST_DATA_DIR": str(data_dir),
    }
    return subprocess.run(
        [shell, flag, _unescape(script)], env=env, capture_output=True, text=True, timeout=120
    )


def test_trainer_skips_when_a_model_exists(compose_config: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "models" / "1").mkdir(parents=True)
    result = _run_trainer(compose_config, tmp_path / "models", tmp_path / "no-data")
    assert result.returncode == 0, result.stderr
    assert "already holds a model; not training" in result.stdout
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["1"]


def test_trainer_trains_otherwise_and_fails_loudly_without_data(
    compose_config: dict[str, Any], tmp_path: Path
) -> None:
    """Without data ``mnist-train`` must exit non-zero, so that ``api`` never starts."""
    (tmp_path / "data").mkdir()
    result = _run_trainer(compose_config, tmp_path / "models", tmp_path / "data")
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("mnist-train:")
    assert not (tmp_path / "models").exists()
