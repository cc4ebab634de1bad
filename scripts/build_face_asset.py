"""Build the simulator's face-shape asset from the ICT-FaceKit morphable face model.

ICT-FaceKit (USC Institute for Creative Technologies, MIT licence) is a linear face model: a
neutral mesh, 100 PCA identity modes and 53 ARKit-style expression shapes, each stored as a full
mesh on one topology. Get it with

    git clone https://github.com/ICT-VGL/ICT-FaceKit

and run, from the repository root,

    python scripts/build_face_asset.py path/to/ICT-FaceKit

It writes ``flashfas_edge/sim/assets/face_shape.npz`` and ``LICENSE-ICT-FaceKit.txt`` beside it.
The asset is a frontal height field (orthographic, z towards the camera, metres) of the neutral
face on a regular grid, one height-field delta per kept shape mode (the identity modes that carry
most of the variance and the expressions a person shows at a kiosk), the validity mask of the
grid, and the 68 Multi-PIE landmarks of the neutral face with their per-mode deltas. A shape mode
is (that mode's mesh − the neutral mesh); identities are drawn with weights ~ N(0, 1).

Only facts about the model (vertex ranges, landmark vertex indices, units) and its data are used
here; the OBJ reader and the rasteriser are our own.
"""

from __future__ import annotations

import argparse
import subprocess
import textwrap
from pathlib import Path

import numpy as np

ASSET_DIR = Path(__file__).resolve().parent.parent / "flashfas_edge" / "sim" / "assets"
SOURCE_URL = "https://github.com/ICT-VGL/ICT-FaceKit"
MESH_UNIT_M = 0.01  # the meshes are in centimetres: the neutral face is 14.7 between jaw points
FACE_VERTICES = 9409  # vertex indices [0:9408]: the face area (README, "Face Model Topology")
# The eyeballs ([21451:24590]) fill the eye openings of the face-area surface.
EYEBALL_VERTICES = (21451, 24591)
# Multi-PIE 68-point landmarks as vertex indices (README, "Facial Landmarks"), in 68-point order:
# jaw 0–16, brows 17–26, nose 27–35, eyes 36–47, mouth 48–67.
LANDMARK_VERTICES = np.array(
    [1225, 1888, 1052, 367, 1719, 1722, 2199, 1447, 966, 3661, 4390, 3927, 3924, 2608, 3272, 4088,
     3443, 268, 493, 1914, 2044, 1401, 3615, 4240, 4114, 2734, 2509, 978, 4527, 4942, 4857, 1140,
     2075, 1147, 4269, 3360, 1507, 1542, 1537, 1528, 1518, 1511, 3742, 3751, 3756, 3721, 3725,
     3732, 5708, 5695, 2081, 0, 4275, 6200, 6213, 6346, 6461, 5518, 5957, 5841, 5702, 5711, 5533,
     6216, 6207, 6470, 5517, 5966], np.int64)
# Expressions a person in front of a kiosk shows (slight smile, frown, raised or lowered brows,
# squint, half blink, puffed cheek, pursed lips, a mouth a little open).
EXPRESSIONS = ("jawOpen", "mouthSmile_L", "mouthSmile_R", "mouthFrown_L", "mouthFrown_R",
               "browInnerUp_L", "browInnerUp_R", "browDown_L", "browDown_R", "eyeSquint_L",
               "eyeSquint_R", "eyeBlink_L", "eyeBlink_R", "cheekPuff_L", "cheekPuff_R",
               "mouthPucker")
# Grid in the asset frame (metres): x to the image right (the subject's left), y down, z towards
# the camera; the mesh's y axis points up.
GRID_X_M = (-0.096, 0.096)
GRID_Y_M = (-0.128, 0.110)  # hairline to below the chin (the neck is the head model's own)
# The shape modes are smooth: stored at every other grid cell (2 mm) after a low-pass, which keeps
# the asset near 1 MB; the neutral face keeps the full grid (float32: float16 steps of 60 µm at
# 10 cm would draw contour lines into the shading).
MODE_STRIDE = 2


def read_obj(path: Path, faces: bool = False) -> tuple[np.ndarray, list[list[int]]]:
    """Vertices (float64 [N, 3], mesh units) and, if asked, polygons (0-based vertex indices)
    of a Wavefront OBJ file: ``v x y z`` lines and ``f a/b/c ...`` polygons."""
    verts: list[tuple[float, float, float]] = []
    polys: list[list[int]] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("v "):
                _, x, y, z = line.split()[:4]
                verts.append((float(x), float(y), float(z)))
            elif faces and line.startswith("f "):
                polys.append([int(tok.split("/")[0]) - 1 for tok in line.split()[1:]])
    return np.array(verts, np.float64), polys


