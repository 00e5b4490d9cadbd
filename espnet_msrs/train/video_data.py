"""ESPnet data type ``video``: a Kaldi-style scp of greyscale mouth-crop videos.

Adds ``"video"`` to espnet2's data types (``espnet2.train.dataset.DATA_TYPES``
for ``ESPnetDataset`` and ``espnet2.train.iterable_dataset.DATA_TYPES`` for
the streaming inference iterator), so that a recipe can pass
``--train_data_path_and_name_and_type dump/train/video.scp,video,video``.
Videos are read lazily (DESIGN.md §3: 96×96 greyscale, 25 fps) by
:func:`espnet_msrs.video.io.read_video` and arrive as ``uint8`` arrays
``(T, H, W)``; a preprocessor
(:class:`espnet_msrs.train.av_preprocessor.AVPreprocessor`) must turn them
into floats, because ESPnet's datasets only pass float and integer arrays to
the model.
"""

import collections.abc
import logging
import re
from pathlib import Path
from typing import Dict, Iterator, Union

import numpy as np

from espnet_msrs.video.io import read_video

logger = logging.getLogger(__name__)

#: Name of the data type in espnet2's ``DATA_TYPES``.
VIDEO_DATA_TYPE = "video"

VIDEO_DATA_HELP = (
    "Greyscale video (espnet_msrs): .mp4 (any pixel format, converted to grey) "
    "or .npy/.npz holding a uint8 array (T, H, W). Loaded as uint8 (T, H, W); "
    "use a preprocessor (e.g. espnet_msrs AVPreprocessor) to make it float."
    "\n\n"
    "   utterance_id_a /some/where/a.mp4\n"
    "   utterance_id_b /some/where/b.npy\n"
    "   ..."
)


class VideoScpReader(collections.abc.Mapping):
    """Lazy mapping ``uttid -> video`` over a Kaldi-style scp file.

    Each non-empty line of the scp is ``<uttid> <path>`` (the path is the rest
    of the line). The index is read at construction; a video is decoded only
    when its key is looked up.

    Args:
        fname: The scp file.

    Raises:
        ValueError: A line without a path, or a duplicated utterance id; the
            message names the file and the line number.

    Examples:
        >>> reader = VideoScpReader("dump/train/video.scp")
        >>> reader["utt1"].shape  # (T, H, W) uint8
        (75, 96, 96)
    """

    def __init__(self, fname: Union[str, Path]):
        self.fname = str(fname)
        self.data: Dict[str, str] = {}
        with open(self.fname, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                fields = line.split(maxsplit=1)
                if len(fields) != 2:
                    raise ValueError(
                        f"{self.fname}:{lineno}: malformed scp line {line!r}; "
                        f"expected '<uttid> <path>'"
                    )
                uid, path = fields
                if uid in self.data:
                    raise ValueError(
                        f"{self.fname}:{lineno}: duplicated utterance id {uid!r}"
                    )
                self.data[uid] = path

    def get_path(self, key: str) -> str:
        """The video path of utterance ``key``."""
        return self.data[key]

    def __getitem__(self, key: str) -> np.ndarray:
        """Read the video of utterance ``key``.

        Returns:
            frames: (T, H, W) ``uint8``.

        Raises:
            KeyError: ``key`` is not in the scp.
            espnet_msrs.video.io.VideoReadError: The file cannot be read; the
                message names the utterance id and the path.
        """
        return read_video(self.data[key], uid=key)

    def __contains__(self, key: object) -> bool:
        return key in self.data

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def keys(self):
        return self.data.keys()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.fname!r}, num_utts={len(self)})"


def _same_function(a: object, b: object) -> bool:
    """True if ``a`` and ``b`` are the same function, also across a reload."""
    if a is b:
        return True
    return getattr(a, "__module__", None) == getattr(b, "__module__", 0) and getattr(
        a, "__qualname__", None
    ) == getattr(b, "__qualname__", 0)


def register_data_types() -> None:
    """Add the ``video`` data type to espnet2's dataset types (idempotent).

    Raises:
        ValueError: espnet2 already has a different ``video`` entry, or an
            existing data-type pattern already matches ``video`` (espnet2
            matches the names as regular expressions, first match wins).
    """
    from espnet2.train import dataset, iterable_dataset

    types = dataset.DATA_TYPES
    existing = types.get(VIDEO_DATA_TYPE)
    if existing is not None:
        if not _same_function(existing.get("func"), VideoScpReader):
            raise ValueError(
                f"espnet2.train.dataset.DATA_TYPES already has a different "
                f"{VIDEO_DATA_TYPE!r} entry ({existing.get('func')}); "
                f"refusing to overwrite it"
            )
    else:
        for pattern in types:
            if re.match(pattern, VIDEO_DATA_TYPE):
                raise ValueError(
                    f"espnet2 data type pattern {pattern!r} already matches "
                    f"{VIDEO_DATA_TYPE!r}; cannot register the video data type"
                )
        types[VIDEO_DATA_TYPE] = dict(
            func=VideoScpReader, kwargs=[], help=VIDEO_DATA_HELP
        )
        logger.debug("Registered espnet2 data type %r", VIDEO_DATA_TYPE)

    # The streaming iterator maps a type to "value of the scp line -> array";
    # without this entry it would fall back to an ESPnetDataset that applies
    # the preprocessor to the video a second time.
    stream_types = iterable_dataset.DATA_TYPES
    existing_stream = stream_types.get(VIDEO_DATA_TYPE)
    if existing_stream is None:
        stream_types[VIDEO_DATA_TYPE] = read_video
    elif not _same_function(existing_stream, read_video):
        raise ValueError(
            f"espnet2.train.iterable_dataset.DATA_TYPES already has a different "
            f"{VIDEO_DATA_TYPE!r} entry ({existing_stream}); refusing to overwrite it"
        )
