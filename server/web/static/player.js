// The rtcgear player: plays one stream over WebRTC through WHEP, shows live statistics, measures
// glass-to-glass latency from the stamp in the picture, and reconnects by itself.
// State for scripts and tests: window.rtcgear = { state, stats, session }.
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
  const app = window.rtcgear = { state: "new", stats, session: null, reconnects: 0 };

  let pc = null;
  let sessionUrl = null;
  let retryTimer = null;
  let retryDelay = 1000;
  let lastSample = null;
  let startedAt = 0;
  let disconnectedSince = null;

  function setState(state, detail) {
    app.state = state;
    stateEl.textContent = detail ? state + ": " + detail : state;
    stateEl.className = "state state-" + state;
    const playing = state === "connected" && stats.framesDecoded > 0;
    overlay.classList.toggle("hidden", playing);
    if (!playing) overlay.textContent = detail ? state + " (" + detail + ")" : state + "…";
  }

  function waitForIceGathering(peer, limitMs) {
    if (peer.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => { peer.removeEventListener("icegatheringstatechange", check); resolve(); };
      const check = () => { if (peer.iceGatheringState === "complete") done(); };
      peer.addEventListener("icegatheringstatechange", check);
      setTimeout(done, limitMs);
    });
  }

  async function connect() {
    clearTimeout(retryTimer);
    teardown();
    setState(app.reconnects ? "reconnecting" : "connecting");
    startedAt = performance.now();
    stats.firstFrameMs = null;
    stats.framesDecoded = 0;
    stats.fps = 0;
    const peer = pc = app.pc = new RTCPeerConnection({ iceServers });
    peer.addTransceiver("video", { direction: "recvonly" });
    peer.ontrack = (event) => {
      if (video.srcObject !== event.streams[0]) video.srcObject = event.streams[0] || new MediaStream([event.track]);
    };
    peer.onconnectionstatechange = () => {
      if (peer !== pc) return;
      const s = peer.connectionState;
      if (s === "connected") {
        disconnectedSince = null;
        retryDelay = 1000;
        stats.connectedAt = Date.now();
        setState("connected");
      } else if (s === "failed" || s === "closed") {
        scheduleReconnect("connection " + s);
      } else if (s === "disconnected") {
        disconnectedSince = disconnectedSince || Date.now();
        setState("reconnecting", "network blip");
      }
    };
    try {
      const offer = await peer.createOffer();
      await peer.setLocalDescription(offer);
      await waitForIceGathering(peer, 2000);
      const response = await fetch(whepUrl, {
        method: "POST",
        // A server that went away without closing its connections must not hang us.
        signal: AbortSignal.timeout(5000),
        // The access cookie (or the browser's basic-auth login) goes along; same-origin only.
        credentials: "same-origin",
        headers: { "Content-Type": "application/sdp" },
        body: peer.localDescription.sdp,
      });
      if (response.status !== 201) {
        const reason = (await response.text()).trim() || response.statusText;
        throw new Error(response.status + " " + reason);
      }
      const location = response.headers.get("Location");
      sessionUrl = location ? new URL(location, window.location.href).href : null;
      app.session = sessionUrl;
      const answer = await response.text();
      if (peer !== pc) return;
      await peer.setRemoteDescription({ type: "answer", sdp: answer });
    } catch (err) {
      if (peer === pc) scheduleReconnect(String(err.message || err));
    }
  }

  function teardown() {
    if (pc) {
      const old = pc;
      pc = null;
      old.ontrack = null;
      old.onconnectionstatechange = null;
      old.close();
    }
    if (sessionUrl) {
      // Best effort: tell the server the old session is over, so it frees it at once.
      fetch(sessionUrl, { method: "DELETE", keepalive: true }).catch(() => {});
      sessionUrl = null;
    }
    lastSample = null;
  }

  function scheduleReconnect(reason) {
    clearTimeout(retryTimer);
    app.reconnects++;
    setState("reconnecting", reason + "; retrying in " + Math.round(retryDelay / 1000) + " s");
    retryTimer = setTimeout(connect, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 5000);
  }

  async function sampleStats() {
    if (!pc) return;
    if (disconnectedSince && Date.now() - disconnectedSince > 4000) {
      disconnectedSince = null;
      scheduleReconnect("network lost");
      return;
    }
    let report;
    try { report = await pc.getStats(); } catch (e) { return; }
    let inbound = null, pair = null;
    report.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video") inbound = s;
      if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") pair = s;
    });
    if (inbound) {
      const now = performance.now();
      if (lastSample) {
        const dt = (now - lastSample.t) / 1000;
        stats.fps = (inbound.framesDecoded - lastSample.frames) / dt;
        stats.bitrateKbps = (8 * (inbound.bytesReceived - lastSample.bytes)) / dt / 1000;
      }
      lastSample = { t: now, frames: inbound.framesDecoded || 0, bytes: inbound.bytesReceived || 0 };
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

  // Latency from the stamp: read the top rows of each decoded frame as it is presented.
  const canvas = document.createElement("canvas");
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  const recent = [];
  let lastCounter = null;
  function readStamp() {
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
    if (lastCounter !== null && stamp.counter > lastCounter + 1 && stamp.counter - lastCounter < 1000) {
      stats.framesLost += stamp.counter - lastCounter - 1;
    }
    lastCounter = stamp.counter;
    recent.push(latency);
    if (recent.length > 60) recent.shift();
    const sorted = recent.slice().sort((a, b) => a - b);
    stats.latencyP50Ms = sorted[Math.floor(sorted.length / 2)];
  }
  if ("requestVideoFrameCallback" in HTMLVideoElement.prototype) {
    const onFrame = () => {
      if (stats.firstFrameMs === null && pc) stats.firstFrameMs = performance.now() - startedAt;
      readStamp();
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  } else {
    setInterval(readStamp, 100);
  }

  async function sampleServer() {
    try {
      const response = await fetch("/api/streams", { signal: AbortSignal.timeout(3000) });
      const body = await response.json();
      const mine = body.streams.find((s) => s.name === streamName);
      if (mine) {
        document.getElementById("stat-viewers").textContent = String(mine.viewers);
        document.getElementById("stat-source").textContent = mine.state + (mine.detail ? " (" + mine.detail + ")" : "");
      }
    } catch (e) { /* the server is restarting: the connection logic handles it */ }
  }

  document.getElementById("fullscreen").addEventListener("click", () => {
    const stage = video.parentElement;
    if (document.fullscreenElement) document.exitFullscreen();
    else (stage.requestFullscreen || stage.webkitRequestFullscreen).call(stage);
  });
  document.addEventListener("keydown", (e) => { if (e.key === "f") document.getElementById("fullscreen").click(); });
  window.addEventListener("pagehide", teardown);

  setInterval(sampleStats, 1000);
  setInterval(sampleServer, 2000);
  sampleServer();
  connect();
})();
