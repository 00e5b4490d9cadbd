"""Greyscale talking-face rendering driven by a phoneme timeline (visemes).

Part of the synthetic GRID-like audio-visual corpus (issue 5, item 3). A face
is drawn with numpy (and one ``scipy.ndimage`` warp per frame) at 25 fps:

* per-speaker appearance (:class:`FaceAppearance`): skin tone, face size and
  shape, eye spacing and height, brows, hair, lips, mouth width, background;
* a mouth whose opening, width, rounding, lip thickness, teeth and tongue
  follow viseme targets (:data:`VISEMES`) derived from the eSpeak phonemes;
  targets are held over each phoneme (diphthongs move between two targets)
  and smoothed with a Gaussian (co-articulation), then sampled at frame
  centres ``(k + 0.5) / fps``;
* small smooth head motion (rotation, translation, scale), applied to the
  image and the landmarks with the same similarity transform;
* 68-point iBUG landmarks ``(T, 68, 2)`` in pixel coordinates ``(x, y)``
  (pixel centres at integers), consistent with the drawing: the eyes, brows,
  nose and mouth are drawn *from* the landmark geometry, and mouth points
  48–67 follow the drawn lips frame by frame.

The neutral geometry (``neutral_landmarks``) is the mean-face reference used
by :mod:`espnet_msrs.video.roi`.
"""

import logging
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

logger = logging.getLogger(__name__)

#: Side of the canvas in which the neutral geometry is defined (pixels).
REFERENCE_SIZE = 256.0
_FACE_CENTRE = np.array([128.0, 118.0])  # centre of the face ellipse (x, y)
_MOUTH_CENTRE = np.array([128.0, 198.0])  # rest mouth centre (x, y)


# --------------------------------------------------------------------- visemes
@dataclass(frozen=True)
class MouthPose:
    """Mouth shape parameters, in reference pixels (256-pixel face canvas).

    Args:
        open: vertical inner-lip opening at the centre.
        width: corner-to-corner width of the mouth.
        round: lip rounding / protrusion 0..1 (rounder opening, thicker lips).
        upper_teeth: visibility of the upper teeth 0..1.
        lower_teeth: visibility of the lower teeth 0..1.
        tongue: visibility of the tongue tip 0..1.
        tuck: lower lip drawn under the upper teeth 0..1 (f, v).
    """

    open: float
    width: float
    round: float = 0.0
    upper_teeth: float = 0.0
    lower_teeth: float = 0.0
    tongue: float = 0.0
    tuck: float = 0.0

    def as_array(self) -> np.ndarray:
        """(7,) float64 in field order."""
        return np.array(
            [
                self.open,
                self.width,
                self.round,
                self.upper_teeth,
                self.lower_teeth,
                self.tongue,
                self.tuck,
            ]
        )


#: Viseme classes and their mouth targets.
VISEMES: Dict[str, MouthPose] = {
    "rest": MouthPose(0.0, 58.0),
    "bilabial": MouthPose(0.0, 54.0, round=0.15),  # p b m: lips pressed
    "labiodental": MouthPose(3.0, 58.0, upper_teeth=1.0, tuck=1.0),  # f v
    "dental": MouthPose(6.0, 60.0, upper_teeth=0.8, lower_teeth=0.4, tongue=1.0),
    "alveolar": MouthPose(5.0, 62.0, upper_teeth=1.0, lower_teeth=1.0),  # t d s z n
    "lateral": MouthPose(9.0, 60.0, upper_teeth=0.6, tongue=0.7),  # l
    "postalveolar": MouthPose(6.0, 46.0, round=0.7, upper_teeth=1.0, lower_teeth=0.8),
    "rhotic": MouthPose(6.0, 48.0, round=0.55, upper_teeth=0.3),  # r
    "velar": MouthPose(8.0, 58.0, upper_teeth=0.4, lower_teeth=0.2),  # k g N h j
    "open": MouthPose(20.0, 62.0, upper_teeth=0.5),  # a A aa
    "mid": MouthPose(12.0, 62.0, upper_teeth=0.4),  # E @ 3 V
    "spread": MouthPose(7.0, 72.0, upper_teeth=0.9, lower_teeth=0.6),  # i I e
    "rounded": MouthPose(5.0, 36.0, round=1.0),  # u U w
    "round_open": MouthPose(13.0, 44.0, round=0.7, upper_teeth=0.2),  # o O
}

