"""Mouth region-of-interest (ROI) cropping from 68-point facial landmarks.

Recipe stage 2 (DESIGN §3–4: "96×96 greyscale mouth crops at 25 fps"),
issue 6 item 2. The procedure is the usual one of the VSR/AVSR literature the
MSRS paper builds on (similarity alignment to a mean face, then a fixed-size
crop around the mouth):

1. missing frames (no face / NaN landmarks) are filled by linear
   interpolation in time from the nearest valid frames (held at the ends);
2. landmarks are smoothed with a centred moving average over
   ``smooth_window`` frames;
3. per frame, a similarity transform (rotation, uniform scale, translation;
   Umeyama least squares) maps the stable points — nose base 33 and the eye
   corners 36, 39, 42, 45 — onto :data:`REFERENCE_68`, a mean frontal face in
   a 256 × 256 canvas (iBUG 68-point convention, outer eye corners 100 px
   apart, mouth ≈ 58 px wide);
4. a ``crop_size`` × ``crop_size`` patch of the aligned frame centred on the
   aligned mouth centre (mean of points 48–67) is sampled with bilinear
   interpolation (``scipy.ndimage.affine_transform``; one warp straight from
   the source frame, no intermediate full-size image).

Coordinates are ``(x, y)`` pixels with pixel centres at integers, the
convention of dlib/FAN landmark detectors. This module does not import espnet2.

Landmark files accepted by :func:`load_landmarks` (documented formats):

* ``.npy`` — a float array ``(T, 68, 2)`` (``(T, 68, 3)``: the third column,
  a score or depth, is dropped), NaN rows for frames without a face; or an
  object array of per-frame entries as in the pickle format below.
* ``.npz`` — the array under key ``landmarks`` (or the single array).
* ``.pkl`` / ``.pickle`` — a list (or tuple) with one entry per video frame,
  each ``None`` (no face detected) or array-like ``(68, 2)``; ``(1, 68, 2)``
  / ``(N, 68, 2)`` (first face is used) and ``(68, 3)`` are accepted too; or
  a dict with key ``landmarks``; or a ``(T, 68, 2)`` array. This is the
  layout of the public LRS3 / VoxCeleb2 landmark releases made with the
  RetinaFace detector + FAN 68-point aligner. Pickle files can execute code
  when loaded: only use landmark files from a source you trust.
"""

import logging
import os
import pickle
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import numpy as np
from scipy import ndimage

PathLike = Union[str, os.PathLike]
logger = logging.getLogger(__name__)

#: Points used for the alignment: nose base centre and the four eye corners.
STABLE_POINTS: Tuple[int, ...] = (33, 36, 39, 42, 45)
#: Outer (48–59) and inner (60–67) lip points.
MOUTH_POINTS: Tuple[int, ...] = tuple(range(48, 68))
#: Side of the canvas of :data:`REFERENCE_68` (pixels).
REFERENCE_SIZE = 256

