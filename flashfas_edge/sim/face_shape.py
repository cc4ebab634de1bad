"""Scanned face shapes: identities and expressions of a morphable face model as height fields.

The asset ``assets/face_shape.npz`` (built by ``scripts/build_face_asset.py`` from ICT-FaceKit, MIT
licence, ``assets/LICENSE-ICT-FaceKit.txt``; docs/DATASET.md "Face shapes") holds a frontal height
field of the model's neutral face (metres, z towards the camera, orthographic, 1 mm grid), one
height-field delta per shape mode (the largest PCA identity modes and a set of expressions) and
the 68 Multi-PIE landmarks with their per-mode deltas. A person is the neutral face plus
Σ w_k · mode_k, identity weights ~ N(0, 1) and a few small expression weights.

:class:`FaceShape` is one drawn face in the asset's frame (x image right, y down, z towards the
camera). :meth:`FaceShape.on_head` fits the head ellipsoid to it: :class:`ScannedFace` is the
displacement over that ellipsoid that the head tracer shades (the ray still hits the ellipsoid,
docs/ARCHITECTURE.md §8), blended to zero at the face border, with the landmarks and feature
contours in the head's normalised coordinates.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from flashfas_edge.sim.texture import sample_image, smoothstep

FACE_SHAPES = ("procedural", "scanned")
ASSET_PATH = Path(__file__).resolve().parent / "assets" / "face_shape.npz"
LICENCE_PATH = ASSET_PATH.parent / "LICENSE-ICT-FaceKit.txt"

IDENTITY_CLIP = 2.5  # identity weights beyond ±2.5 σ give caricatures
# Multi-PIE 68-point layout (image-left first: 36–41 is the image-left eye)
JAW = slice(0, 17)
EYE_LEFT, EYE_RIGHT = slice(36, 42), slice(42, 48)
NOSE_TIP = 30
CHIN = 8
MOUTH_LEFT, MOUTH_RIGHT = 48, 54
# Expressions a person at a kiosk shows: (shapes moved together, how often, largest weight). Left
# and right shapes move together, each a little differently.
_EXPRESSIONS = (
    (("jawOpen",), 0.15, 0.25),
    (("mouthSmile_L", "mouthSmile_R"), 0.35, 0.6),
    (("mouthFrown_L", "mouthFrown_R"), 0.15, 0.4),
    (("browInnerUp_L", "browInnerUp_R"), 0.2, 0.6),
    (("browDown_L", "browDown_R"), 0.15, 0.5),
    (("eyeSquint_L", "eyeSquint_R"), 0.2, 0.5),
    (("eyeBlink_L", "eyeBlink_R"), 0.15, 0.4),
    (("cheekPuff_L", "cheekPuff_R"), 0.05, 0.4),
    (("mouthPucker",), 0.1, 0.4),
)
# The displacement fades to zero across the jaw line (outside: the ellipsoid's chin and neck) and
# near the edge of the scanned area, so the face meets the ellipsoid without a step.
_JAW_FADE_M = (-0.003, 0.012)  # signed distance to the jaw contour: 0 outside, 1 inside
_EDGE_FADE_M = 0.012
# ... and where the ellipsoid turns away (z/c from 0.65 to 0.3): near its silhouette its slope
# diverges and the face's sides are left to it.
_SIDE_FADE = (0.3, 0.65)


@dataclass(frozen=True)
class FaceModel:
    """The loaded asset, mode deltas on the full grid."""

    neutral_m: np.ndarray  # float32 [H, W] front surface z of the neutral face
    modes_m: np.ndarray  # float32 [M, H, W] height-field delta of each mode
    valid: np.ndarray  # bool [H, W] where the face surface is defined
    landmarks_m: np.ndarray  # float64 [68, 3] neutral landmarks
    mode_landmarks_m: np.ndarray  # float64 [M, 68, 3] landmark delta of each mode
    mode_names: tuple[str, ...]
    n_identity: int  # the first n_identity modes are identity modes, the rest expressions
    origin_m: tuple[float, float]  # (x, y) of cell [0, 0]
    step_m: float

    def grid_xy(self) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) in metres of every cell centre, float32 [H, W] each."""
        h, w = self.neutral_m.shape
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        return (self.origin_m[0] + xs * self.step_m, self.origin_m[1] + ys * self.step_m)