# eSpeak (Kirshenbaum-like) mnemonics of the English phoneme tables -> viseme,
# or a pair of visemes for diphthongs.
_PHONEME_VISEMES: Dict[str, Tuple[str, ...]] = {}


def _register(visemes: Tuple[str, ...], *names: str) -> None:
    for name in names:
        _PHONEME_VISEMES[name] = visemes


_register(("bilabial",), "p", "b", "m", "m-")
_register(("labiodental",), "f", "v")
_register(("dental",), "T", "D")
_register(("alveolar",), "t", "d", "s", "z", "n", "n-", "t2", "d2", "?", "n2")
_register(("lateral",), "l", "l/", "l/2", "L", "@L", "l-")
_register(("postalveolar",), "S", "Z", "tS", "dZ")
_register(("rhotic",), "r", "r-", "r/", "3", "3:", "@r", "a#r")
_register(("velar",), "k", "g", "N", "h", "j", "x", "C")
_register(("rounded",), "w", "u:", "U", "u", "W")
_register(("open",), "a", "a#", "A:", "A", "aa", "A@", "0", "a:")
_register(("mid",), "E", "@", "@2", "@5", "V", "e@", "I2", "@-", "3-")
_register(("spread",), "i:", "i", "I", "e", "I#", "i@3")
_register(("round_open",), "o:", "O:", "O", "o", "O@", "o@", "0:", "U@")
_register(("open", "spread"), "aI", "aI@", "aI3")
_register(("open", "rounded"), "aU", "aU@")
_register(("mid", "spread"), "eI")
_register(("round_open", "rounded"), "oU", "@U")
_register(("round_open", "spread"), "OI")
_register(("spread", "mid"), "i@")
# Markers with a duration but no articulation of their own (";" links
# words): the mouth holds the previous target.
_register((), ";", "|", "||")
_register(("rounded", "mid"), "u@")


def phoneme_visemes(phoneme: str) -> Tuple[str, ...]:
    """Viseme class(es) of an eSpeak phoneme mnemonic (stress marks removed).

    Unknown phonemes fall back by their first character (consonant classes)
    or to ``"mid"``. Diphthongs return two classes (first and second half);
    linking markers (``";"``) return ``()``: the mouth holds its last target.
    """
    name = phoneme.lstrip("',%=")
    if name in _PHONEME_VISEMES:
        return _PHONEME_VISEMES[name]
    if not any(ch.isalnum() for ch in name):
        return ()
    stripped = name.rstrip("#/-:;2345")
    if stripped in _PHONEME_VISEMES:
        return _PHONEME_VISEMES[stripped]
    if name[:1] in _PHONEME_VISEMES:
        return _PHONEME_VISEMES[name[:1]]
    logger.debug("phoneme=%r has no viseme; using 'mid'", phoneme)
    return ("mid",)


def mouth_trajectory(
    phonemes: Sequence[Tuple[str, float, float]],
    num_frames: int,
    fps: float = 25.0,
    smooth_s: float = 0.022,
    anticipation_s: float = 0.02,
) -> np.ndarray:
    """Per-frame mouth parameters from a phoneme timeline.

    Args:
        phonemes: ``[(phoneme, start_s, end_s)]``; gaps are silence (rest).
        num_frames: number of output frames T.
        fps: frame rate.
        smooth_s: standard deviation of the Gaussian co-articulation smoothing.
        anticipation_s: the mouth leads the audio by this much (seconds).

    Returns:
        (T, 7) float64: :class:`MouthPose` fields per frame.
    """
    step = 0.002
    duration = num_frames / fps
    grid = np.arange(0.0, duration + 4 * smooth_s, step)
    rest = VISEMES["rest"].as_array()
    targets = np.repeat(rest[None], len(grid), axis=0)
    previous: Tuple[str, ...] = ("rest",)
    for name, start, end in phonemes:
        classes = phoneme_visemes(name) or previous[-1:]
        previous = classes
        start, end = start - anticipation_s, end - anticipation_s
        bounds = np.linspace(start, end, len(classes) + 1)
        for cls, lo, hi in zip(classes, bounds[:-1], bounds[1:]):
            sel = (grid >= lo) & (grid < hi)
            targets[sel] = VISEMES[cls].as_array()
    smooth = ndimage.gaussian_filter1d(targets, smooth_s / step, axis=0, mode="nearest")
    times = (np.arange(num_frames) + 0.5) / fps
    index = np.clip(np.round(times / step).astype(int), 0, len(grid) - 1)
    return smooth[index]


