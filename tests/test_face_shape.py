"""Scanned face shapes (sim/face_shape.py): the ICT-FaceKit asset, drawn identities and
expressions, and a live scene rendered with them."""

from __future__ import annotations

import typing
from importlib import resources

import numpy as np
import pytest
from pydantic import ValidationError

from flashfas_edge.config import CameraConfig, SimConfig
from flashfas_edge.face.template import canonical_template
from flashfas_edge.kiosk.sim_scene import build_sim_kiosk
from flashfas_edge.sim.cli import FACE_SHAPE_CHOICES
from flashfas_edge.sim.device import PROFILES
from flashfas_edge.sim.face_shape import (
    ASSET_PATH,
    FACE_SHAPES,
    LICENCE_PATH,
    FaceShape,
    face_model,
)
from flashfas_edge.sim.gbuffer import EYE, SKIN
from flashfas_edge.sim.head import HeadIdentity
from flashfas_edge.sim.scene import DEPTH_SIZE, SceneRequest, build_scene
from flashfas_edge.sim.synth_dataset import SynthJob


def _neutral() -> FaceShape:
    return FaceShape.from_weights(np.zeros(len(face_model().mode_names), np.float32))


def _with(**weights: float) -> FaceShape:
    model = face_model()
    w = np.zeros(len(model.mode_names), np.float32)
    for name, value in weights.items():
        w[model.mode_names.index(name)] = value
    return FaceShape.from_weights(w)


def test_the_asset_holds_the_documented_arrays():
    assert ASSET_PATH.stat().st_size < 1_500_000
    with np.load(ASSET_PATH) as z:
        assert z["mode_height_m"].dtype == np.float16
        assert z["neutral_landmarks_m"].shape == (68, 3)
        assert "ICT-FaceKit" in str(z["provenance"]) and "metres" in str(z["units"])
    model = face_model()
    h, w = model.neutral_m.shape
    m = len(model.mode_names)
    assert model.step_m == pytest.approx(0.001)
    assert model.modes_m.shape == (m, h, w) and model.valid.shape == (h, w)
    assert model.mode_landmarks_m.shape == (m, 68, 3)
    assert 30 <= model.n_identity <= 50 and 10 <= m - model.n_identity <= 16
    assert all(n.startswith("identity") for n in model.mode_names[: model.n_identity])
    assert "jawOpen" in model.mode_names[model.n_identity:]
    # a face is about 14 cm wide between its jaw points, and the grid covers it
    lm = model.landmarks_m
    assert 0.12 < np.linalg.norm(lm[16] - lm[0]) < 0.16
    assert model.valid.mean() > 0.5


def test_the_mean_face_has_its_landmarks_in_anatomical_order():
    eye_l, eye_r, nose, mouth_l, mouth_r = _neutral().five_points()
    assert max(eye_l[1], eye_r[1]) < nose[1] < min(mouth_l[1], mouth_r[1])  # y down
    # image-left first, like the template the aligner warps onto
    tpl = canonical_template(64)
    assert (eye_l[0] < eye_r[0]) == (tpl[0, 0] < tpl[1, 0])
    assert (mouth_l[0] < mouth_r[0]) == (tpl[3, 0] < tpl[4, 0])
    assert nose[2] > max(eye_l[2], eye_r[2], mouth_l[2], mouth_r[2])  # the nose tip is in front


def test_two_drawn_identities_differ():
    a = FaceShape.draw(np.random.default_rng(1))
    b = FaceShape.draw(np.random.default_rng(2))
    valid = face_model().valid
    assert np.abs(a.height_m - b.height_m)[valid].max() > 0.003
    assert np.abs(a.landmarks_m - b.landmarks_m).max() > 0.002
    assert np.all(np.abs(a.weights[: face_model().n_identity]) <= 2.5)
    same = FaceShape.draw(np.random.default_rng(1))
    np.testing.assert_array_equal(a.height_m, same.height_m)


