"""The spectral renderer: skin, paint and inks per wavelength, flash primaries, masks as attackers
make them (sim/spectra.py, sim/spectral_render.py, sim/mask_attack.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from flashfas_edge.sim import spectra
from flashfas_edge.sim.cli import MASK_MATERIALS as CLI_MASK_MATERIALS
from flashfas_edge.sim.device import PROFILE_BY_NAME
from flashfas_edge.sim.gbuffer import RESIN, SKIN
from flashfas_edge.sim.mask_attack import MASK_MATERIALS, draw_mask, painter_view
from flashfas_edge.sim.scene import SceneRequest, build_scene
from flashfas_edge.sim.spectral_render import device_spectra, skin_material

LAM = spectra.WAVELENGTHS_NM


def _band(nm: float) -> int:
    return int(np.argmin(np.abs(LAM - nm)))


def test_skin_shows_haemoglobin_absorption_between_540_and_580_nm():
    refl, _ = spectra.skin_optics(spectra.SkinParams(melanin=0.02, blood=0.03, oxygenation=0.95))
    # oxy-haemoglobin's Q bands: a dip at 540–580 below the line from 510 to 600 nm
    line = np.interp(LAM, [510, 600], [refl[_band(510)], refl[_band(600)]])
    dip = line[_band(540):_band(580) + 1] - refl[_band(540):_band(580) + 1]
    assert dip.max() > 0.02
    more_blood, _ = spectra.skin_optics(spectra.SkinParams(0.02, 0.06, 0.95))
    assert more_blood[_band(560)] < refl[_band(560)] - 0.03
    assert abs(more_blood[_band(680)] - refl[_band(680)]) < 0.03  # blood hardly absorbs red


def test_melanin_darkens_blue_more_than_red():
    light, _ = spectra.skin_optics(spectra.SkinParams(0.02, 0.02, 0.9))
    dark, _ = spectra.skin_optics(spectra.SkinParams(0.25, 0.02, 0.9))
    assert dark[_band(450)] / light[_band(450)] < 0.5 * dark[_band(650)] / light[_band(650)]


def test_red_light_diffuses_millimetres_under_skin_blue_a_fraction_of_one():
    _, diffusion = spectra.skin_optics(spectra.SkinParams(0.02, 0.02, 0.9))
    assert diffusion[_band(650)] > 1.0 > 0.5 > diffusion[_band(450)]


def test_a_white_reflector_reads_one_in_every_channel_under_the_full_white_flash():
    for kind in spectra.PRIMARY_KINDS:
        dev = spectra.spectral_device(kind)
        white = np.einsum("l,plc->c", np.ones(spectra.N_BANDS), dev.primary_channel)
        np.testing.assert_allclose(white, 1.0, rtol=1e-9)


def test_mask_paint_matches_skin_under_the_painters_light_but_not_under_led_primaries():
    rng = np.random.default_rng(3)
    skin, _ = spectra.skin_optics(spectra.SkinParams(0.04, 0.025, 0.9))
    view = painter_view(rng)
    paint = spectra.paint_reflectance(spectra.mix_paint_to_match(skin @ view, view, rng))
    np.testing.assert_allclose(paint @ view, skin @ view, rtol=0.02)  # a metamer to the eye
    led = spectra.spectral_device("led").primary_channel
    under_skin = np.einsum("l,plc->pc", skin, led)
    under_paint = np.einsum("l,plc->pc", paint, led)
    ratio = under_paint / under_skin
    # after removing the overall brightness the 3 × 3 responses still differ
    assert np.ptp(ratio / np.median(ratio)) > 0.05


def test_every_mask_material_can_be_drawn_and_the_cli_offers_the_same_list():
    assert CLI_MASK_MATERIALS == MASK_MATERIALS
    rng = np.random.default_rng(0)
    dev = device_spectra(PROFILE_BY_NAME["kiosk15_mipi"])
    from flashfas_edge.sim.head import HeadIdentity

    victim = HeadIdentity.draw(rng)
    seen = set()
    for _ in range(40):
        look, material, params = draw_mask(rng, victim, dev)
        seen.add(params["material"])
        assert (material.diffusion_mm.max() > 0) == (params["material"] == "silicone")
        assert 0.0 < look.spec < 0.4
    assert seen == set(MASK_MATERIALS)
    _, _, params = draw_mask(rng, victim, dev, materials=("plaster",))
    assert params["material"] == "plaster"


@pytest.fixture(scope="module")
def spectral_live():
    return build_scene(SceneRequest("live", "office", PROFILE_BY_NAME["ledbar_usb"], 21, 4,
                                    width=320, height=240, physics="spectral"))


def test_spectral_scene_flash_is_the_sum_of_its_primaries(spectral_live):
    sc = spectral_live
    assert sc.flash_primaries is not None and sc.flash_primaries.shape == (240, 320, 3, 3)
    np.testing.assert_allclose(sc.flash_primaries.sum(axis=2), sc.flash, rtol=1e-5, atol=1e-7)
    assert sc.params["physics"] == "spectral"
    white = sc.state_light(np.array([[1.0, 1.0, 1.0]]), np.array([0.5]))
    np.testing.assert_allclose(sc.flash_image(np.repeat(white, 240, axis=0)), 0.5 * sc.flash,
                               rtol=1e-5, atol=1e-7)


def test_skin_under_the_red_primary_is_softer_than_under_the_blue(spectral_live):
    """Subsurface scattering: the red flash response of skin loses fine shading detail."""
    import cv2

    sc = spectral_live
    skin = sc.obj == SKIN
    red = sc.flash_primaries[:, :, 0, 0]
    blue = sc.flash_primaries[:, :, 2, 2]
    inner = cv2.erode(skin.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0

    def detail(img: np.ndarray) -> float:
        hp = img - cv2.GaussianBlur(img, (0, 0), 1.5)
        return float(np.std(hp[inner]) / np.mean(img[inner]))

    assert detail(red) < 0.8 * detail(blue)


def test_a_mask_scene_paints_the_victims_face_and_records_what_it_is_made_of():
    sc = build_scene(SceneRequest("mask", "office", PROFILE_BY_NAME["kiosk15_mipi"], 21, 8,
                                  width=320, height=240, physics="spectral"))
    assert sc.params["mask"]["material"] in MASK_MATERIALS
    assert np.count_nonzero(sc.obj == RESIN) > 500
    face = sc.obj == RESIN
    assert np.all(np.isfinite(sc.flash_primaries[face])) and sc.flash[face].mean() > 0


def test_the_painted_skin_colour_is_near_the_victims_skin_colour():
    dev = device_spectra(PROFILE_BY_NAME["kiosk15_mipi"])
    rng = np.random.default_rng(5)
    from flashfas_edge.sim.head import HeadIdentity
    from flashfas_edge.sim.spectral_render import reference_view

    victim = HeadIdentity.draw(rng)
    look, _, _ = draw_mask(rng, victim, dev)
    skin_rgb = skin_material(victim.skin_rgb, dev).reflectance @ reference_view(dev)
    np.testing.assert_allclose(look.paint_rgb, skin_rgb, rtol=0.25)


def test_synth_renders_spectral_sessions_and_refuses_an_unknown_mask_material(tmp_path):
    cmd = [sys.executable, "-m", "flashfas_edge.cli", "synth", "--n", "3", "--split", "train",
           "--width", "128", "--height", "96", "--no-progress", "--physics", "spectral"]
    done = subprocess.run(cmd + ["--out", str(tmp_path / "ok"), "--mask-materials", "resin"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    info = json.loads((tmp_path / "ok" / "dataset.json").read_text())
    assert "spectral" in json.dumps(info)
    bad = subprocess.run(cmd + ["--out", str(tmp_path / "bad"), "--mask-materials", "wood"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "wood" in bad.stderr


def test_the_paint_is_skin_ablation_leaves_only_gloss_diffusion_and_shape_to_tell_them_apart():
    from flashfas_edge.sim.cli import ABLATIONS as CLI_ABLATIONS
    from flashfas_edge.sim.head import HeadIdentity
    from flashfas_edge.sim.mask_attack import ABLATIONS

    assert CLI_ABLATIONS == ABLATIONS
    dev = device_spectra(PROFILE_BY_NAME["kiosk15_mipi"])
    victim = HeadIdentity.draw(np.random.default_rng(9))
    look, mat, params = draw_mask(np.random.default_rng(4), victim, dev)
    look_a, mat_a, params_a = draw_mask(np.random.default_rng(4), victim, dev,
                                        ablations=("paint_is_skin",))
    np.testing.assert_allclose(mat_a.reflectance, skin_material(victim.skin_rgb, dev).reflectance)
    assert not np.allclose(mat.reflectance, mat_a.reflectance)
    assert params == params_a or params["material"] == params_a["material"]  # same draw otherwise
    assert look.spec == look_a.spec and look.partial == look_a.partial
    with pytest.raises(ValueError, match="unknown ablations"):
        SceneRequest("mask", "office", PROFILE_BY_NAME["kiosk15_mipi"], 1, 1, ablations=("x",))


def test_the_simulated_kiosk_renders_with_the_configured_physics():
    import typing

    from flashfas_edge.config import CameraConfig, SimConfig
    from flashfas_edge.kiosk.sim_scene import build_sim_kiosk
    from flashfas_edge.sim.spectral_render import PHYSICS_MODES

    assert tuple(typing.get_args(SimConfig.model_fields["physics"].annotation)) == PHYSICS_MODES
    assert SimConfig().physics == "rgb"
    sim = SimConfig.model_validate({"physics": "spectral"})
    _, _, controls = build_sim_kiosk(sim, CameraConfig(width=160, height=120))
    assert controls.kiosk.scene.flash_primaries is not None
    assert controls.kiosk.scene.params["physics"] == "spectral"


def test_spectral_sessions_name_their_attack_species_for_per_species_error_rates():
    seen = set()
    for seed in range(6):
        for attack in ("live", "mask", "print", "replay"):
            sc = build_scene(SceneRequest(attack, "office", PROFILE_BY_NAME["kiosk15_mipi"], 3,
                                          seed, width=96, height=72, physics="spectral"))
            species = sc.params["species"]
            assert species.split("-")[0] == attack
            if attack == "mask":
                assert sc.params["mask"]["material"] in species
            seen.add(species)
    assert len(seen) >= 6


def test_the_gloss_is_skin_ablation_gives_the_mask_the_victims_gloss_and_nothing_else():
    from flashfas_edge.sim.head import HeadIdentity

    dev = device_spectra(PROFILE_BY_NAME["kiosk15_mipi"])
    victim = HeadIdentity.draw(np.random.default_rng(9))
    for seed in range(6):
        look, mat, params = draw_mask(np.random.default_rng(seed), victim, dev)
        look_a, mat_a, params_a = draw_mask(np.random.default_rng(seed), victim, dev,
                                            ablations=("gloss_is_skin",))
        assert (look_a.spec, look_a.shininess) == (victim.skin_spec, victim.skin_shininess)
        # the same draw otherwise: paint, material, eyes, coverage
        np.testing.assert_array_equal(mat.reflectance, mat_a.reflectance)
        assert params["material"] == params_a["material"]
        assert (look.partial, look.eyes_real) == (look_a.partial, look_a.eyes_real)
