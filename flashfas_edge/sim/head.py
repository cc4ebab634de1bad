"""A live head: random shape, procedural skin, eyes, brows, lips, hair, neck and shoulders.

The head is an ellipsoid with facial relief as a displacement field along the local z axis: either
procedural (nose, brow ridge, eye sockets, cheekbones, lips, chin as Gaussians) or a scanned face
of a morphable face model (sim/face_shape.py) fitted to the ellipsoid. The relief enters the
shading normals and the ground-truth depth, which is what the flash reveals (ATR-FAS §3.2:
I_d ∝ cos θ); the painted features follow the face's landmarks (sim/face_features.py). Hair, neck
and shoulders are there so that the edge of a print is not the only edge in a spoof image
(docs/ARCHITECTURE.md §8).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flashfas_edge.sim.face_features import (
    CHIN_Y,
    EYE_X,
    EYE_Y,
    IRIS_RADIUS_M,
    MOUTH_X,
    MOUTH_Y,
    NOSE_Y,
    PUPIL_RADIUS_M,
    FeatureMasks,
    contour_features,
    procedural_features,
)
from flashfas_edge.sim.face_features import bump as _g
from flashfas_edge.sim.face_shape import FACE_SHAPES, FaceShape, ScannedFace
from flashfas_edge.sim.gbuffer import BODY, EYE, HAIR, HOLE, RESIN, SKIN, GBuffer
from flashfas_edge.sim.raycast import Pose, intersect_ellipsoid, rays_near, rotation
from flashfas_edge.sim.texture import sample, smoothstep, value_noise

_SKIN_LIGHT = np.array([0.78, 0.58, 0.47], np.float32)
_SKIN_DARK = np.array([0.22, 0.13, 0.085], np.float32)
_HAIR_COLOURS = np.array(
    [[0.03, 0.025, 0.02], [0.09, 0.06, 0.04], [0.22, 0.14, 0.08], [0.55, 0.42, 0.25],
     [0.45, 0.44, 0.42], [0.30, 0.12, 0.05]], np.float32)


@dataclass
class HeadIdentity:
    """Everything that makes one person look like themself (drawn from an identity seed)."""

    axes: tuple[float, float, float]
    relief: np.ndarray  # float32 [8] amplitudes of the relief features (metres)
    skin_rgb: np.ndarray
    hair_rgb: np.ndarray
    iris_rgb: np.ndarray
    cloth_rgb: np.ndarray
    hairline: float
    bald: bool
    long_hair: bool
    beard: float
    skin_spec: float
    skin_shininess: float
    tex_lo: np.ndarray  # [128, 128] low-frequency skin mottling
    tex_hi: np.ndarray  # [256, 256] pores
    tex_hair: np.ndarray  # [256, 256] strands
    tex_cloth: np.ndarray  # [128, 128]
    face: ScannedFace | None = None  # None: the procedural relief

    @staticmethod
    def draw(rng: np.random.Generator, shape: str = "procedural") -> HeadIdentity:
        """A random person; ``shape`` (FACE_SHAPES) picks the procedural relief or a scanned face
        (drawn after everything else, so a seed gives the same skin, hair and clothes either
        way)."""
        if shape not in FACE_SHAPES:
            raise ValueError(f"face shape must be one of {FACE_SHAPES}, got {shape!r}")
        tone = rng.uniform(0.0, 1.0)
        skin = np.exp((1 - tone) * np.log(_SKIN_LIGHT) + tone * np.log(_SKIN_DARK))
        skin = skin * rng.uniform(0.92, 1.08, 3).astype(np.float32)
        relief = np.array(
            [rng.uniform(0.016, 0.027),  # nose height
             rng.uniform(0.8, 1.3),  # nose width factor
             rng.uniform(0.003, 0.008),  # brow ridge
             rng.uniform(0.006, 0.013),  # eye socket depth
             rng.uniform(0.003, 0.008),  # cheekbones
             rng.uniform(0.004, 0.008),  # lips
             rng.uniform(0.005, 0.011),  # chin
             rng.uniform(-0.004, 0.004)],  # face flatness (negative: flatter front)
            np.float32)
        ident = HeadIdentity(
            axes=(rng.uniform(0.072, 0.085), rng.uniform(0.102, 0.120), rng.uniform(0.092, 0.105)),
            relief=relief,
            skin_rgb=skin.astype(np.float32),
            hair_rgb=_HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))] * rng.uniform(0.8, 1.2),
            iris_rgb=np.array([0.05, 0.035, 0.02], np.float32) * rng.uniform(0.6, 3.0)
            + rng.uniform(0, 0.05, 3).astype(np.float32),
            cloth_rgb=rng.uniform(0.03, 0.7, 3).astype(np.float32),
            hairline=float(rng.uniform(-0.78, -0.55)),
            bald=bool(rng.uniform() < 0.08),
            long_hair=bool(rng.uniform() < 0.4),
            beard=float(rng.uniform(0.0, 0.5) if rng.uniform() < 0.3 else 0.0),
            skin_spec=float(rng.uniform(0.03, 0.08)),
            skin_shininess=float(rng.uniform(12, 35)),
            tex_lo=value_noise(rng, 128, 6),
            tex_hi=value_noise(rng, 256, 90),
            tex_hair=value_noise(rng, 256, 40),
            tex_cloth=value_noise(rng, 128, 12),
        )
        if shape == "scanned":
            # the ellipsoid fitted to the face, its eyes and chin where the procedural head's are
            ident.face = FaceShape.draw(rng).on_head(EYE_Y, CHIN_Y)
            ident.axes = ident.face.axes
        return ident


def relief(ident: HeadIdentity, x_n: np.ndarray, y_n: np.ndarray) -> np.ndarray:
    """Procedural displacement (metres, towards the camera) at normalised face coordinates."""
    r = ident.relief
    ax = np.abs(x_n)
    prof = smoothstep(-0.45, -0.25, y_n) * (0.35 + 0.65 * np.clip((y_n + 0.3) / 0.42, 0, 1))
    prof = prof * np.exp(-((np.maximum(y_n - NOSE_Y, 0) / 0.06) ** 2))
    width = (0.09 + 0.07 * np.clip((y_n + 0.3) / 0.42, 0, 1)) * r[1]
    h = r[0] * prof * np.exp(-((x_n / width) ** 2))
    h += 0.3 * r[0] * _g(ax, y_n, 0.13 * r[1], NOSE_Y + 0.02, 0.07, 0.05)  # alae
    h += r[2] * _g(ax, y_n, 0.3, EYE_Y - 0.15, 0.35, 0.06)
    h -= r[3] * _g(ax, y_n, EYE_X, EYE_Y, 0.17, 0.09)
    h += 0.35 * r[3] * _g(ax, y_n, EYE_X, EYE_Y, 0.09, 0.045)  # eyeball under the lid
    h += r[4] * _g(ax, y_n, 0.52, 0.08, 0.2, 0.14)
    h += r[5] * _g(x_n, y_n, 0.0, MOUTH_Y, 0.24, 0.07)
    h -= 0.25 * r[5] * _g(x_n, y_n, 0.0, MOUTH_Y, 0.2, 0.012)  # lip seam
    h -= 0.003 * _g(ax, y_n, 0.42, 0.35, 0.1, 0.2)  # naso-labial hollow
    h += r[6] * _g(x_n, y_n, 0.0, 0.8, 0.22, 0.1)
    h += r[7] * _g(x_n, y_n, 0.0, 0.1, 0.5, 0.6)
    front = smoothstep(-0.2, 0.3, 1.0 - np.sqrt(x_n**2 + (y_n * 0.92) ** 2))
    return (h * front).astype(np.float32)


def relief_and_slope(ident: HeadIdentity, x_n: np.ndarray, y_n: np.ndarray,
                     axes: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray,
                                                                np.ndarray]:
    """(displacement, its slope dh/dx and dh/dy in metres per metre on a head of ``axes``)."""
    a, b, _ = axes
    if ident.face is not None:
        h, h_xn, h_yn = ident.face.relief(x_n, y_n)
        return h, h_xn / a, h_yn / b
    h = relief(ident, x_n, y_n)
    eps = 0.01
    hx = (relief(ident, x_n + eps, y_n) - h) / (eps * a)
    hy = (relief(ident, x_n, y_n + eps) - h) / (eps * b)
    return h, hx, hy


def feature_masks(ident: HeadIdentity, x_n: np.ndarray, y_n: np.ndarray,
                  axes: tuple[float, float, float]) -> FeatureMasks:
    """Where ``ident``'s eyes, brows, lips... are painted on a head of ``axes``."""
    if ident.face is not None:
        return contour_features(x_n, y_n, axes, ident.face.landmarks_n)
    return procedural_features(x_n, y_n, axes)


