from pathlib import Path

import pytest

from engine.errors import SettingsError
from engine.settings import Settings


def test_defaults_mean_embedded():
    settings = Settings.from_env({})
    assert settings.embedded_kafka and settings.embedded_redis
    assert settings.rules == Path("rules")
    assert settings.api_keys == ()


def test_reads_every_documented_variable():
    settings = Settings.from_env(
        {
            "CLICKSTREAM_KAFKA": "k1:9092,k2:9092",
            "CLICKSTREAM_REDIS": "redis://cache:6379/2",
            "CLICKSTREAM_API_KEYS": "a, b ,,c",
            "CLICKSTREAM_RULES": "/etc/rules",
            "CLICKSTREAM_SITE_ORIGINS": "https://shop.example,http://localhost:3000",
        }
    )
    assert settings.kafka == "k1:9092,k2:9092"
    assert settings.redis == "redis://cache:6379/2"
    assert [key.secret for key in settings.api_keys] == ["a", "b", "c"]
    assert all(key.scopes == {"read", "write", "erase"} for key in settings.api_keys)  # the older form: every scope
    assert settings.rules == Path("/etc/rules")
    assert settings.site_origins == ("https://shop.example", "http://localhost:3000")
    assert not settings.embedded_kafka and not settings.embedded_redis


@pytest.mark.parametrize(
    "variable, value",
    [
        ("CLICKSTREAM_KAFKA", "no-port"),
        ("CLICKSTREAM_REDIS", "http://cache"),
        ("CLICKSTREAM_SITE_ORIGINS", "shop.example"),
        ("CLICKSTREAM_SITE_ORIGINS", "*"),
        ("CLICKSTREAM_SITE_ORIGINS", "https://shop.example,null"),
        ("CLICKSTREAM_API_KEYS", "shop:read,admin"),
        ("CLICKSTREAM_API_KEYS", ":read"),
        ("CLICKSTREAM_PARTITIONS", "zero"),
        ("CLICKSTREAM_PARTITIONS", "-3"),
        ("CLICKSTREAM_BATCH_SIZE", "0"),
        ("CLICKSTREAM_REBALANCE_TIMEOUT_S", "nan"),
        ("CLICKSTREAM_RECOMMEND_MAX_PER_CATEGORY", "-1"),
        ("CLICKSTREAM_RECOMMEND_SIMILARITY", "pearson"),
        ("CLICKSTREAM_ALS_RETRAIN_MINUTES", "-5"),
        ("CLICKSTREAM_ALS_FACTORS", "0"),
        ("CLICKSTREAM_EASE_REGULARIZATION", "0"),
        ("CLICKSTREAM_EASE_MAX_ITEMS", "-1"),
        ("CLICKSTREAM_POPULARITY_HALF_LIFE_DAYS", "0"),
        ("CLICKSTREAM_UNTRUSTED_ORDERS", "sometimes"),
        ("CLICKSTREAM_RATE_LIMIT_PER_S", "-1"),
        ("CLICKSTREAM_RATE_LIMIT_BURST", "0"),
        ("CLICKSTREAM_DEMO_LOGIN", "maybe"),
        ("CLICKSTREAM_BOT_FILTER", "maybe"),
    ],
)
def test_bad_value_names_the_variable(variable, value):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({variable: value})
    assert caught.value.variable == variable
    assert variable in str(caught.value)


def test_environ_round_trips():
    settings = Settings.from_env(
        {"CLICKSTREAM_KAFKA": "k:1", "CLICKSTREAM_API_KEYS": "x,y", "CLICKSTREAM_PARTITIONS": "8"}
    )
    assert Settings.from_env(settings.environ()) == settings


def test_cli_reports_bad_setting_with_its_name(monkeypatch, capsys):
    from engine.cli import main

    monkeypatch.setenv("CLICKSTREAM_REDIS", "nonsense")
    with pytest.raises(SystemExit) as caught:
        main(["worker"])
    assert caught.value.code == 2
    assert "CLICKSTREAM_REDIS" in capsys.readouterr().err


def test_recommend_similarity_reaches_the_served_config():
    from engine.recommend.config import RecommendConfig

    assert RecommendConfig.from_settings(Settings.from_env({})).method == "confidence"
    chosen = Settings.from_env({"CLICKSTREAM_RECOMMEND_SIMILARITY": " Cosine "})
    assert RecommendConfig.from_settings(chosen).method == "cosine"


def test_item_regression_settings_reach_the_training_parameters():
    from engine.recommend.als_training import AlsParams
    from engine.recommend.ease import EaseParams

    assert AlsParams.from_settings(Settings.from_env({})).item_regression == EaseParams()
    chosen = AlsParams.from_settings(
        Settings.from_env({"CLICKSTREAM_EASE_REGULARIZATION": "250", "CLICKSTREAM_EASE_MAX_ITEMS": "0"})
    )
    assert chosen.item_regression == EaseParams(regularization=250.0, max_items=0)


def test_api_keys_carry_scopes_and_never_show():
    settings = Settings.from_env(
        {"CLICKSTREAM_API_KEYS": "shop-secret:read,write; ops-secret:read ;dpo-secret:erase;all-secret"}
    )
    scopes = {key.secret: key.scopes for key in settings.api_keys}
    assert scopes == {
        "shop-secret": {"read", "write"},
        "ops-secret": {"read"},
        "dpo-secret": {"erase"},
        "all-secret": {"read", "write", "erase"},
    }
    assert "secret" not in repr(settings).replace("secret=****", "")
    assert Settings.from_env(settings.environ()) == settings


def test_the_similarities_settings_accept_are_the_ones_implemented():
    from engine.recommend.cooccur import METHODS
    from engine.settings import SIMILARITIES

    assert tuple(SIMILARITIES) == tuple(METHODS)


def test_trust_settings_and_their_defaults():
    default = Settings.from_env({})
    assert (default.untrusted_orders, default.rate_limit_per_s, default.rate_limit_burst) == (
        "until-trusted",
        50.0,
        500,
    )
    assert default.demo_login is None and default.bot_filter is True and default.identity_secret is None
    chosen = Settings.from_env(
        {
            "CLICKSTREAM_UNTRUSTED_ORDERS": "Claim",
            "CLICKSTREAM_RATE_LIMIT_PER_S": "0",
            "CLICKSTREAM_IDENTITY_SECRET": "shh",
            "CLICKSTREAM_DEMO_LOGIN": "false",
        }
    )
    assert (chosen.untrusted_orders, chosen.rate_limit_per_s, chosen.demo_login) == ("claim", 0.0, False)
    assert "shh" not in repr(chosen) and Settings.from_env(chosen.environ()) == chosen