def triangles(polys: list[list[int]], vertex_range: tuple[int, int]) -> np.ndarray:
    """int64 [T, 3]: fan triangulation of the polygons whose vertices are all in the range."""
    lo, hi = vertex_range
    tris = [(p[0], p[k], p[k + 1]) for p in polys if min(p) >= lo and max(p) < hi
            for k in range(1, len(p) - 1)]
    return np.array(tris, np.int64)


def to_asset_frame(verts: np.ndarray) -> np.ndarray:
    """Mesh units (y up) → metres, y down (x and z kept: z already points at the viewer)."""
    return verts * np.array([MESH_UNIT_M, -MESH_UNIT_M, MESH_UNIT_M])


def rasterise_front(verts_m: np.ndarray, tris: np.ndarray, x0: float, y0: float, step: float,
                    shape: tuple[int, int]) -> np.ndarray:
    """Front-most z (z-buffer, largest z wins) of the triangles at the grid's cell centres;
    NaN where no triangle covers a cell. Orthographic along z."""
    ny, nx = shape
    px = (verts_m[:, 0] - x0) / step
    py = (verts_m[:, 1] - y0) / step
    tx, ty, tz = px[tris], py[tris], verts_m[:, 2][tris]  # [T, 3] each
    det = (ty[:, 1] - ty[:, 2]) * (tx[:, 0] - tx[:, 2]) + (tx[:, 2] - tx[:, 1]) * (
        ty[:, 0] - ty[:, 2])
    keep = np.abs(det) > 1e-12  # edge-on triangles cover nothing
    tx, ty, tz, det = tx[keep], ty[keep], tz[keep], det[keep]
    lo_x, lo_y = np.ceil(tx.min(1)).astype(np.int64), np.ceil(ty.min(1)).astype(np.int64)
    span = np.maximum(np.floor(tx.max(1)).astype(np.int64) - lo_x,
                      np.floor(ty.max(1)).astype(np.int64) - lo_y) + 1
    zbuf = np.full(ny * nx, -np.inf)
    for s in np.unique(span[span > 0]):
        sel = np.nonzero(span == s)[0]
        oy, ox = np.mgrid[0:s, 0:s].reshape(2, 1, -1)
        cx = lo_x[sel, None] + ox[0]  # [T_s, s*s]
        cy = lo_y[sel, None] + oy[0]
        a, b, c = (tx[sel, k, None] for k in range(3))
        d, e, f = (ty[sel, k, None] for k in range(3))
        dd = det[sel, None]
        w0 = ((e - f) * (cx - c) + (c - b) * (cy - f)) / dd
        w1 = ((f - d) * (cx - c) + (a - c) * (cy - f)) / dd
        w2 = 1.0 - w0 - w1
        inside = (w0 >= -1e-9) & (w1 >= -1e-9) & (w2 >= -1e-9)
        inside &= (cx >= 0) & (cx < nx) & (cy >= 0) & (cy < ny)
        z = w0 * tz[sel, 0, None] + w1 * tz[sel, 1, None] + w2 * tz[sel, 2, None]
        np.maximum.at(zbuf, (cy * nx + cx)[inside], z[inside])
    return np.where(np.isfinite(zbuf), zbuf, np.nan).reshape(ny, nx)


def fill_nearest(field: np.ndarray, known: np.ndarray) -> np.ndarray:
    """``field`` with its unknown cells set to the value of the nearest known cell."""
    import cv2

    if known.all():
        return field
    # distanceTransformWithLabels labels the zero pixels: make the known cells the zeros
    _, labels = cv2.distanceTransformWithLabels((~known).astype(np.uint8), cv2.DIST_L2, 5,
                                                labelType=cv2.DIST_LABEL_PIXEL)
    ys, xs = np.nonzero(known)
    lookup = np.zeros(labels.max() + 1, field.dtype)
    lookup[labels[ys, xs]] = field[ys, xs]
    return np.where(known, field, lookup[labels])


