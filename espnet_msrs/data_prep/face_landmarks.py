"""Offline 68-point face landmarks (MediaPipe Face Mesh) for corpora without a release.

Mouth-ROI preprocessing (stage 2) needs per-frame iBUG 68-point landmarks.
When a corpus comes without them, they are detected with MediaPipe Face
Mesh, whose face-detection and 468-point mesh models ship inside the
``mediapipe`` wheel (no run-time download):

1. every frame (RGB) goes through ``mediapipe.solutions.face_mesh.FaceMesh``
   in video mode (detection, then tracking; a fresh tracker per video);
   when several faces are found the largest one is kept;
2. the mesh points are mapped to the 68-point convention by
   :data:`MESH_TO_IBUG68` — one mesh vertex per iBUG point, chosen at the
   same anatomical place (eye corners and lids, subnasale and alae, lip
   corners, lip midlines, jaw line, brows); the points the ROI crop uses
   (nose base 33, eye corners 36/39/42/45, lips 48–67) are exact
   counterparts;
3. frames without a face are NaN rows (the cropper interpolates them).

mediapipe 0.10.21 pins ``numpy<2`` while the project's environment has numpy
2, so this module runs in a separate environment (``local/make_landmark_env.sh``
at the repository root) through ``espnet_msrs/bin/detect_landmarks.py``; it
needs numpy, mediapipe and OpenCV or PyAV only (no torch, no espnet2).
"""

import logging
import sys
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np

from espnet_msrs.utils import atomic
from espnet_msrs.utils.parallel import parallel_map

logger = logging.getLogger(__name__)

# fmt: off
#: MediaPipe Face Mesh vertex for each iBUG 68-point landmark (image-left =
#: the subject's right side first, as in iBUG).
MESH_TO_IBUG68: Tuple[int, ...] = (
    # jaw 0-16: ear level on the image left, down to the chin (8), up again
    234, 93, 132, 58, 172, 136, 150, 176, 152, 400, 379, 365, 397, 288, 361, 323, 454,
    # brows 17-21 (image left, outer -> inner), 22-26 (inner -> outer)
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    # nose bridge 27-30 (top -> tip), nose base 31-35 (image left -> right)
    168, 197, 5, 4, 98, 97, 2, 326, 327,
    # eyes 36-41 (outer, upper x2, inner, lower x2) and 42-47 (inner, upper x2,
    # outer, lower x2)
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,
    # outer lips 48-59 (left corner, upper lip to the right corner, lower back)
    61, 40, 37, 0, 267, 270, 291, 321, 314, 17, 84, 91,
    # inner lips 60-67
    78, 81, 13, 311, 308, 402, 14, 178,
)
# fmt: on


def mesh_to_ibug68(mesh: np.ndarray) -> np.ndarray:
    """Map Face Mesh points to the iBUG 68-point convention.

    Args:
        mesh: (468, D) or (478, D) mesh points (D >= 2; ``(x, y)`` first).

    Returns:
        (68, 2) float64.
    """
    mesh = np.asarray(mesh, dtype=np.float64)
    if mesh.ndim != 2 or mesh.shape[0] < 468 or mesh.shape[1] < 2:
        raise ValueError(f"face mesh must have shape (468|478, >=2), got {mesh.shape}")
    return mesh[list(MESH_TO_IBUG68), :2]


class FaceMeshDetector:
    """MediaPipe Face Mesh on RGB frames -> iBUG 68 points (one video).

    Args:
        min_detection_confidence: Face detector threshold.
        min_tracking_confidence: Below this the face is re-detected.
        max_num_faces: Faces searched per frame; the largest is returned.
    """

    def __init__(
        self,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        max_num_faces: int = 2,
    ):
        try:
            import mediapipe as mp
        except ImportError as e:
            raise RuntimeError(
                "mediapipe is not importable from this interpreter "
                f"({sys.executable}); create the landmark environment with "
                "local/make_landmark_env.sh (at the repository root) and run "
                "espnet_msrs/bin/detect_landmarks.py with its python"
            ) from e
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=False,
            max_num_faces=max_num_faces,
            refine_landmarks=False,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence,
        )

    def __call__(self, rgb: np.ndarray) -> Optional[np.ndarray]:
        """(H, W, 3) uint8 RGB -> (68, 2) ``(x, y)`` pixels, or None."""
        result = self._mesh.process(rgb)
        if not result.multi_face_landmarks:
            return None
        height, width = rgb.shape[:2]
        best, best_area = None, -1.0
        for face in result.multi_face_landmarks:
            pts = np.array([(p.x * width, p.y * height) for p in face.landmark])
            span = pts.max(0) - pts.min(0)
            if span[0] * span[1] > best_area:
                best, best_area = pts, span[0] * span[1]
        return mesh_to_ibug68(best)

    def close(self) -> None:
        self._mesh.close()


