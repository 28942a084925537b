"""Face detectors by name: OpenCV's Haar cascade (the course's) or MTCNN (stronger).

    find = get_detector("mtcnn")   # or "haar", the course's cascade: faces.detect_faces
    boxes = find(image)            # MTCNN: occluded, turned and small faces too

Every detector takes a gray (H, W) or RGB (H, W, 3) uint8 image and returns
boxes (x, y, w, h) in the image's pixels, clipped to the image, left to right:
what faces.detect_faces returns, so crop_face and annotate take them as they are.

- "haar": faces.detect_faces, OpenCV's frontal-face Haar cascade (notebooks 12 and 13). It looks
  for one upright, frontal pattern of light and dark: a hand over an eye, a head tilted by
  30 degrees or turned to the side, and the face is usually gone.
- "mtcnn": the Multi-task Cascaded Convolutional Network (Zhang et al., 2016). Three small
  CNNs: P-Net slides over a pyramid of the image and proposes windows, R-Net rejects most
  of them, O-Net scores the rest and tightens their boxes. Its 0.5 million weights (2 MB,
  fer_helpers/weights/mtcnn.pt, MIT licence: see MTCNN-LICENCE.md beside it) ship with the
  package and load with torch.load(..., weights_only=True); nothing is downloaded.

The networks and the three stages follow facenet-pytorch's MTCNN (MIT, (c) 2019 Timothy
Esler), itself a port of David Sandberg's TensorFlow MTCNN (MIT, (c) 2016) of Kaipeng Zhang's
original (MIT, (c) 2016); the weights are theirs, unchanged. Crops that reach past the
photo's edge are padded with black, as in the original.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from .errors import DataError, FerError
from .faces import MAX_SIDE, MIN_FACE, Box, detect_faces, to_gray

Detector = Callable[..., list[Box]]
"""A detector: detector(image, min_size=MIN_FACE) -> [(x, y, w, h), ...]."""

MTCNN_FILE = Path(__file__).parent / "weights" / "mtcnn.pt"
# The face probability a window must reach at P-, R- and O-Net: MTCNN's published defaults.
MTCNN_THRESHOLDS = (0.6, 0.7, 0.7)
MTCNN_FACTOR = 0.709  # each pyramid level's side is this times the last's (half the area)


def _as_image(image: np.ndarray) -> np.ndarray:
    """The image as uint8 (H, W) or (H, W, 3); DataError for anything else."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or not (
        image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)
    ):
        raise DataError(
            f"expected a gray (H, W) or RGB (H, W, 3) uint8 image, got {image.dtype} {image.shape}"
        )
    return np.ascontiguousarray(image)  # OpenCV refuses views such as a mirrored image[:, ::-1]


def clip_boxes(boxes, shape: tuple[int, ...]) -> list[Box]:
    """Boxes (x, y, w, h) cut to the image's (H, W): those left with no pixels are dropped."""
    rows, columns = shape[:2]
    clipped = []
    for x, y, w, h in boxes:
        x0, y0 = max(0, int(x)), max(0, int(y))
        x1, y1 = min(columns, int(x) + int(w)), min(rows, int(y) + int(h))
        if x1 > x0 and y1 > y0:
            clipped.append((x0, y0, x1 - x0, y1 - y0))
    return sorted(clipped)


def haar(image: np.ndarray, min_size: int = MIN_FACE) -> list[Box]:
    """OpenCV's Haar cascade (faces.detect_faces) on a gray or RGB image."""
    image = _as_image(image)
    return clip_boxes(detect_faces(to_gray(image), min_size=min_size), image.shape)


# --- MTCNN --------------------------------------------------------------------------------------


class PNet(nn.Module):
    """Proposal net: fully convolutional, one 12x12 window every 2 pixels."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)  # face or not
        self.conv4_2 = nn.Conv2d(32, 4, 1)  # box corrections

    def forward(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), torch.softmax(self.conv4_1(x), dim=1)


class RNet(nn.Module):
    """Refine net: a 24x24 crop in, face probability and box corrections out."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        # the weights come from Caffe by way of TensorFlow: flatten columns before rows
        x = self.prelu4(self.dense4(x.permute(0, 3, 2, 1).flatten(1)))
        return self.dense5_2(x), torch.softmax(self.dense5_1(x), dim=1)


