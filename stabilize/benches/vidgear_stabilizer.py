"""vidgear's Stabilizer on a raw I420 clip, for rtcgear-stabilize's benchmark.

Reads WxH I420 frames from --input, runs vidgear's Stabilizer (--mode asw: the default sliding
window average, smoothing_radius 25; --mode kalman: its zero-latency filter) with its default
border settings, and writes every stabilized frame to --output as raw I420. Prints
"<frames out> <seconds inside stabilize()> <CPU seconds inside stabilize()>" on stdout. OpenCV runs on one thread.

Set up with:
    python3 -m venv .tools/stab-venv
    .tools/stab-venv/bin/pip install vidgear opencv-python-headless numpy
The Rust benchmark (cargo bench -p rtcgear-stabilize) calls this script itself.
"""

import argparse
import sys
import time

import cv2
import numpy as np

try:
    from vidgear.gears.stabilizer import Stabilizer, StabilizerMode
except ImportError:  # vidgear before 0.3.6 has only the sliding window.
    from vidgear.gears.stabilizer import Stabilizer

    StabilizerMode = None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--size", required=True, help="WxH")
    parser.add_argument("--mode", default="asw", choices=["asw", "kalman"])
    args = parser.parse_args()

    cv2.setNumThreads(1)
    width, height = (int(v) for v in args.size.split("x"))
    frame_bytes = width * height * 3 // 2

    if StabilizerMode is None:
        if args.mode != "asw":
            sys.exit("this vidgear has no Kalman mode")
        stabilizer = Stabilizer(smoothing_radius=25)
    elif args.mode == "asw":
        stabilizer = Stabilizer(StabilizerMode.ASW, smoothing_radius=25)
    else:
        stabilizer = Stabilizer(StabilizerMode.KALMAN)

    frames_out = 0
    seconds = 0.0
    cpu_seconds = 0.0
    with open(args.input, "rb") as src, open(args.output, "wb") as dst:
        while True:
            raw = src.read(frame_bytes)
            if len(raw) < frame_bytes:
                break
            yuv = np.frombuffer(raw, np.uint8).reshape(height * 3 // 2, width)
            bgr = cv2.cvtColor(yuv, cv2.COLOR_YUV2BGR_I420)
            start, cpu_start = time.perf_counter(), time.thread_time()
            stabilized = stabilizer.stabilize(bgr)
            seconds += time.perf_counter() - start
            cpu_seconds += time.thread_time() - cpu_start
            if stabilized is None:
                continue
            dst.write(cv2.cvtColor(stabilized, cv2.COLOR_BGR2YUV_I420).tobytes())
            frames_out += 1
    stabilizer.clean()
    print(frames_out, seconds, cpu_seconds)


if __name__ == "__main__":
    main()