def read_rgb_frames(path: str) -> Iterator[np.ndarray]:
    """Yield the RGB frames of a video (OpenCV, else PyAV)."""
    try:
        import cv2
    except ImportError:
        cv2 = None
    if cv2 is not None:
        cap = cv2.VideoCapture(path)
        if not cap.isOpened():
            raise ValueError(f"cannot open video {path}")
        try:
            while True:
                ok, bgr = cap.read()
                if not ok:
                    break
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        finally:
            cap.release()
        return
    import av

    with av.open(path) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24")


def detect_video(
    frames: Iterator[np.ndarray], detector: Callable[[np.ndarray], Optional[np.ndarray]]
) -> np.ndarray:
    """Run a per-frame detector over a video.

    Returns:
        (T, 68, 2) float32; NaN rows for frames without a face.
    """
    out: List[np.ndarray] = []
    for rgb in frames:
        points = detector(rgb)
        out.append(
            np.full((68, 2), np.nan) if points is None else np.asarray(points)[:, :2]
        )
    if not out:
        raise ValueError("no frame could be decoded")
    return np.stack(out).astype(np.float32)


DetectorFactory = Callable[[], Callable[[np.ndarray], Optional[np.ndarray]]]


def _job(
    args: Tuple[str, str, str, DetectorFactory],
) -> Tuple[str, str, Optional[str], int, int]:
    """Detect one video -> (uid, status, reason, frames, frames_without_face)."""
    uid, video, out, factory = args
    if Path(out).is_file():
        return uid, "skipped", None, 0, 0
    detector = factory()
    try:
        landmarks = detect_video(read_rgb_frames(video), detector)
    except (ValueError, OSError, RuntimeError) as e:
        return uid, "failed", f"{video}: {' '.join(str(e).split())}", 0, 0
    finally:
        if hasattr(detector, "close"):
            detector.close()
    missing = int(np.isnan(landmarks).reshape(len(landmarks), -1).any(1).sum())
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_open(out, "wb") as f:
        np.save(f, landmarks)
    if missing == len(landmarks):
        return (
            uid,
            "noface",
            f"{video}: no face found in any of {len(landmarks)} frames",
            len(landmarks),
            missing,
        )
    return uid, "written", None, len(landmarks), missing


def detect_scp(
    videos: Dict[str, str],
    out_dir: Path,
    factory: DetectorFactory,
    nj: int = 1,
) -> Tuple[Dict[str, str], List[Tuple[str, str]]]:
    """Detect landmarks for every ``<uid> <video>`` entry.

    Args:
        videos: uid -> video path.
        out_dir: Where ``<uid>.npy`` files go.
        factory: Builds a per-frame detector for one video (called in the
            worker processes; picklable when ``nj > 1``).
        nj: Parallel processes.

    Returns:
        (uid -> landmark file for every video that could be decoded,
        [(uid, reason)] of the failed ones — undecodable, or no face at all).
    """
    jobs = [(u, v, str(out_dir / f"{u}.npy"), factory) for u, v in videos.items()]
    for uid, _, _, _ in jobs:
        if "/" in uid or uid.startswith("."):
            raise ValueError(f"utterance id {uid!r} is not a valid file name")
    scp: Dict[str, str] = {}
    failed: List[Tuple[str, str]] = []

    def _report(job, result) -> None:
        uid, status, reason, _, _ = result
        if reason is not None:
            logger.warning("utt_id=%s %s", uid, reason)

    # MediaPipe graphs run threads: never fork a process that has one.
    results = parallel_map(_job, jobs, nj=nj, what="videos", start_method="spawn",
                           on_result=_report)
    frames = missing = 0
    for uid, status, reason, n, m in results:
        frames, missing = frames + n, missing + m
        if status != "failed":
            scp[uid] = str(out_dir / f"{uid}.npy")
        if reason is not None:
            failed.append((uid, reason))
    if frames:
        logger.info(
            "frames=%d frames_without_face=%d (%.1f%%)",
            frames,
            missing,
            100.0 * missing / frames,
        )
    return scp, failed


class MeshFactory:
    """Picklable factory of :class:`FaceMeshDetector` (for worker processes)."""

    def __init__(self, detection: float, tracking: float):
        self.detection, self.tracking = detection, tracking

    def __call__(self) -> FaceMeshDetector:
        return FaceMeshDetector(self.detection, self.tracking)
