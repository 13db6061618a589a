"""Settings: the seed's keys, units, precedence, and clear errors for bad configuration."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from framework2.config import load_settings, parse_duration
from framework2.errors import ConfigError


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FRAMEWORK2_CONFIG", raising=False)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "framework2.toml"
    path.write_text(text)
    return path


def test_seed_camel_case_keys_are_read_from_toml(tmp_path: Path) -> None:
    write(
        tmp_path,
        """
[ppis]
marketAnalysisInterval = "2h"
competitorTracking = false
[plos]
rollbackThreshold = 0.2
[coordination]
healthCheckInterval = "30000ms"
""",
    )
    settings = load_settings()
    assert settings.ppis.market_analysis_interval == timedelta(hours=2)
    assert settings.ppis.competitor_tracking is False
    assert settings.plos.rollback_threshold == 0.2
    assert settings.coordination.health_check_interval == timedelta(seconds=30)


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, '[ppis]\nmarketAnalysisInterval = "2h"\n')
    monkeypatch.setenv("FRAMEWORK2_PPIS__MARKET_ANALYSIS_INTERVAL", "15m")
    monkeypatch.setenv("FRAMEWORK2_PPIS__GUARDRAILS__MIN_MARKUP", "0.25")
    settings = load_settings()
    assert settings.ppis.market_analysis_interval == timedelta(minutes=15)
    assert settings.ppis.guardrails.min_markup == 0.25


def test_defaults_match_the_seed() -> None:
    settings = load_settings()
    assert settings.ppis.market_analysis_interval == timedelta(hours=1)
    assert settings.coordination.health_check_interval == timedelta(seconds=30)
    assert settings.alerts.health_score_below == 95
    assert settings.store_url.endswith(".framework2/store.db")


def test_duration_without_unit_is_refused_with_the_fix(tmp_path: Path) -> None:
    write(tmp_path, "[coordination]\nhealthCheckInterval = 30000\n")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "coordination.health_check_interval" in err.value.message
    assert "30000ms" in err.value.message
    assert "framework2.example.toml" in err.value.hint


def test_unknown_key_is_named(tmp_path: Path) -> None:
    write(tmp_path, '[ppis]\nmarketAnalysisIntervall = "1h"\n')
    with pytest.raises(
        ConfigError, match="ppis: unknown key 'marketAnalysisIntervall'; known keys: .*marketAnalysisInterval"
    ):
        load_settings()


def test_broken_toml_says_so(tmp_path: Path) -> None:
    write(tmp_path, "[ppis\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings()


def test_missing_config_file_named_in_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FRAMEWORK2_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "nope.toml does not exist" in err.value.message


def test_guardrail_bands_must_be_ordered(tmp_path: Path) -> None:
    write(tmp_path, "[ppis.guardrails]\ncompetitorBandLow = 1.2\ncompetitorBandHigh = 0.9\n")
    with pytest.raises(ConfigError, match="competitor_band_high"):
        load_settings()


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("15m", 900), ("1h", 3600), ("1.5d", 129600), ("250ms", 0.25)]
)
def test_duration_units(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


def test_example_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    example = Path(__file__).resolve().parents[1] / "framework2.example.toml"
    monkeypatch.setenv("FRAMEWORK2_CONFIG", str(example))
    settings = load_settings()
    assert settings.ppis.guardrails.approval_change_pct > 0


def test_a_guardrail_override_changes_only_the_fields_it_sets() -> None:
    from framework2.config import GuardrailOverrides, PricingGuardrails, with_overrides

    base = PricingGuardrails(min_markup=0.3, max_change_pct=0.05)
    merged = with_overrides(base, GuardrailOverrides(max_change_pct=0.2))
    assert (merged.min_markup, merged.max_change_pct) == (0.3, 0.2)
    with pytest.raises(ValueError, match="competitor_band_high"):
        with_overrides(base, {"competitor_band_low": 1.5})  # validated together with the base


def test_an_unresponsive_window_shorter_than_heartbeats_is_refused_with_the_key(tmp_path: Path) -> None:
    # Prefect sends a heartbeat every 30 s at the most; a shorter window would crash runs that are alive.
    write(tmp_path, '[coordination]\nunresponsiveAfter = "20s"\n')
    with pytest.raises(ConfigError, match=r"coordination.unresponsive_after.*at least 1 minute"):
        load_settings()
    write(tmp_path, '[coordination]\nunresponsiveAfter = "15m"\n')
    assert load_settings().coordination.unresponsive_after == timedelta(minutes=15)


def test_impact_policy_reads_camel_and_snake_case_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(
        tmp_path,
        """
