"""3D masks as attackers make them, for the spectral renderer.

A mask is shaped after the victim's face and painted to look like the victim's skin: the painter
mixes pigments by eye under their own workshop light until the colour matches (a metamer: the
same colour under that light, another spectrum). Everything an attacker controls is drawn at
random over the range attackers use, so that what is left to tell a mask from skin is physics a
camera can see under the flash, not a look of our renderer:
- material: glossy resin, translucent silicone (light diffuses under it, as under skin), matte
  painted plaster;
- gloss from matte silicone to glossy resin, overlapping skin's own range;
- colour error of the match, how much of the face's colouring is painted on;
- worn by a person: the wearer's real eyes in the openings (or dark holes), full face or partial
  (forehead to nose, the wearer's mouth and chin below).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flashfas_edge.sim import spectra
from flashfas_edge.sim.head import HeadIdentity, MaskLook
from flashfas_edge.sim.spectral_render import Material, reference_view, skin_material

MASK_MATERIALS = ("resin", "silicone", "plaster")
_MATERIAL_P = (0.35, 0.45, 0.2)
# (specular weight, Blinn-Phong exponent) ranges; skin is 0.03–0.08 × (1.8 on the T-zone), 12–35
_GLOSS = {"resin": ((0.08, 0.35), (30.0, 90.0)), "silicone": ((0.02, 0.12), (8.0, 40.0)),
          "plaster": ((0.01, 0.05), (4.0, 15.0))}


def painter_view(rng: np.random.Generator) -> np.ndarray:
    """How the painter sees colours: a standard colour observer (our reference sensor, balanced
    to the light as an eye adapts) under a workshop daylight, halogen or white LED light."""
    observer = spectra.spectral_device("lcd")
    cct = float(rng.uniform(2800, 6500))
    light = spectra.white_led_lamp(cct) if rng.uniform() < 0.5 else spectra.blackbody(cct)
    return spectra.illuminant_response(observer, light, balanced=True)


ABLATIONS = ("paint_is_skin", "skin_without_diffusion", "gloss_is_skin")


def draw_mask(rng: np.random.Generator, victim: HeadIdentity, device: spectra.SpectralDevice,
              materials: tuple[str, ...] = MASK_MATERIALS, ablations: tuple[str, ...] = ()
              ) -> tuple[MaskLook, Material, dict[str, Any]]:
    """(the mask's look for the head tracer, its paint's spectral material, parameters).

    ``ablations`` (measurements only, never training data): ``paint_is_skin`` gives the paint the
    victim's own skin spectrum, so that only gloss, diffusion and shape still differ;
    ``gloss_is_skin`` gives the mask's surface the victim's own skin gloss (specular weight and
    exponent), so that only colour, diffusion and shape still differ. Every draw is made as
    without the ablation, so an ablated set matches its plain set session by session."""
    p = np.array([_MATERIAL_P[MASK_MATERIALS.index(m)] for m in materials])
    kind = str(materials[int(rng.choice(len(materials), p=p / p.sum()))])
    skin = skin_material(victim.skin_rgb, device).reflectance
    view = painter_view(rng)
    target = (skin @ view) * np.exp(rng.normal(0.0, 0.04, 3))  # the painter's match is by eye
    paint = spectra.paint_reflectance(spectra.mix_paint_to_match(target, view, rng))
    if "paint_is_skin" in ablations:
        paint = skin.copy()
    diffusion = np.zeros(spectra.N_BANDS)
    if kind == "silicone":
        diffusion = spectra.pigment_diffusion_mm(paint, float(rng.uniform(6.0, 30.0)))
    (s_lo, s_hi), (n_lo, n_hi) = _GLOSS[kind]
    look = MaskLook(
        paint_rgb=np.clip(paint @ reference_view(device), 0.02, 0.95).astype(np.float32),
        spec=float(np.exp(rng.uniform(np.log(s_lo), np.log(s_hi)))),
        shininess=float(rng.uniform(n_lo, n_hi)),
        paint_detail=float(rng.uniform(0.0, 0.6)),
        hole_rgb=(rng.uniform(0.03, 0.12) * rng.uniform(0.85, 1.15, 3)).astype(np.float32),
        eyes_real=bool(rng.uniform() < 0.7),
        partial=bool(rng.uniform() < 0.3),
    )
    if "gloss_is_skin" in ablations:
        look.spec, look.shininess = float(victim.skin_spec), float(victim.skin_shininess)
    params = {"material": kind, "spec": look.spec, "shininess": look.shininess,
              "paint_detail": look.paint_detail, "eyes_real": look.eyes_real,
              "partial": look.partial,
              "max_diffusion_mm": float(diffusion.max())}
    return look, Material(paint, diffusion), params

