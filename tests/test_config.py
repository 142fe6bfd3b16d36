"""The config file: defaults, validation that reports every problem with its path, unknown keys rejected."""

from __future__ import annotations

from pathlib import Path

import pytest

from extender.cli import main
from extender.model.config import ConfigError, TideoverConfig, load_config, parse_config


def test_defaults_are_valid_and_documented_values() -> None:
    config = TideoverConfig()
    assert config.virtual_nodes.selector == {"type": "virtual-kubelet"}
    assert config.vm_pools.pool_label == "kubernetes.azure.com/agentpool"
    assert config.vm_pools.provisioning_seconds == 240
    assert config.priorities.economy.wait_budget_seconds == 300
    assert config.server.port == 8888


def test_every_problem_is_reported_at_once_with_its_path() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({
            "vmPools": {"pools": [{"name": "a", "pricePerHour": -1}, {"name": "a"}], "provisioningSeconds": 0},
            "virtualNodes": {"pricing": {"vcpuPerSecond": "cheap"}, "selector": {}},
            "priorities": {"economy": {"costWeight": 0, "latencyWeight": 0, "waitBudgetSeconds": 1}},
            "server": {"port": 70000, "tlsCertFile": "/x.pem"},
            "colour": "blue",
        })
    problems = caught.value.problems
    joined = "\n".join(problems)
    assert "vmPools.pools[0].pricePerHour: Input should be greater than 0" in joined
    assert "vmPools.provisioningSeconds: Input should be greater than 0" in joined
    assert "virtualNodes.pricing.vcpuPerSecond: Input should be a valid number" in joined
    assert "virtualNodes.selector: must name at least one label" in joined
    assert "priorities.economy: costWeight and latencyWeight cannot both be 0" in joined
    assert "server.port: Input should be less than or equal to 65535" in joined
    assert "colour: unknown key" in joined
    assert len(problems) >= 7


def test_duplicate_pools_named() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"vmPools": {"pools": [{"name": "a"}, {"name": "b"}, {"name": "a"}]}})
    assert caught.value.problems == ["vmPools.pools: pool names must be unique; repeated: a"]


def test_tls_files_go_together(tmp_path: Path) -> None:
    (tmp_path / "k.pem").write_text("key")
    with pytest.raises(ConfigError) as caught:
        parse_config({"server": {"tlsKeyFile": str(tmp_path / "k.pem")}})
    assert caught.value.problems == ["server: tlsCertFile and tlsKeyFile must be set together"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("vmPools: [1, 2", "line 1", id="bad-yaml-has-position"),
        pytest.param("- a\n- b\n", "(top level): must be a mapping, got list", id="not-a-mapping"),
        pytest.param("kind: Other\n", "kind: Input should be 'TideoverConfiguration'", id="wrong-kind"),
    ],
)
def test_load_config_errors(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert expected in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yaml")
    assert "cannot read" in str(caught.value)


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("")
    assert load_config(path) == TideoverConfig()


def test_pool_lookup_and_prices() -> None:
    config = parse_config({"vmPools": {"pools": [{"name": "spot", "pricePerHour": 0.02, "nodeGroup": "vmss-spot"}]}})
    assert config.vm_pools.price_per_hour("spot") == 0.02
    assert config.vm_pools.price_per_hour("other") == 0.096
    assert config.vm_pools.price_per_hour(None) == 0.096
    assert config.vm_pools.pool("spot").autoscaler_node_group == "vmss-spot"
    assert config.vm_pools.pool("other").autoscaler_node_group == "other"


def test_check_config_command_reports_all_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("server:\n  port: 0\nvmPools:\n  defaultPricePerHour: -2\nextra: 1\n")
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "3 problem(s)" in err
    assert "server.port" in err and "vmPools.defaultPricePerHour" in err and "extra: unknown key" in err
    assert "Traceback" not in err


def test_check_config_command_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("vmPools:\n  pools:\n    - name: nodepool1\n      pricePerHour: 0.096\n")
    assert main(["check-config", str(path)]) == 0
    assert "OK (pools: nodepool1)" in capsys.readouterr().out


def test_serve_settings_ignore_kubernetes_service_link_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    from extender.cli import ServeSettings

    # A Service named tideover makes Kubernetes inject these into every pod of its namespace.
    monkeypatch.setenv("TIDEOVER_PORT", "tcp://10.0.0.1:8888")
    monkeypatch.setenv("TIDEOVER_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("TIDEOVER_LISTEN_PORT", "9443")
    monkeypatch.setenv("TIDEOVER_CONFIG", "/etc/tideover/tideover.yaml")
    settings = ServeSettings()
    assert settings.port == 9443
    assert settings.host is None
    assert str(settings.config) == "/etc/tideover/tideover.yaml"


def test_lease_timings_are_whole_seconds_in_order() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"controllers": {"leaseDurationSeconds": 1.5, "renewDeadlineSeconds": 20}})
    joined = "\n".join(caught.value.problems)
    assert "controllers.leaseDurationSeconds: Input should be a valid integer" in joined
    with pytest.raises(ConfigError) as caught:
        parse_config({"controllers": {"leaseDurationSeconds": 10, "renewDeadlineSeconds": 10}})
    assert caught.value.problems == [
        "controllers: need retryPeriodSeconds < renewDeadlineSeconds < leaseDurationSeconds"
    ]


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("vmPools:\n  provisioningSeconds: .inf\n", "vmPools.provisioningSeconds"),
        ("autoscaler:\n  statusMaxAgeSeconds: .nan\n", "autoscaler.statusMaxAgeSeconds"),
        ("vmPools:\n  pools:\n    - name: p\n      pricePerHour: .inf\n", "vmPools.pools[0].pricePerHour"),
    ],
)
def test_non_finite_numbers_are_refused_with_their_path(tmp_path: Path, text: str, field: str) -> None:
    """Issue 11: check-config accepted .inf and .nan; the server then answered /prioritize with 500s."""
    path = tmp_path / "tideover.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert any(problem.startswith(field) and "finite" in problem for problem in caught.value.problems), caught.value


