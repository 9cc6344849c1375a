"""Scores a degraded recording of speech against its reference, for voice-bench.

    python3 pesq_score.py REFERENCE.wav DEGRADED.wav

Both are mono WAVs at the same rate (48 kHz in the bench). Prints one JSON line:
{"pesq_wb": ..., "stoi": ..., "offset_ms": ..., "delay_moved_ms": ...}; on failure a
message on stderr and exit 1.

The degraded file may start later than the reference (a call's recording holds the silence
before the call was up, a codec adds its delay) and may run on after it: the start is found
by cross-correlation, and exactly the reference's length from there is scored (zeros where
the recording ends early). Both are then resampled to 16 kHz, the rate wide-band PESQ
(ITU-T P.862.2) is defined at; STOI is computed at that rate too.

A call's delay moves: a jitter buffer holds a frame more once packets go missing, so the
rest of the recording comes 20 ms later. PESQ lines up each utterance itself. STOI compares
short frames one to one and would count such a step as lost intelligibility for the rest
of the call, so it gets the recording lined up again in half-second blocks, each searched
near where the block before it was found. `delay_moved_ms` is how far those blocks spread.
"""

import json
import sys

import numpy as np
from pesq import pesq
from pystoi import stoi
from scipy.io import wavfile
from scipy.signal import correlate, resample_poly

SCORING_RATE = 16_000
BLOCK_SECONDS = 0.5
# How far one block may be found from the block before it: a few frames of a jitter
# buffer growing or shrinking, not a different word.
BLOCK_SEARCH_SECONDS = 0.1


def read_mono(path):
    rate, samples = wavfile.read(path)
    if samples.ndim > 1:
        samples = samples.mean(axis=1)
    if np.issubdtype(samples.dtype, np.integer):
        samples = samples / float(np.iinfo(samples.dtype).max)
    return rate, samples.astype(np.float64)


def align(reference, degraded):
    """The part of `degraded` that lines up with `reference`, and where it starts.

    Only non-negative lags: what was recorded cannot come before what was sent."""
    padded = np.concatenate([degraded, np.zeros(len(reference))])
    correlation = correlate(padded, reference, mode="valid", method="fft")
    offset = int(np.argmax(correlation))
    return padded[offset : offset + len(reference)], offset


def realign_blocks(reference, degraded, offset, rate):
    """`degraded` cut into blocks the reference's length, each from where it matches its
    block of the reference best; and the spread of the blocks' lags, in samples.

    Only blocks with as much speech as a quarter of the average block are searched; the
    others (pauses, a word's tail) keep the lag of the block before them, since a little
    speech at a block's edge can match the wrong place as well as the right one."""
    block = int(BLOCK_SECONDS * rate)
    search = int(BLOCK_SEARCH_SECONDS * rate)
    padded = np.concatenate([degraded, np.zeros(len(reference) + search)])
    starts = range(0, len(reference), block)
    energies = [np.sum(reference[start : start + block] ** 2) for start in starts]
    enough = 0.25 * np.mean(energies)
    out = np.zeros(len(reference))
    lag, lags = offset, [offset]
    for start, energy in zip(starts, energies):
        piece = reference[start : start + block]
        if energy > enough:
            low = max(0, start + lag - search)
            window = padded[low : start + lag + len(piece) + search]
            correlation = correlate(window, piece, mode="valid", method="fft")
            # Normalised by the window's energy under each lag: a loud stretch nearby
            # must not win over the matching one.
            power = np.cumsum(np.concatenate([[0.0], window**2]))
            under = power[len(piece) :] - power[: len(correlation)]
            lag = low + int(np.argmax(correlation / np.sqrt(under + 1e-12))) - start
            lags.append(lag)
        out[start : start + len(piece)] = padded[start + lag : start + lag + len(piece)]
    return out, max(lags) - min(lags)


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    rate, reference = read_mono(argv[1])
    degraded_rate, degraded = read_mono(argv[2])
    if rate != degraded_rate or rate % SCORING_RATE != 0:
        print(
            f"rates {rate} and {degraded_rate} Hz: both must be one multiple of 16 kHz",
            file=sys.stderr,
        )
        return 1
    aligned, offset = align(reference, degraded)
    # PESQ gives a silent recording a score (about 2), not an error: say it instead.
    if np.sum(aligned**2) < 1e-4 * np.sum(reference**2):
        print("the degraded file is silent where the reference speaks", file=sys.stderr)
        return 1
    realigned, spread = realign_blocks(reference, degraded, offset, rate)
    factor = rate // SCORING_RATE
    reference_16k = resample_poly(reference, 1, factor)
    aligned_16k = resample_poly(aligned, 1, factor)
    realigned_16k = resample_poly(realigned, 1, factor)
    print(
        json.dumps(
            {
                "pesq_wb": float(pesq(SCORING_RATE, reference_16k, aligned_16k, "wb")),
                "stoi": float(stoi(reference_16k, realigned_16k, SCORING_RATE)),
                "offset_ms": offset * 1000.0 / rate,
                "delay_moved_ms": spread * 1000.0 / rate,
            }
        )
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except Exception as error:  # pesq raises for silence, scipy for a broken file
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(1)
