"""Does a real face detector find the simulator's faces? MTCNN on rendered live scenes, per face
shape (procedural relief, scanned ICT-FaceKit faces).

Each scene is the simulated kiosk's camera frame (the configuration's default device profile and
camera, office light, display idle) of one live person; the detector is the daemon's MTCNN
provider with its default settings (face/factory.py). A scene counts as detected when a found
face's box holds the centre of the true landmarks (the best-scoring such face is scored); the
landmark error is the mean distance of the five points to the renderer's ground truth, over the
true interocular distance. The alignment error is what those points do to the aligned crop: the
similarity that takes the crop aligned on the detector's points to the crop aligned on the true
ones, as a shift of the template's centre (x, y, in template interocular distances), a scale
(log, %) and a rotation (degrees); its mean is the detector's systematic offset from the
renderer's landmark convention, its spread what a check meets on top of that.

    python scripts/measure_face_shapes.py --n 60
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from flashfas_edge import _core
from flashfas_edge.capture.base import Frame
from flashfas_edge.config import CameraConfig, SimConfig
from flashfas_edge.face.config import LandmarkConfig
from flashfas_edge.face.factory import create_landmark_provider
from flashfas_edge.face.template import canonical_template
from flashfas_edge.sim.device import PROFILE_BY_NAME
from flashfas_edge.sim.face_shape import FACE_SHAPES
from flashfas_edge.sim.kiosk import SimKiosk, Subject


def _homogeneous(m: np.ndarray) -> np.ndarray:
    return np.vstack([m, [0.0, 0.0, 1.0]])


def alignment_error(points: np.ndarray, truth: np.ndarray) -> tuple[float, float, float, float]:
    """(shift x, shift y in template IODs, log scale, rotation in degrees) of the similarity from
    the crop aligned on ``points`` to the crop aligned on ``truth``."""
    template = canonical_template(64).astype(np.float64)
    to_true = _homogeneous(_core.estimate_similarity(truth, template))
    to_found = _homogeneous(_core.estimate_similarity(points, template))
    rel = to_true @ np.linalg.inv(to_found)
    centre = template.mean(axis=0)
    shift = (rel[:2, :2] @ centre + rel[:2, 2] - centre) / (template[1, 0] - template[0, 0])
    a, b = rel[0, 0], rel[1, 0]
    return float(shift[0]), float(shift[1]), float(np.log(np.hypot(a, b))), \
        float(np.degrees(np.arctan2(b, a)))


def measure(shape: str, n: int, seed0: int) -> dict[str, float]:
    sim, camera = SimConfig(), CameraConfig()
    detector = create_landmark_provider(LandmarkConfig(provider="mtcnn"))
    found, errors, aligned = 0, [], []
    for k in range(n):
        subject = Subject(attack_type="live", scenario="office", seed=seed0 + k, motion_px=0.0)
        kiosk = SimKiosk(PROFILE_BY_NAME[sim.profile], width=camera.width, height=camera.height,
                         seed=seed0 + k, subject=subject, face_shape=shape)
        image, truth = kiosk.render_frame(0)
        assert truth is not None
        faces = detector.detect(Frame(index=0, t_start_us=0, exposure_us=kiosk.exposure_us,
                                      readout_us=kiosk.readout_us, image=image))
        c = truth.mean(axis=0)
        hit = [f for f in faces if f.box[0] <= c[0] <= f.box[2] and f.box[1] <= c[1] <= f.box[3]]
        if not hit:
            continue
        found += 1
        iod = float(np.linalg.norm(truth[1] - truth[0]))
        errors.append(float(np.linalg.norm(hit[0].points - truth, axis=1).mean() / iod))
        aligned.append(alignment_error(np.asarray(hit[0].points, np.float64),
                                       np.asarray(truth, np.float64)))
    err = np.array(errors)
    align = np.array(aligned).reshape(-1, 4)
    names = ("shift_x_iod", "shift_y_iod", "log_scale", "rotation_deg")
    spread = {f"align_{name}_{stat}": float(fn(align[:, i])) if len(align) else float("nan")
              for i, name in enumerate(names)
              for stat, fn in (("mean", np.mean), ("sd", np.std))}
    return {"scenes": n, "detected": found, "detection_rate": found / n,
            "nme_mean": float(err.mean()) if len(err) else float("nan"),
            "nme_median": float(np.median(err)) if len(err) else float("nan"),
            "nme_p90": float(np.percentile(err, 90)) if len(err) else float("nan"), **spread}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=60, help="live scenes per face shape")
    parser.add_argument("--seed", type=int, default=0, help="first scene seed")
    args = parser.parse_args()
    print(json.dumps({s: measure(s, args.n, args.seed) for s in FACE_SHAPES}, indent=1))


if __name__ == "__main__":
    main()