def test_a_duplicated_key_is_an_error_naming_its_line(tmp_path: Path) -> None:
    path = tmp_path / "tideover.yaml"
    path.write_text("server:\n  port: 8888\n  port: 9999\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    (problem,) = caught.value.problems
    assert problem == "line 3, column 3: not valid YAML: duplicate key 'port' (each key may appear once)"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(b"server:\n  host: \xff\xfe\n", "byte 16: not UTF-8 text", id="not-utf8"),
        pytest.param(b"[" * 5000 + b"]" * 5000, "nested too deeply", id="deep-nesting"),
        pytest.param(b"server:\n  port: " + b"9" * 5000 + b"\n", "not a usable value", id="huge-integer"),
        pytest.param(b"x: 1\n" * 300_000, "larger than 1048576 bytes", id="too-large"),
    ],
)
def test_hostile_files_get_one_clear_problem(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "tideover.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    (problem,) = caught.value.problems
    assert expected in problem


def test_a_flood_of_problems_is_cut_short_and_counted() -> None:
    error = ConfigError("f.yaml", [f"key{i}: unknown key" for i in range(237)])
    lines = str(error).splitlines()
    assert lines[0] == "f.yaml: 237 problem(s):"
    assert len(lines) == 1 + 50 + 1
    assert lines[-1] == "  ... and 187 more"


def test_check_config_says_an_empty_file_means_all_defaults(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from extender.cli import check_config

    path = tmp_path / "tideover.yaml"
    path.write_text("# nothing yet\n")
    assert check_config(path) == 0
    assert "it sets nothing: every setting has its default" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("server:\n  port: true\n", "server.port: must be a number, got the boolean true", id="port-true"),
        pytest.param("images:\n  defaultSizeBytes: false\n", "images.defaultSizeBytes: must be a number, got the "
                     "boolean false", id="float-false"),
        pytest.param("virtualNodes:\n  namespaceSpendCapsPerHour:\n    team-a: yes\n",
                     "virtualNodes.namespaceSpendCapsPerHour.team-a: must be a number, got the boolean true",
                     id="nested-yes"),
        pytest.param("server:\n  host: !!binary aGVsbG8=\n", "server.host: binary data (!!binary)", id="binary"),
        pytest.param('server:\n  host: "0.0.0.0\\0"\n', "server.host: contains a NUL character", id="nul"),
        pytest.param('virtualNodes:\n  selector:\n    "type\\0": virtual-kubelet\n',
                     "virtualNodes.selector: the key 'type\\x00' is binary or contains a NUL character", id="nul-key"),
        pytest.param("vmPools:\n  pools:\n    - name: !!binary cDE=\n",
                     "vmPools.pools[0].name: binary data (!!binary)", id="binary-in-list"),
        pytest.param("server:\n  tlsCertFile: /nonexistent/tls.crt\n  tlsKeyFile: /nonexistent/tls.key\n",
                     "server.tlsCertFile: '/nonexistent/tls.crt': No such file or directory", id="tls-missing"),
        pytest.param("server:\n  tlsCertFile: /\n  tlsKeyFile: /\n", "server.tlsCertFile: '/' is not a file",
                     id="tls-directory"),
    ],
)
def test_values_no_setting_takes_are_refused_with_their_path(tmp_path: Path, text: str, expected: str) -> None:
    """Issue 11: ``port: true`` was taken as port 1, a !!binary string as text, NUL kept in strings, and TLS files
    that do not exist were accepted (the server then failed at start-up)."""
    path = tmp_path / "tideover.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert any(problem.startswith(expected) for problem in caught.value.problems), caught.value.problems


