"""numpy <-> QImage conversions (copies, so no QImage ever points into freed numpy memory)."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage


def from_array(arr: np.ndarray) -> QImage:
    """uint8 ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` to a QImage (RGBA8888 for 4 channels)."""
    a = np.ascontiguousarray(arr, dtype=np.uint8)
    if a.ndim == 3 and a.shape[2] == 1:
        a = np.ascontiguousarray(a[..., 0])
    h, w = a.shape[:2]
    if a.ndim == 2:
        img = QImage(a.data, w, h, w, QImage.Format.Format_Grayscale8)
    elif a.shape[2] == 3:
        img = QImage(a.data, w, h, 3 * w, QImage.Format.Format_RGB888)
    else:
        img = QImage(a.data, w, h, 4 * w, QImage.Format.Format_RGBA8888)
    return img.copy()


def to_rgba(img: QImage) -> np.ndarray:
    """A QImage as uint8 ``(H, W, 4)`` RGBA (straight alpha)."""
    im = img.convertToFormat(QImage.Format.Format_RGBA8888)
    h, w = im.height(), im.width()
    buf = np.frombuffer(im.constBits(), dtype=np.uint8, count=im.bytesPerLine() * h)
    return buf.reshape(h, im.bytesPerLine())[:, : 4 * w].reshape(h, w, 4).copy()


def alpha_of(img: QImage) -> np.ndarray:
    """The alpha channel of a QImage as float32 ``(H, W)`` in [0, 1]."""
    return to_rgba(img)[..., 3].astype(np.float32) / 255.0