# ------------------------------------------------------------------ appearance
@dataclass(frozen=True)
class FaceAppearance:
    """Per-speaker look. Lengths are relative factors unless noted.

    Args:
        skin: skin grey level 0..255.
        background: background grey level.
        hair: hair grey level.
        hairline: hairline height offset (reference pixels, + = lower).
        face_scale: overall size of the face in the frame.
        face_aspect: width/height factor of the face ellipse.
        eye_spacing: offset of the eye centres from the midline (ref px).
        eye_height: vertical offset of the eyes (ref px).
        eye_size: eye size factor.
        brow_weight: brow stroke thickness factor.
        mouth_width: mouth width factor.
        mouth_height: vertical offset of the mouth (ref px).
        lip_tone: lip grey level relative to the skin (0..1, smaller = darker).
        lip_thickness: lip thickness factor.
        shading: strength of the left/right lighting gradient (-1..1).
    """

    skin: float = 170.0
    background: float = 70.0
    hair: float = 45.0
    hairline: float = 0.0
    face_scale: float = 1.0
    face_aspect: float = 1.0
    eye_spacing: float = 0.0
    eye_height: float = 0.0
    eye_size: float = 1.0
    brow_weight: float = 1.0
    mouth_width: float = 1.0
    mouth_height: float = 0.0
    lip_tone: float = 0.62
    lip_thickness: float = 1.0
    shading: float = 0.0

    @staticmethod
    def sample(rng: np.random.Generator) -> "FaceAppearance":
        """Draw a random appearance from ``rng``."""
        skin = rng.uniform(120, 205)
        dark_bg = rng.random() < 0.5
        return FaceAppearance(
            skin=skin,
            background=rng.uniform(25, 75) if dark_bg else rng.uniform(205, 240),
            hair=rng.uniform(15, 90) if rng.random() < 0.8 else rng.uniform(150, 200),
            hairline=rng.uniform(-8, 10),
            face_scale=rng.uniform(0.92, 1.06),
            face_aspect=rng.uniform(0.92, 1.08),
            eye_spacing=rng.uniform(-4, 4),
            eye_height=rng.uniform(-4, 4),
            eye_size=rng.uniform(0.85, 1.15),
            brow_weight=rng.uniform(0.7, 1.4),
            mouth_width=rng.uniform(0.9, 1.1),
            mouth_height=rng.uniform(-4, 4),
            lip_tone=rng.uniform(0.5, 0.72),
            lip_thickness=rng.uniform(0.8, 1.25),
            shading=rng.uniform(-0.6, 0.6),
        )


# -------------------------------------------------------------------- geometry
def _mouth_curves(pose: np.ndarray, app: FaceAppearance):
    """Lip curve functions of x (relative to the mouth centre), ref pixels."""
    open_, width, rnd, _, _, _, tuck = pose
    w = max(width * app.mouth_width, 8.0)
    wi = 0.86 * w  # inner corners sit inside the outer corners
    exponent = 0.5 + 0.35 * (1.0 - rnd)  # round -> elliptic opening
    t_up = (6.5 + 2.5 * rnd) * app.lip_thickness
    t_low = (8.5 + 2.5 * rnd - 3.0 * tuck) * app.lip_thickness
    drop = 0.35 * open_  # the jaw carries the lower lip: opening centre moves down
    lift = 1.5 * tuck  # f/v: lower lip pulled up under the upper teeth

    def centre_line(x):
        return (drop - lift) * np.clip(1 - (2 * x / w) ** 2, 0, 1)

    def half_open(x):
        return 0.5 * open_ * np.clip(1 - (2 * x / wi) ** 2, 0, 1) ** exponent

    def thickness(x):
        return np.clip(1 - (2 * x / w) ** 2, 0, 1) ** 0.55

    def bow(x):  # Cupid's bow: two peaks either side of the philtrum
        return 1.4 * np.exp(-(((np.abs(x) - 0.11 * w) / (0.07 * w)) ** 2))

    def upper_inner(x):
        return centre_line(x) - half_open(x)

    def lower_inner(x):
        return centre_line(x) + half_open(x)

    def upper_outer(x):
        return upper_inner(x) - t_up * thickness(x) - bow(x) * thickness(x)

    def lower_outer(x):
        return lower_inner(x) + t_low * thickness(x)

    return w, wi, upper_outer, upper_inner, lower_inner, lower_outer


