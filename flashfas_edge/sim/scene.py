"""One rendered scene: what a kiosk camera sees of a subject, as linear basis images.

Image formation is linear in the light, so a scene is rendered once into
- ``ambient``: radiance under the room light (mean level),
- ``flash``: radiance per unit of full-white display light (area light, docs/ARCHITECTURE.md §8),
- ``emission``: a replay screen's own light,
and any frame is ``a(t)·ambient + e(t)·emission + Σ_c w_c(t)·flash_c`` per row (see
``frame_composer.py``). Ground truth (landmarks, depth in the aligned frame) comes with it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from flashfas_edge.face.template import canonical_template
from flashfas_edge.sim.ambient import Ambient
from flashfas_edge.sim.device import DeviceProfile
from flashfas_edge.sim.face_shape import FACE_SHAPES
from flashfas_edge.sim.gbuffer import EYE, HAIR, SKIN, GBuffer
from flashfas_edge.sim.head import HeadIdentity, HeadTracer, MaskLook, landmarks_local, place_head
from flashfas_edge.sim.kiosk_light import flash_basis
from flashfas_edge.sim.mask_attack import ABLATIONS, MASK_MATERIALS, draw_mask
from flashfas_edge.sim.photo import render_photo
from flashfas_edge.sim.print_attack import PrintAttack
from flashfas_edge.sim.raycast import Pinhole
from flashfas_edge.sim.replay_attack import ReplayAttack
from flashfas_edge.sim.room import Room
from flashfas_edge.sim.similarity import similarity_lstsq
from flashfas_edge.sim.spectral_render import (
    PHYSICS_MODES,
    MaterialMap,
    ambient_image,
    device_spectra,
    flash_primaries,
    head_materials,
    print_materials,
    reference_view,
    reflectance_image,
    skin_material,
)

DEPTH_SIZE = 64
ATTACK_TYPES = ("live", "print", "replay", "mask")


@dataclass
class SceneRequest:
    """What to put in front of the camera."""

    attack_type: str
    scenario: str
    profile: DeviceProfile
    identity_seed: int  # the face shown (the victim for attacks)
    scene_seed: int  # everything else
    width: int = 640
    height: int = 480
    distance_range_m: tuple[float, float] = (0.25, 0.7)
    faces: int = 1  # 2: a second live person behind (quality-gate tests)
    face_present: bool = True
    physics: str = "rgb"  # rgb: RGB albedo × flash colour; spectral: spectral_render.py
    mask_materials: tuple[str, ...] = MASK_MATERIALS  # spectral physics: what masks are made of
    face_shape: str = "procedural"  # FACE_SHAPES: every person's face relief (sim/head.py)
    # spectral physics, measurements only: remove one physical difference (mask_attack.ABLATIONS)
    ablations: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.attack_type not in ATTACK_TYPES:
            raise ValueError(f"attack_type must be one of {ATTACK_TYPES}, got {self.attack_type!r}")
        if self.physics not in PHYSICS_MODES:
            raise ValueError(f"physics must be one of {PHYSICS_MODES}, got {self.physics!r}")
        if self.face_shape not in FACE_SHAPES:
            raise ValueError(f"face_shape must be one of {FACE_SHAPES}, got {self.face_shape!r}")
        unknown = set(self.ablations) - set(ABLATIONS)
        if unknown:
            raise ValueError(f"unknown ablations {sorted(unknown)}; known: {ABLATIONS}")


@dataclass
class Scene:
    request: SceneRequest
    camera: Pinhole
    ambient_light: Ambient
    ambient: np.ndarray  # float32 [H, W, 3]
    flash: np.ndarray  # float32 [H, W, 3] per unit white display light
    emission: np.ndarray  # float32 [H, W, 3]
    landmarks: np.ndarray  # float32 [5, 2] (image-left first); NaN when no face
    depth: np.ndarray  # float32 [64, 64] aligned-frame depth label
    face_radiance: float  # metered face radiance under ambient + the full-white display
    replay: ReplayAttack | None
    albedo: np.ndarray  # float32 [H, W, 3] diffuse reflectance (ground truth, for tests)
    obj: np.ndarray  # uint8 [H, W] object ids (gbuffer.py)
    flash_mirror: np.ndarray  # float32 [H, W] part of ``flash`` that is the display's mirror image
    params: dict[str, Any] = field(default_factory=dict)
    other_faces: list[np.ndarray] = field(default_factory=list)  # [5, 2] each, people behind
    # spectral physics: float32 [H, W, 3 primaries, 3 channels]; ``flash`` is then their sum
    flash_primaries: np.ndarray | None = None

    def state_light(self, rgb: np.ndarray, intensity: np.ndarray) -> np.ndarray:
        return state_light(self.request.physics, self.request.profile, rgb, intensity)

    def flash_image(self, rows: np.ndarray) -> np.ndarray:
        """float32 [H, W, 3]: the flash response with ``rows`` [H, 3] of state light per row."""
        if self.flash_primaries is None:
            return self.flash * rows[:, None, :]
        h, w = self.flash.shape[:2]
        # one small matrix product per row: [W·3 channels, 3 primaries] @ [3] (10× faster than
        # three full-frame multiply-adds; the simulated camera renders a frame every 33 ms)
        out = np.matmul(self._primaries_by_row, rows.astype(np.float32)[:, :, None])
        return out.reshape(h, w, 3)

    @functools.cached_property
    def _primaries_by_row(self) -> np.ndarray:
        fp = self.flash_primaries
        assert fp is not None
        h, w = fp.shape[:2]
        return np.ascontiguousarray(fp.transpose(0, 1, 3, 2)).reshape(h, w * 3, 3)


def state_light(physics: str, profile: DeviceProfile, rgb: np.ndarray, intensity: np.ndarray
                ) -> np.ndarray:
    """[K, 3] what a scene's flash image is multiplied by for states of drive ``rgb`` [K, 3] at
    ``intensity`` [K]: the camera-channel light through the display/camera crosstalk (RGB
    physics), or the drive of each primary (spectral physics: the crosstalk is in the spectra)."""
    rgb = np.asarray(rgb, np.float32)
    if physics == "rgb":
        rgb = rgb @ profile.crosstalk_matrix().T
    return (rgb * np.asarray(intensity, np.float32)[:, None]).astype(np.float32)


def _live_pose(rng: np.random.Generator, cam: Pinhole, dist_range: tuple[float, float]):
    z = rng.uniform(*dist_range)
    u = rng.uniform(0.38, 0.62) * cam.width
    v = rng.uniform(0.32, 0.55) * cam.height
    centre = np.array([(u - cam.cx) / cam.focal_px * z, (v - cam.cy) / cam.focal_px * z, z])
    return centre, rng.uniform(-20, 20), rng.uniform(-15, 12), rng.uniform(-10, 10)


def build_scene(req: SceneRequest) -> Scene:
    rng = np.random.default_rng(np.random.SeedSequence([req.scene_seed, 11]))
    id_rng = np.random.default_rng(np.random.SeedSequence([req.identity_seed, 13]))
    shape = req.face_shape

    def draw_person(person_rng: np.random.Generator) -> HeadIdentity:
        return HeadIdentity.draw(person_rng, shape=shape)

    ident = draw_person(id_rng)
    cam = Pinhole.from_hfov(req.width, req.height, req.profile.hfov_deg)
    rays = cam.rays()
    n = rays.shape[0]
    amb = Ambient.draw(rng, req.scenario)
    room = Room.draw(rng, window=amb.window_radiance > 0)
    centre, yaw, pitch, roll = _live_pose(rng, cam, req.distance_range_m)
    params: dict[str, Any] = {
        "attack_type": req.attack_type, "scenario": req.scenario, "device": req.profile.name,
        "identity_seed": int(req.identity_seed), "distance_m": float(centre[2]),
        "yaw_deg": float(yaw), "pitch_deg": float(pitch), "roll_deg": float(roll),
        "ambient": {"dir_level": amb.dir_level, "sky_level": amb.sky_level,
                    "drift_per_s": amb.drift_per_s, "flicker": amb.flicker,
                    "window_radiance": amb.window_radiance},
    }
    if shape != "procedural":  # recorded when not the default: earlier datasets stay unchanged
        params["face_shape"] = shape
    gb = GBuffer.empty(n)
    spectral = req.physics == "spectral"
    device = device_spectra(req.profile) if spectral else None
    mats = MaterialMap(index=np.zeros(n, np.uint8))

    def person(tracer: HeadTracer, paint: int | None = None) -> Any:
        """Material assignment of a person's pixels (spectral physics only)."""
        if device is None:
            return None
        skin_mat = skin_material(tracer.ident.skin_rgb, device)
        if "skin_without_diffusion" in req.ablations:
            skin_mat.diffusion_mm[:] = 0.0
        skin = mats.add(skin_mat)
        return lambda idx: head_materials(gb, idx, skin, paint, mats)

    # candidate surfaces: (t [N], fill(idx_selected), assign spectral materials(idx) or None)
    tracers: list[tuple[np.ndarray, Any, Any]] = []
    t_room = room.hit(rays)
    tracers.append((t_room, lambda idx: room.fill(gb, idx, rays[idx], t_room[idx],
                                                  amb.window_radiance), None))
    replay = None
    other_faces: list[np.ndarray] = []
    lm = np.full((5, 2), np.nan, np.float32)
    subject: Any = None
    if req.face_present:
        if req.attack_type in ("live", "mask"):
            mask = None
            wearer = ident
            paint: int | None = None
            if req.attack_type == "mask" and device is not None:
                wearer = draw_person(rng)
                mask, paint_mat, params["mask"] = draw_mask(rng, ident, device,
                                                             req.mask_materials, req.ablations)
                paint = mats.add(paint_mat)
            elif req.attack_type == "mask":
                wearer = draw_person(rng)
                tone = ident.skin_rgb * rng.uniform(0.8, 1.25)
                mask = MaskLook(paint_rgb=np.clip(tone, 0.05, 0.9).astype(np.float32),
                                spec=float(rng.uniform(0.12, 0.4)),
                                shininess=float(rng.uniform(25, 90)),
                                paint_detail=float(rng.uniform(0.0, 0.6)),
                                hole_rgb=(rng.uniform(0.03, 0.12)
                                          * rng.uniform(0.85, 1.15, 3)).astype(np.float32))
                params["mask"] = {"spec": mask.spec, "shininess": mask.shininess,
                                  "paint_detail": mask.paint_detail}
            place = place_head(centre, yaw, pitch, roll)
            subject = HeadTracer(wearer, place, mask=mask, mask_ident=ident if mask else None)
            t_s, part = subject.hit(rays)
            tracers.append((t_s, lambda idx: subject.fill(gb, idx, rays[idx], t_s[idx], part[idx]),
                            person(subject, paint)))
            lm = cam.project(place.pose.to_camera(landmarks_local(subject.face_ident)))
        else:
            # the photo needs about the camera's own detail: 320×400 at 640 px wide
            photo_w = max(120, req.width // 2)
            photo = render_photo(rng, ident, width=photo_w, height=photo_w * 5 // 4)
            if req.attack_type == "print":
                subject = PrintAttack.draw(rng, photo, centre, yaw * 0.7, pitch * 0.7, roll)
                params["print"] = {"glossy": subject.glossy, "crop": subject.crop,
                                   "holes": subject.holes,
                                   "bend_per_m": subject.sheet.bend_per_m}
            else:
                subject = ReplayAttack.draw(rng, photo, centre, yaw * 0.7, pitch * 0.7, roll)
                replay = subject
                subject.camera_m_per_px = float(centre[2] / cam.focal_px)
                params["replay"] = {"peak_radiance": subject.peak_radiance,
                                    "gamma": subject.gamma, "pwm_hz": subject.pwm_hz,
                                    "pixel_pitch_m": subject.pixel_pitch_m,
                                    "screen_w_m": subject.screen_w_m}
            t_s, p_s = subject.hit(rays)
            medium: Any = None
            if device is not None and isinstance(subject, PrintAttack):
                inks = mats.add(subject.paper_material())
                medium = lambda idx: print_materials(gb, idx, inks, mats)  # noqa: E731
            tracers.append((t_s, lambda idx: subject.fill(gb, idx, t_s[idx], p_s[idx]), medium))
            lm = subject.landmarks_px(cam)
            # an attacker holding the medium, partly visible behind it
            if rng.uniform() < 0.5:
                holder = HeadTracer(draw_person(rng), place_head(
                    centre + np.array([rng.uniform(-0.05, 0.05), 0.0, rng.uniform(0.08, 0.2)]),
                    rng.uniform(-15, 15), rng.uniform(-10, 10), 0.0))
                t_h, part_h = holder.hit(rays)
                tracers.append((t_h, lambda idx: holder.fill(gb, idx, rays[idx], t_h[idx],
                                                             part_h[idx]), person(holder)))
        if req.faces >= 2:
            other = HeadTracer(draw_person(rng), place_head(
                centre + np.array([rng.choice([-1, 1]) * rng.uniform(0.15, 0.21), 0.0, 0.12]),
                rng.uniform(-20, 20), 0.0, 0.0))
            other_faces.append(cam.project(other.place.pose.to_camera(
                landmarks_local(other.ident))).astype(np.float32))
            t_o, part_o = other.hit(rays)
            tracers.append((t_o, lambda idx: other.fill(gb, idx, rays[idx], t_o[idx], part_o[idx]),
                            person(other)))
    ts = np.stack([t for t, _, _ in tracers])
    nearest = np.argmin(ts, axis=0)
    for k, (_, fill, assign) in enumerate(tracers):
        idx = np.nonzero(nearest == k)[0]
        if len(idx):
            fill(idx)
            if assign is not None:
                assign(idx)

    h, w = req.height, req.width
    primaries = None
    if device is not None:
        refl = reflectance_image(gb, mats, reference_view(device))
        ambient_img = ambient_image(gb, refl, amb, device, rays, h, w)
        primaries, mirror_img = flash_primaries(gb, mats, refl, rays, req.profile.display(),
                                                device, h, w, cam.focal_px)
        flash_img = primaries.sum(axis=2)
        params["physics"] = "spectral"
        params["species"] = _species(params)
    else:
        ambient_img = amb.image(gb, rays, h, w)
        flash_img, mirror_img = flash_basis(gb, rays, req.profile.display(), h, w, cam.focal_px)
    emission_img = gb.emission.reshape(h, w, 3).copy()
    lm = lm.astype(np.float32)
    depth = _depth_label(gb, lm, req.attack_type, h, w)
    # the kiosk locks exposure for its brightest state (calibrate): the flash does not clip faces
    wb = np.array(req.profile.wb_gains, np.float32)
    face_rad = face_mean_radiance((ambient_img + flash_img + emission_img) * wb, lm)
    params["landmarks_visible"] = bool(np.all(np.isfinite(lm)))
    return Scene(req, cam, amb, ambient_img, flash_img, emission_img, lm, depth, face_rad, replay,
                 gb.albedo.reshape(h, w, 3), gb.obj.reshape(h, w), mirror_img, params,
                 other_faces, primaries)


def _species(params: dict[str, Any]) -> str:
    """The attack species, for error rates per species (``eval``'s per-condition table)."""
    kind = str(params["attack_type"])
    if kind == "mask":
        m = params["mask"]
        return f"mask-{m['material']}" + ("-partial" if m["partial"] else "")
    if kind == "print":
        p = params["print"]
        if p["holes"] != "none":
            return "print-holes"
        return "print-bent" if p["bend_per_m"] else "print-flat"
    return kind


def face_mean_radiance(img: np.ndarray, lm: np.ndarray) -> float:
    """Mean over the face box of each pixel's brightest channel (a face-priority meter that
    keeps the strongest channel from clipping under coloured light)."""
    peak = img.max(axis=-1)
    if not np.all(np.isfinite(lm)):
        return float(np.mean(peak))
    x0, y0 = np.floor(lm.min(axis=0)).astype(int)
    x1, y1 = np.ceil(lm.max(axis=0)).astype(int)
    h, w = img.shape[:2]
    x0, x1 = np.clip([x0, x1 + 1], 0, w)
    y0, y1 = np.clip([y0, y1 + 1], 0, h)
    if x1 <= x0 or y1 <= y0:
        return float(np.mean(peak))
    return float(np.mean(peak[y0:y1, x0:x1]))


def _depth_label(gb: GBuffer, lm: np.ndarray, attack_type: str, h: int, w: int) -> np.ndarray:
    """64×64 depth in the aligned frame (docs/ARCHITECTURE.md §2): live = normalised closeness,
    spoof = 0.5."""
    if attack_type != "live":
        return np.full((DEPTH_SIZE, DEPTH_SIZE), 0.5, np.float32)
    if not np.all(np.isfinite(lm)):
        return np.zeros((DEPTH_SIZE, DEPTH_SIZE), np.float32)
    m = similarity_lstsq(lm, canonical_template(DEPTH_SIZE))
    head: np.ndarray = np.isin(gb.obj, (SKIN, HAIR, EYE)).reshape(h, w).astype(np.float32)
    z: np.ndarray = np.where(head > 0, gb.depth_z.reshape(h, w), 0.0).astype(np.float32)
    size = (DEPTH_SIZE, DEPTH_SIZE)
    # the head is ~1/3 of the frame: pre-blur so the 64² warp does not alias
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    if scale < 0.5:
        sig = 0.5 / scale
        z = cv2.GaussianBlur(z * head, (0, 0), sig)
        head_b = cv2.GaussianBlur(head, (0, 0), sig)
        z = np.where(head_b > 1e-3, z / np.maximum(head_b, 1e-3), 0.0).astype(np.float32)
        head = head_b
    zw = cv2.warpAffine(z, m, size, flags=cv2.INTER_LINEAR, borderValue=0.0)
    hw = cv2.warpAffine(head, m, size, flags=cv2.INTER_LINEAR, borderValue=0.0)
    inside = hw > 0.5
    if not np.any(inside):
        return np.zeros(size, np.float32)
    zn, zf = float(zw[inside].min()), float(zw[inside].max())
    d = np.where(inside, (zf - zw) / max(zf - zn, 1e-6), 0.0)
    return np.clip(d, 0.0, 1.0).astype(np.float32)
