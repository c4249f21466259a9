import pytest

from recognizer.config import ConfigError, from_yaml_text, parse_override, resolve, to_yaml


def test_presets_and_overrides():
    cfg = resolve("nw-ucla", "pcle")
    assert cfg.data.clip.window == 52 and cfg.optim.repeat == 5 and cfg.optim.lr == 0.2
    cfg = resolve("ntu60-xsub", "pcke", overrides=["optim.lr=0.05", "model.dilations=[1, 2, 3]"])
    assert cfg.data.clip.window == 64 and cfg.optim.lr == 0.05 and cfg.model.dilations == (1, 2, 3)
    assert cfg.prompt.method == "pcke"


def test_gap_is_pcke_without_interaction_and_ranking():
    cfg = resolve("synthetic", "gap")
    assert cfg.prompt.method == "pcke"
    assert not cfg.model.bridger and not cfg.model.interaction and not cfg.loss.ranking
    assert cfg.loss.contrastive and cfg.loss.ce


def test_round_trip_through_yaml():
    cfg = resolve("synthetic", "pcle", overrides=["prompt.ctx_init=a person is"])
    assert from_yaml_text(to_yaml(cfg)) == cfg


def test_bad_configs_are_named(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'lrr'"):
        resolve("synthetic", overrides=["optim.lrr=1"])
    with pytest.raises(ConfigError, match="optim.epochs: expected int"):
        resolve("synthetic", overrides=["optim.epochs=many"])
    with pytest.raises(ConfigError, match="unknown method"):
        resolve("synthetic", "clip")
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        resolve("synthetic", config_file=str(bad))
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_override("optim.lr")


def test_cpu_protocol_config_loads_with_gaps_pipeline_at_full_width():
    from recognizer.config import CONFIG_DIR

    for method in ("gap", "pcke", "pcle"):
        cfg = resolve("nw-ucla", method, str(CONFIG_DIR / "nw-ucla-cpu.yaml"))
        assert cfg.model.width == 64 and cfg.data.clip.mode == "sample" and cfg.data.clip.window == 52
        assert cfg.optim.schedule == "cosine" and cfg.data.val_fraction > 0 and cfg.text.frozen
        assert cfg.loss.alpha == 1.0 and cfg.model.lst_k["joint"] == 6