def _mouth_landmarks(pose: np.ndarray, app: FaceAppearance, centre: np.ndarray):
    """Points 48..67 (20, 2) for one mouth pose, ref pixels."""
    w, wi, uo, ui, li, lo = _mouth_curves(pose, app)
    outer_up_x = np.array([-w / 3, -w / 6, 0.0, w / 6, w / 3])
    inner_x = np.array([-wi / 4, 0.0, wi / 4])
    pts = [(-w / 2, 0.0)]
    pts += [(x, uo(x)) for x in outer_up_x]  # 49..53
    pts += [(w / 2, 0.0)]  # 54
    pts += [(x, lo(x)) for x in outer_up_x[::-1]]  # 55..59 (right to left)
    pts += [(-wi / 2, 0.0)]  # 60
    pts += [(x, ui(x)) for x in inner_x]  # 61..63
    pts += [(wi / 2, 0.0)]  # 64
    pts += [(x, li(x)) for x in inner_x[::-1]]  # 65..67 (right to left)
    return np.asarray(pts, dtype=np.float64) + centre


def _static_landmarks(app: FaceAppearance) -> np.ndarray:
    """Points 0..47 (48, 2) of a speaker's face, ref pixels (before scaling)."""
    cx, cy = _FACE_CENTRE
    a, b = 80.0 * app.face_aspect, 122.0
    theta = np.pi * np.arange(17) / 16
    jaw = np.stack([cx - a * np.cos(theta), cy + b * np.sin(theta)], axis=1)
    ey = 112.0 + app.eye_height
    half_w = 17.0 * app.eye_size
    half_h = 6.0 * app.eye_size
    pts = np.zeros((48, 2))
    pts[0:17] = jaw
    for sign in (-1.0, 1.0):  # image-left eye, image-right eye
        ex = cx + sign * (33.0 + app.eye_spacing)
        # Brows: 17..21 run left to right over the image-left eye, 22..26
        # left to right over the image-right eye (iBUG order).
        if sign < 0:
            bx, rise = [-21.0, -11.0, 0.0, 10.0, 19.0], [2.0, 6.0, 7.0, 5.0, 1.0]
        else:
            bx, rise = [-19.0, -10.0, 0.0, 11.0, 21.0], [1.0, 5.0, 7.0, 6.0, 2.0]
        brow = np.stack(
            [ex + np.asarray(bx) * app.eye_size, ey - 21.0 - np.asarray(rise)], 1
        )
        if sign < 0:
            pts[17:22] = brow
        else:
            pts[22:27] = brow
        # Eye: outer corner, two upper-lid points, inner corner, two lower-lid.
        outer, inner = ex + sign * half_w, ex - sign * half_w
        upper = [ex + sign * half_w / 3, ex - sign * half_w / 3]
        eye = [
            (outer, ey),
            (upper[0], ey - half_h),
            (upper[1], ey - half_h),
            (inner, ey),
            (upper[1], ey + half_h * 0.85),
            (upper[0], ey + half_h * 0.85),
        ]
        if sign < 0:
            pts[36:42] = eye  # 36 outer, 37 38 upper, 39 inner, 40 41 lower
        else:
            # 42 inner, 43 44 upper, 45 outer, 46 47 lower (clockwise in image)
            pts[42:48] = [eye[3], eye[2], eye[1], eye[0], eye[5], eye[4]]
    # Nose 27..30 (bridge, top to tip) and 31..35 (base, left to right).
    pts[27:31] = np.stack([np.full(4, cx), np.linspace(ey, 160.0, 4)], 1)
    pts[31:36] = np.stack(
        [
            cx + np.array([-16.0, -8.0, 0.0, 8.0, 16.0]),
            168.0 + np.array([0, 3, 5, 3, 0]),
        ],
        1,
    )
    return pts


def neutral_landmarks(size: float = REFERENCE_SIZE) -> np.ndarray:
    """The neutral (average-speaker, closed-mouth) 68-point face.

    Args:
        size: canvas side; the geometry is defined for 256 and scaled.

    Returns:
        (68, 2) float64 ``(x, y)`` landmarks in a ``size`` × ``size`` canvas.
    """
    app = FaceAppearance()
    pts = np.concatenate(
        [
            _static_landmarks(app),
            _mouth_landmarks(VISEMES["rest"].as_array(), app, _MOUTH_CENTRE),
        ]
    )
    return pts * (size / REFERENCE_SIZE)


