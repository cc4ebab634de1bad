"""LandmarkProvider for real cameras: MTCNN (Zhang et al., IEEE SPL 2016) on ONNX Runtime.

Why MTCNN: it gives exactly the 5 landmarks the project aligns on (both eyes, nose tip, both mouth
corners, image-left first — LANDMARK_NAMES), its trained weights ship inside a well-kept MIT
licensed PyPI package (``mtcnn`` ≥ 1.0, ~1.9 MB of weights, deps joblib + lz4 only), and it runs
offline on numpy 2. That package runs the networks with TensorFlow, which we do not want on a
kiosk; its *weights* are plain arrays, so this file rebuilds the three small networks (P-Net,
R-Net, O-Net) as ONNX graphs in memory and runs them on ONNX Runtime, which the daemon already
uses. The weight files are located through package metadata without importing ``mtcnn`` (its
``__init__`` imports TensorFlow).

The cascade follows the reference implementation: an image pyramid through P-Net (12×12 cells,
stride 2) → NMS → R-Net on 24×24 crops → NMS → O-Net on 48×48 crops (boxes + 5 landmarks) → NMS.
"""

from __future__ import annotations

import math
import threading
from importlib import metadata
from pathlib import Path

import cv2
import numpy as np

from flashfas_edge.capture.base import Frame
from flashfas_edge.face.base import FaceLandmarks


class DetectorUnavailable(RuntimeError):
    """The MTCNN weights (PyPI package ``mtcnn``) are not installed or unreadable."""


_OPSET = 17
# detect_prominent: how far below the relative size it still searches. P-Net finds a face at the
# pyramid level whose 12-pixel cell it roughly fills, give or take a level (×0.709), and a box's
# side need not be its area's square root.
SIZE_MARGIN = 0.75
_PNET_STRIDE = 2
_PNET_CELL = 12


def mtcnn_weights_dir() -> Path:
    try:
        dist = metadata.distribution("mtcnn")
    except metadata.PackageNotFoundError as exc:
        raise DetectorUnavailable(
            "the 'mtcnn' package (MTCNN weights) is not installed: pip install 'mtcnn>=1.0'"
        ) from exc
    folder = Path(str(dist.locate_file("mtcnn/assets/weights")))
    if not (folder / "onet.lz4").is_file():
        raise DetectorUnavailable(f"MTCNN weights not found under {folder}")
    return folder


def _load_weights(folder: Path, name: str) -> list[np.ndarray]:
    import joblib  # a dependency of the mtcnn package; lz4-compressed pickled arrays

    weights = joblib.load(folder / f"{name}.lz4")
    return [np.asarray(w, dtype=np.float32) for w in weights]