@functools.lru_cache(maxsize=1)
def face_model() -> FaceModel:
    """The asset, loaded once per process."""
    with np.load(ASSET_PATH) as z:
        neutral = z["neutral_height_m"].astype(np.float32)
        stride = int(z["mode_stride"])
        h, w = neutral.shape
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32) / stride
        modes = np.stack([cv2.remap(m.astype(np.float32), xs, ys, cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REPLICATE)
                          for m in z["mode_height_m"]])
        origin = z["grid_origin_m"]
        return FaceModel(
            neutral_m=neutral, modes_m=modes, valid=z["valid"].astype(bool),
            landmarks_m=z["neutral_landmarks_m"].astype(np.float64),
            mode_landmarks_m=z["mode_landmarks_m"].astype(np.float64),
            mode_names=tuple(str(n) for n in z["mode_names"]),
            n_identity=int(z["n_identity"]),
            origin_m=(float(origin[0]), float(origin[1])), step_m=float(z["grid_step_m"]),
        )


@dataclass(frozen=True)
class FaceShape:
    """One face of the model: its mode weights, height field and 68 landmarks (asset frame)."""

    weights: np.ndarray  # float32 [M], face_model().mode_names order
    height_m: np.ndarray  # float32 [H, W] front surface z (valid where face_model().valid)
    landmarks_m: np.ndarray  # float64 [68, 3]

    @staticmethod
    def draw(rng: np.random.Generator) -> FaceShape:
        """A random identity (weights ~ N(0, 1), clipped at ±2.5) with a few small expressions."""
        model = face_model()
        w = np.zeros(len(model.mode_names), np.float32)
        w[: model.n_identity] = np.clip(rng.standard_normal(model.n_identity), -IDENTITY_CLIP,
                                        IDENTITY_CLIP)
        for names, how_often, top in _EXPRESSIONS:
            if rng.uniform() < how_often:
                level = rng.uniform(0.15, 1.0) * top
                for name in names:
                    w[model.mode_names.index(name)] = level * rng.uniform(0.75, 1.0)
        return FaceShape.from_weights(w)

    @staticmethod
    def from_weights(weights: np.ndarray) -> FaceShape:
        model = face_model()
        w = np.asarray(weights, np.float32)
        if w.shape != (len(model.mode_names),):
            raise ValueError(f"expected {len(model.mode_names)} mode weights, got {w.shape}")
        height = model.neutral_m + np.tensordot(w, model.modes_m, axes=1)
        lms = model.landmarks_m + np.tensordot(w.astype(np.float64), model.mode_landmarks_m, 1)
        return FaceShape(w, height.astype(np.float32), lms)

    def five_points(self) -> np.ndarray:
        """float64 [5, 3]: eye centres (mean of each eye contour), nose tip, mouth corners;
        image-left first (face/base.py LANDMARK_NAMES)."""
        lm = self.landmarks_m
        return np.stack([lm[EYE_LEFT].mean(axis=0), lm[EYE_RIGHT].mean(axis=0), lm[NOSE_TIP],
                         lm[MOUTH_LEFT], lm[MOUTH_RIGHT]])

    def blend_weight(self) -> np.ndarray:
        """float32 [H, W] in [0, 1]: 1 on the face inside the jaw line, fading to 0 across the
        jaw line and towards the edge of the scanned area (ears and neck get the ellipsoid)."""
        model = face_model()
        h, w = model.valid.shape
        px = (self.landmarks_m[JAW, :2] - np.array(model.origin_m)) / model.step_m
        top = [[px[-1, 0], 0.0], [px[0, 0], 0.0]]  # close the jaw line over the forehead
        poly = np.round(np.concatenate([px, top]) * 16).astype(np.int32)
        inside = np.zeros((h, w), np.uint8)
        cv2.fillPoly(inside, [poly], 1, lineType=cv2.LINE_8, shift=4)
        signed = (cv2.distanceTransform(inside, cv2.DIST_L2, 5)
                  - cv2.distanceTransform(1 - inside, cv2.DIST_L2, 5)) * model.step_m
        edge = model.valid.copy()
        edge[[0, -1], :] = edge[:, [0, -1]] = False  # the grid's own border is an edge too
        to_edge = cv2.distanceTransform(edge.astype(np.uint8), cv2.DIST_L2, 5) * model.step_m
        return (smoothstep(*_JAW_FADE_M, signed)
                * smoothstep(0.0, _EDGE_FADE_M, to_edge)).astype(np.float32)

    def on_head(self, eye_y_n: float, chin_y_n: float) -> ScannedFace:
        """Fit the head ellipsoid to this face: its eyes and chin at the normalised heights
        ``eye_y_n`` and ``chin_y_n`` (where the procedural head has them), its width and depth
        by least squares to the surface where the face fades into it."""
        model = face_model()
        lm = self.landmarks_m
        eye_y = float(lm[36:48, 1].mean())
        b = (float(lm[CHIN, 1]) - eye_y) / (chin_y_n - eye_y_n)
        y_c = eye_y - eye_y_n * b
        weight = self.blend_weight()
        gx, gy = model.grid_xy()
        band = (weight > 0.02) & (weight < 0.98)
        fx, fy, fz = gx[band], gy[band] - y_c, self.height_m[band]
        omega = (weight[band] * (1.0 - weight[band])).astype(np.float64)
        jaw_half = float(np.abs(lm[[0, 16], 0]).mean())
        best: tuple[float, float, float, float] | None = None
        for a in np.linspace(jaw_half + 0.005, jaw_half + 0.017, 7):
            s = np.sqrt(np.clip(1.0 - (fx / a) ** 2 - (fy / b) ** 2, 0.0, None))
            design = np.stack([np.ones_like(s), s], axis=1) * np.sqrt(omega)[:, None]
            (z_c, c), *_ = np.linalg.lstsq(design, fz * np.sqrt(omega), rcond=None)
            c = float(np.clip(c, 0.085, 0.12))  # keep the back of the head a head
            z_c = float(np.sum(omega * (fz - c * s)) / np.sum(omega))
            err = float(np.sum(omega * (fz - z_c - c * s) ** 2))
            if best is None or err < best[0]:
                best = (err, float(a), c, z_c)
        assert best is not None
        _, a, c, z_c = best
        s = np.sqrt(np.clip(1.0 - (gx / a) ** 2 - ((gy - y_c) / b) ** 2, 0.0, None))
        resid = np.where(model.valid, self.height_m - z_c - c * s, 0.0)
        weight = weight * smoothstep(*_SIDE_FADE, s)
        r_dy, r_dx = np.gradient(resid, model.step_m)
        # The slope blends the face's own slope into the ellipsoid's; the fade's slope
        # (resid · ∇weight) is left out: it would draw a ridge around the face.
        maps = np.dstack([weight * resid, weight * r_dx * a, weight * r_dy * b])
        maps = np.ascontiguousarray(maps, np.float32)
        lm_n = np.stack([lm[:, 0] / a, (lm[:, 1] - y_c) / b], axis=1)
        return ScannedFace(self, (a, b, c), (y_c, z_c), maps, lm_n)


