"""Babble noise and noisy test sets (recipe stage 6, DESIGN.md §3).

The noise is either a **recording** — NOISEX-92's babble, as in the papers,
given by the ``NOISEX_BABBLE`` variable of ``db.sh`` (any format and rate;
mixed to mono and resampled to 16 kHz by :func:`prepare_recording`) — or,
when none is given, **synthetic babble** (:func:`make_babble`): the sum of
``num_utts`` randomly chosen utterances, each at unit RMS and tiled to the
longest. Either way one wav is written with a sidecar ``<wav>.json`` that
says what it is (:func:`describe_noise` turns it into words for RESULTS.md).
The training preprocessor mixes that wav into the speech at random SNRs;
:func:`make_noisy_sets` mixes it into each test set at fixed SNRs.

Outputs follow their inputs: a noise wav is kept only while its sidecar
matches the request, a noisy utterance only while the ledger of its
directory (:class:`~espnet_msrs.data_prep.output_sources.OutputSources`)
records the same speech file, noise file, SNR and seed.
"""

import json
import logging
import os
import zlib
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from espnet_msrs.data_prep.output_sources import OutputSources, source_signature
from espnet_msrs.utils import atomic
from espnet_msrs.utils.data_dir import read_kv, subset_data_dir
from espnet_msrs.utils.parallel import parallel_map

PathLike = Union[str, os.PathLike]
logger = logging.getLogger(__name__)

#: Peak amplitude of a written noise (the level is irrelevant: the noise is
#: rescaled to the requested SNR when mixed).
PEAK = 0.9


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _is_current(out: Path, info: Dict[str, Any]) -> bool:
    sidecar = _sidecar(out)
    if not (out.is_file() and sidecar.is_file()):
        return False
    try:
        return json.loads(sidecar.read_text(encoding="utf-8"))["request"] == info["request"]
    except (ValueError, KeyError):
        return False


def _write_noise(out: Path, noise: np.ndarray, sample_rate: int, info: Dict[str, Any]) -> None:
    import soundfile

    noise = noise * (PEAK / max(float(np.max(np.abs(noise))), 1e-12))
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(out) as tmp:
        soundfile.write(tmp, noise, sample_rate, subtype="PCM_16", format="WAV")
    atomic.write_json(_sidecar(out), info)


def read_noise_info(path: PathLike) -> Optional[Dict[str, Any]]:
    """The sidecar of a noise wav written here (None if it has none)."""
    sidecar = _sidecar(Path(path))
    if not sidecar.is_file():
        return None
    return json.loads(sidecar.read_text(encoding="utf-8"))


def describe_noise(path: PathLike) -> str:
    """One line for RESULTS.md: what noise ``path`` is."""
    info = read_noise_info(path)
    if info is None:
        return f"{path} (origin not recorded)"
    req = info["request"]
    if req["kind"] == "recording":
        rate = info.get("source_rate")
        how = "" if rate == req["sample_rate"] else f", resampled from {rate} Hz"
        return (f"recording {req['source']} ({info.get('seconds', 0):.1f} s{how}; "
                f"db.sh NOISEX_BABBLE)")
    return (f"synthetic babble: {info.get('num_utts')} utterances of {req['wav_scp']} "
            f"summed (seed {req['seed']}, {info.get('seconds', 0):.1f} s)")


def prepare_recording(source: PathLike, out: PathLike, sample_rate: int = 16000) -> Path:
    """A noise recording (e.g. NOISEX-92 ``babble.wav``) as a mono wav at ``sample_rate``.

    Any format libsndfile or FFmpeg decodes, at any rate. The output is kept
    while its sidecar records the same source file (size, time) and rate.

    Raises:
        ValueError: A missing, undecodable or silent recording (naming it).
    """
    from espnet_msrs.data_prep.audio import extract_audio, resample

    source, out = Path(source), Path(out)
    if not source.is_file():
        raise ValueError(f"noise recording {source}: no such file (NOISEX_BABBLE in db.sh)")
    info: Dict[str, Any] = {"request": {
        "kind": "recording", "source": str(source.resolve()), "sample_rate": sample_rate,
        "signature": source_signature([str(source.resolve())]),
    }}
    if _is_current(out, info):
        logger.info("Noise exists, keeping it: path=%s (%s)", out, describe_noise(out))
        return out
    import soundfile

    try:
        audio, rate = soundfile.read(str(source), dtype="float64", always_2d=True)
        audio = resample(audio.mean(axis=1), rate, sample_rate)
    except (RuntimeError, soundfile.LibsndfileError):  # not libsndfile's: try FFmpeg
        audio, rate = extract_audio(source, sample_rate)
    if not np.any(audio):
        raise ValueError(f"noise recording {source} is silent")
    info.update(source_rate=int(rate), seconds=len(audio) / sample_rate)
    _write_noise(out, audio.astype(np.float64), sample_rate, info)
    logger.info("Wrote noise: path=%s from %s (%d Hz -> %d Hz, %.1f s)", out, source,
                rate, sample_rate, info["seconds"])
    return out