def landmarks_local(ident: HeadIdentity) -> np.ndarray:
    """float64 [5, 3] landmark points on the head ellipsoid (LANDMARK_NAMES order)."""
    if ident.face is not None:
        return ident.face.landmarks_local()
    a, b, c = ident.axes
    pts = []
    for xn, yn in ((-EYE_X, EYE_Y), (EYE_X, EYE_Y), (0.0, NOSE_Y), (-MOUTH_X, MOUTH_Y),
                   (MOUTH_X, MOUTH_Y)):
        zn = np.sqrt(max(1.0 - xn**2 - yn**2, 0.0))
        pts.append([xn * a, yn * b, zn * c])
    return np.array(pts)


@dataclass
class HeadPlacement:
    pose: Pose
    body_pose: Pose


def place_head(centre: np.ndarray, yaw: float, pitch: float, roll: float) -> HeadPlacement:
    body_rot = rotation(0.3 * yaw, 0.0, 0.0)
    body_centre = np.asarray(centre) + body_rot @ np.array([0.0, 0.27, 0.06])
    return HeadPlacement(Pose.facing(yaw, pitch, roll, centre),
                         Pose.facing(0.3 * yaw, 0.0, 0.0, body_centre))


@dataclass
class MaskLook:
    """A 3D mask's painted resin surface (docs/ARCHITECTURE.md §8: uniform material, more specular,
    eye holes)."""

    paint_rgb: np.ndarray
    spec: float
    shininess: float
    paint_detail: float  # 0..1: how much of the face texture the painter reproduced
    hole_rgb: np.ndarray
    eyes_real: bool = False  # the wearer's own eyes show in the eye openings
    partial: bool = False  # forehead to nose only: the wearer's mouth and chin below