#: Mean frontal face in the iBUG 68-point convention, ``(x, y)`` in a
#: 256 × 256 canvas: jaw 0–16, brows 17–26, nose 27–35, eyes 36–47, lips
#: 48–67. It equals the neutral face of the synthetic corpus
#: (``espnet_msrs.synth.face.neutral_landmarks()``), whose proportions follow
#: the usual mean face of 68-point detectors (nose base 0.6, mouth centre
#: 0.86 and chin 1.28 outer-eye-corner distances below the eyes).
# fmt: off
REFERENCE_68 = np.array(
    [
        (48.0, 118.0), (49.5, 141.8), (54.1, 164.7), (61.5, 185.8),  # 0-3
        (71.4, 204.3), (83.6, 219.4), (97.4, 230.7), (112.4, 237.7),  # 4-7
        (128.0, 240.0), (143.6, 237.7), (158.6, 230.7), (172.4, 219.4),  # 8-11
        (184.6, 204.3), (194.5, 185.8), (201.9, 164.7), (206.5, 141.8),  # 12-15
        (208.0, 118.0), (74.0, 89.0), (84.0, 85.0), (95.0, 84.0),  # 16-19
        (105.0, 86.0), (114.0, 90.0), (142.0, 90.0), (151.0, 86.0),  # 20-23
        (161.0, 84.0), (172.0, 85.0), (182.0, 89.0), (128.0, 112.0),  # 24-27
        (128.0, 128.0), (128.0, 144.0), (128.0, 160.0), (112.0, 168.0),  # 28-31
        (120.0, 171.0), (128.0, 173.0), (136.0, 171.0), (144.0, 168.0),  # 32-35
        (78.0, 112.0), (89.3, 106.0), (100.7, 106.0), (112.0, 112.0),  # 36-39
        (100.7, 117.1), (89.3, 117.1), (144.0, 112.0), (155.3, 106.0),  # 40-43
        (166.7, 106.0), (178.0, 112.0), (166.7, 117.1), (155.3, 117.1),  # 44-47
        (99.0, 198.0), (108.7, 193.3), (118.3, 191.2), (128.0, 191.4),  # 48-51
        (137.7, 191.2), (147.3, 193.3), (157.0, 198.0), (147.3, 204.2),  # 52-55
        (137.7, 206.0), (128.0, 206.5), (118.3, 206.0), (108.7, 204.2),  # 56-59
        (103.1, 198.0), (115.5, 198.0), (128.0, 198.0), (140.5, 198.0),  # 60-63
        (152.9, 198.0), (140.5, 198.0), (128.0, 198.0), (115.5, 198.0),  # 64-67
    ],
    dtype=np.float64,
)
# fmt: on


def _where(path: Optional[PathLike]) -> str:
    return f" in {path}" if path is not None else ""


def _frame_entry(entry, index: int, path: PathLike) -> np.ndarray:
    """One per-frame entry of a pickled list -> (68, 2) (NaN when None)."""
    if entry is None:
        return np.full((68, 2), np.nan)
    arr = np.asarray(entry, dtype=np.float64)
    if arr.ndim == 3 and arr.shape[0] >= 1:  # (faces, 68, 2|3): first face
        arr = arr[0]
    if arr.size == 0:
        return np.full((68, 2), np.nan)
    if arr.ndim != 2 or arr.shape[0] != 68 or arr.shape[1] not in (2, 3):
        raise ValueError(
            f"Landmark file {path}: frame {index} has shape {arr.shape}; "
            f"expected (68, 2), (68, 3), (N, 68, 2) or None"
        )
    return arr[:, :2]


def _as_landmarks(obj, path: PathLike) -> np.ndarray:
    """Any accepted in-memory layout -> (T, 68, 2) float64 with NaN gaps."""
    if isinstance(obj, dict):
        if "landmarks" not in obj:
            raise ValueError(
                f"Landmark file {path}: dict without key 'landmarks' "
                f"(keys: {sorted(map(str, obj))})"
            )
        obj = obj["landmarks"]
    if isinstance(obj, np.ndarray) and obj.dtype != object:
        arr = obj.astype(np.float64)
        if arr.ndim == 3 and arr.shape[1] == 68 and arr.shape[2] in (2, 3):
            return arr[:, :, :2].copy()
        raise ValueError(
            f"Landmark file {path}: array of shape {arr.shape}; expected (T, 68, 2)"
        )
    if isinstance(obj, (list, tuple, np.ndarray)):
        frames = [_frame_entry(e, i, path) for i, e in enumerate(obj)]
        if not frames:
            raise ValueError(f"Landmark file {path}: no frames")
        return np.stack(frames)
    raise ValueError(
        f"Landmark file {path}: unsupported content {type(obj).__name__}; "
        f"expected a (T, 68, 2) array or a list of per-frame (68, 2) arrays / None"
    )