class ONet(nn.Module):
    """Output net: a 48x48 crop in, face probability, box corrections, 5 landmarks out."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)  # landmarks: unused here

    def forward(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = self.prelu5(self.dense5(x.permute(0, 3, 2, 1).flatten(1)))
        return self.dense6_2(x), torch.softmax(self.dense6_1(x), dim=1)


@functools.cache
def mtcnn_nets() -> tuple[PNet, RNet, ONet]:
    """The three nets with the shipped weights, in eval mode: loaded once and reused."""
    if not MTCNN_FILE.is_file():
        raise DataError(f"MTCNN's weights {MTCNN_FILE} are missing: reinstall fer-helpers")
    state = torch.load(MTCNN_FILE, map_location="cpu", weights_only=True)
    nets = PNet(), RNet(), ONet()
    for name, net in zip(("pnet", "rnet", "onet"), nets):
        net.load_state_dict(state[name])
        net.eval().requires_grad_(False)
    return nets


def _normalise(pixels: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) or (H, W, 3) as the nets take it: float (N, 3, H, W) in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(pixels)).float()
    x = x.unsqueeze(0) if x.ndim == 3 else x
    return (x.permute(0, 3, 1, 2) - 127.5) * 0.0078125


def _square(boxes: np.ndarray) -> np.ndarray:
    """Corner boxes (x1, y1, x2, y2, ...) made square around their centres (side: the longer)."""
    boxes = boxes.copy()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    boxes[:, 0] += (w - side) / 2
    boxes[:, 1] += (h - side) / 2
    boxes[:, 2] = boxes[:, 0] + side
    boxes[:, 3] = boxes[:, 1] + side
    return boxes


def _shift(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Corner boxes moved by the nets' corrections, which are in units of the box's sides."""
    boxes = boxes.copy()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    boxes[:, :4] += offsets * np.stack([w, h, w, h], axis=1)
    return boxes


def _nms(boxes: np.ndarray, overlap: float, by_smaller: bool = False) -> np.ndarray:
    """Best-first non-maximum suppression of corner boxes with scores in column 4.

    A box is dropped when it overlaps a better one by more than `overlap`: intersection
    over union, or over the smaller box's area (by_smaller, the last stage's rule, which
    also drops a small box inside a larger one).
    """
    x0, y0, x1, y1 = boxes[:, :4].T
    area = (x1 - x0) * (y1 - y0)
    order, keep = np.argsort(-boxes[:, 4], kind="stable"), []
    while len(order):
        best, rest = order[0], order[1:]
        keep.append(best)
        inter_w = np.minimum(x1[best], x1[rest]) - np.maximum(x0[best], x0[rest])
        inter_h = np.minimum(y1[best], y1[rest]) - np.maximum(y0[best], y0[rest])
        inter = np.clip(inter_w, 0, None) * np.clip(inter_h, 0, None)
        union = area[best] + area[rest] - inter
        base = np.minimum(area[best], area[rest]) if by_smaller else union
        order = rest[inter <= overlap * np.maximum(base, 1e-9)]
    return boxes[keep]