@dataclass(frozen=True)
class ScannedFace:
    """A :class:`FaceShape` on its fitted head ellipsoid (head-local frame, centre at 0)."""

    shape: FaceShape
    axes: tuple[float, float, float]
    centre_m: tuple[float, float]  # (y, z) of the ellipsoid centre in the asset frame (x = 0)
    maps: np.ndarray  # float32 [H, W, 3]: displacement (m), its slope per normalised x and y
    landmarks_n: np.ndarray  # float64 [68, 2] in normalised head coordinates (x/a, y/b)

    def relief(self, x_n: np.ndarray, y_n: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                np.ndarray]:
        """(displacement towards the camera in metres, d/dx_n, d/dy_n) at normalised head
        coordinates; zero off the face."""
        model = face_model()
        a, b, _ = self.axes
        px = (x_n * a - model.origin_m[0]) / model.step_m
        py = (y_n * b + self.centre_m[0] - model.origin_m[1]) / model.step_m
        m = sample_image(self.maps, px, py)  # the maps are zero at the grid's border
        return m[:, 0], m[:, 1], m[:, 2]

    def landmarks_local(self) -> np.ndarray:
        """float64 [5, 3] the five landmarks on the head ellipsoid (where the shading draws
        them; LANDMARK_NAMES order)."""
        a, b, c = self.axes
        p = self.shape.five_points()
        x, y = p[:, 0], p[:, 1] - self.centre_m[0]
        z = c * np.sqrt(np.clip(1.0 - (x / a) ** 2 - (y / b) ** 2, 0.0, None))
        return np.stack([x, y, z], axis=1)