def test_those_problems_are_reported_with_every_other_one() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"server": {"host": b"x", "port": True}, "colour": "blue"})
    assert sorted(caught.value.problems) == [
        "colour: unknown key",
        "server.host: binary data (!!binary) is not a value of any setting; write it as text",
        "server.port: must be a number, got the boolean true",
    ]


def test_existing_tls_files_are_accepted(tmp_path: Path) -> None:
    for name in ("tls.crt", "tls.key"):
        (tmp_path / name).write_text("pem")
    server = {"tlsCertFile": str(tmp_path / "tls.crt"), "tlsKeyFile": str(tmp_path / "tls.key")}
    config = parse_config({"server": server})
    assert config.server.tls_cert_file == tmp_path / "tls.crt"


def test_numbers_yaml_reads_as_text_still_count() -> None:
    """PyYAML reads ``30e6`` (no dot) as a string; pydantic's number parsing still takes it, as before."""
    config = parse_config({"vmPools": {"pullBytesPerSecond": "30e6"}, "server": {"port": 9000}})
    assert (config.vm_pools.pull_bytes_per_second, config.server.port) == (30e6, 9000)


def test_the_c_loader_is_used_where_pyyaml_has_it() -> None:
    """Issue 11: a large file was read with PyYAML's pure-Python parser."""
    import yaml

    from extender.model.config import UniqueKeyLoader

    if not yaml.__with_libyaml__:
        pytest.skip("this PyYAML was built without libyaml")
    assert issubclass(UniqueKeyLoader, yaml.CSafeLoader)


def test_a_syntax_error_names_where_the_broken_construct_began(tmp_path: Path) -> None:
    path = tmp_path / "tideover.yaml"
    path.write_text("vmPools:\n  pools: [a, b\n  provisioningSeconds: 5\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    (problem,) = caught.value.problems
    assert "not valid YAML" in problem and "began at line 2" in problem


def test_every_setting_says_what_it_means() -> None:
    from extender.model.reference import missing_descriptions

    assert missing_descriptions() == []


def test_the_readme_reference_is_the_model_s(capsys: pytest.CaptureFixture[str]) -> None:
    """The README's configuration table is `tideover config-reference`'s output: regenerate it when a setting
    changes (the command and the markers are in the README)."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    start = readme.index("<!-- config-reference:")
    start = readme.index("\n", start) + 1
    end = readme.index("<!-- config-reference end -->")
    assert main(["config-reference"]) == 0
    assert readme[start:end] == capsys.readouterr().out


def test_every_aks_offering_names_settings_that_exist() -> None:
    """The reference's AKS offering column: each entry of AKS_OFFERINGS is a setting or a section of them."""
    from extender.model.reference import AKS_OFFERINGS, aks_offering, settings

    paths = [setting.path for setting in settings()]
    stale = [key for key in AKS_OFFERINGS if not any(p == key or p.startswith(key + ".") for p in paths)]
    assert stale == []
    assert aks_offering("virtualNodes.maxPodsPerNode").startswith("virtual nodes v2")
    assert aks_offering("autoscaler.stuckAction") == aks_offering("autoscaler")  # the section's, by prefix
    assert aks_offering("server.port") == "any"
