"""Does a real face detector find the simulator's faces? MTCNN on rendered live scenes, per face
shape (procedural relief, scanned ICT-FaceKit faces).

Each scene is the simulated kiosk's camera frame (the configuration's default device profile and
camera, office light, display idle) of one live person; the detector is the daemon's MTCNN
provider with its default settings (face/factory.py). A scene counts as detected when a found
face's box holds the centre of the true landmarks (the best-scoring such face is scored); the
landmark error is the mean distance of the five points to the renderer's ground truth, over the
true interocular distance.

    python scripts/measure_face_shapes.py --n 60
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from flashfas_edge.capture.base import Frame
from flashfas_edge.config import CameraConfig, SimConfig
from flashfas_edge.face.config import LandmarkConfig
from flashfas_edge.face.factory import create_landmark_provider
from flashfas_edge.sim.device import PROFILE_BY_NAME
from flashfas_edge.sim.face_shape import FACE_SHAPES
from flashfas_edge.sim.kiosk import SimKiosk, Subject


def measure(shape: str, n: int, seed0: int) -> dict[str, float]:
    sim, camera = SimConfig(), CameraConfig()
    detector = create_landmark_provider(LandmarkConfig(provider="mtcnn"))
    found, errors = 0, []
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
    err = np.array(errors)
    return {"scenes": n, "detected": found, "detection_rate": found / n,
            "nme_mean": float(err.mean()) if len(err) else float("nan"),
            "nme_median": float(np.median(err)) if len(err) else float("nan"),
            "nme_p90": float(np.percentile(err, 90)) if len(err) else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=60, help="live scenes per face shape")
    parser.add_argument("--seed", type=int, default=0, help="first scene seed")
    args = parser.parse_args()
    print(json.dumps({s: measure(s, args.n, args.seed) for s in FACE_SHAPES}, indent=1))


if __name__ == "__main__":
    main()