class _GraphBuilder:
    """Keras layers of the reference networks, mapped one to one onto ONNX nodes (NCHW)."""

    def __init__(self, weights: list[np.ndarray]) -> None:
        from onnx import helper, numpy_helper

        self._helper, self._numpy_helper = helper, numpy_helper
        self._weights = iter(weights)
        self.nodes: list = []
        self.inits: list = []
        self._n = 0

    def _name(self, stem: str) -> str:
        self._n += 1
        return f"{stem}{self._n}"

    def _const(self, value: np.ndarray) -> str:
        name = self._name("w")
        self.inits.append(self._numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def _node(self, op: str, inputs: list[str], **attrs) -> str:
        out = self._name(op.lower())
        self.nodes.append(self._helper.make_node(op, inputs, [out], **attrs))
        return out

    def conv(self, x: str) -> str:
        kernel, bias = next(self._weights), next(self._weights)  # Keras [kh, kw, cin, cout]
        w = self._const(kernel.transpose(3, 2, 0, 1))
        return self._node("Conv", [x, w, self._const(bias)])

    def prelu(self, x: str, spatial: bool = True) -> str:
        alpha = next(self._weights)  # Keras PReLU, shared over H and W: (1, 1, C)
        slope = alpha.reshape(-1, 1, 1) if spatial else alpha.reshape(-1)
        return self._node("PRelu", [x, self._const(slope)])

    def max_pool(self, x: str, k: int, s: int, same: bool) -> str:
        # TF "same" pads the end more than the start, like ONNX SAME_UPPER; padding never wins.
        pad = {"auto_pad": "SAME_UPPER"} if same else {}
        return self._node("MaxPool", [x], kernel_shape=[k, k], strides=[s, s], **pad)

    def flatten_keras(self, x: str) -> str:
        # Keras Permute((2, 1, 3)) + Flatten on NHWC = order (W, H, C): NCHW → NWHC → flat.
        t = self._node("Transpose", [x], perm=[0, 3, 2, 1])
        return self._node("Flatten", [t], axis=1)

    def dense(self, x: str) -> str:
        kernel, bias = next(self._weights), next(self._weights)  # Keras [in, out]
        return self._node("Gemm", [x, self._const(kernel), self._const(bias)])

    def softmax(self, x: str) -> str:
        return self._node("Softmax", [x], axis=1)

    def model(self, name: str, size: int | None, outputs: list[tuple[str, str, list]]):
        from onnx import TensorProto

        h = self._helper
        dims: list = ["n", 3, size or "h", size or "w"]
        graph = h.make_graph(
            self.nodes,
            name,
            [h.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
            [
                h.make_tensor_value_info(alias, TensorProto.FLOAT, shape)
                for alias, _, shape in outputs
            ],
            initializer=self.inits,
        )
        for alias, source, _ in outputs:
            graph.node.append(h.make_node("Identity", [source], [alias]))
        model = h.make_model(graph, opset_imports=[h.make_opsetid("", _OPSET)])
        model.ir_version = 8
        return model


def build_pnet(weights: list[np.ndarray]):
    g = _GraphBuilder(weights)
    x = g.max_pool(g.prelu(g.conv("x")), 2, 2, same=True)
    x = g.prelu(g.conv(x))
    x = g.prelu(g.conv(x))
    reg = g.conv(x)
    prob = g.softmax(g.conv(x))
    return g.model(
        "pnet", None, [("reg", reg, ["n", 4, "a", "b"]), ("prob", prob, ["n", 2, "a", "b"])]
    )


def build_rnet(weights: list[np.ndarray]):
    g = _GraphBuilder(weights)
    x = g.max_pool(g.prelu(g.conv("x")), 3, 2, same=True)
    x = g.max_pool(g.prelu(g.conv(x)), 3, 2, same=False)
    x = g.prelu(g.conv(x))
    x = g.prelu(g.dense(g.flatten_keras(x)), spatial=False)
    reg = g.dense(x)
    prob = g.softmax(g.dense(x))
    return g.model("rnet", 24, [("reg", reg, ["n", 4]), ("prob", prob, ["n", 2])])


def build_onet(weights: list[np.ndarray]):
    g = _GraphBuilder(weights)
    x = g.max_pool(g.prelu(g.conv("x")), 3, 2, same=True)
    x = g.max_pool(g.prelu(g.conv(x)), 3, 2, same=False)
    x = g.max_pool(g.prelu(g.conv(x)), 2, 2, same=True)
    x = g.prelu(g.conv(x))
    x = g.prelu(g.dense(g.flatten_keras(x)), spatial=False)
    reg = g.dense(x)
    marks = g.dense(x)
    prob = g.softmax(g.dense(x))
    return g.model(
        "onet", 48, [("reg", reg, ["n", 4]), ("marks", marks, ["n", 10]), ("prob", prob, ["n", 2])]
    )


def _iou(box: np.ndarray, boxes: np.ndarray, by_min: bool) -> np.ndarray:
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    denominator = np.minimum(area, areas) if by_min else area + areas - inter
    return inter / np.maximum(denominator, 1e-9)


def nms(
    boxes: np.ndarray, scores: np.ndarray, threshold: float, by_min: bool = False
) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best score first."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        order = rest[_iou(boxes[best], boxes[rest], by_min) <= threshold]
    return np.asarray(keep, dtype=np.int64)


def _square(boxes: np.ndarray) -> np.ndarray:
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + (w - side) / 2
    out[:, 1] = boxes[:, 1] + (h - side) / 2
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def _crops(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Bilinear crops of ``boxes`` resized to size×size, zero (mid-grey) outside: NCHW float32."""
    out = np.empty((len(boxes), 3, size, size), np.float32)
    for i, (x1, y1, x2, y2) in enumerate(boxes[:, :4]):
        sx = (x2 - x1) / (size - 1)
        sy = (y2 - y1) / (size - 1)
        affine = np.array([[sx, 0, x1], [0, sy, y1]], np.float64)
        crop = cv2.warpAffine(
            image,
            affine,
            (size, size),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0.0, 0.0, 0.0),
        )
        out[i] = crop.transpose(2, 0, 1)
    return out


def _crops_near(image: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """``_crops`` of the normalised image for one box, normalising only the pixels it samples
    (the box and a pixel around it, inside the frame): the same crop, without converting the
    whole frame."""
    h, w = image.shape[:2]
    left, top = max(int(math.floor(box[0])) - 1, 0), max(int(math.floor(box[1])) - 1, 0)
    right = min(int(math.ceil(box[2])) + 2, w)
    bottom = min(int(math.ceil(box[3])) + 2, h)
    if right <= left or bottom <= top:  # wholly outside the frame: all border
        return np.zeros((1, 3, size, size), np.float32)
    window = _normalised(image[top:bottom, left:right])
    shifted = box[:4] - np.array([left, top, left, top], np.float32)
    return _crops(window, shifted[None], size)


class MtcnnLandmarks:
    """Faces with 5 landmarks from MTCNN. Thresholds are the reference implementation's."""

    def __init__(
        self,
        min_face_px: int = 40,
        threads: int = 1,
        scale_factor: float = 0.709,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.8),
    ) -> None:
        import onnxruntime as ort

        if min_face_px < 12:
            raise ValueError("MTCNN cannot find faces smaller than its 12-pixel cell")
        folder = mtcnn_weights_dir()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._sessions = {}
        for name, build in (("pnet", build_pnet), ("rnet", build_rnet), ("onet", build_onet)):
            model = build(_load_weights(folder, name))
            self._sessions[name] = ort.InferenceSession(
                model.SerializeToString(), options, providers=["CPUExecutionProvider"]
            )
        self.min_face_px = min_face_px
        self.scale_factor = scale_factor
        self.thresholds = thresholds
        self._lock = threading.Lock()  # ORT sessions are thread-safe; the pyramid buffers not

    def _run(self, net: str, x: np.ndarray) -> list[np.ndarray]:
        return self._sessions[net].run(None, {"x": np.ascontiguousarray(x, np.float32)})

    def _scales(self, h: int, w: int, min_face_px: float) -> list[float]:
        """The pyramid's scales, largest first: level k finds faces of about 12 / scale pixels,
        from ``min_face_px`` up to the whole frame."""
        scales = []
        scale = _PNET_CELL / min_face_px
        while min(h, w) * scale >= _PNET_CELL:
            scales.append(scale)
            scale *= self.scale_factor
        return scales

    def _proposals(self, image: np.ndarray, scales: list[float]) -> np.ndarray:
        h, w = image.shape[:2]
        found = []
        for scale in scales:
            sw, sh = int(math.ceil(w * scale)), int(math.ceil(h * scale))
            scaled = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
            reg, prob = self._run("pnet", scaled.transpose(2, 0, 1)[None])
            ys, xs = np.nonzero(prob[0, 1] > self.thresholds[0])
            if ys.size:
                dx1, dy1, dx2, dy2 = (reg[0, k, ys, xs] for k in range(4))
                x1 = xs * _PNET_STRIDE + dx1 * _PNET_CELL
                y1 = ys * _PNET_STRIDE + dy1 * _PNET_CELL
                x2 = xs * _PNET_STRIDE + _PNET_CELL + dx2 * _PNET_CELL
                y2 = ys * _PNET_STRIDE + _PNET_CELL + dy2 * _PNET_CELL
                boxes = np.stack([x1, y1, x2, y2], axis=1) / scale
                scores = prob[0, 1, ys, xs]
                keep = nms(boxes, scores, 0.5)
                found.append(np.column_stack([boxes[keep], scores[keep]]))
        if not found:
            return np.empty((0, 5), np.float32)
        boxes = np.concatenate(found)
        boxes = boxes[nms(boxes[:, :4], boxes[:, 4], 0.7)]
        boxes[:, :4] = _square(boxes[:, :4])
        return boxes

    @staticmethod
    def _refine(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
        out = boxes.copy()
        w = boxes[:, 2] - boxes[:, 0] + 1
        h = boxes[:, 3] - boxes[:, 1] + 1
        out[:, :4] += reg * np.stack([w, h, w, h], axis=1)
        return out

    def detect(self, frame: Frame) -> list[FaceLandmarks]:
        """Every face in the frame, best score first."""
        return self._cascade(frame.image, float(self.min_face_px), (0.0, 0.0))

    def detect_near(
        self, frame: Frame, box: tuple[float, float, float, float]
    ) -> list[FaceLandmarks]:
        """Faces around ``box`` (a face found in a frame a few tens of ms earlier).

        Searches a window of three face widths around it, for faces of at least half its size:
        a few pyramid levels instead of the whole frame's. Faces far from ``box`` are not
        looked for.
        """
        x0, y0, x1, y1 = box
        size = max(x1 - x0, y1 - y0, 1.0)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        h, w = frame.image.shape[:2]
        left, top = int(max(cx - 1.5 * size, 0)), int(max(cy - 1.5 * size, 0))
        right, bottom = int(min(cx + 1.5 * size, w)), int(min(cy + 1.5 * size, h))
        if right - left < _PNET_CELL or bottom - top < _PNET_CELL:
            return []
        window = frame.image[top:bottom, left:right]
        min_face = max(float(_PNET_CELL), 0.5 * size, float(self.min_face_px) / 2)
        return self._cascade(window, min_face, (float(left), float(top)))

    def detect_prominent(
        self, frame: Frame, relative_side: float, min_score: float = 0.0
    ) -> list[FaceLandmarks]:
        """The faces a gate that ignores small ones counts: every face whose box side is at least
        ``relative_side`` × the largest face's (of those scoring ≥ ``min_score``), best score
        first; smaller ones may be left out.

        The pyramid is searched from its large faces down: first the levels for faces of at least
        twice ``min_face_px``, then, below them, only down to ``SIZE_MARGIN`` × ``relative_side``
        × the largest face found (all of them when none was). A face near the camera skips the
        finest levels, the costliest half of a whole-frame search.
        """
        image = _normalised(frame.image)
        h, w = image.shape[:2]
        scales = self._scales(h, w, float(self.min_face_px))
        split = 2.0 * self.min_face_px
        large = self._stages(image, [s for s in scales if _PNET_CELL / s >= split], (0.0, 0.0))
        confident = [_side(row) for row in large if row[4] >= min_score]
        smallest = SIZE_MARGIN * relative_side * max(confident, default=0.0)
        finer = [s for s in scales if smallest <= _PNET_CELL / s < split]
        if finer:
            large = np.concatenate([large, self._stages(image, finer, (0.0, 0.0))])
        return _faces(large)

    def refine(
        self, frame: Frame, box: tuple[float, float, float, float]
    ) -> FaceLandmarks | None:
        """The face in ``box`` (found a frame or two earlier) from O-Net alone, the cascade's last
        stage: one 48×48 crop instead of a pyramid search. None when O-Net no longer sees a face
        there (score below its threshold): the caller searches again."""
        boxes = _square(np.array([box], np.float32))
        crop = _crops_near(frame.image, boxes[0], 48)
        with self._lock:
            reg, marks, prob = self._run("onet", crop)
        score = float(prob[0, 1])
        if score <= self.thresholds[2]:
            return None
        x0, y0, x1, y1 = (float(v) for v in boxes[0])
        w, h = x1 - x0 + 1, y1 - y0 + 1
        points = np.stack([w * marks[0, 0:5] + x0 - 1, h * marks[0, 5:10] + y0 - 1], axis=1)
        rx0, ry0, rx1, ry1 = (float(v) for v in reg[0] * np.array([w, h, w, h], np.float32))
        return FaceLandmarks(
            points=points.astype(np.float32),
            box=(x0 + rx0, y0 + ry0, x1 + rx1, y1 + ry1),
            score=score,
        )

    def _cascade(
        self, pixels: np.ndarray, min_face_px: float, offset: tuple[float, float]
    ) -> list[FaceLandmarks]:
        image = _normalised(pixels)
        h, w = image.shape[:2]
        return _faces(self._stages(image, self._scales(h, w, min_face_px), offset))

    def _stages(
        self, image: np.ndarray, scales: list[float], offset: tuple[float, float]
    ) -> np.ndarray:
        """P-Net on the pyramid levels ``scales``, R-Net, O-Net: [K, 15] rows of box
        (x0, y0, x1, y1), score and the 5 landmarks (x, y), in the frame's pixels (``image``
        starts at ``offset`` in it); before the last NMS."""
        empty = np.empty((0, 15))
        with self._lock:
            boxes = self._proposals(image, scales)
            if not len(boxes):
                return empty
            reg, prob = self._run("rnet", _crops(image, boxes, 24))
            boxes[:, 4] = prob[:, 1]
            boxes = self._refine(boxes, reg)[prob[:, 1] > self.thresholds[1]]
            if not len(boxes):
                return empty
            boxes = boxes[nms(boxes[:, :4], boxes[:, 4], 0.7)]
            boxes[:, :4] = _square(boxes[:, :4])
            reg, marks, prob = self._run("onet", _crops(image, boxes, 48))
        w = boxes[:, 2:3] - boxes[:, 0:1] + 1
        h = boxes[:, 3:4] - boxes[:, 1:2] + 1
        xs = w * marks[:, 0:5] + boxes[:, 0:1] - 1 + offset[0]
        ys = h * marks[:, 5:10] + boxes[:, 1:2] - 1 + offset[1]
        boxes[:, 4] = prob[:, 1]
        boxes = self._refine(boxes, reg)
        boxes[:, [0, 2]] += offset[0]
        boxes[:, [1, 3]] += offset[1]
        good = prob[:, 1] > self.thresholds[2]
        points = np.stack([xs, ys], axis=2).reshape(-1, 10)
        return np.column_stack([boxes[good, :5], points[good]])


def _normalised(pixels: np.ndarray) -> np.ndarray:
    return (pixels.astype(np.float32) - 127.5) / 128.0  # RGB, as trained


def _side(row: np.ndarray) -> float:
    return float(max(row[2] - row[0], row[3] - row[1]))


def _faces(rows: np.ndarray) -> list[FaceLandmarks]:
    """The faces left after the cascade's last NMS, best score first."""
    if not len(rows):
        return []
    keep = nms(rows[:, :4], rows[:, 4], 0.7, by_min=True)
    return [
        FaceLandmarks(
            points=rows[k, 5:15].reshape(5, 2).astype(np.float32),
            box=(float(rows[k, 0]), float(rows[k, 1]), float(rows[k, 2]), float(rows[k, 3])),
            score=float(rows[k, 4]),
        )
        for k in keep
    ]
