"""docker-compose.yml cannot run here (no Docker engine), so check what it says."""

from dataclasses import fields

import yaml

from engine.cli import build_parser
from engine.settings import PREFIX, Settings
from helpers import REPO


def compose():
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_services_of_a_real_deployment():
    services = compose()["services"]
    assert set(services) == {"kafka", "redis", "collector", "worker", "api"}
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka")
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]  # KRaft, no ZooKeeper
    assert "--appendonly" in services["redis"]["command"] and "yes" in services["redis"]["command"]
    assert services["worker"]["deploy"]["replicas"] == 2


def test_engine_services_run_real_commands_with_variables_the_code_reads():
    known = {PREFIX + f.name.upper() for f in fields(Settings)}
    commands = set(build_parser()._subparsers._group_actions[0].choices)
    for name in ("collector", "worker", "api"):
        service = compose()["services"][name]
        assert service["command"][0] in commands
        env = service["environment"]
        assert env["CLICKSTREAM_KAFKA"] == "kafka:9092" and env["CLICKSTREAM_REDIS"].startswith("redis://redis:")
        unknown = set(env) - known
        assert not unknown, f"{name} sets variables the engine does not read: {unknown}"
        # and the values parse as the engine would parse them
        Settings.from_env({k: v for k, v in env.items() if "${" not in str(v)})