def _crops(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """The boxes cut out of the RGB image and resized to size x size: uint8 (N, size, size, 3).

    The boxes are rounded to whole pixels; where one reaches past the edge, black fills it.
    """
    rows, columns = image.shape[:2]
    out = np.zeros((len(boxes), size, size, 3), dtype=np.uint8)
    for k, (x0, y0, x1, y1) in enumerate(np.fix(boxes[:, :4]).astype(int)):
        patch = np.zeros((max(1, y1 - y0), max(1, x1 - x0), 3), dtype=np.uint8)
        left, top = max(0, x0), max(0, y0)
        right, bottom = min(columns, x1), min(rows, y1)
        if right > left and bottom > top:
            patch[top - y0 : bottom - y0, left - x0 : right - x0] = image[top:bottom, left:right]
        out[k] = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    return out


def _proposals(image: np.ndarray, pnet: PNet, min_size: int, threshold: float) -> np.ndarray:
    """Stage 1: P-Net over a pyramid of the image; corner boxes (x1, y1, x2, y2, score)."""
    rows, columns = image.shape[:2]
    scale = 12 / min_size  # P-Net sees 12x12 windows: a face min_size wide becomes 12 wide
    found = []
    while min(rows, columns) * scale >= 12:
        size = (math.ceil(columns * scale), math.ceil(rows * scale))
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        offsets, probs = pnet(_normalise(small))
        face = probs[0, 1].numpy()
        ys, xs = np.nonzero(face >= threshold)
        if len(ys):
            corners = np.stack([xs, ys, xs, ys], axis=1).astype(np.float32) * 2
            corners[:, 2:] += 12  # each output cell sees 12x12 pixels, 2 pixels apart
            corrections = offsets[0].numpy()[:, ys, xs].T
            boxes = np.column_stack([corners / scale, face[ys, xs], corrections])
            found.append(_nms(boxes, 0.5))  # within this level first
        scale *= MTCNN_FACTOR
    if not found:
        return np.zeros((0, 5), dtype=np.float32)
    boxes = _nms(np.concatenate(found), 0.7)
    return _square(_shift(boxes[:, :5], boxes[:, 5:9]))


def _refine(image, boxes, net, size, threshold):
    """Stages 2 and 3: the net scores each box's crop; those above threshold, with the
    net's corrections in columns 5 to 8 (not yet applied)."""
    if len(boxes) == 0:
        return np.zeros((0, 9), dtype=np.float32)
    offsets, probs = net(_normalise(_crops(image, boxes, size)))
    score = probs[:, 1].numpy()
    passed = score > threshold
    return np.column_stack([boxes[passed, :4], score[passed], offsets[passed].numpy()])


def mtcnn(
    image: np.ndarray, min_size: int = MIN_FACE, thresholds: tuple = MTCNN_THRESHOLDS
) -> list[Box]:
    """Boxes (x, y, w, h) of the faces MTCNN finds in a gray or RGB uint8 image, left to right.

    min_size: faces narrower than this many pixels are neither sought (it sets the
    pyramid's largest level) nor reported (a face cut by the photo's edge counts whole).
    thresholds: the face probability P-, R- and O-Net each require (the last decides).
    A photo larger than MAX_SIDE pixels is searched at a smaller size, as by detect_faces.
    """
    image = _as_image(image)
    rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image
    shrink = min(1.0, MAX_SIDE / max(rgb.shape[:2]))
    if shrink < 1:
        rgb = cv2.resize(rgb, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
    pnet, rnet, onet = mtcnn_nets()
    with torch.inference_mode():
        boxes = _proposals(rgb, pnet, max(12, round(min_size * shrink)), thresholds[0])
        boxes = _nms(_refine(rgb, boxes, rnet, 24, thresholds[1]), 0.7)
        boxes = _square(_shift(boxes[:, :5], boxes[:, 5:9]))
        boxes = _refine(rgb, boxes, onet, 48, thresholds[2])
        boxes = _nms(_shift(boxes[:, :5], boxes[:, 5:9]), 0.7, by_smaller=True)
    corners = boxes[:, :4] / shrink  # back in the photo's pixels
    xywh = [(round(x0), round(y0), round(x1 - x0), round(y1 - y0)) for x0, y0, x1, y1 in corners]
    return clip_boxes([box for box in xywh if box[2] >= min_size], image.shape)


# --- by name --------------------------------------------------------------------------------------

DETECTORS: dict[str, Detector] = {"haar": haar, "mtcnn": mtcnn}
"""The face detectors by name; "haar" is the course's, and the default."""


def get_detector(name: str) -> Detector:
    """The detector called `name`; a FerError naming the choices for any other name."""
    if name not in DETECTORS:
        raise FerError(f"unknown face detector {name!r}: choose one of {', '.join(DETECTORS)}")
    return DETECTORS[name]