class HeadTracer:
    """Ray hits and surface records for one person (optionally wearing a mask)."""

    def __init__(self, ident: HeadIdentity, place: HeadPlacement, mask: MaskLook | None = None,
                 mask_ident: HeadIdentity | None = None):
        self.ident = ident
        self.place = place
        self.mask = mask
        self.face_ident = mask_ident if mask_ident is not None else ident
        a, b, c = ident.axes
        self.cap_axes = (a * 1.08, b * 1.05, c * 1.08)
        self.neck_axes = (0.052, 0.10, 0.055)
        self.neck_centre = np.array([0.0, 0.12, -0.03], np.float32)
        self.body_axes = (0.21, 0.12, 0.11)

    # --- hits ---------------------------------------------------------------------------
    def hit(self, rays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(t [N], part [N] uint8: 0 head, 1 hair cap, 2 neck, 3 body)."""
        n = rays.shape[0]
        t_all = np.full((4, n), np.inf, np.float32)
        a, b, c = self.ident.axes
        pose = self.place.pose
        near = rays_near(rays, pose.centre, 1.02 * max(self.cap_axes) + 0.012)
        if len(near):
            o, d = pose.to_local(rays[near])
            t_all[0, near] = intersect_ellipsoid(o, d, (a, b, c))[0]
            oc = o + np.array([0, 0.008, 0.01], np.float32)
            cn, cf = intersect_ellipsoid(oc, d, self.cap_axes)
            t_all[1, near] = np.where(self._cap_region(oc, d, cn), cn,
                                      np.where(self._cap_region(oc, d, cf), cf, np.inf))
        near_n = rays_near(rays, pose.to_camera(self.neck_centre[None, :].astype(np.float64))[0],
                           max(self.neck_axes))
        if len(near_n):
            o, d = pose.to_local(rays[near_n])
            t_all[2, near_n] = intersect_ellipsoid(o - self.neck_centre, d, self.neck_axes)[0]
        body = self.place.body_pose
        near_b = rays_near(rays, body.centre, max(self.body_axes))
        if len(near_b):
            ob, db = body.to_local(rays[near_b])
            t_all[3, near_b] = intersect_ellipsoid(ob, db, self.body_axes)[0]
        part = np.argmin(t_all, axis=0).astype(np.uint8)
        return t_all.min(axis=0), part

    def _cap_region(self, o: np.ndarray, d: np.ndarray, t: np.ndarray) -> np.ndarray:
        if self.ident.bald:
            return np.zeros(t.shape, bool)
        tt = np.where(np.isfinite(t), t, 0.0)[:, None]
        p = o + d * tt
        x_n = p[:, 0] / self.cap_axes[0]
        y_n = p[:, 1] / self.cap_axes[1]
        z_n = p[:, 2] / self.cap_axes[2]
        region = (y_n < self.ident.hairline - 0.05 + 0.3 * x_n**2) | ((z_n < -0.1) & (y_n < 0.45))
        if self.ident.long_hair:
            region |= (np.abs(x_n) > 0.72) & (y_n < 1.0) & (z_n < 0.45)
        return region & np.isfinite(t)

    # --- surface records ---------------------------------------------------------------
    def fill(self, gb: GBuffer, idx: np.ndarray, rays: np.ndarray, t: np.ndarray,
             part: np.ndarray) -> None:
        for p, fn in ((0, self._fill_head), (1, self._fill_cap), (2, self._fill_neck),
                      (3, self._fill_body)):
            sel = part == p
            if np.any(sel):
                fn(gb, idx[sel], rays[sel], t[sel])

    def _ellipsoid_surface(self, pose: Pose, rays: np.ndarray, t: np.ndarray,
                           axes: tuple[float, float, float], offset: np.ndarray | None = None):
        o, d = pose.to_local(rays)
        p = o + d * t[:, None]
        q = p if offset is None else p - offset
        n = q / np.array([ax * ax for ax in axes], np.float32)
        n /= np.linalg.norm(n, axis=1, keepdims=True)
        return p, n

    def _write_common(self, gb: GBuffer, idx: np.ndarray, pose: Pose, p_local: np.ndarray,
                      n_local: np.ndarray, depth_offset: np.ndarray | None = None) -> None:
        pc = pose.to_camera(p_local)
        gb.position[idx] = pc
        gb.normal[idx] = n_local @ pose.rot.T.astype(np.float32)
        z = pc[:, 2]
        if depth_offset is not None:
            z = z + depth_offset * pose.rot[2, 2].astype(np.float32)
        gb.depth_z[idx] = z

    def _fill_head(self, gb: GBuffer, idx: np.ndarray, rays: np.ndarray, t: np.ndarray) -> None:
        a, b, c = self.ident.axes
        p, n = self._ellipsoid_surface(self.place.pose, rays, t, (a, b, c))
        x_n, y_n, z_n = p[:, 0] / a, p[:, 1] / b, p[:, 2] / c
        h, hx, hy = relief_and_slope(self.face_ident, x_n, y_n, (a, b, c))
        # bump mapping of a height field over the ellipsoid (front hemisphere only)
        w = np.clip(n[:, 2], 0.0, 1.0)
        n2 = np.stack([n[:, 0] - hx * w, n[:, 1] - hy * w, n[:, 2]], axis=1)
        n2 /= np.linalg.norm(n2, axis=1, keepdims=True)
        self._write_common(gb, idx, self.place.pose, p, n2, depth_offset=h * (z_n > 0))
        self._skin_material(gb, idx, x_n, y_n, z_n)

    def _skin_material(self, gb: GBuffer, idx: np.ndarray, x_n: np.ndarray, y_n: np.ndarray,
                       z_n: np.ndarray) -> None:
        ident = self.ident
        feat = feature_masks(self.face_ident, x_n, y_n, ident.axes)
        u, v = (x_n + 1) * 0.5, (y_n + 1) * 0.5
        lo = sample(ident.tex_lo, u, v)[:, None]
        hi = sample(ident.tex_hi, u * 1.7, v * 1.7)[:, None]
        alb = ident.skin_rgb[None, :] * (1.0 + 0.10 * lo + 0.05 * hi)
        ax = np.abs(x_n)
        blush = feat.blush[:, None]
        alb = alb * (1 - 0.25 * blush * np.array([0.0, 1.0, 0.9], np.float32))
        lips = feat.lips[:, None]
        alb = alb * (1 - lips * np.array([0.25, 0.55, 0.5], np.float32))
        if ident.beard > 0:
            beard = feat.beard[:, None]
            beard = beard * (1 - lips) * ident.beard
            alb = alb * (1 - beard) + beard * ident.hair_rgb[None, :]
        brow = feat.brow[:, None]
        strands = sample(ident.tex_hair, u * 3, v * 0.5)[:, None]
        brow = brow * (0.6 + 0.4 * np.clip(strands + 0.5, 0, 1))
        alb = alb * (1 - brow) + brow * ident.hair_rgb[None, :]
        spec = np.full(x_n.shape, ident.skin_spec, np.float32)
        spec *= 1 + 0.8 * feat.tzone  # T-zone shine
        spec += 0.05 * lips[:, 0]
        shin = np.full(x_n.shape, ident.skin_shininess, np.float32)
        obj = np.full(x_n.shape, SKIN, np.uint8)
        sss = np.ones(x_n.shape, np.float32)
        # eyes: sclera, iris, pupil (wet: sharp highlight)
        open_, r_m = feat.eye_open, feat.iris_r_m
        eye_alb = np.where((r_m < IRIS_RADIUS_M)[:, None], ident.iris_rgb[None, :],
                           np.array([0.62, 0.58, 0.55], np.float32)[None, :])
        pupil = np.array([0.01, 0.01, 0.01], np.float32)[None, :]
        eye_alb = np.where((r_m < PUPIL_RADIUS_M)[:, None], pupil, eye_alb)
        alb = np.where(open_[:, None], eye_alb, alb)
        spec = np.where(open_, 0.4, spec)
        shin = np.where(open_, 300.0, shin)
        obj = np.where(open_, EYE, obj)
        sss = np.where(open_, 0.0, sss)
        if feat.mouth_gap is not None:  # the dark inside of a mouth a little open
            gap = feat.mouth_gap
            alb = np.where(gap[:, None], np.array([0.09, 0.03, 0.03], np.float32)[None, :], alb)
            spec = np.where(gap, 0.02, spec)
            sss = np.where(gap, 0.0, sss)
        # scalp hair on the head surface itself (behind the hairline, at the back)
        if not ident.bald:
            scalp = (y_n < ident.hairline + 0.3 * x_n**2) | ((z_n < -0.15) & (y_n < 0.35))
            scalp |= (ax > 0.8) & (y_n < 0.05) & (z_n < 0.5)
            hair = self._hair_albedo(u, v)
            alb = np.where(scalp[:, None], hair, alb)
            spec = np.where(scalp, 0.06, spec)
            shin = np.where(scalp, 8.0, shin)
            obj = np.where(scalp, HAIR, obj)
            sss = np.where(scalp, 0.0, sss)
        if self.mask is not None:
            self._apply_mask(gb, idx, x_n, y_n, z_n, alb, spec, shin, obj, sss, open_)
            return
        gb.albedo[idx] = np.clip(alb, 0.0, 1.0)
        gb.spec[idx], gb.shininess[idx], gb.obj[idx], gb.subsurface[idx] = spec, shin, obj, sss

    def _apply_mask(self, gb, idx, x_n, y_n, z_n, alb, spec, shin, obj, sss, eyes_open) -> None:
        m = self.mask
        assert m is not None
        oval = (x_n**2 + ((y_n - 0.05) / 0.95) ** 2 < 0.8) & (z_n > 0.15)
        if m.partial:
            oval &= y_n < NOSE_Y + 0.14
        u, v = (x_n + 1) * 0.5, (y_n + 1) * 0.5
        lo = sample(self.ident.tex_lo, u * 0.7, v * 0.7)[:, None]
        painted = m.paint_rgb[None, :] * (1 + 0.02 * lo)
        # the painter reproduces some of the face's colouring (lips, brows), flattened
        painted = painted * (1 - m.paint_detail) + m.paint_detail * np.clip(
            alb * (m.paint_rgb / np.maximum(self.ident.skin_rgb, 1e-3))[None, :], 0, 1)
        hole = oval & eyes_open
        surface = oval & ~hole if m.eyes_real else oval  # real eyes keep their own look
        alb = np.where(surface[:, None], painted, alb)
        spec = np.where(surface, m.spec, spec)
        shin = np.where(surface, m.shininess, shin)
        obj = np.where(surface, RESIN, obj)
        sss = np.where(surface, 0.0, sss)
        if not m.eyes_real:
            alb = np.where(hole[:, None], m.hole_rgb[None, :], alb)
            spec = np.where(hole, 0.05, spec)
            obj = np.where(hole, HOLE, obj)
        gb.albedo[idx] = np.clip(alb, 0.0, 1.0)
        gb.spec[idx], gb.shininess[idx], gb.obj[idx], gb.subsurface[idx] = spec, shin, obj, sss

    def _hair_albedo(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        strands = sample(self.ident.tex_hair, u * 4.0, v * 0.6)[:, None]
        return np.clip(self.ident.hair_rgb[None, :] * (1.0 + 0.5 * strands), 0.0, 1.0)

    def _fill_cap(self, gb: GBuffer, idx: np.ndarray, rays: np.ndarray, t: np.ndarray) -> None:
        off = np.array([0, -0.008, -0.01], np.float32)
        p, n = self._ellipsoid_surface(self.place.pose, rays, t, self.cap_axes, offset=off)
        self._write_common(gb, idx, self.place.pose, p, n)
        q = p - off
        u = (q[:, 0] / self.cap_axes[0] + 1) * 0.5
        v = (q[:, 1] / self.cap_axes[1] + 1) * 0.5
        gb.albedo[idx] = self._hair_albedo(u, v)
        gb.spec[idx], gb.shininess[idx], gb.obj[idx] = 0.06, 8.0, HAIR

    def _fill_neck(self, gb: GBuffer, idx: np.ndarray, rays: np.ndarray, t: np.ndarray) -> None:
        p, n = self._ellipsoid_surface(self.place.pose, rays, t, self.neck_axes,
                                       offset=self.neck_centre)
        self._write_common(gb, idx, self.place.pose, p, n)
        u = p[:, 0] * 4 + 0.5
        v = p[:, 1] * 4 + 0.5
        lo = sample(self.ident.tex_lo, u, v)[:, None]
        gb.albedo[idx] = np.clip(self.ident.skin_rgb[None, :] * (0.9 + 0.08 * lo), 0, 1)
        gb.spec[idx], gb.shininess[idx], gb.obj[idx] = self.ident.skin_spec, 15.0, SKIN
        gb.subsurface[idx] = 1.0

    def _fill_body(self, gb: GBuffer, idx: np.ndarray, rays: np.ndarray, t: np.ndarray) -> None:
        pose = self.place.body_pose
        p, n = self._ellipsoid_surface(pose, rays, t, self.body_axes)
        self._write_common(gb, idx, pose, p, n)
        tex = sample(self.ident.tex_cloth, p[:, 0] * 3 + 0.5, p[:, 1] * 3 + 0.5)[:, None]
        gb.albedo[idx] = np.clip(self.ident.cloth_rgb[None, :] * (1 + 0.25 * tex), 0, 1)
        gb.spec[idx], gb.shininess[idx], gb.obj[idx] = 0.02, 5.0, BODY
