// The rtcgear player: plays one stream over WebRTC through WHEP, shows live statistics, measures
// glass-to-glass latency from the stamp in the picture, and reconnects by itself: at once when
// its media stops (no frames, or the connection lost), soon after the server is back when it
// was down, and with the reason in words when the media finds no route (ICE failed).
// State for scripts and tests: window.rtcgear = { state, stats, session, reconnects, pc,
// problem, iceFailures }.
(function () {
  "use strict";
  const root = document.getElementById("player");
  const video = document.getElementById("video");
  const overlay = document.getElementById("overlay");
  const stateEl = document.getElementById("state");
  const whepUrl = root.dataset.whep;
  const streamName = root.dataset.stream;
  let iceServers = [];
  try { iceServers = JSON.parse(root.dataset.iceServers || "[]"); } catch (e) { iceServers = []; }
  // With access control on, a signed link's ?token= got this page a cookie (HttpOnly, so not
  // ours to read) that the same-origin fetches below send; take the token out of the address
  // bar so it is not copied along with the page's address.
  const query = new URLSearchParams(window.location.search);
  if (query.has("token")) {
    query.delete("token");
    const rest = query.toString();
    history.replaceState(null, "", window.location.pathname + (rest ? "?" + rest : "") + window.location.hash);
  }

  const stats = {
    framesDecoded: 0, fps: 0, bitrateKbps: 0, width: 0, height: 0, rttMs: null,
    latencyMs: null, latencyP50Ms: null, framesLost: 0, stampsRead: 0, connectedAt: null,
    firstFrameMs: null,
  };
  // state: "connecting", "connected", "reconnecting" (the media was lost, or the server is
  // unreachable), or "failed" (the server answered but the media found no route: ICE failed);
  // problem: that failure in words while it lasts; reconnects: new sessions after the first.
  const app = window.rtcgear = {
    state: "new", stats, session: null, reconnects: 0, pc: null, problem: null, iceFailures: 0,
  };

  // How the page watches its media: a connection that says "disconnected" for this long, or
  // that receives neither packets nor frames for this long (or three frame intervals at a low
  // frame rate) while the server does not answer, no longer counts this viewer, or makes
  // frames, is torn down and made again at once.
  const DISCONNECTED_LIMIT_MS = 2000;
  const STALL_LIMIT_MS = 1500;
  // An answered offer whose connection is not up after this long has no route to the media.
  const CONNECT_LIMIT_MS = 10000;
  // Retries while the server is unreachable: fast at first, then at most about a second apart
  // (each delay randomized by ±25 %, so that the pages of a restarted server spread out).
  const PROBE_FIRST_MS = 250;
  const PROBE_CAP_MS = 1000;

  let pc = null;
  let sessionUrl = null;
  let retryTimer = null;
  let connectTimer = null;
  let retryDelay = 1000;
  let probeDelay = PROBE_FIRST_MS;
  let lastSample = null;
  let startedAt = 0;
  let disconnectedSince = null;
  // The last time this connection showed progress: a frame presented, or more packets or
  // frames in getStats (which also counts in a hidden tab, where no frame is presented).
  let progressAt = 0;
  let checking = false;
  let checkedAt = 0;
  let quiet = null;
  let mediaRoute = "";

  function setState(state, detail) {
    app.state = state;
    stateEl.textContent = detail ? state + ": " + detail : state;
    stateEl.className = "state state-" + state;
    const playing = state === "connected" && stats.framesDecoded > 0;
    overlay.classList.toggle("hidden", playing);
    if (!playing) overlay.textContent = detail ? state + " (" + detail + ")" : state + "…";
  }

  function jitter(ms) {
    return Math.round(ms * (0.75 + Math.random() * 0.5));
  }

  function seconds(ms) {
    return ms < 1000 ? (ms / 1000).toFixed(1) + " s" : Math.round(ms / 1000) + " s";
  }

  // Waits for the candidates to send with the offer: until gathering completes, at most
  // `limitMs`, and only a moment more once a relayed candidate has come. A network that
  // blocks UDP never completes gathering (its STUN and TURN-over-UDP requests go unanswered),
  // so without that the page would wait the whole limit before its TURN-over-TCP candidate
  // could be used.
  function waitForIceGathering(peer, limitMs) {
    if (peer.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      let finished = false;
      const done = () => {
        if (finished) return;
        finished = true;
        peer.removeEventListener("icegatheringstatechange", check);
        peer.removeEventListener("icecandidate", relayed);
        resolve();
      };
      const check = () => { if (peer.iceGatheringState === "complete") done(); };
      const relayed = (event) => {
        if (event.candidate && event.candidate.type === "relay") setTimeout(done, 100);
      };
      peer.addEventListener("icegatheringstatechange", check);
      peer.addEventListener("icecandidate", relayed);
      setTimeout(done, limitMs);
    });
  }

  // Where the answer says the media comes from ("UDP 192.0.2.1:8000"), for the words of a
  // failure.
  function routeOf(answer) {
    const routes = [];
    for (const line of answer.split(/\r?\n/)) {
      const f = line.startsWith("a=candidate:") ? line.split(" ") : null;
      if (f && f.length > 7) {
        const route = f[2].toUpperCase() + " " + (f[4].includes(":") ? "[" + f[4] + "]" : f[4]) + ":" + f[5];
        if (!routes.includes(route)) routes.push(route);
      }
    }
    return routes.join(", ");
  }

  // The retry note of a state's words: what the page is doing about it.
  function retrying(ms) {
    return ms > 0 ? "retrying in " + seconds(ms) : "retrying now";
  }

  async function connect() {
    clearTimeout(retryTimer);
    teardown();
    if (typeof RTCPeerConnection === "undefined") {
      // A browser built without WebRTC (some WebKitGTK builds): nothing to retry.
      app.problem = "this browser has no WebRTC (RTCPeerConnection), which the player needs";
      setState("failed", app.problem + "; try another browser");
      return;
    }
    if (app.problem) setState("failed", app.problem + "; " + retrying(0));
    else setState(app.reconnects ? "reconnecting" : "connecting");
    startedAt = performance.now();
    stats.firstFrameMs = null;
    stats.framesDecoded = 0;
    stats.fps = 0;
    const peer = pc = app.pc = new RTCPeerConnection({ iceServers });
    let played = false;
    peer.addTransceiver("video", { direction: "recvonly" });
    peer.ontrack = (event) => {
      // Low latency: no jitter buffer target of the page's own (the server's packets ask for a
      // playout delay of 0 too).
      if (root.dataset.latency === "low" && "jitterBufferTarget" in event.receiver) {
        event.receiver.jitterBufferTarget = 0;
      }
      if (video.srcObject !== event.streams[0]) video.srcObject = event.streams[0] || new MediaStream([event.track]);
    };
    peer.onconnectionstatechange = () => {
      if (peer !== pc) return;
      const s = peer.connectionState;
      if (s === "connected") {
        clearTimeout(connectTimer);
        played = true;
        disconnectedSince = null;
        retryDelay = 1000;
        probeDelay = PROBE_FIRST_MS;
        progressAt = performance.now();
        app.problem = null;
        stats.connectedAt = Date.now();
        setState("connected");
      } else if (s === "failed") {
        // Chromium gives up on ICE this way; a connection lost after it played fails too.
        if (played) lostMedia("connection failed");
        else noRoute("the connection failed");
      } else if (s === "closed") {
        lostMedia("connection closed");
      } else if (s === "disconnected") {
        disconnectedSince = disconnectedSince || performance.now();
        setState("reconnecting", "network blip");
      }
    };
    try {
      const offer = await peer.createOffer();
      await peer.setLocalDescription(offer);
      await waitForIceGathering(peer, 2000);
      if (peer !== pc) return;
      let response;
      try {
        response = await fetch(whepUrl, {
          method: "POST",
          // A server that went away without closing its connections must not hang us.
          signal: AbortSignal.timeout(5000),
          // The access cookie (or the browser's basic-auth login) goes along; same-origin only.
          credentials: "same-origin",
          headers: { "Content-Type": "application/sdp" },
          body: peer.localDescription.sdp,
        });
      } catch (err) {
        // No answer at all: the server is down or out of reach. Watch for it to come back.
        if (peer === pc) serverUnreachable();
        return;
      }
      if (response.status !== 201) {
        const reason = (await response.text()).trim() || response.statusText;
        if (response.status === 400 && /usable H\.264|nor VP8/.test(reason)) {
          // No codec in common: asking again cannot help, so say so and stop.
          if (peer !== pc) return;
          teardown();
          app.problem = "this browser plays neither H.264 nor VP8 over WebRTC, which this " +
            "server sends (" + reason + ")";
          setState("failed", app.problem + "; try another browser");
          return;
        }
        const after = Number(response.headers.get("Retry-After"));
        throw Object.assign(new Error(response.status + " " + reason), {
          retryMs: after > 0 ? Math.min(after, 30) * 1000 : 0,
        });
      }
      const location = response.headers.get("Location");
      sessionUrl = location ? new URL(location, window.location.href).href : null;
      app.session = sessionUrl;
      const answer = await response.text();
      if (peer !== pc) return;
      mediaRoute = routeOf(answer);
      await peer.setRemoteDescription({ type: "answer", sdp: answer });
      clearTimeout(connectTimer);
      connectTimer = setTimeout(() => {
        if (peer === pc && peer.connectionState !== "connected") {
          noRoute("no connection " + seconds(CONNECT_LIMIT_MS) + " after the server answered");
        }
      }, CONNECT_LIMIT_MS);
    } catch (err) {
      if (peer === pc) scheduleReconnect(String(err.message || err), err.retryMs || 0);
    }
  }

  function teardown() {
    clearTimeout(connectTimer);
    if (pc) {
      const old = pc;
      pc = null;
      old.ontrack = null;
      old.onconnectionstatechange = null;
      old.close();
    }
    if (sessionUrl) {
      // Best effort: tell the server the old session is over, so it frees it at once.
      fetch(sessionUrl, { method: "DELETE", keepalive: true, credentials: "same-origin" }).catch(() => {});
      sessionUrl = null;
    }
    lastSample = null;
    disconnectedSince = null;
  }

  // A retry after the server refused or failed the offer (4xx/5xx): slower, as the server is
  // there and said no (Retry-After, when it gives one, sets the delay).
  function scheduleReconnect(reason, afterMs) {
    clearTimeout(retryTimer);
    teardown();
    app.reconnects++;
    const delay = afterMs || jitter(retryDelay);
    retryDelay = Math.min(retryDelay * 2, 5000);
    if (app.problem) setState("failed", app.problem + "; " + reason + "; " + retrying(delay));
    else setState("reconnecting", reason + "; " + retrying(delay));
    retryTimer = setTimeout(connect, delay);
  }

  // The media of a connection that played is gone (the server restarted or went away, the
  // network changed): a new session at once.
  function lostMedia(reason) {
    clearTimeout(retryTimer);
    teardown();
    app.reconnects++;
    setState("reconnecting", reason + "; " + retrying(0));
    connect();
  }

  // The server answered the offer, but no media got through: ICE found no route (UDP blocked,
  // or an address the browser cannot reach). Say so, and keep trying.
  function noRoute(why) {
    clearTimeout(retryTimer);
    const route = mediaRoute ? "; the server offered " + mediaRoute : "";
    teardown();
    app.reconnects++;
    app.iceFailures++;
    app.problem = "no route to the media (" + why + route + "): is UDP blocked between this " +
      "browser and the server? See the Networks section of rtcgear's README";
    const delay = jitter(1000);
    setState("failed", app.problem + "; " + retrying(delay));
    retryTimer = setTimeout(connect, delay);
  }

  // No answer from the server: probe it (a cheap GET, no new connection) until it answers, at
  // short randomized intervals, and offer again the moment it does.
  function serverUnreachable() {
    clearTimeout(retryTimer);
    teardown();
    const delay = jitter(probeDelay);
    probeDelay = Math.min(probeDelay * 2, PROBE_CAP_MS);
    setState("reconnecting", "the server does not answer; " + retrying(delay));
    retryTimer = setTimeout(async () => {
      if ((await serverStream()) !== null) connect();
      else serverUnreachable();
    }, delay);
  }

  // What the server says of this page's stream (`/api/streams`, a cheap GET): null when it
  // does not answer; `unknown` when it answers with an error, `missing` without the stream.
  async function serverStream() {
    try {
      const response = await fetch("/api/streams", {
        cache: "no-store", credentials: "same-origin", signal: AbortSignal.timeout(1500),
      });
      if (!response.ok) return { name: streamName, unknown: true };
      const body = await response.json();
      return body.streams.find((s) => s.name === streamName) || { name: streamName, missing: true };
    } catch (e) {
      return null;
    }
  }

  // Runs every 250 ms (in a hidden tab as often as the browser lets it): is the media still
  // coming?
  async function watchMedia() {
    if (!pc || app.state === "failed" || checking) return;
    const peer = pc;
    const now = performance.now();
    if (disconnectedSince && now - disconnectedSince >= DISCONNECTED_LIMIT_MS) {
      lostMedia("network lost");
      return;
    }
    if (peer.connectionState !== "connected" && !disconnectedSince) return;
    const limit = Math.max(STALL_LIMIT_MS, stats.fps > 0 ? 3000 / stats.fps : 0);
    if (now - progressAt < limit || now - checkedAt < 1000) return;
    // Nothing for a while (or timers too throttled to tell): look again, then ask the server
    // whether its source is the cause.
    checking = true;
    checkedAt = now;
    await sampleStats();
    const stream = peer === pc && performance.now() - progressAt >= limit ? await serverStream() : undefined;
    checking = false;
    if (stream === undefined) return;
    if (peer !== pc || performance.now() - progressAt < limit) return;
    const stalled = "no frames for " + seconds(performance.now() - progressAt);
    if (!stream) lostMedia(stalled + " and the server does not answer");
    else if (stream.missing || stream.viewers === 0) lostMedia(stalled + "; the server lost this session");
    else if (stream.unknown) return;
    // The server still counts this viewer: is it making frames (that do not arrive), or is its
    // source quiet (down, ended, stalled: the Source statistic says so, and the frames come
    // on this session when it has them)? Two looks a second apart tell.
    else if (quiet && quiet.since === progressAt && stream.frames_encoded > quiet.frames) {
      lostMedia(stalled + " while the server sends them");
    } else quiet = { since: progressAt, frames: stream.frames_encoded };
  }

  async function sampleStats() {
    if (!pc) return;
    const peer = pc;
    let report;
    try { report = await peer.getStats(); } catch (e) { return; }
    if (peer !== pc) return;
    let inbound = null, pair = null;
    report.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video") inbound = s;
      if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") pair = s;
    });
    if (inbound) {
      const now = performance.now();
      // Packets or frames since the last sample are progress too (a hidden tab presents no
      // frames), dated by the last packet's arrival where the browser says it.
      const moved = lastSample && (inbound.packetsReceived > lastSample.packets || inbound.framesDecoded > lastSample.frames);
      if (moved) {
        const age = inbound.lastPacketReceivedTimestamp > 0 && inbound.timestamp > 0
          ? Math.max(0, inbound.timestamp - inbound.lastPacketReceivedTimestamp) : 0;
        progressAt = Math.max(progressAt, now - age);
      }
      if (lastSample) {
        const dt = (now - lastSample.t) / 1000;
        stats.fps = (inbound.framesDecoded - lastSample.frames) / dt;
        stats.bitrateKbps = (8 * (inbound.bytesReceived - lastSample.bytes)) / dt / 1000;
      }
      lastSample = {
        t: now, frames: inbound.framesDecoded || 0, bytes: inbound.bytesReceived || 0,
        packets: inbound.packetsReceived || 0,
      };
      stats.framesDecoded = inbound.framesDecoded || 0;
      stats.width = inbound.frameWidth || video.videoWidth;
      stats.height = inbound.frameHeight || video.videoHeight;
      if (stats.framesDecoded > 0 && stats.firstFrameMs === null) stats.firstFrameMs = now - startedAt;
    }
    if (pair && pair.currentRoundTripTime !== undefined) stats.rttMs = pair.currentRoundTripTime * 1000;
    if (app.state === "connected") setState("connected");
    render();
  }

  function render() {
    const text = (id, value) => { document.getElementById(id).textContent = value; };
    text("stat-resolution", stats.width ? stats.width + "×" + stats.height : "–");
    text("stat-fps", lastSample ? stats.fps.toFixed(1) : "–");
    text("stat-bitrate", lastSample ? (stats.bitrateKbps / 1000).toFixed(2) + " Mb/s" : "–");
    text("stat-rtt", stats.rttMs === null ? "–" : stats.rttMs.toFixed(1) + " ms");
    text("stat-latency", stats.latencyP50Ms === null ? "no stamp" : stats.latencyP50Ms.toFixed(0) + " ms");
    text("stat-lost", stats.stampsRead ? String(stats.framesLost) : "–");
  }

  // Latency from the stamp: read the top rows of a presented frame five times a second, not
  // every frame: copying pixels back from the video competes with showing it (BENCHMARKS.md,
  // Browser latency). Frames lost between two reads are the stamp counter's advance less the
  // frames presented meanwhile.
  const STAMP_EVERY_MS = 200;
  const canvas = document.createElement("canvas");
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  const recent = [];
  let lastCounter = null;
  let lastPresented = null;
  let lastRead = -Infinity;
  function readStamp(presented) {
    const w = video.videoWidth, h = video.videoHeight;
    if (!w || !h) return;
    const rows = Math.min(h, Math.ceil((4 * w) / 32));
    if (canvas.width !== w || canvas.height !== rows) { canvas.width = w; canvas.height = rows; }
    ctx.drawImage(video, 0, 0, w, rows, 0, 0, w, rows);
    const stamp = window.rtcgearStamp.read(ctx.getImageData(0, 0, w, rows));
    if (!stamp) return;
    const latency = Date.now() - stamp.wallUs / 1000;
    stats.stampsRead++;
    stats.latencyMs = latency;
    if (lastCounter !== null && lastPresented !== null && presented !== undefined) {
      const advance = stamp.counter - lastCounter;
      const shown = presented - lastPresented;
      if (advance > shown && advance < 1000) stats.framesLost += advance - shown;
    }
    lastCounter = stamp.counter;
    lastPresented = presented === undefined ? null : presented;
    recent.push(latency);
    if (recent.length > 25) recent.shift();
    const sorted = recent.slice().sort((a, b) => a - b);
    stats.latencyP50Ms = sorted[Math.floor(sorted.length / 2)];
  }
  if ("requestVideoFrameCallback" in HTMLVideoElement.prototype) {
    const onFrame = (now, metadata) => {
      if (pc) {
        progressAt = performance.now();
        if (stats.firstFrameMs === null) stats.firstFrameMs = progressAt - startedAt;
      }
      const t = performance.now();
      if (t - lastRead >= STAMP_EVERY_MS) {
        lastRead = t;
        readStamp(metadata ? metadata.presentedFrames : undefined);
      }
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  } else {
    setInterval(() => readStamp(undefined), STAMP_EVERY_MS);
  }

  async function sampleServer() {
    // While the server restarts there is no answer: the connection logic handles that.
    const mine = await serverStream();
    if (mine && !mine.unknown && !mine.missing) {
      document.getElementById("stat-viewers").textContent = String(mine.viewers);
      document.getElementById("stat-source").textContent = mine.state + (mine.detail ? " (" + mine.detail + ")" : "");
    }
  }

  document.getElementById("fullscreen").addEventListener("click", () => {
    const stage = video.parentElement;
    if (document.fullscreenElement) document.exitFullscreen();
    else (stage.requestFullscreen || stage.webkitRequestFullscreen).call(stage);
  });
  document.addEventListener("keydown", (e) => { if (e.key === "f") document.getElementById("fullscreen").click(); });
  window.addEventListener("pagehide", teardown);

  setInterval(sampleStats, 1000);
  setInterval(watchMedia, 250);
  setInterval(sampleServer, 2000);
  sampleServer();
  connect();
})();
