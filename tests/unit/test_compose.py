"""docker-compose.yml, the Dockerfile and the broker config must fit the code.

No Docker engine runs here, so these tests check coherence statically: the
services exist, their commands name real packages, their environment names real
settings with values the settings accept, and the image installs the project.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from deltasense.influx_users import DbUser
from deltasense.settings import Settings
from tools import devstack

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text("utf-8"))
SERVICES: dict[str, Any] = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text("utf-8")
PYTHON_SERVICES = ("ingest", "analytics", "api")
INFRA = ("mosquitto", "influxdb")


def _env(service: str) -> dict[str, str]:
    env = SERVICES[service].get("environment", {})
    assert isinstance(env, dict), f"{service}: use the mapping form of environment"
    return {k: str(v) for k, v in env.items()}


def _command(service: str) -> list[str]:
    command = SERVICES[service]["command"]
    return command.split() if isinstance(command, str) else list(command)


def _substitute(value: str) -> str:
    """Resolve compose's ${VAR:-default} / ${VAR:?error} the way an .env would."""
    value = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)
    # A required value is filled in as a real one would be: long, not a placeholder.
    return re.sub(r"\$\{([A-Z_]+):\?[^}]*\}", r"\1-from-env-k3J9xQ2mV7pLw5", value)


def _dockerfile_stages() -> set[str]:
    return set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)\s*$", DOCKERFILE, re.M | re.I))