def test_expressions_move_the_mouth_landmarks():
    neutral = _neutral().landmarks_m
    opened = _with(jawOpen=0.5).landmarks_m
    assert opened[57, 1] - neutral[57, 1] > 0.004  # the lower lip drops
    assert opened[66, 1] - opened[62, 1] > neutral[66, 1] - neutral[62, 1] + 0.003  # lips part
    smile = _with(mouthSmile_L=1.0, mouthSmile_R=1.0).landmarks_m
    assert smile[48, 1] < neutral[48, 1] - 0.003 and smile[54, 1] < neutral[54, 1] - 0.003
    assert smile[54, 0] - smile[48, 0] > neutral[54, 0] - neutral[48, 0]  # corners pulled apart


def test_a_scanned_live_scene_has_its_landmarks_on_the_face_and_the_nose_closest():
    req = SceneRequest("live", "office", PROFILES[1], identity_seed=7, scene_seed=3, width=320,
                       height=240, distance_range_m=(0.45, 0.55), face_shape="scanned")
    scene = build_scene(req)
    assert scene.params["face_shape"] == "scanned"
    lm = scene.landmarks
    assert np.all(np.isfinite(lm))
    px = np.round(lm).astype(int)
    assert np.all(np.isin(scene.obj[px[:, 1], px[:, 0]], (SKIN, EYE)))
    # the aligned depth label (1 = closest) peaks at the template's nose tip
    depth = scene.depth
    nose = np.round(canonical_template(DEPTH_SIZE)[2]).astype(int)
    near_nose = depth[nose[1] - 3 : nose[1] + 4, nose[0] - 3 : nose[0] + 4]
    assert near_nose.max() > 0.95
    eyes = np.round(canonical_template(DEPTH_SIZE)[:2]).astype(int)
    assert all(depth[y, x] < near_nose.max() - 0.1 for x, y in eyes)


def test_a_seed_gives_the_same_person_in_either_shape():
    procedural = HeadIdentity.draw(np.random.default_rng(5))
    scanned = HeadIdentity.draw(np.random.default_rng(5), shape="scanned")
    assert procedural.face is None and scanned.face is not None
    np.testing.assert_array_equal(procedural.skin_rgb, scanned.skin_rgb)
    assert SceneRequest("live", "office", PROFILES[1], 1, 1).face_shape == "procedural"
    with pytest.raises(ValueError, match="face_shape"):
        SceneRequest("live", "office", PROFILES[1], 1, 1, face_shape="clay")


def test_the_cli_config_and_renderer_name_the_same_shapes():
    config_shapes = typing.get_args(SimConfig.model_fields["face_shape"].annotation)
    assert tuple(config_shapes) == FACE_SHAPE_CHOICES == FACE_SHAPES
    # the kiosk and the dataset renderer show the faces the shipped model was fine-tuned on
    assert SimConfig().face_shape == "scanned"
    assert SynthJob(out="x", n=1).face_shape == "scanned"


def test_the_simulated_kiosk_shows_the_configured_face_shape():
    _, _, controls = build_sim_kiosk(SimConfig(), CameraConfig(width=160, height=120))
    assert controls.kiosk.scene.params["face_shape"] == "scanned"
    sim = SimConfig.model_validate({"face_shape": "procedural"})
    _, _, controls = build_sim_kiosk(sim, CameraConfig(width=160, height=120))
    assert "face_shape" not in controls.kiosk.scene.params  # the procedural relief
    with pytest.raises(ValidationError):
        SimConfig.model_validate({"face_shape": "clay"})


def test_the_asset_ships_with_its_licence():
    shipped = resources.files("flashfas_edge.sim").joinpath("assets")
    assert shipped.joinpath("face_shape.npz").is_file()
    text = shipped.joinpath("LICENSE-ICT-FaceKit.txt").read_text(encoding="utf-8")
    assert text == LICENCE_PATH.read_text(encoding="utf-8")
    assert "MIT License" in text and "USC Institute for Creative Technologies" in text
    assert "Permission is hereby granted, free of charge" in text