[pces]
impactPolicy = { approvalMinEffortDays = 2, auto_accept_max_risk = "medium" }
stakeholders = { ana = { mode = "immediate", channel = "custom-webhook/ana" } }
components = [{ name = "checkout", owner = "ana", services = ["web"] }]
""",
    )
    monkeypatch.setenv("FRAMEWORK2_PCES__IMPACT_POLICY__APPROVAL_ON_RISK", "never")
    pces = load_settings().pces
    assert pces.impact_policy["approval_min_effort_days"] == 2
    assert pces.impact_policy["auto_accept_max_risk"] == "medium"
    assert pces.impact_policy["approval_on_risk"] == "never"  # the environment wins, in snake_case
    assert pces.stakeholders == {"ana": {"mode": "immediate", "channel": "custom-webhook/ana"}}
    assert pces.components == [{"name": "checkout", "owner": "ana", "services": ["web"]}]


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (
            "[pces]\nimpactPolicy = { aprovalMinEffortDays = 2 }\n",
            "pces: impactPolicy: unknown key 'aprovalMinEffortDays'",
        ),
        ("[pces.impactPolicy]\napprovalMinEffortDay = 2\n", "unknown key 'approvalMinEffortDay'"),
        ("[pces]\nstakeholders = { ana = { mod = 'immediate' } }\n", "stakeholders.ana: unknown key 'mod'"),
        ("[pces]\ncomponents = [{ nam = 'x' }]\n", "components[0]: unknown key 'nam'"),
        ("[ppis.guardrails]\nmaxChange = 0.1\n", "ppis.guardrails: unknown key 'maxChange'"),
    ],
)
def test_an_unknown_key_in_any_table_is_refused_with_the_known_keys(tmp_path: Path, text: str, named: str) -> None:
    write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert named in str(caught.value)
    assert "known keys:" in str(caught.value)


def test_an_unknown_section_lists_the_known_sections(tmp_path: Path) -> None:
    write(tmp_path, "[pcse]\nimpactPolicy = {}\n")
    with pytest.raises(ConfigError, match=r"unknown section 'pcse'; known sections: .*pces"):
        load_settings()


def test_the_example_file_documents_every_key() -> None:
    """Every setting, down to the tables PCES and PUXT hold, appears in framework2.example.toml (set or
    commented out), in the seed's camelCase."""
    import re
    import typing

    from framework2.config import Settings
    from framework2.sections import Section, camel_case
    from framework2.tasks.context.impact import Component, ImpactPolicy
    from framework2.tasks.context.stakeholders import Preference

    text = (Path(__file__).parents[1] / "framework2.example.toml").read_text()
    keys = set(re.findall(r"^[#\s]*([A-Za-z]\w*)\s*=", text, re.M))
    keys |= set(re.findall(r"[{,]\s*([A-Za-z]\w*)\s*=", text))
    keys |= {part for table in re.findall(r"^#?\s*\[\[?([\w.]+)\]\]?", text, re.M) for part in table.split(".")}
    missing: list[str] = []

    def walk(model: type[Section], prefix: str, skip: frozenset[str] = frozenset()) -> None:
        for name, field in model.model_fields.items():
            if name in skip:
                continue
            if camel_case(name) not in keys:
                missing.append(prefix + camel_case(name))
            for inner in (field.annotation, *typing.get_args(field.annotation)):
                if isinstance(inner, type) and issubclass(inner, Section):
                    walk(inner, f"{prefix}{camel_case(name)}.")

    for name, field in Settings.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, Section):
            walk(field.annotation, f"{name}.")
    walk(ImpactPolicy, "pces.impactPolicy.")
    walk(Component, "pces.components.")
    walk(Preference, "pces.stakeholders.", skip=frozenset({"handle"}))  # the handle is the table's key
    assert not missing, f"not in framework2.example.toml: {missing}"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[pces.stakeholders.ana]\nhandle = 'bob'\n", "stakeholders.ana: leave 'handle' out"),
        ("[pces.impactPolicy]\napprovalMinEffortDays = nan\n", "approval_min_effort_days"),
        ("[pces.impactPolicy]\nautoAcceptMaxEffortDays = -1\n", "auto_accept_max_effort_days"),
        ("[pces]\nmessageRetry = '0s'\n", "at least 1s"),
        ("[pces]\nmessageExpiry = '0s'\n", "at least 1s"),
    ],
)
def test_a_pces_value_that_cannot_work_is_refused_with_the_key(tmp_path: Path, text: str, named: str) -> None:
    write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert named in str(caught.value) and "Traceback" not in str(caught.value)