# ------------------------------------------------------------------- rendering
def _soft(d: np.ndarray) -> np.ndarray:
    """Coverage of a pixel at signed distance ``d`` (negative = inside)."""
    return np.clip(0.5 - d, 0.0, 1.0)


def _paint(img, alpha, value):
    img *= 1 - alpha
    img += alpha * value


def _ellipse_alpha(X, Y, cx, cy, a, b):
    r = np.sqrt(((X - cx) / a) ** 2 + ((Y - cy) / b) ** 2)
    return _soft((r - 1.0) * min(a, b))


def _polyline_alpha(X, Y, pts, radius):
    d = np.full(X.shape, np.inf)
    for p, q in zip(pts[:-1], pts[1:]):
        v = q - p
        t = np.clip(((X - p[0]) * v[0] + (Y - p[1]) * v[1]) / max(v @ v, 1e-9), 0, 1)
        d = np.minimum(d, np.hypot(X - p[0] - t * v[0], Y - p[1] - t * v[1]))
    return _soft(d - radius)


class FaceRenderer:
    """Renders one speaker's face; the static parts are drawn once.

    Args:
        appearance: the speaker's look.
        frame_size: output frames are ``frame_size`` × ``frame_size`` (even).
    """

    def __init__(self, appearance: FaceAppearance, frame_size: int = 160):
        if frame_size < 64 or frame_size % 2:
            raise ValueError(f"frame_size={frame_size} must be even and >= 64")
        self.app = appearance
        self.size = frame_size
        # Reference (256) -> canonical frame coordinates.
        self.scale = frame_size / REFERENCE_SIZE * 0.98 * appearance.face_scale
        self.offset = np.array(
            [frame_size / 2.0, frame_size / 2.0]
        ) - self.scale * np.array([128.0, 140.0])
        self.static_ref = _static_landmarks(appearance)
        self.mouth_centre_ref = _MOUTH_CENTRE + np.array([0.0, appearance.mouth_height])
        self.base = self._draw_static()

    def to_frame(self, pts_ref: np.ndarray) -> np.ndarray:
        """Map reference coordinates (..., 2) into the canonical frame."""
        return pts_ref * self.scale + self.offset

    def _draw_static(self) -> np.ndarray:
        app, s, n = self.app, self.scale, self.size
        Y, X = np.mgrid[0:n, 0:n].astype(np.float64)
        img = np.full((n, n), app.background, dtype=np.float64)
        img += (Y / n - 0.5) * 18.0  # background gradient
        fc = self.to_frame(_FACE_CENTRE)
        a, b = 80.0 * app.face_aspect * s, 122.0 * s
        # Hair: a cap above/behind the face.
        hair_c = fc + np.array([0.0, (-30.0 + app.hairline) * s])
        _paint(
            img,
            _ellipse_alpha(X, Y, hair_c[0], hair_c[1], a * 1.12, b * 0.95),
            app.hair,
        )
        # Face with lighting (darker towards the rim, side gradient).
        face = _ellipse_alpha(X, Y, fc[0], fc[1] + 6 * s, a, b * 0.98)
        r2 = ((X - fc[0]) / a) ** 2 + ((Y - fc[1]) / b) ** 2
        skin = app.skin * (1 - 0.22 * np.clip(r2, 0, 1) ** 2)
        skin *= 1 + 0.12 * app.shading * (X - fc[0]) / a
        # Hairline: hair covers the top of the face ellipse.
        fringe_y = fc[1] + (-82.0 + app.hairline) * s
        face = face * np.clip((Y - fringe_y) / (3 * s) + 0.5, 0, 1)
        _paint(img, face, skin)
        pts = self.to_frame(self.static_ref)
        # Brows.
        for sl in (slice(17, 22), slice(22, 27)):
            _paint(
                img,
                _polyline_alpha(X, Y, pts[sl], 2.2 * s * app.brow_weight),
                app.hair * 0.8,
            )
        # Eyes: sclera between lid curves, iris, pupil, upper-lid line.
        for ids in ((36, 37, 38, 39, 40, 41), (42, 43, 44, 45, 46, 47)):
            e = pts[list(ids)]
            centre = e.mean(0)
            half_w = np.abs(e[3, 0] - e[0, 0]) / 2
            half_h = (e[4:, 1].mean() - e[1:3, 1].mean()) / 2
            _paint(
                img,
                _ellipse_alpha(X, Y, centre[0], centre[1], half_w, half_h * 1.1),
                215.0,
            )
            _paint(
                img,
                _ellipse_alpha(
                    X, Y, centre[0], centre[1], half_h * 1.05, half_h * 1.05
                ),
                55.0,
            )
            _paint(
                img,
                _ellipse_alpha(
                    X, Y, centre[0], centre[1], half_h * 0.45, half_h * 0.45
                ),
                15.0,
            )
            lid = np.array([e[0], e[1], e[2], e[3]])
            _paint(img, _polyline_alpha(X, Y, lid, 0.7 * s), app.skin * 0.35)
        # Nose: shaded side of the bridge, tip highlight, nostrils.
        _paint(
            img,
            0.35 * _polyline_alpha(X, Y, pts[27:31] + np.array([4 * s, 0]), 1.6 * s),
            app.skin * 0.7,
        )
        tip = pts[30]
        _paint(
            img,
            0.5 * _ellipse_alpha(X, Y, tip[0], tip[1] + 2 * s, 7 * s, 5 * s),
            min(255.0, app.skin * 1.12),
        )
        for k in (32, 34):
            _paint(
                img,
                0.8
                * _ellipse_alpha(
                    X, Y, pts[k, 0], pts[k, 1] - 1.5 * s, 3.2 * s, 2.0 * s
                ),
                app.skin * 0.35,
            )
        # Chin shadow under the mouth.
        chin = self.to_frame(self.mouth_centre_ref + np.array([0.0, 22.0]))
        _paint(
            img,
            0.12 * _ellipse_alpha(X, Y, chin[0], chin[1], 20 * s, 5 * s),
            app.skin * 0.6,
        )
        return img

    def _draw_mouth(self, img: np.ndarray, pose: np.ndarray) -> None:
        """Paint the mouth of ``pose`` into ``img`` (canonical frame), in place."""
        app, s = self.app, self.scale
        w, wi, uo, ui, li, lo = _mouth_curves(pose, app)
        _, _, _, upper_teeth, lower_teeth, tongue, tuck = pose
        c = self.to_frame(self.mouth_centre_ref)
        x0 = int(np.floor(c[0] - (w / 2) * s)) - 1
        x1 = int(np.ceil(c[0] + (w / 2) * s)) + 2
        y0 = int(np.floor(c[1] + (uo(0.0) - 4) * s)) - 1
        y1 = int(np.ceil(c[1] + (lo(0.0) + 4) * s)) + 2
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, img.shape[1]), min(y1, img.shape[0])
        xs = (np.arange(x0, x1) - c[0]) / s  # reference units, per column
        ys = (np.arange(y0, y1)[:, None] - c[1]) / s
        inside_x = np.clip((w / 2 - np.abs(xs)) * s + 0.5, 0, 1)[None, :]

        def band(top, bottom):  # coverage of rows between two curves (pixels)
            return (
                np.clip((ys - top[None, :]) * s + 0.5, 0, 1)
                * np.clip((bottom[None, :] - ys) * s + 0.5, 0, 1)
                * inside_x
            )

        y_uo, y_ui, y_li, y_lo = uo(xs), ui(xs), li(xs), lo(xs)
        patch = img[y0:y1, x0:x1]
        lip = app.skin * app.lip_tone
        _paint(patch, band(y_uo, y_lo), lip)
        # Lip line / shadow where the lips meet.
        _paint(patch, 0.5 * band(y_ui - 0.6, y_li + 0.6), lip * 0.55)
        opening = band(y_ui, y_li)
        if opening.max() > 0:
            _paint(patch, opening, 28.0)
            teeth_w = np.clip((0.33 * wi - np.abs(xs)) * s + 0.5, 0, 1)[None, :]
            gap = y_li - y_ui
            if upper_teeth > 0.02:
                h = np.minimum(gap, 4.5 * upper_teeth)
                _paint(patch, opening * band(y_ui, y_ui + h) * teeth_w, 215.0)
            if lower_teeth > 0.02:
                h = np.minimum(gap, 3.0 * lower_teeth)
                _paint(patch, 0.9 * opening * band(y_li - h, y_li) * teeth_w, 195.0)
            if tongue > 0.02:
                tongue_w = np.clip((0.22 * wi - np.abs(xs)) * s + 0.5, 0, 1)[None, :]
                top = y_li - np.minimum(gap, 6.0) * tongue
                _paint(patch, opening * band(top, y_li) * tongue_w, 120.0)
        if tuck > 0.02:  # upper teeth resting on the lower lip
            teeth_w = np.clip((0.3 * wi - np.abs(xs)) * s + 0.5, 0, 1)[None, :]
            _paint(patch, tuck * band(y_ui - 0.5, y_ui + 2.5) * teeth_w, 215.0)

    def render(
        self,
        mouth: np.ndarray,
        head_pose: Optional[np.ndarray] = None,
        noise_std: float = 0.0,
        rng: Optional[np.random.Generator] = None,
    ) -> Tuple[np.ndarray, np.ndarray]:
        """Render frames and landmarks.

        Args:
            mouth: (T, 7) mouth parameters (see :func:`mouth_trajectory`).
            head_pose: (T, 4) ``[angle_rad, dx, dy, log_scale]`` per frame
                about the face centre; None = still head.
            noise_std: std of additive Gaussian pixel noise (grey levels).
            rng: generator for the noise (required when ``noise_std > 0``).

        Returns:
            frames: (T, H, W) uint8, H = W = ``frame_size``.
            landmarks: (T, 68, 2) float32 ``(x, y)`` pixel coordinates.
        """
        num = len(mouth)
        if head_pose is None:
            head_pose = np.zeros((num, 4))
        if noise_std > 0 and rng is None:
            raise ValueError("render: noise_std > 0 needs an rng")
        frames = np.empty((num, self.size, self.size), dtype=np.uint8)
        landmarks = np.empty((num, 68, 2), dtype=np.float32)
        static = self.to_frame(self.static_ref)
        pivot = self.to_frame(_FACE_CENTRE + np.array([0.0, 30.0]))
        for t in range(num):
            img = self.base.copy()
            self._draw_mouth(img, mouth[t])
            pts = np.concatenate(
                [
                    static,
                    self.to_frame(
                        _mouth_landmarks(mouth[t], self.app, self.mouth_centre_ref)
                    ),
                ]
            )
            angle, dx, dy, log_scale = head_pose[t]
            sc = np.exp(log_scale)
            rot = sc * np.array(
                [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
            )
            shift = pivot + np.array([dx, dy]) - rot @ pivot
            landmarks[t] = pts @ rot.T + shift
            # Output pixel p (x, y) samples input at rot^-1 (p - shift); in (row, col).
            inv = np.linalg.inv(rot)
            matrix = inv[::-1, ::-1]
            offset = -(inv @ shift)[::-1]
            out = ndimage.affine_transform(
                img, matrix, offset=offset, order=1, mode="nearest"
            )
            if noise_std > 0:
                out += noise_std * rng.standard_normal(out.shape, dtype=np.float32)
            np.rint(out, out=out)
            frames[t] = np.clip(out, 0, 255, out=out)
        return frames, landmarks


def head_motion(
    num_frames: int,
    rng: np.random.Generator,
    fps: float = 25.0,
    max_angle_deg: float = 4.0,
    max_shift: float = 4.0,
    max_log_scale: float = 0.03,
) -> np.ndarray:
    """Smooth random head motion: sums of slow sinusoids per parameter.

    Args:
        num_frames: T.
        rng: random generator.
        fps: frame rate.
        max_angle_deg: peak in-plane rotation (degrees).
        max_shift: peak translation (pixels).
        max_log_scale: peak log scale change.

    Returns:
        (T, 4) ``[angle_rad, dx, dy, log_scale]``.
    """
    t = np.arange(num_frames) / fps
    peaks = np.array([np.deg2rad(max_angle_deg), max_shift, max_shift, max_log_scale])
    out = np.zeros((num_frames, 4))
    for k in range(4):
        for _ in range(2):
            freq = rng.uniform(0.15, 0.8)
            out[:, k] += rng.uniform(0.2, 0.5) * np.sin(
                2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi)
            )
        out[:, k] += rng.uniform(-0.3, 0.3)  # per-utterance static offset
    return out * peaks