def load_landmarks(path: PathLike) -> np.ndarray:
    """Load a per-video landmark file (formats: see the module docstring).

    Args:
        path: ``.npy``, ``.npz``, ``.pkl`` or ``.pickle`` file.

    Returns:
        (T, 68, 2) float64 ``(x, y)``; frames without a face are NaN.

    Raises:
        ValueError: missing/corrupt file or unsupported layout (names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Landmark file {path} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            obj = np.load(path, allow_pickle=True)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=True) as npz:
                if "landmarks" in npz.files:
                    obj = npz["landmarks"]
                elif len(npz.files) == 1:
                    obj = npz[npz.files[0]]
                else:
                    raise ValueError(
                        f"Landmark file {path}: npz needs key 'landmarks' "
                        f"(keys: {sorted(npz.files)})"
                    )
        elif suffix in (".pkl", ".pickle"):
            with open(path, "rb") as f:
                obj = pickle.load(f)
        else:
            raise ValueError(
                f"Landmark file {path}: unsupported suffix {suffix!r}; "
                f"allowed: .npy, .npz, .pkl, .pickle"
            )
    except ValueError:
        raise
    except (
        OSError,
        EOFError,
        pickle.UnpicklingError,
        AttributeError,
        ImportError,
    ) as e:
        raise ValueError(f"Landmark file {path} cannot be read: {e}") from e
    return _as_landmarks(obj, path)


def interpolate_missing(
    landmarks: np.ndarray, path: Optional[PathLike] = None
) -> np.ndarray:
    """Fill frames with any NaN coordinate by linear interpolation in time.

    Args:
        landmarks: (T, 68, 2); a frame is missing if any of its values is NaN.
        path: file named in the error message.

    Returns:
        (T, 68, 2) without NaN; leading/trailing gaps copy the nearest frame.

    Raises:
        ValueError: no frame has valid landmarks.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    valid = ~np.isnan(lm).reshape(len(lm), -1).any(axis=1)
    if not valid.any():
        raise ValueError(
            f"No valid landmarks (no face found in any frame){_where(path)}"
        )
    if valid.all():
        return lm.copy()
    t = np.arange(len(lm))
    flat = lm.reshape(len(lm), -1)
    out = np.empty_like(flat)
    for k in range(flat.shape[1]):
        out[:, k] = np.interp(t, t[valid], flat[valid, k])
    return out.reshape(lm.shape)


def smooth_landmarks(landmarks: np.ndarray, window: int = 5) -> np.ndarray:
    """Centred moving average over ``window`` frames (shrinking at the ends).

    Args:
        landmarks: (T, 68, 2) without NaN.
        window: odd or even number of frames; 1 disables smoothing.

    Returns:
        (T, 68, 2) float64.
    """
    if window < 1:
        raise ValueError(f"smooth_window={window} must be >= 1")
    lm = np.asarray(landmarks, dtype=np.float64)
    if window == 1 or len(lm) == 1:
        return lm.copy()
    half_lo, half_hi = (window - 1) // 2, window // 2
    csum = np.concatenate([np.zeros((1,) + lm.shape[1:]), np.cumsum(lm, axis=0)])
    t = np.arange(len(lm))
    lo = np.clip(t - half_lo, 0, len(lm))
    hi = np.clip(t + half_hi + 1, 0, len(lm))
    return (csum[hi] - csum[lo]) / (hi - lo)[:, None, None]