def _dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text("utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def test_platform_services_are_all_there() -> None:
    assert set(SERVICES) >= {*INFRA, *PYTHON_SERVICES}


@pytest.mark.parametrize("service", PYTHON_SERVICES)
def test_python_service_runs_its_package(service: str) -> None:
    assert _command(service) == ["python", "-m", service]
    package = ROOT / service
    assert package.is_dir(), f"{service}/ missing"
    assert (package / "__main__.py").is_file(), f"python -m {service} needs {service}/__main__.py"


@pytest.mark.parametrize("service", PYTHON_SERVICES)
def test_python_service_builds_from_the_one_dockerfile(service: str) -> None:
    build = SERVICES[service]["build"]
    assert build["context"] == "."
    assert (ROOT / build.get("dockerfile", "Dockerfile")).resolve() == ROOT / "Dockerfile"
    assert build["target"] in _dockerfile_stages()
    assert SERVICES[service]["restart"] == "unless-stopped"


@pytest.mark.parametrize("service", PYTHON_SERVICES)
def test_python_service_env_names_real_settings(service: str) -> None:
    env = _env(service)
    assert env, f"{service} has no environment"
    for name in env:
        assert name.startswith("DELTASENSE_"), name
        field = name.removeprefix("DELTASENSE_").lower()
        assert field in Settings.model_fields, f"{service}: {name} is not a Settings field"


@pytest.mark.parametrize("service", PYTHON_SERVICES)
def test_python_service_env_is_accepted_by_settings(
    service: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no deltasense.toml from the working tree
    for name in [n for n in os.environ if n.startswith("DELTASENSE_")]:
        monkeypatch.delenv(name)
    for name, value in _env(service).items():
        monkeypatch.setenv(name, _substitute(value))
    settings = Settings()
    assert settings.mqtt_host == "mosquitto"
    assert settings.influx_base_url == "http://influxdb:8086"
    assert settings.influx_db == _env("influxdb").get("INFLUXDB_DB", "") == "deltasense"


def test_services_reach_the_infrastructure_by_service_name() -> None:
    for service in PYTHON_SERVICES:
        env = _env(service)
        assert env["DELTASENSE_MQTT_HOST"] in SERVICES
        host = re.fullmatch(r"http://([a-z0-9-]+):8086", env["DELTASENSE_INFLUX_URL"])
        assert host and host.group(1) in SERVICES


def test_api_listens_on_all_interfaces_with_an_admin_token() -> None:
    env = _env("api")
    # All interfaces inside the container; the published port decides exposure.
    assert env["DELTASENSE_API_HOST"] == "0.0.0.0"
    token = env["DELTASENSE_ADMIN_TOKEN"]
    # From the environment / .env, never a literal in the compose file.
    assert re.fullmatch(r"\$\{DELTASENSE_ADMIN_TOKEN(:\?[^}]*)?\}", token)
    port = env.get("DELTASENSE_API_PORT", "8000")
    assert any(str(p).endswith(f":{port}") for p in SERVICES["api"]["ports"])


@pytest.mark.parametrize("service", PYTHON_SERVICES)
def test_python_services_wait_for_healthy_dependencies(service: str) -> None:
    depends = SERVICES[service]["depends_on"]
    assert set(depends) == set(INFRA)
    for dep, spec in depends.items():
        assert spec["condition"] == "service_healthy"
        assert SERVICES[dep].get("healthcheck", {}).get("test"), f"{dep} has no healthcheck"


def _broker_conf() -> list[tuple[str, str]]:
    conf = (ROOT / "docker" / "mosquitto.conf").read_text("utf-8")
    return [
        (parts[0], parts[1] if len(parts) > 1 else "")
        for ln in conf.splitlines()
        if ln.strip() and not ln.lstrip().startswith("#")
        for parts in [ln.split(None, 1)]
    ]


def test_mosquitto_service_and_config() -> None:
    mqtt = SERVICES["mosquitto"]
    assert mqtt["image"] == "eclipse-mosquitto:2"
    mounts = {v.split(":")[0]: v.split(":")[1] for v in mqtt["volumes"]}
    assert mounts["./docker/mosquitto.conf"] == "/mosquitto/config/mosquitto.conf"
    options = dict(_broker_conf())
    assert options["persistence"] == "true"
    assert mounts["mosquitto-data"] == options["persistence_location"].rstrip("/")
    # The broker never refuses a message the contract allows.
    assert int(options["max_packet_size"]) > 4096


def test_deployment_broker_keeps_the_development_brokers_reliability_settings() -> None:
    """The crash window, the queue bound, ingest's window and the $SYS cadence the
    health alerts read are the values the chaos suite and the benchmarks measured."""
    options = dict(_broker_conf())
    assert options["autosave_on_changes"] == "true"
    assert int(options["autosave_interval"]) == devstack.BROKER_AUTOSAVE_CHANGES
    assert int(options["max_queued_messages"]) == devstack.BROKER_MAX_QUEUED
    assert int(options["max_inflight_messages"]) == devstack.BROKER_MAX_INFLIGHT
    assert int(options["sys_interval"]) == devstack.BROKER_SYS_INTERVAL_S


def test_broker_is_locked_down_tls_only() -> None:
    """Issue 9: the deployment broker has no anonymous access, every identity in the
    dynamic security plugin for every listener, and one listener: TLS 1.2+ on 8883."""
    conf = _broker_conf()
    options = dict(conf)
    assert options["allow_anonymous"] == "false"
    assert options["per_listener_settings"] == "false"  # the plugin covers every listener
    assert options["plugin"].endswith("/mosquitto_dynamic_security.so")
    mounts = {v.split(":")[0]: v.split(":")[1] for v in SERVICES["mosquitto"]["volumes"]}
    assert options["plugin_opt_config_file"].startswith(mounts["mosquitto-data"] + "/")
    assert [v for k, v in conf if k == "listener"] == ["8883"]  # no plain 1883 listener
    assert [k for k, _ in conf].index("listener") < [k for k, _ in conf].index("certfile")
    for key in ("cafile", "certfile", "keyfile"):
        assert options[key].startswith(mounts["./docker/tls"] + "/"), key
    assert options["tls_version"] in {"tlsv1.2", "tlsv1.3"}  # the lowest version accepted
    assert not any(k in {"password_file", "acl_file", "psk_hint"} for k, _ in conf)
    assert [str(p) for p in SERVICES["mosquitto"]["ports"]] == ["8883:8883"]
    assert (ROOT / "docker" / "tls" / "README.md").is_file()
    health = " ".join(SERVICES["mosquitto"]["healthcheck"]["test"])
    assert "-p 8883" in health and "--cafile" in health and "1883" not in health
    # The store is saved on every check, as the supervisor does every BROKER_SAVE_EVERY_S.
    assert health.endswith("&& kill -USR1 1")
    assert int(SERVICES["mosquitto"]["healthcheck"]["interval"].rstrip("s")) <= 10


@pytest.mark.parametrize("service", PYTHON_SERVICES)
def test_python_service_connects_over_tls_with_its_own_identity(
    service: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = _env(service)
    assert env["DELTASENSE_MQTT_TLS"] == "true" and env["DELTASENSE_MQTT_PORT"] == "8883"
    assert env["DELTASENSE_MQTT_USERNAME"] == f"svc.{service}"
    # The secret comes from .env, never a literal in the compose file.
    assert re.fullmatch(
        r"\$\{DELTASENSE_MQTT_PASSWORD_[A-Z]+:\?[^}]*\}", env["DELTASENSE_MQTT_PASSWORD"]
    )
    mounts = {v.split(":")[1]: v.split(":")[0] for v in SERVICES[service]["volumes"]}
    assert mounts[env["DELTASENSE_MQTT_CA_FILE"]] == "./docker/tls/ca.pem"
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("DELTASENSE_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, _substitute(value))
    settings = Settings()
    assert settings.mqtt_tls and settings.mqtt_port == 8883
    assert str(settings.mqtt_ca_path) == "/run/deltasense/tls/ca.pem"


def test_influxdb_service() -> None:
    influx = SERVICES["influxdb"]
    assert influx["image"] == "influxdb:1.8"
    assert _env("influxdb")["INFLUXDB_DB"] == Settings.model_fields["influx_db"].default
    assert any(v.endswith(":/var/lib/influxdb") for v in influx["volumes"])
    assert "/ping" in " ".join(influx["healthcheck"]["test"])


def test_named_volumes_are_declared_and_used() -> None:
    declared = set(COMPOSE.get("volumes") or {})
    used = {
        v.split(":")[0]
        for s in SERVICES.values()
        for v in s.get("volumes", [])
        if not v.startswith((".", "/"))
    }
    assert used == declared
    for service in SERVICES.values():
        for volume in service.get("volumes", []):
            if volume.startswith("."):
                path = ROOT / volume.split(":")[0]
                # The deployment's TLS files are the operator's, never committed.
                assert path.exists() or path.parent == ROOT / "docker" / "tls", volume


def test_dockerfile_installs_the_project_without_dev_deps() -> None:
    assert re.search(r"^FROM python:3\.11-slim\b", DOCKERFILE, re.M)
    assert re.search(r"^RUN pip install \.\s*$", DOCKERFILE, re.M)
    runs = re.findall(r"^RUN .*$", DOCKERFILE, re.M)
    assert not [r for r in runs if "[dev]" in r or " -e " in r], "dev or editable install"
    assert {"ingest", "analytics", "api"} <= _dockerfile_stages()


def test_dockerfile_runs_as_non_root() -> None:
    users = re.findall(r"^USER\s+(\S+)", DOCKERFILE, re.M)
    assert users and users[-1] not in {"root", "0"}


def test_dockerfile_api_healthcheck() -> None:
    api_stage = DOCKERFILE.split("AS api", 1)[1]
    assert "HEALTHCHECK" in api_stage
    script = re.search(r"COPY (docker/\S+\.py) ", api_stage)
    assert script and (ROOT / script.group(1)).is_file()
    assert "/healthz" in (ROOT / script.group(1)).read_text("utf-8")


def test_api_healthcheck_script_fails_without_a_server(monkeypatch: pytest.MonkeyPatch) -> None:
    import runpy

    module = runpy.run_path(str(ROOT / "docker" / "api_healthcheck.py"))
    monkeypatch.setenv("DELTASENSE_API_PORT", "1")  # nothing listens on port 1
    assert module["main"]() == 1


def test_dockerignore_keeps_secrets_and_clutter_out() -> None:
    ignored = set(_dockerignore())
    assert {".venv", "var", ".git", ".env"} <= ignored
    assert any("__pycache__" in p for p in ignored)
    # ...but not what `pip install .` needs.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    for needed in ("pyproject.toml", project["readme"], *PYTHON_SERVICES, "deltasense"):
        assert needed not in ignored, needed
    assert not any(p.startswith("docker/") or p == "docker" for p in ignored)


def _package_data_files() -> set[Path]:
    """Non-Python files in the installed packages (what the image needs besides code)."""
    files: set[Path] = set()
    for package in ("deltasense", *PYTHON_SERVICES):
        for path in (ROOT / package).rglob("*"):
            if (
                path.is_file()
                and path.suffix not in {".py", ".pyc"}
                and "__pycache__" not in path.parts
            ):
                files.add(path.relative_to(ROOT))
    return files


def test_package_data_is_installed() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    package_data: dict[str, list[str]] = config["tool"]["setuptools"].get("package-data", {})
    # Globbed as setuptools globs them (``**`` at any depth, which Path.match lacks).
    covered = {
        hit.relative_to(ROOT)
        for package, patterns in package_data.items()
        for pattern in patterns
        for hit in (ROOT / package).glob(pattern)
    }
    missing = sorted(str(path) for path in _package_data_files() - covered)
    assert not missing, f"not in package-data, missing from the image: {missing}"


INIT_USERS = ROOT / "docker" / "influxdb-init" / "10-deltasense-users.sh"


def _init_users() -> dict[str, tuple[str, str]]:
    """user → (grant, password variable), as the init script makes them."""
    calls = re.findall(r"^ds_user (\S+) (\S+) (\S+)$", INIT_USERS.read_text("utf-8"), re.M)
    return {name: (grant, var) for name, grant, var in calls}


def test_influxdb_runs_with_authentication_and_the_init_script() -> None:
    env = _env("influxdb")
    assert env["INFLUXDB_HTTP_AUTH_ENABLED"] == "true"
    assert env["INFLUXDB_ADMIN_USER"] == DbUser.ADMIN.value
    assert re.fullmatch(
        r"\$\{DELTASENSE_INFLUX_PASSWORD_ADMIN:\?[^}]*\}", env["INFLUXDB_ADMIN_PASSWORD"]
    )
    assert (
        "./docker/influxdb-init:/docker-entrypoint-initdb.d:ro" in SERVICES["influxdb"]["volumes"]
    )


@pytest.mark.parametrize("service", PYTHON_SERVICES)
def test_each_service_logs_in_to_influxdb_as_itself_with_its_grant(service: str) -> None:
    env = _env(service)
    user = DbUser(env["DELTASENSE_INFLUX_USERNAME"])
    assert user.value == service
    grant, variable = _init_users()[service]
    assert user.privilege is not None and grant == user.privilege.value  # one policy
    # The service and the init script read the same password from .env.
    assert env["DELTASENSE_INFLUX_PASSWORD"] == _env("influxdb")[variable]
    assert re.fullmatch(rf"\$\{{{variable}:\?[^}}]*\}}", env["DELTASENSE_INFLUX_PASSWORD"])
    assert f"{variable}=" in (ROOT / "docker" / "env.example").read_text("utf-8")


def test_the_init_script_makes_exactly_the_compose_services_users() -> None:
    assert set(_init_users()) == set(PYTHON_SERVICES)


def test_the_image_gets_the_consoles_vendored_files_the_way_bootstrap_does() -> None:
    """Leaflet and uPlot are git-ignored package data of `api`: the Dockerfile's
    vendor stage makes them with the same script as scripts/bootstrap.sh, from the
    locked npm packages, and the build stage copies them in before `pip install .`."""
    assert "sh scripts/vendor_console.sh" in (ROOT / "scripts" / "bootstrap.sh").read_text("utf-8")
    stages = DOCKERFILE.split("\nFROM ")
    vendor = next(s for s in stages if s.split()[2:3] == ["vendor"])
    assert "npm ci --omit=dev" in vendor and "sh scripts/vendor_console.sh" in vendor
    build = next(s for s in stages if " AS build" in s.splitlines()[0])
    copy = build.index("COPY --from=vendor /src/api/static/vendor api/static/vendor")
    assert build.index("COPY . .") < copy < build.index("RUN pip install .")
    ignore = (ROOT / ".dockerignore").read_text("utf-8").splitlines()
    assert "!scripts/vendor_console.sh" in ignore and "api/static/vendor" in ignore
    deps = json.loads((ROOT / "package.json").read_text("utf-8"))["dependencies"]
    assert {"leaflet", "uplot"} <= set(deps)  # runtime, kept by --omit=dev