def _read_unit_rms(path: str, sample_rate: int) -> Optional[np.ndarray]:
    """Read a mono wav normalised to unit RMS; None if it is silent."""
    import soundfile

    try:
        audio, rate = soundfile.read(path, dtype="float64", always_2d=True)
    except (RuntimeError, OSError) as e:  # soundfile raises LibsndfileError
        raise ValueError(f"make_babble: cannot read {path}: {e}") from e
    if rate != sample_rate:
        raise ValueError(
            f"make_babble: {path} has sample rate {rate} Hz, expected sample_rate={sample_rate}"
        )
    audio = audio.mean(axis=1)
    rms = float(np.sqrt(np.mean(audio**2))) if audio.size else 0.0
    if rms <= 0.0:
        logger.warning("make_babble: skipping silent utterance path=%s", path)
        return None
    return audio / rms


def make_babble(
    wav_scp: PathLike,
    out_path: PathLike,
    num_utts: int = 30,
    seed: int = 0,
    sample_rate: int = 16000,
) -> Path:
    """Write a synthetic babble wav from the utterances of ``wav_scp``.

    Args:
        wav_scp: Candidate utterances (``<uid> <wav>``, at ``sample_rate``).
        out_path: Output wav (kept while its sidecar matches this request).
        num_utts: Number of utterances to sum (drawn without replacement;
            at most the number of candidates).
        seed: Seed of the utterance choice.
        sample_rate: Required sample rate of the inputs and of the output.

    Returns:
        ``out_path``: mono 16-bit PCM, as long as the longest chosen utterance.

    Raises:
        ValueError: ``num_utts < 1``, a piped command, an input with another
            sample rate, or only silent inputs.
    """
    out_path = Path(out_path)
    wavs = read_kv(wav_scp)
    for uid, path in wavs.items():
        if path.rstrip().endswith("|"):
            raise ValueError(f"{wav_scp}: utt {uid}: piped commands are not supported; "
                             f"use a formatted wav.scp (e.g. dump/raw)")
    if num_utts < 1:
        raise ValueError(f"make_babble: num_utts must be >= 1, got {num_utts}")
    paths = list(wavs.values())
    num_utts = min(num_utts, len(paths))
    info: Dict[str, Any] = {"request": {
        "kind": "synthetic", "wav_scp": str(wav_scp), "num_utts": num_utts, "seed": seed,
        "sample_rate": sample_rate, "signature": source_signature([str(wav_scp)]),
    }}
    if _is_current(out_path, info):
        logger.info("Babble noise exists, keeping it: path=%s", out_path)
        return out_path
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(paths), size=num_utts, replace=False)
    signals = [_read_unit_rms(paths[i], sample_rate) for i in chosen]
    signals = [s for s in signals if s is not None]
    if not signals:
        raise ValueError("make_babble: all chosen utterances are silent")
    length = max(s.shape[0] for s in signals)
    babble = np.zeros(length, dtype=np.float64)
    for s in signals:
        babble += np.resize(s, length)
    info.update(num_utts=len(signals), seconds=length / sample_rate)
    _write_noise(out_path, babble, sample_rate, info)
    logger.info("Wrote babble noise: path=%s num_utts=%d seconds=%.2f seed=%d",
                out_path, len(signals), length / sample_rate, seed)
    return out_path


# ------------------------------------------------------------- noisy sets
def snr_name(snr: float) -> str:
    """Directory suffix of an SNR: -7.5 -> "-7.5", 5.0 -> "5"."""
    return f"{snr:g}"


def utterance_rng(seed: int, uid: str) -> np.random.Generator:
    """The generator choosing an utterance's noise segment (same for every SNR)."""
    return np.random.default_rng([seed, zlib.crc32(uid.encode("utf-8"))])


def load_noise(path: PathLike, sample_rate: int) -> np.ndarray:
    """Mono float64 noise at ``sample_rate``.

    Raises:
        ValueError: Missing file, other sample rate, or silent noise.
    """
    import soundfile

    if not Path(path).is_file():
        raise ValueError(f"--noise {path}: no such file")
    noise, rate = soundfile.read(str(path), dtype="float64", always_2d=True)
    if rate != sample_rate:
        raise ValueError(f"--noise {path}: {rate} Hz, the speech is {sample_rate} Hz")
    noise = noise.mean(axis=1)
    if not np.any(noise):
        raise ValueError(f"--noise {path} is silent")
    return noise


