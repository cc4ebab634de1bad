"""The ATR-FAS network, its ablation configs, the losses and the ONNX export (on tensors)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from flashfas_edge.inference.bundle import load_bundle
from flashfas_edge.train.cache import SplitTensors
from flashfas_edge.train.config import ConfigError, load_config
from flashfas_edge.train.export import check_parity, export_bundle
from flashfas_edge.train.losses import Targets, gate_target, total_loss
from flashfas_edge.train.model import build_model
from flashfas_edge.train.presets import PRESETS, TINY
from flashfas_edge.train.trainer import TrainOptions, load_checkpoint, train_model

torch.set_num_threads(1)


def _toy_split(n: int, size: int, seed: int) -> SplitTensors:
    """Live checks carry a centred bright blob in every differential frame, attacks do not."""
    g = torch.Generator().manual_seed(seed)
    attack = torch.tensor([-1, 0, 1, 2] * (n // 4))
    x = torch.randn(n, 6, 3, size, size, generator=g) * 0.3
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    blob = torch.exp(-(xx**2 + yy**2) * 3)
    x[attack < 0] += blob
    d = size // 4
    depth = torch.nn.functional.interpolate(blob[None, None], size=(d, d), mode="area")[0, 0]
    return SplitTensors(
        x=x.half(),
        attack_index=attack,
        depth=depth.expand(n, d, d).clone(),
        meta=[{}] * n,
    )


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_and_runs_forward(name):
    config = PRESETS[name]
    if name == "paper":  # 256² forward is slow on this CPU; the shapes are checked by build
        model = build_model(config.model)
        assert sum(p.numel() for p in model.parameters()) > 1_000_000
        return
    model = build_model(config.model).eval()
    s = config.model.input_size
    with torch.no_grad():
        out = model(torch.randn(1, config.model.n_frames, 3, s, s))
    assert out.logit.shape == (1,)
    if out.depth is not None:
        assert out.depth.shape == (1, s // 4, s // 4)
        assert float(out.depth.min()) >= 0.0 and float(out.depth.max()) <= 1.0
    if out.attention is not None:
        assert torch.allclose(out.attention.sum(dim=1), torch.ones(1, s // 4, s // 4), atol=1e-5)


def test_bad_configs_are_rejected_with_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown config"):
        load_config("no-such-preset")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"base": "edge", "model": {"mixing": "median"}}))
    with pytest.raises(ConfigError, match="mixing"):
        load_config(str(bad))
    with pytest.raises(ConfigError, match="exportable"):
        PRESETS["edge"].replace(model={"attention": False})


def test_live_gate_target_is_uniform_and_attacks_are_one_hot():
    targets = Targets(
        live=torch.tensor([1.0, 0.0, 0.0]),
        attack_index=torch.tensor([-1, 0, 2]),
        depth=torch.zeros(3, 4, 4),
    )
    expected = torch.tensor([[1 / 3, 1 / 3, 1 / 3], [1, 0, 0], [0, 0, 1]])
    assert torch.allclose(gate_target(targets, 3, uniform_live=True), expected)
    assert gate_target(targets, 3, uniform_live=False)[0].sum() == 0


def test_total_loss_has_all_three_terms_for_the_full_model():
    config = TINY
    model = build_model(config.model)
    split = _toy_split(4, config.model.input_size, seed=0)
    result = model(split.x.float())
    targets = Targets(split.live, split.attack_index, split.depth)
    loss, parts = total_loss(result, targets, config.model, config.loss)
    assert set(parts) == {"cls", "depth", "gate"}
    assert torch.isfinite(loss)
    # Depth CE over 256 bins of an untrained network is near log(256).
    assert 3.0 < parts["depth"] < 8.0


def test_tiny_model_training_reduces_the_loss_and_checkpoints(tmp_path):
    config = TINY.replace(optim={"epochs": 3, "batch_size": 8, "lr": 5e-3})
    train = _toy_split(64, config.model.input_size, seed=1)
    dev = _toy_split(32, config.model.input_size, seed=2)
    summary = train_model(
        TrainOptions(config=config, out_dir=tmp_path / "run", seed=0, progress=False), train, dev
    )
    losses = [r["train_total"] for r in summary.history]
    assert losses[-1] < losses[0]
    assert summary.history[-1]["dev_eer"] <= 0.25
    state = load_checkpoint(summary.best_checkpoint)
    assert state["config"] == config.to_dict()


def test_training_resumes_from_the_last_checkpoint_and_only_extends(tmp_path):
    config = TINY.replace(optim={"epochs": 1, "batch_size": 8})
    train = _toy_split(32, config.model.input_size, seed=1)
    dev = _toy_split(16, config.model.input_size, seed=2)
    options = TrainOptions(config=config, out_dir=tmp_path, seed=0, progress=False)
    first = train_model(options, train, dev)
    longer = config.replace(optim={"epochs": 2})
    options = TrainOptions(config=longer, out_dir=tmp_path, seed=0, progress=False, resume=True)
    extended = train_model(options, train, dev)
    # epoch 1 is kept as it was; epoch 2 ran once, with the decayed learning rate
    assert [r["epoch"] for r in extended.history] == [1, 2]
    assert extended.history[0] == first.history[0]
    assert extended.history[1]["lr"] < extended.history[0]["lr"]
    assert load_checkpoint(tmp_path / "last.pt")["config"] == longer.to_dict()
    other = longer.replace(optim={"lr": 1e-2})
    options = TrainOptions(config=other, out_dir=tmp_path, seed=0, progress=False, resume=True)
    with pytest.raises(RuntimeError, match="another config"):
        train_model(options, train, dev)
    options = TrainOptions(config=config, out_dir=tmp_path, seed=0, progress=False, resume=True)
    with pytest.raises(RuntimeError, match="only be extended"):
        train_model(options, train, dev)

    # a run saved before a config field existed resumes: the field compares at its default
    state = load_checkpoint(tmp_path / "last.pt")
    del state["config"]["optim"]["relight_boost"]
    torch.save(state, tmp_path / "last.pt")
    options = TrainOptions(config=longer, out_dir=tmp_path, seed=0, progress=False, resume=True)
    assert [r["epoch"] for r in train_model(options, train, dev).history] == [1, 2]


@pytest.mark.filterwarnings("ignore:Detected call of")
def test_warm_start_takes_the_weights_and_its_own_recipe(tmp_path):
    config = TINY.replace(optim={"epochs": 1, "batch_size": 8})
    train = _toy_split(32, config.model.input_size, seed=1)
    dev = _toy_split(16, config.model.input_size, seed=2)
    parent = train_model(
        TrainOptions(config=config, out_dir=tmp_path / "parent", seed=0, progress=False),
        train,
        dev,
    )
    tune = config.replace(optim={"lr": 1e-4, "epochs": 1})
    options = TrainOptions(
        config=tune, out_dir=tmp_path / "tune", seed=0, progress=False, max_steps_per_epoch=0,
        init_from=parent.last_checkpoint,
    )
    tuned = train_model(options, train, dev)
    # no step taken: the tuned run's model is the parent's, scored again on dev
    before = load_checkpoint(parent.last_checkpoint)
    after = load_checkpoint(tuned.last_checkpoint)
    for key, value in before["model"].items():
        assert torch.equal(value, after["model"][key]), key
    assert tuned.history[0]["dev_bce"] == pytest.approx(parent.history[0]["dev_bce"])
    # its own recipe: a fresh history at its own learning rate
    assert [r["epoch"] for r in tuned.history] == [1]
    assert tuned.history[0]["lr"] == pytest.approx(1e-4 * tune.optim.lr_decay)
    other = config.replace(model={"stem_channels": 2 * config.model.stem_channels})
    options = TrainOptions(
        config=other, out_dir=tmp_path / "other", seed=0, progress=False,
        init_from=parent.last_checkpoint,
    )
    with pytest.raises(RuntimeError, match="another network"):
        train_model(options, train, dev)


def test_exported_bundle_matches_pytorch_through_the_daemon_backend(tmp_path: Path):
    config = TINY
    model = build_model(config.model)
    model.train()
    with torch.no_grad():  # non-trivial batch-norm statistics
        model(torch.randn(8, 6, 3, 32, 32))
    model.eval()
    result = export_bundle(
        model,
        config,
        tmp_path / "bundle",
        name="tiny-test",
        threshold=0.4,
        threshold_source="test",
        provenance={"data_seed": 7},
    )
    bundle = load_bundle(tmp_path / "bundle")
    assert bundle.threshold_default == pytest.approx(0.4)
    assert bundle.input_size == 32 and bundle.n_diff == 6
    assert set(result.manifest["modules"]) == set(bundle.modules)
    x = np.random.default_rng(0).standard_normal((5, 6, 3, 32, 32)).astype(np.float32)
    parity = check_parity(model, tmp_path / "bundle", x)
    assert parity.max_abs_p_live < 1e-5
    assert parity.max_abs_depth < 1e-5


def test_hard_example_resampling_marks_hard_checks_from_the_chosen_epoch(tmp_path):
    config = TINY.replace(optim={"epochs": 2, "batch_size": 8, "hard_example_epoch": 1})
    train = _toy_split(32, config.model.input_size, seed=1)
    dev = _toy_split(16, config.model.input_size, seed=2)
    summary = train_model(
        TrainOptions(config=config, out_dir=tmp_path, seed=0, progress=False), train, dev
    )
    assert summary.history[0]["hard_examples"] == 0
    # MoESA §3.3: at least the top-decile losses are marked hard.
    assert summary.history[1]["hard_examples"] >= 32 // 10


def test_weakened_flash_keeps_the_ambient_frame_and_shrinks_the_flash_difference():
    from flashfas_edge.train.augment import weaken_flash

    rng = np.random.default_rng(0)
    ambient = np.full((1, 16, 16, 3), 40, np.uint8)
    lit = np.stack([np.full((16, 16, 3), 40 + 40 * k, np.uint8) for k in (4, 3, 2, 1)])
    check = np.concatenate([lit, ambient])  # brightest first, the last frame ambient only
    weak = weaken_flash(check, rng).astype(np.float32)
    assert abs(weak[-1].mean() - 40) < 1.0
    flash_before = float(check[0].astype(np.float32).mean() - 40)
    flash_after = float(weak[0].mean() - weak[-1].mean())
    assert 0.15 * flash_before < flash_after <= flash_before + 1.0


def test_relighting_keeps_the_mean_level_and_compresses_the_flash_on_the_lit_side():
    from flashfas_edge.train.augment import CAMERA_GAMMA, relight_ambient

    size = 32
    linear_ambient = 0.2
    levels = (1.0, 0.75, 0.5, 0.25, 0.0)
    linear = np.stack([np.full((size, size, 3), linear_ambient + 0.1 * lv) for lv in levels])
    check = np.rint(255 * linear ** (1 / CAMERA_GAMMA)).astype(np.uint8)
    flat_flash = float(check[0].astype(np.float32).mean() - check[-1].astype(np.float32).mean())
    contrasts, ratios = [], []
    for seed in range(20):
        out = relight_ambient(check, np.random.default_rng(seed)).astype(np.float32)
        assert out.shape == check.shape
        # auto-exposure: the ambient frame keeps about its mean grey level
        assert abs(out[-1].mean() - check[-1].astype(np.float32).mean()) < 12
        ambient = out[-1].mean(-1)
        flash = (out[0] - out[-1]).mean(-1)
        lit, shade = ambient >= np.percentile(ambient, 80), ambient <= np.percentile(ambient, 20)
        contrasts.append(ambient[lit].mean() / max(ambient[shade].mean(), 1.0))
        # after the gamma the flash adds fewer grey levels where the ambient light is strong
        ratios.append(flash[lit].mean() / max(flash[shade].mean(), 1e-3))
        assert flash.mean() < flat_flash + 1.0  # never a stronger flash than before
    assert np.median(contrasts) > 1.3
    assert np.median(ratios) < 0.9


def test_a_stronger_relight_boost_leaves_less_of_the_flash():
    from flashfas_edge.train.augment import relight_ambient

    levels = (1.0, 0.75, 0.5, 0.25, 0.0)
    check = np.stack([np.full((32, 32, 3), 90 + 40 * lv) for lv in levels]).astype(np.uint8)

    def flash_levels(boost: tuple[float, float]) -> float:
        outs = [relight_ambient(check, np.random.default_rng(s), boost) for s in range(10)]
        return float(np.mean([o[0].astype(np.float32).mean() - o[-1].mean() for o in outs]))

    # the same light fields: only the boost differs, so the exposure shrinks the flash more
    assert flash_levels((4.0, 4.0)) < 0.6 * flash_levels((1.0, 1.0))
    with pytest.raises(ConfigError, match="relight_boost"):
        PRESETS["edge-relight"].replace(optim={"relight_boost": (0.5, 2.0)})


def test_alignment_jitter_moves_every_frame_and_the_depth_label_alike():
    import cv2

    from flashfas_edge.face.template import canonical_template
    from flashfas_edge.train.augment import (
        ALIGN_SHIFT_SD,
        alignment_jitter,
        jitter_alignment,
        scaled_jitter,
    )

    size, depth_size = 64, 16
    template = canonical_template(size)
    centre, iod = template.mean(axis=0), float(template[1, 0] - template[0, 0])
    # its spread is the one documented, about the template's centre
    rng = np.random.default_rng(0)
    moved = np.array([alignment_jitter(size, rng) @ [*centre, 1.0] - centre for _ in range(4000)])
    np.testing.assert_allclose(moved.std(axis=0) / iod, ALIGN_SHIFT_SD, rtol=0.1)
    assert np.all(np.abs(moved.mean(axis=0)) / iod < 0.01)

    # a smooth face-like blob: the jittered crop, shrunk to the depth size, is the jittered label
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    blob = np.exp(-((xx - 30) ** 2 + (yy - 36) ** 2) / (2 * 12.0**2)).astype(np.float32)
    label = cv2.resize(blob, (depth_size, depth_size), interpolation=cv2.INTER_AREA)
    for seed in range(5):
        move = alignment_jitter(size, np.random.default_rng(seed))
        move[:, 2] += (4.0, -6.0)  # a larger shift than usual, to test the conversion
        want = cv2.resize(jitter_alignment(blob, move), (depth_size, depth_size),
                          interpolation=cv2.INTER_AREA)
        got = jitter_alignment(label, scaled_jitter(move, depth_size / size))
        unscaled = jitter_alignment(label, move)
        assert np.abs(got - want).max() < 0.04 < 0.2 < np.abs(unscaled - want).max()
    # every frame of a check gets the same move
    frames = np.repeat((blob * 255).astype(np.uint8)[:, :, None], 3, axis=-1)
    check = np.stack([frames, frames // 2])
    out = jitter_alignment(check, move)
    assert out.shape == check.shape
    np.testing.assert_allclose(out[1].astype(int), out[0].astype(int) // 2, atol=1)


def test_jittered_training_runs_and_moves_the_depth_targets(tmp_path):
    from flashfas_edge.train.trainer import jittered_depth

    config = TINY.replace(optim={"epochs": 1, "batch_size": 8, "align_jitter": 1.0})
    assert config.optim.frame_augment
    depth = torch.zeros(2, config.model.depth_size, config.model.depth_size)
    depth[:, 2:4, 2:4] = 1.0
    move = np.array([[1.0, 0.0, 4.0], [0.0, 1.0, 0.0]])  # 4 px right in the input crop
    out = jittered_depth(depth, [move, None], config.model)
    factor = config.model.depth_size / config.model.input_size
    assert torch.equal(out[1], depth[1])

    def centre_x(image: torch.Tensor) -> float:
        return float((image.sum(0) * torch.arange(image.shape[1])).sum() / image.sum())

    assert abs(centre_x(out[0]) - centre_x(depth[0]) - 4 * factor) < 0.05
    with pytest.raises(ConfigError, match="align_jitter"):
        TINY.replace(optim={"align_jitter": 1.5})


def test_snr_augmentation_without_aligned_frames_fails_loudly(tmp_path):
    config = TINY.replace(optim={"epochs": 1, "batch_size": 8, "snr_augment": 0.5})
    train = _toy_split(16, config.model.input_size, seed=1)
    dev = _toy_split(8, config.model.input_size, seed=2)
    options = TrainOptions(config=config, out_dir=tmp_path, seed=0, progress=False)
    with pytest.raises(ValueError, match="aligned"):
        train_model(options, train, dev)