def estimate_similarity(
    src: np.ndarray, dst: np.ndarray
) -> Tuple[np.ndarray, np.ndarray]:
    """Least-squares similarity transform ``dst ≈ A @ src + t`` (Umeyama 1991).

    Args:
        src: (K, 2) points, K >= 2.
        dst: (K, 2) points.

    Returns:
        A: (2, 2) scaled rotation (no reflection); t: (2,).
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1.0
    rot = u @ np.diag(sign) @ vt
    var_s = (s0**2).sum() / len(src)
    scale = (sig * sign).sum() / max(var_s, 1e-12)
    a = scale * rot
    return a, mu_d - a @ mu_s


def crop_mouth(
    frames: np.ndarray,
    landmarks: np.ndarray,
    crop_size: int = 96,
    smooth_window: int = 5,
    reference: Optional[np.ndarray] = None,
    stable_points: Sequence[int] = STABLE_POINTS,
    max_length_mismatch: int = 3,
    path: Optional[PathLike] = None,
) -> np.ndarray:
    """Align each frame to the mean face and crop the mouth.

    Args:
        frames: (T, H, W) uint8 greyscale video.
        landmarks: (T', 68, 2) ``(x, y)`` landmarks, NaN for missing frames.
        crop_size: side of the output crop (pixels of the 256-pixel
            reference face; 96 frames the lips, nose base and chin).
        smooth_window: frames of the centred moving average of landmarks.
        reference: (68, 2) mean face (default :data:`REFERENCE_68`).
        stable_points: landmark indices used for the alignment.
        max_length_mismatch: tolerated ``|T' - T|``; extra landmark frames are
            dropped, missing ones are treated as missing frames.
        path: video/landmark file named in error messages.

    Returns:
        (T, crop_size, crop_size) uint8.

    Raises:
        ValueError: bad shapes, a landmark/frame count mismatch beyond
            ``max_length_mismatch``, or no valid landmark (names ``path``).
    """
    frames = np.asarray(frames)
    if frames.ndim != 3 or frames.dtype != np.uint8 or frames.shape[0] == 0:
        raise ValueError(
            f"crop_mouth{_where(path)}: frames must be uint8 (T, H, W), "
            f"got {frames.dtype} {frames.shape}"
        )
    if crop_size < 8:
        raise ValueError(f"crop_size={crop_size} must be >= 8")
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.ndim != 3 or lm.shape[1:] != (68, 2):
        raise ValueError(
            f"crop_mouth{_where(path)}: landmarks must have shape (T, 68, 2), "
            f"got {lm.shape}"
        )
    num = frames.shape[0]
    if abs(len(lm) - num) > max_length_mismatch:
        raise ValueError(
            f"crop_mouth{_where(path)}: {len(lm)} landmark frames for {num} video "
            f"frames (tolerance max_length_mismatch={max_length_mismatch})"
        )
    if len(lm) != num:
        logger.warning(
            "landmark frames=%d video frames=%d%s: padding/truncating landmarks",
            len(lm),
            num,
            _where(path),
        )
        fixed = np.full((num, 68, 2), np.nan)
        fixed[: min(num, len(lm))] = lm[:num]
        lm = fixed
    ref = REFERENCE_68 if reference is None else np.asarray(reference, dtype=np.float64)
    stable = list(stable_points)
    lm = smooth_landmarks(interpolate_missing(lm, path), smooth_window)

    out = np.empty((num, crop_size, crop_size), dtype=np.uint8)
    half = (crop_size - 1) / 2.0
    mouth = list(MOUTH_POINTS)
    for t in range(num):
        a, shift = estimate_similarity(lm[t, stable], ref[stable])
        centre = (lm[t, mouth] @ a.T + shift).mean(0)  # aligned mouth centre
        # Crop pixel (x_c, y_c) = reference point centre + (x_c, y_c) - half,
        # whose source pixel is A^-1 (ref - shift). In (row, col) order:
        inv = np.linalg.inv(a)
        matrix = inv[::-1, ::-1]
        origin = inv @ (centre - half - shift)  # source (x, y) of crop pixel (0, 0)
        crop = ndimage.affine_transform(
            frames[t].astype(np.float32),
            matrix,
            offset=origin[::-1],
            output_shape=(crop_size, crop_size),
            order=1,
            mode="nearest",
        )
        out[t] = np.clip(np.rint(crop), 0, 255).astype(np.uint8)
    return out