#: Noise loaded by this (worker) process, keyed by its file signature.
_NOISE_CACHE: Dict[str, np.ndarray] = {}


def _mix_one(job) -> int:
    import soundfile

    from espnet_msrs.train.av_preprocessor import mix_at_snr  # imported by the parent

    uid, wav, noise_path, noise_sig, outs, seed = job
    speech, rate = soundfile.read(wav, dtype="float64", always_2d=True)
    speech = speech.mean(axis=1)
    if noise_sig not in _NOISE_CACHE:
        _NOISE_CACHE.clear()
        _NOISE_CACHE[noise_sig] = load_noise(noise_path, rate)
    for snr, out in outs:
        mixed = mix_at_snr(speech, _NOISE_CACHE[noise_sig], snr, utterance_rng(seed, uid))
        with atomic.atomic_path(out) as tmp:
            soundfile.write(tmp, mixed.astype(np.float32), rate, subtype="FLOAT")
    return len(outs)


def make_noisy_sets(
    data_dir: PathLike,
    noise: PathLike,
    snrs: Sequence[float],
    out_data_prefix: str,
    out_wav_prefix: str,
    seed: int = 0,
    nj: int = 1,
) -> List[Path]:
    """Write one noisy copy of ``data_dir`` per SNR.

    For every SNR ``s`` the data directory ``<out_data_prefix><s>`` is a copy
    of ``data_dir`` whose ``wav.scp`` points to ``<out_wav_prefix><s>/<utt>.wav``:
    the utterance mixed with the noise by
    :func:`espnet_msrs.train.av_preprocessor.mix_at_snr` at exactly ``s`` dB
    (power over the whole utterance; 32-bit float wavs, no clipping). The
    noise segment of an utterance is chosen by a generator seeded with
    ``(seed, crc32(utt_id))``, the same for every SNR.

    Returns:
        The written data directories, in the order of ``snrs``.
    """
    import soundfile

    if not snrs:
        raise ValueError("--snrs: give at least one SNR")
    if len({snr_name(s) for s in snrs}) != len(snrs):
        raise ValueError(f"--snrs {list(snrs)} has duplicates")
    data_dir = Path(data_dir)
    wavs = read_kv(data_dir / "wav.scp")
    noise_sig = source_signature([str(noise)])
    ledgers, wav_tables, signatures = {}, {}, {}
    for snr in snrs:
        wav_dir = Path(f"{out_wav_prefix}{snr_name(snr)}")
        wav_dir.mkdir(parents=True, exist_ok=True)
        ledgers[snr] = OutputSources(wav_dir)
        wav_tables[snr] = {u: str(wav_dir / f"{u}.wav") for u in wavs}
    jobs = []
    for uid, wav in wavs.items():
        signatures[uid] = source_signature([wav], f"{noise_sig}|seed={seed}")
        outs = [(s, wav_tables[s][uid]) for s in snrs
                if not ledgers[s].is_current(uid, wav_tables[s][uid], signatures[uid])]
        if outs:
            jobs.append((uid, wav, str(noise), noise_sig, outs, seed))
    logger.info(
        "Noisy sets: data_dir=%s noise=%s snrs=%s -> %s<SNR> utterances=%d to_mix=%d nj=%d",
        data_dir, noise, " ".join(snr_name(s) for s in snrs), out_data_prefix, len(wavs),
        len(jobs), nj,
    )
    load_noise(noise, soundfile.info(next(iter(wavs.values()))).samplerate)
    # Import once here (it imports espnet2): forked workers inherit it.
    import espnet_msrs.train.av_preprocessor  # noqa: F401

    written = sum(parallel_map(_mix_one, jobs, nj=nj, what="utterances", chunksize=8))
    out_dirs = []
    for snr in snrs:
        for uid in wavs:
            ledgers[snr].record(uid, signatures[uid])
        ledgers[snr].save(keep=wavs)
        out = Path(f"{out_data_prefix}{snr_name(snr)}")
        subset_data_dir(data_dir, out, list(wavs), replace={"wav.scp": wav_tables[snr]})
        out_dirs.append(out)
    logger.info("Noisy sets done: written_wavs=%d dirs=%s", written,
                " ".join(str(d) for d in out_dirs))
    return out_dirs
