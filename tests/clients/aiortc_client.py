#!/usr/bin/env python3
"""An outside WebRTC viewer for rtcgear's tests: aiortc (PyPI), not written here.

It offers to receive H.264 video, through WHEP or through vidgear's JSON /offer, decodes what
arrives with aiortc's own decoder (PyAV/FFmpeg), reads the stamp from the decoded pictures
(docs/stamp.md), and prints one JSON line with what it saw.
"""
import argparse
import asyncio
import json
import sys
import time
import urllib.error
import urllib.request
import zlib

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.rtcrtpreceiver import RTCRtpReceiver


def read_stamp(luma, width, height):
    """Reads the stamp from a 2-D luma array, or returns None when it is missing or damaged."""
    cw = width / 32
    if cw < 1 or height < int(4 * cw):
        return None
    words = []
    for band in range(4):
        word = 0
        for i in range(32):
            x0, x1 = int((i + 0.25) * cw), max(int(-(-(i + 0.75) * cw // 1)), int((i + 0.25) * cw) + 1)
            y0, y1 = int((band + 0.25) * cw), max(int(-(-(band + 0.75) * cw // 1)), int((band + 0.25) * cw) + 1)
            cell = luma[y0:min(y1, height), x0:min(x1, width)]
            bit = 1 if cell.size and cell.mean() >= 128 else 0
            word = (word << 1) | bit
        words.append(word)
    payload = words[0].to_bytes(4, "big") + words[1].to_bytes(4, "big") + words[2].to_bytes(4, "big")
    if zlib.crc32(payload) != words[3]:
        return None
    return {"wall_us": (words[0] << 32) | words[1], "counter": words[2]}


def post(url, body, content_type):
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read().decode()


def delete(url):
    request = urllib.request.Request(url, method="DELETE")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


async def run(args):
    pc = RTCPeerConnection()
    transceiver = pc.addTransceiver("video", direction="recvonly")
    codecs = [c for c in RTCRtpReceiver.getCapabilities("video").codecs if c.mimeType == "video/H264"]
    transceiver.setCodecPreferences(codecs)
    result = {"frames": 0, "width": 0, "height": 0, "stamps": 0, "latencies_ms": [], "counters": []}
    done = asyncio.Event()

    async def consume(track):
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            try:
                frame = await asyncio.wait_for(track.recv(), timeout=max(0.1, deadline - time.monotonic()))
            except Exception:
                break
            result["frames"] += 1
            result["width"], result["height"] = frame.width, frame.height
            try:
                luma = frame.to_ndarray(format="gray")
            except Exception as err:  # noqa: BLE001 - reported, not hidden
                result["error"] = f"cannot read the decoded frame: {err}"
                break
            stamp = read_stamp(luma, frame.width, frame.height)
            if stamp:
                result["stamps"] += 1
                result["counters"].append(stamp["counter"])
                result["latencies_ms"].append(time.time() * 1000 - stamp["wall_us"] / 1000)
        done.set()

    @pc.on("track")
    def on_track(track):
        asyncio.ensure_future(consume(track))

    await pc.setLocalDescription(await pc.createOffer())
    offer = pc.localDescription
    if args.mode == "whep":
        status, headers, body = post(args.url, offer.sdp.encode(), "application/sdp")
        result["status"] = status
        if status != 201:
            result["error"] = body
            print(json.dumps(result))
            return 1
        location = headers.get("Location")
        result["location"] = location
        answer = RTCSessionDescription(sdp=body, type="answer")
    else:
        payload = json.dumps({"sdp": offer.sdp, "type": offer.type}).encode()
        status, headers, body = post(args.url, payload, "application/json")
        result["status"] = status
        if status != 200:
            result["error"] = body
            print(json.dumps(result))
            return 1
        reply = json.loads(body)
        answer = RTCSessionDescription(sdp=reply["sdp"], type=reply["type"])
    await pc.setRemoteDescription(answer)
    try:
        await asyncio.wait_for(done.wait(), timeout=args.seconds + 15)
    except asyncio.TimeoutError:
        result.setdefault("error", "no track arrived")
    if args.mode == "whep" and result.get("location"):
        base = args.url.split("/", 3)
        url = result["location"] if result["location"].startswith("http") else base[0] + "//" + base[2] + result["location"]
        result["delete_status"] = delete(url)
    await pc.close()
    lat = sorted(result.pop("latencies_ms"))
    result["latency_p50_ms"] = lat[len(lat) // 2] if lat else None
    counters = result.pop("counters")
    result["counter_span"] = (counters[-1] - counters[0] + 1) if counters else 0
    print(json.dumps(result))
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True, help="the /whep or /offer URL")
    parser.add_argument("--mode", choices=["whep", "offer"], required=True)
    parser.add_argument("--seconds", type=float, default=4.0, help="how long to watch")
    args = parser.parse_args()
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