def build(kit: Path, n_identity: int, step_mm: float, out_dir: Path) -> dict[str, object]:
    model = kit / "FaceXModel"
    neutral_raw, polys = read_obj(model / "generic_neutral_mesh.obj", faces=True)
    tris = np.concatenate([triangles(polys, (0, FACE_VERTICES)),
                           triangles(polys, EYEBALL_VERTICES)])
    step = step_mm * 1e-3
    nx = int(round((GRID_X_M[1] - GRID_X_M[0]) / step)) + 1
    ny = int(round((GRID_Y_M[1] - GRID_Y_M[0]) / step)) + 1
    x0, y0 = GRID_X_M[0], GRID_Y_M[0]

    def height(verts_raw: np.ndarray) -> np.ndarray:
        return rasterise_front(to_asset_frame(verts_raw), tris, x0, y0, step, (ny, nx))

    neutral = to_asset_frame(neutral_raw)
    h0 = height(neutral_raw)
    valid = np.isfinite(h0)
    h0 = fill_nearest(np.nan_to_num(h0), valid)

    def mode(name: str) -> tuple[np.ndarray, np.ndarray]:
        verts, _ = read_obj(model / f"{name}.obj")
        h = height(verts)
        both = valid & np.isfinite(h)
        delta = fill_nearest(np.where(both, h - h0, 0.0), both) * valid
        lm_delta = to_asset_frame(verts)[LANDMARK_VERTICES] - neutral[LANDMARK_VERTICES]
        return delta, lm_delta

    # identity modes ranked by the variance they add to the face surface (the face area's vertices)
    ident_names = sorted(p.stem for p in model.glob("identity*.obj"))
    rms = {}
    for name in ident_names:
        verts, _ = read_obj(model / f"{name}.obj")
        rms[name] = float(np.sqrt(np.mean((verts[:FACE_VERTICES] - neutral_raw[:FACE_VERTICES])
                                          ** 2)))
    ranked = sorted(ident_names, key=lambda n: -rms[n])
    kept = ranked[:n_identity]
    total_var = sum(r * r for r in rms.values())
    kept_var = sum(rms[n] ** 2 for n in kept) / total_var
    names = kept + list(EXPRESSIONS)
    deltas, lm_deltas = zip(*(mode(n) for n in names), strict=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    asset = out_dir / "face_shape.npz"
    np.savez_compressed(
        asset,
        neutral_height_m=(h0 * valid).astype(np.float32),
        mode_height_m=np.stack([_subsample(d) for d in deltas]).astype(np.float16),
        mode_stride=np.int64(MODE_STRIDE),
        valid=valid,
        neutral_landmarks_m=neutral[LANDMARK_VERTICES].astype(np.float16),
        mode_landmarks_m=np.stack(lm_deltas).astype(np.float16),
        mode_names=np.array(names),
        n_identity=np.int64(n_identity),
        grid_origin_m=np.array([x0, y0]),
        grid_step_m=np.float64(step),
        units=np.array("metres; height field z (towards the camera) at cell centres "
                       "x = origin_x + i*step (image right), y = origin_y + j*step (image down), "
                       "orthographic front view; mode arrays are deltas from the neutral face "
                       "at every mode_stride-th cell (i, j = 0, stride, 2*stride, ...)"),
        landmark_vertices=LANDMARK_VERTICES,
        provenance=np.array(f"ICT-FaceKit ({SOURCE_URL}, commit {_commit(kit)}), MIT licence, "
                            f"(c) 2020 USC Institute for Creative Technologies; identity modes "
                            f"kept: {len(kept)} of {len(ident_names)} "
                            f"({100 * kept_var:.1f} % of the face-area variance)"),
    )
    _write_licence(kit, out_dir, len(kept), len(ident_names))
    return {"asset": str(asset), "bytes": asset.stat().st_size, "grid": [ny, nx],
            "step_mm": step_mm, "identity_modes": kept, "identity_variance_kept": kept_var,
            "expressions": list(EXPRESSIONS), "valid_cells": int(valid.sum())}


def _subsample(delta: np.ndarray) -> np.ndarray:
    """Every MODE_STRIDE-th cell after a Gaussian low-pass (no aliasing of the lid and lip
    edges)."""
    import cv2

    blurred = cv2.GaussianBlur(delta, (0, 0), 0.5 * MODE_STRIDE)
    return blurred[::MODE_STRIDE, ::MODE_STRIDE]


def _commit(kit: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(kit), "rev-parse", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _write_licence(kit: Path, out_dir: Path, kept: int, total: int) -> None:
    licence = (kit / "LICENSE").read_text(encoding="utf-8").strip()
    note = textwrap.fill(
        f"face_shape.npz is derived from ICT-FaceKit ({SOURCE_URL}), the ICT Face Model Light: "
        f"its neutral face, {kept} of its {total} PCA identity modes and {len(EXPRESSIONS)} "
        f"expression shapes, rasterised into frontal height fields, and the positions of its 68 "
        f"Multi-PIE landmark vertices in those meshes. Built by scripts/build_face_asset.py. The "
        "model's data is used under the licence below.", width=79, break_on_hyphens=False) + "\n"
    (out_dir / "LICENSE-ICT-FaceKit.txt").write_text(note + "\n" + licence + "\n",
                                                     encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kit", type=Path, help="an ICT-FaceKit checkout (holds FaceXModel/)")
    parser.add_argument("--identity-modes", type=int, default=40,
                        help="how many identity modes to keep, largest variance first (default 40)")
    parser.add_argument("--step-mm", type=float, default=1.0, help="grid spacing (default 1 mm)")
    parser.add_argument("--out", type=Path, default=ASSET_DIR, help="output folder")
    args = parser.parse_args()
    import json

    print(json.dumps(build(args.kit, args.identity_modes, args.step_mm, args.out), indent=1))


if __name__ == "__main__":
    main()
