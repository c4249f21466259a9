import pytest

from recognizer.analysis.runs import flatten
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
    with pytest.raises(ConfigError, match="unknown key 'optim.lrr'"):
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


def test_a_config_files_methods_block_applies_to_that_method_only(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("optim:\n  epochs: 7\nmethods:\n  pcle:\n    prompt:\n      hybrid: true\n"
                 "    optim:\n      epochs: 9\n")
    assert resolve("synthetic", "pcle", str(f)).prompt.hybrid and resolve("synthetic", "pcle", str(f)).optim.epochs == 9
    pcke = resolve("synthetic", "pcke", str(f))
    assert not pcke.prompt.hybrid and pcke.optim.epochs == 7
    assert resolve("synthetic", "pcle", str(f), ["optim.epochs=3"]).optim.epochs == 3  # --set wins
    f.write_text("methods:\n  clip:\n    optim:\n      epochs: 1\n")
    with pytest.raises(ConfigError, match="c.yaml.methods"):
        resolve("synthetic", "pcle", str(f))
    f.write_text("methods:\n  pcle:\n    optim:\n      epochz: 1\n")
    with pytest.raises(ConfigError, match="c.yaml: methods.pcle: unknown key 'optim.epochz'"):
        resolve("synthetic", "pcle", str(f))


def test_small_data_preset_is_the_cpu_protocol_recipe():
    """configs/native-small.yaml: frozen text for every method, a stratified validation split (so the inference
    rule is chosen and best.pt exists), and the CPU protocol's interaction rate, whatever that is now."""
    from recognizer.config import CONFIG_DIR

    for method in ("gap", "pcke", "pcle"):
        cfg = resolve("native", method, str(CONFIG_DIR / "native-small.yaml"))
        cpu = resolve("nw-ucla", method, str(CONFIG_DIR / "nw-ucla-cpu.yaml"))
        assert cfg.data.dataset == "native" and 0 < cfg.data.val_fraction < 0.5
        assert cfg.text.frozen and cfg.text.gap_frozen
        assert cfg.optim.interaction_lr_ratio == cpu.optim.interaction_lr_ratio
        assert (cfg.optim.schedule, cfg.optim.repeat, cfg.optim.batch_size) == ("cosine", 1, 32)
        assert cfg.optim.steps > 0  # a step budget: the run's length does not grow with the clip count


def test_a_later_layers_epochs_turn_a_step_budget_off(tmp_path):
    """--epochs 2 (the worked examples) over the small-data preset's optim.steps trains 2 epochs; a layer that
    names both keeps both, and a later optim.steps turns the budget back on."""
    from recognizer.config import CONFIG_DIR

    small = str(CONFIG_DIR / "native-small.yaml")
    assert resolve("native", "pcle", small).optim.steps == 400
    cfg = resolve("native", "pcle", small, ["optim.epochs=2"])
    assert (cfg.optim.epochs, cfg.optim.steps) == (2, 0)
    cfg = resolve("native", "pcle", small, ["optim.epochs=2", "optim.steps=50"])
    assert (cfg.optim.epochs, cfg.optim.steps) == (2, 50)
    f = tmp_path / "c.yaml"
    f.write_text("optim:\n  epochs: 7\n  steps: 30\nmethods:\n  gap:\n    optim:\n      epochs: 9\n")
    assert resolve("synthetic", "pcle", str(f)).optim.steps == 30
    assert (resolve("synthetic", "gap", str(f)).optim.epochs, resolve("synthetic", "gap", str(f)).optim.steps) == (9, 0)
    with pytest.raises(ConfigError, match="optim.steps: expected int"):
        resolve("synthetic", overrides=["optim.steps=some"])


def test_pcle_hybrid_config_is_the_cpu_grids_row_and_leaves_gap_and_pcke_alone():
    """configs/pcle-hybrid.yaml and the `pcle-hybrid` ablation row must not drift apart (the row is what the
    README's numbers come from), and the file must change PCLE runs only."""
    from recognizer.analysis.ablate import PCLE_HYBRID
    from recognizer.config import CONFIG_DIR

    hybrid = str(CONFIG_DIR / "pcle-hybrid.yaml")
    for dataset in ("nw-ucla", "ntu60-xsub"):
        for method in ("gap", "pcke"):
            assert resolve(dataset, method, hybrid) == resolve(dataset, method)
        assert resolve(dataset, "pcle", hybrid) == resolve(dataset, "pcle", overrides=PCLE_HYBRID)
        assert resolve(dataset, "pcle", hybrid) != resolve(dataset, "pcle")
    cfg = resolve("nw-ucla", "pcle", hybrid)
    assert cfg.prompt.hybrid and cfg.prompt.pooling == "name" and cfg.model.inference == "fusion"


def test_off_and_on_are_words_not_booleans(tmp_path):
    """YAML 1.1 reads off/on/yes/no as booleans: `--set run.amp=off` (the fp32 path) reached the string key
    run.amp as False and was refused. Configs read YAML 1.2's booleans: only true/false."""
    assert resolve("nw-ucla", "gap", overrides=["run.amp=off"]).run.amp == "off"
    f = tmp_path / "fp32.yaml"
    f.write_text("run:\n  amp: off\n  compile: false\n")
    cfg = resolve("nw-ucla", "gap", config_file=str(f))
    assert cfg.run.amp == "off" and cfg.run.compile is False
    assert parse_override("run.compile=true") == {"run": {"compile": True}}
    with pytest.raises(ConfigError, match="run.compile: expected bool, got 'yes'"):
        resolve("nw-ucla", "gap", overrides=["run.compile=yes"])


def test_long_cpu_protocol_differs_from_the_cpu_protocol_in_schedule_only():
    """configs/nw-ucla-cpu-long.yaml (issue 26) is the CPU protocol with a longer schedule: a long run and its
    16-pass twin must differ in nothing else, for every method (resolved, so a default the file forgets counts)."""
    from dataclasses import asdict

    from recognizer.config import CONFIG_DIR

    schedule = {"optim.epochs", "optim.repeat", "optim.warmup_epochs"}
    for method in ("gap", "pcke", "pcle"):
        cpu = flatten(asdict(resolve("nw-ucla", method, str(CONFIG_DIR / "nw-ucla-cpu-fp32.yaml"))))
        long = flatten(asdict(resolve("nw-ucla", method, str(CONFIG_DIR / "nw-ucla-cpu-long.yaml"))))
        assert {k for k in cpu if cpu[k] != long[k]} == schedule
        # the same warm-up passes, more passes in all
        assert long["optim.warmup_epochs"] * long["optim.repeat"] == cpu["optim.warmup_epochs"] * cpu["optim.repeat"]
        assert long["optim.epochs"] * long["optim.repeat"] > 3 * cpu["optim.epochs"] * cpu["optim.repeat"]


def test_a_config_file_or_set_names_the_preset_when_no_dataset_is_given():
    """`pcle ablate --config configs/nw-ucla-cpu.yaml` without --dataset used to train NW-UCLA on the synthetic
    preset's pipeline (width 16, window 32, crop): the preset must be the dataset the config names."""
    named = resolve(None, "gap", "configs/nw-ucla-cpu.yaml")
    assert named == resolve("nw-ucla", "gap", "configs/nw-ucla-cpu.yaml")
    assert named.data.clip.window == 52 and named.model.width == 64
    assert resolve(None, "gap", overrides=["data.dataset=nw-ucla"]) == resolve("nw-ucla", "gap")
    # the dataset argument still wins over the file's
    assert resolve("synthetic", "gap", "configs/nw-ucla-cpu.yaml").data.dataset == "synthetic"
