"""Print attack: the victim's photo on matte or glossy paper, flat or bent, whole, cropped to the
head, or with eye/mouth holes (ATR-FAS §4.1: colour, grey, HD paper, hole paper, cropped paper).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flashfas_edge.sim import spectra
from flashfas_edge.sim.gbuffer import HOLE, PAPER, GBuffer
from flashfas_edge.sim.head import EYE_X
from flashfas_edge.sim.photo import FacePhoto
from flashfas_edge.sim.raycast import Pinhole, Pose
from flashfas_edge.sim.sheet import Sheet
from flashfas_edge.sim.spectral_render import Material
from flashfas_edge.sim.texture import sample_image


@dataclass
class PrintAttack:
    sheet: Sheet
    photo: FacePhoto
    metres_per_photo_px: float
    reflectance: np.ndarray  # float32 [H, W, 3] ink on paper
    glossy: bool
    gloss_mirror: float
    crop: str  # "full" | "oval"
    holes: str  # "none" | "eyes" | "eyes_mouth"
    hole_rgb: np.ndarray
    paper_white: float = 0.85

    def paper_material(self) -> Material:
        """The paper under halftone inks for the spectral renderer (a little optical brightener:
        more blue)."""
        lam = spectra.WAVELENGTHS_NM
        paper = self.paper_white * (0.95 + 0.06 * np.exp(-0.5 * ((lam - 440.0) / 20.0) ** 2))
        return Material(np.clip(paper, 0.0, 1.0), np.zeros(spectra.N_BANDS), inks=True)

    @staticmethod
    def draw(rng: np.random.Generator, photo: FacePhoto, centre: np.ndarray, yaw: float,
             pitch: float, roll: float) -> PrintAttack:
        scale = rng.uniform(0.85, 1.25)  # printed face size relative to life size
        mpp = photo.metres_per_px * scale
        h, w = photo.image.shape[:2]
        img = photo.image
        if rng.uniform() < 0.2:  # grey paper print
            img = np.repeat(img.mean(axis=2, keepdims=True), 3, axis=2)
        # ink gamut: slightly desaturated, paper white and ink black limit the contrast
        paper_white = rng.uniform(0.75, 0.9)
        ink_black = rng.uniform(0.02, 0.06)
        grey = img.mean(axis=2, keepdims=True)
        img = grey + (img - grey) * rng.uniform(0.75, 1.0)
        refl = ink_black + (paper_white - ink_black) * np.clip(img, 0, 1)
        bend = rng.choice([0.0, rng.uniform(-5, 5)]) if rng.uniform() < 0.5 else 0.0
        # the sheet is where a live face's front would be (same distance distribution, so the
        # flash falloff is no cue), at about life size
        centre = np.asarray(centre, np.float64) * ((float(centre[2]) - 0.09) / float(centre[2]))
        pose = Pose.facing(yaw, pitch, roll, centre)
        # hold the print so that its face, not the sheet's middle, is where a head would be
        face_px = photo.landmarks.mean(axis=0)
        off = np.array([(face_px[0] - (w - 1) / 2) * mpp, (face_px[1] - (h - 1) / 2) * mpp, 0.0])
        pose = Pose(pose.rot, np.asarray(centre, np.float64) - pose.rot @ off)
        sheet = Sheet(pose, w * mpp, h * mpp, float(bend))
        glossy = bool(rng.uniform() < 0.5)
        crop = "oval" if rng.uniform() < 0.2 else "full"
        holes = str(rng.choice(["none", "eyes", "eyes_mouth"], p=[0.7, 0.2, 0.1]))
        return PrintAttack(sheet, photo, mpp, refl.astype(np.float32), glossy,
                           float(rng.uniform(0.03, 0.07)) if glossy else 0.0, crop, holes,
                           rng.uniform(0.03, 0.2, 3).astype(np.float32), float(paper_white))

    def _photo_px(self, p_local: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = self.photo.image.shape[:2]
        return (p_local[:, 0] / self.metres_per_photo_px + (w - 1) / 2,
                p_local[:, 1] / self.metres_per_photo_px + (h - 1) / 2)

    def hit(self, rays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t, p = self.sheet.local_hit(rays)
        if self.crop == "oval":
            lm = self.photo.landmarks
            c = lm.mean(axis=0)
            iod = float(np.linalg.norm(lm[1] - lm[0]))
            px, py = self._photo_px(p)
            inside = ((px - c[0]) / (1.9 * iod)) ** 2 + ((py - c[1] + 0.3 * iod) / (2.5 * iod)) ** 2
            t = np.where(inside <= 1.0, t, np.inf).astype(np.float32)
        return t, p

    def fill(self, gb: GBuffer, idx: np.ndarray, t: np.ndarray, p_local: np.ndarray) -> None:
        pose = self.sheet.pose
        gb.position[idx] = pose.to_camera(p_local)
        gb.normal[idx] = self.sheet.local_normal(p_local) @ pose.rot.T.astype(np.float32)
        gb.depth_z[idx] = gb.position[idx][:, 2]
        px, py = self._photo_px(p_local)
        gb.albedo[idx] = sample_image(self.reflectance, px, py)
        gb.spec[idx] = 0.05 if self.glossy else 0.01
        gb.shininess[idx] = 150.0 if self.glossy else 4.0
        gb.mirror[idx] = self.gloss_mirror
        gb.obj[idx] = PAPER
        if self.holes != "none":
            lm = self.photo.landmarks
            iod = float(np.linalg.norm(lm[1] - lm[0]))
            hole = np.zeros(len(idx), bool)
            for k in (0, 1):
                hole |= ((px - lm[k, 0]) / (0.42 * iod * EYE_X / 0.36)) ** 2 + (
                    (py - lm[k, 1]) / (0.2 * iod)) ** 2 < 1
            if self.holes == "eyes_mouth":
                mc = lm[3:5].mean(axis=0)
                hole |= ((px - mc[0]) / (0.55 * iod)) ** 2 + ((py - mc[1]) / (0.2 * iod)) ** 2 < 1
            sel = idx[hole]
            gb.albedo[sel] = self.hole_rgb
            gb.mirror[sel] = 0.0
            gb.spec[sel] = 0.02
            gb.obj[sel] = HOLE

    def landmarks_px(self, cam: Pinhole) -> np.ndarray:
        h, w = self.photo.image.shape[:2]
        lm = self.photo.landmarks
        x_m = (lm[:, 0] - (w - 1) / 2) * self.metres_per_photo_px
        y_m = (lm[:, 1] - (h - 1) / 2) * self.metres_per_photo_px
        return self.sheet.project_local(cam, x_m, y_m).astype(np.float32)
