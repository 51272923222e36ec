// rxaudio live page: microphone -> AudioWorklet -> WebSocket (protocol v2) -> events drawn here.
// Plain JS, no build step. State for tests and curious people: window.rxaudio.
"use strict";

(() => {
  const PROTOCOL = 2;
  const WINDOW_S = 8; // seconds shown by the spectrogram and VAD timeline
  const KEEP_S = 60; // audio kept for resending after a drop
  const params = new URLSearchParams(location.search);
  const token = params.get("token");
  const $ = (id) => document.getElementById(id);

  const state = {
    connected: false,
    live: false, // a started session is taking our audio on this connection
    hello: null,
    session: null, // id given by the server, reused to resume after a drop
    resumeToken: null, // the secret from "started" that resumes it (never put in a URL)
    resumeUrl: null, // where to resume it ("started".resume_url, --processes N), if given
    resumeOk: true, // false after the resume URL could not be reached: use the page's own
    seq: 0, // the last numbered speech event we hold (acknowledged to the server)
    mode: null, // "client" | "listen" | null
    rate: 0,
    format: "int16",
    sent: 0, // samples handed to the socket (session sample index)
    acked: 0, // samples the server says it received
    pending: [], // [{start, data: Float32Array}] captured, not yet acknowledged
    utterances: [],
    transcripts: [],
    results: [],
    counts: {},
    errors: [],
    reconnects: 0,
    tuned: false, // the person moved a setting: send ours instead of taking the server's
    resent: 0, // samples re-sent after resumes
    stoppedReceived: null, // the server's sample count when our last session stopped
    lastSpeech: false,
  };
  window.rxaudio = state;

  // ---- messages to the person -------------------------------------------------------------
  function say(text, kind) {
    const m = $("message");
    if (!text) { m.hidden = true; return; }
    m.hidden = false;
    m.textContent = text;
    m.className = "message " + (kind || "info");
  }

  function setConn(text, cls) {
    const c = $("conn");
    c.textContent = text;
    c.className = "pill " + cls;
  }

  // ---- WebSocket with reconnect and session resume ----------------------------------------
  let ws = null;
  let backoff = 500;
  let retryTimer = null;

  function wsUrl(viaResume) {
    // a server of several processes names, in "started", the URL of the process that holds
    // the session (its own port): a resume goes there (the secret resume_token goes only in
    // the start message, never in a URL)
    if (viaResume) {
      const u = new URL(state.resumeUrl);
      if (token) u.searchParams.set("token", token);
      return u.toString();
    }
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const params = [];
    if (token) params.push("token=" + encodeURIComponent(token));
    if (state.session) params.push("session=" + encodeURIComponent(state.session));
    const q = params.length ? "?" + params.join("&") : "";
    return proto + "//" + location.host + location.pathname.replace(/[^/]*$/, "") + "ws" + q;
  }

  function connect() {
    clearTimeout(retryTimer);
    setConn("connecting", "wait");
    // a resume URL that cannot be reached (a proxy that does not expose the process's port)
    // is given up for this session after one failed try: the page's own URL is used instead
    const viaResume = Boolean(state.session && state.resumeUrl && state.resumeOk);
    let opened = false;
    ws = new WebSocket(wsUrl(viaResume));
    ws.binaryType = "arraybuffer";
    ws.onopen = () => { backoff = 500; opened = true; };
    ws.onmessage = (ev) => {
      if (typeof ev.data !== "string") return;
      let msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      // we ask for batching: several events in one message, a JSON array, in order
      if (Array.isArray(msg)) msg.forEach(handle); else handle(msg);
    };
    ws.onclose = (ev) => {
      if (viaResume && !opened) state.resumeOk = false;
      dropped(ev.code, ev.reason);
    };
  }

  // Our own keep-alive: a server that stops answering pings for 15 s is treated as gone
  // (a dead network may never deliver a close), and we reconnect.
  let pingId = 0, lastPong = 0;
  setInterval(() => {
    if (!ws || ws.readyState !== WebSocket.OPEN || !state.connected) return;
    if (lastPong && Date.now() - lastPong > 15000) {
      const dead = ws;
      dead.onclose = null;
      dead.onmessage = null;
      try { dead.close(); } catch (e) { /* already gone */ }
      dropped(1006, "no pong for 15 s");
      return;
    }
    send({ type: "ping", id: ++pingId });
  }, 5000);

  function dropped(code, reason) {
    state.connected = false;
    state.live = false;
    ws = null;
    lastPong = 0;
    if (code === 4008) { // idle: no start within the server's start timeout
      setConn("idle", "off");
      return; // reconnect when the person presses Start or Listen
    }
    if (code === 4002 || code === 1008) {
      setConn("closed", "off");
      say("The server closed the connection (" + code + " " + reason + ").", "error");
      return;
    }
    setConn("offline", "off");
    const wait = Math.min(backoff, 8000);
    backoff *= 2;
    state.reconnects += 1;
    say("Connection lost; reconnecting in " + (wait / 1000).toFixed(1) +
        " s. Audio is kept and re-sent when the session resumes.", "warn");
    retryTimer = setTimeout(connect, wait);
  }

  function send(obj) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(obj));
  }

  function sendStart() {
    const msg = {
      type: "start", version: PROTOCOL, sample_rate: state.rate, channels: 1, format: state.format,
      batch: true,
    };
    if (state.session) { // resume: the session keeps its settings
      msg.session = state.session;
      msg.resume_token = state.resumeToken;
      msg.ack = state.seq; // the server sends again every speech event after this one
    }
    else if (state.tuned) msg.options = currentSettings(); // else the server's defaults apply
    send(msg);
  }

  function encode(f32) {
    if (state.format === "float32") return f32.buffer.slice(f32.byteOffset, f32.byteOffset + f32.byteLength);
    const out = new Int16Array(f32.length);
    for (let i = 0; i < f32.length; i++) {
      const s = Math.max(-1, Math.min(1, f32[i]));
      out[i] = s < 0 ? Math.round(s * 32768) : Math.round(s * 32767);
    }
    return out.buffer;
  }

  // Send everything captured from sample `from` on (after a resume: what the server lacks).
  function flushPending(from) {
    if (!ws || ws.readyState !== WebSocket.OPEN || state.mode !== "client") return;
    for (const blk of state.pending) {
      const end = blk.start + blk.data.length;
      if (end <= from) continue;
      const part = blk.start < from ? blk.data.subarray(from - blk.start) : blk.data;
      ws.send(encode(part));
      from = end;
    }
    state.sent = from;
  }

  function trimPending() {
    const keepFrom = Math.max(state.acked, state.sent - KEEP_S * state.rate);
    while (state.pending.length && state.pending[0].start + state.pending[0].data.length <= keepFrom) {
      state.pending.shift();
    }
  }

  function onAudio(f32) {
    if (state.mode !== "client") return;
    const last = state.pending[state.pending.length - 1];
    const start = last ? last.start + last.data.length : state.sent;
    state.pending.push({ start: start, data: f32 });
    if (state.live && ws && ws.readyState === WebSocket.OPEN && state.sent === start) {
      ws.send(encode(f32));
      state.sent = start + f32.length;
    }
    trimPending();
  }

  // ---- events from the server ---------------------------------------------------------------
  function handle(msg) {
    state.counts[msg.type] = (state.counts[msg.type] || 0) + 1;
    if (msg.type === "pong") { lastPong = Date.now(); return; }
    switch (msg.type) {
      case "hello":
        state.hello = msg;
        state.connected = true;
        lastPong = Date.now();
        setConn("online", "on");
        if (msg.modes.indexOf("listen") >= 0) $("listen").hidden = false;
        // the server says what may be set and what a session gets by default: the sliders
        // take their bounds within it and their starting values from it (not from the HTML)
        for (const [name, range] of Object.entries(msg.tunable || {})) {
          const el = document.querySelector("#settings [name=" + name + "]");
          if (!el) continue;
          el.min = String(Math.max(Number(el.min), range[0]));
          el.max = String(Math.min(Number(el.max), range[1]));
        }
        if (msg.defaults && !state.tuned) showSettings(msg.defaults);
        if (state.mode === "client") sendStart();
        else if (state.mode === "listen") send({ type: "listen", batch: true });
        else say("");
        break;
      case "started":
        if (msg.listen) { say("Listening to the server's source."); break; }
        if (state.session && msg.session === state.session && msg.resumed) {
          flushPending(msg.received);
          const n = state.sent - msg.received; // lost in flight + captured while away
          state.resent += n;
          say("Reconnected: session resumed, re-sent " + (n / state.rate).toFixed(2) +
              " s of audio.", "info");
        } else {
          if (state.session && msg.session !== state.session) {
            say("Reconnected, but the old session had expired: a new one started.", "warn");
          } else {
            say("");
          }
          state.session = msg.session;
          state.seq = 0;
          // a new session counts samples from 0: renumber what we still hold
          const base = state.pending.length ? state.pending[0].start : state.sent;
          for (const b of state.pending) b.start -= base;
          state.sent = 0;
          state.acked = 0;
          flushPending(0);
        }
        if (msg.resume_token) state.resumeToken = msg.resume_token;
        state.resumeUrl = msg.resume_url || null; // a server of several processes gives one
        state.resumeOk = true;
        state.live = true;
        showSettings(msg.settings);
        $("info").textContent = "session " + msg.session + " · " + msg.sample_rate + " Hz → " +
          msg.pipeline_rate + " Hz";
        break;
      case "level": drawLevel(msg); break;
      case "spectrogram": drawSpec(msg); break;
      case "vad": addVad(msg); break;
      case "speech_start": if (fresh(msg)) setSpeech(true); break;
      case "speech_end": if (fresh(msg)) setSpeech(false); break;
      case "utterance": if (fresh(msg)) addUtterance(msg); break;
      case "transcript": if (fresh(msg)) addTranscript(msg); break;
      case "result": addResult(msg); break;
      case "stats":
        state.acked = Math.max(state.acked, msg.received);
        trimPending();
        $("stats").textContent = msg.seconds.toFixed(1) + " s received · " + msg.frames +
          " frames · " + msg.utterances + " utterances · " + msg.dropped + " events dropped";
        break;
      case "config":
        showSettings(msg.settings);
        $("settings-status").textContent = "applied";
        break;
      case "stopped":
        state.stoppedReceived = msg.received;
        say("Stopped. Session files are kept on the server.");
        break;
      case "error":
        state.errors.push(msg);
        if (msg.code === "bad_config") $("settings-status").textContent = msg.message;
        else say("Server: " + msg.message, "error");
        break;
      default: break;
    }
  }

  // Numbered speech events: take each once, and acknowledge it so that a resume after a drop
  // sends again exactly what we never got.
  let ackTimer = null;
  function fresh(msg) {
    if (typeof msg.seq !== "number") return true;
    if (msg.seq <= state.seq) return false; // a duplicate (sent again after a resume)
    if (state.seq && msg.seq > state.seq + 1) state.errors.push({ code: "seq_gap", seq: msg.seq });
    state.seq = msg.seq;
    clearTimeout(ackTimer); // one ack for a burst of events
    ackTimer = setTimeout(() => { if (state.live) send({ type: "ack", seq: state.seq }); }, 200);
    return true;
  }

  // ---- drawing ------------------------------------------------------------------------------
  function drawLevel(msg) {
    if (typeof msg.rms_db !== "number" || typeof msg.peak_db !== "number") return; // null: not finite
    const pct = (db) => Math.max(0, Math.min(100, (db + 60) / 60 * 100));
    $("meter-rms").style.width = pct(msg.rms_db) + "%";
    $("meter-peak").style.left = pct(msg.peak_db) + "%";
    $("level-text").textContent = msg.rms_db.toFixed(1) + " dBFS rms";
  }

  const LUT = (() => {
    // a perceptual dark-blue -> magenta -> yellow ramp
    const stops = [[0, 4, 12, 40], [0.35, 80, 18, 120], [0.65, 220, 60, 80], [1, 252, 240, 120]];
    const lut = [];
    for (let i = 0; i < 256; i++) {
      const x = i / 255;
      let k = 0;
      while (k < stops.length - 2 && x > stops[k + 1][0]) k++;
      const a = stops[k], b = stops[k + 1];
      const t = (x - a[0]) / (b[0] - a[0]);
      lut.push([0, 1, 2].map((j) => Math.round(a[j + 1] + t * (b[j + 1] - a[j + 1]))));
    }
    return lut;
  })();

  function drawSpec(msg) {
    const c = $("spec"), g = c.getContext("2d");
    const raw = atob(msg.data);
    const rows = msg.rows, bins = msg.bins;
    const colW = c.width / (WINDOW_S / msg.hop);
    const w = Math.max(1, Math.round(colW * rows));
    g.drawImage(c, -w, 0);
    const img = g.createImageData(w, c.height);
    for (let x = 0; x < w; x++) {
      const r = Math.min(rows - 1, Math.floor(x / w * rows));
      for (let y = 0; y < c.height; y++) {
        const bin = Math.floor((c.height - 1 - y) / c.height * bins);
        const v = raw.charCodeAt(r * bins + bin);
        const col = LUT[v], o = (y * w + x) * 4;
        img.data[o] = col[0]; img.data[o + 1] = col[1]; img.data[o + 2] = col[2]; img.data[o + 3] = 255;
      }
    }
    g.putImageData(img, c.width - w, 0);
  }

  const vadPoints = [];
  function addVad(msg) {
    vadPoints.push(msg);
    const tmax = msg.end;
    while (vadPoints.length && vadPoints[0].t < tmax - WINDOW_S) vadPoints.shift();
    if (vadPoints.length % 3 === 0) drawVad(tmax);
  }

  function drawVad(tmax) {
    const c = $("vad"), g = c.getContext("2d");
    const W = c.width, H = c.height;
    const X = (t) => W - (tmax - t) / WINDOW_S * W;
    g.fillStyle = "#10131a";
    g.fillRect(0, 0, W, H);
    g.fillStyle = "rgba(80, 200, 120, 0.35)";
    for (const p of vadPoints) if (p.speech) g.fillRect(X(p.t), 0, Math.max(1, X(p.end) - X(p.t)), H);
    const th = Number(document.querySelector("[name=threshold]").value);
    g.strokeStyle = "rgba(255,255,255,0.3)";
    g.setLineDash([4, 4]);
    g.beginPath(); g.moveTo(0, H - th * H); g.lineTo(W, H - th * H); g.stroke();
    g.setLineDash([]);
    g.strokeStyle = "#f6c344";
    g.lineWidth = 1.5;
    g.beginPath();
    vadPoints.forEach((p, i) => {
      const y = H - p.p * (H - 2) - 1;
      if (i === 0) g.moveTo(X(p.t), y); else g.lineTo(X(p.t), y);
    });
    g.stroke();
  }

  function setSpeech(on) {
    state.lastSpeech = on;
    const s = $("speech");
    s.textContent = on ? "speech" : "silence";
    s.className = "pill " + (on ? "talk" : "quiet");
  }

  function addUtterance(msg) {
    state.utterances.push(msg);
    $("utt-count").textContent = String(state.utterances.length);
    const li = document.createElement("li");
    li.className = "utterance";
    const label = document.createElement("span");
    label.textContent = msg.start.toFixed(2) + "–" + msg.end.toFixed(2) + " s (" +
      msg.duration.toFixed(2) + " s, " + msg.reason + ")";
    li.appendChild(label);
    li.dataset.id = String(msg.id);
    const text = document.createElement("div");
    text.className = "transcript";
    li.appendChild(text);
    if (msg.url) {
      const url = msg.url.replace(/^\//, "") + (token ? "?token=" + encodeURIComponent(token) : "");
      const audio = document.createElement("audio");
      audio.controls = true;
      audio.preload = "none";
      audio.src = url;
      const a = document.createElement("a");
      a.href = url;
      a.download = msg.file || "utterance.wav";
      a.textContent = "download";
      li.appendChild(audio);
      li.appendChild(a);
    }
    $("utterances").prepend(li);
  }

  // the recognised text goes under its utterance (serve --transcribe)
  function addTranscript(msg) {
    state.transcripts.push(msg);
    const li = document.querySelector('#utterances li[data-id="' + msg.id + '"]');
    if (!li) return;
    const div = li.querySelector(".transcript");
    if (msg.status === "skipped") {
      div.textContent = "(not transcribed: the recogniser was busy)";
      div.classList.add("skipped");
    } else {
      div.textContent = msg.text || "(no words recognised)";
      if (typeof msg.confidence === "number") div.title = "confidence " + msg.confidence.toFixed(2);
    }
  }

  // a worker's output for an utterance (serve --redis; rxaudio worker): a transcript goes where
  // serve --transcribe puts one, anything else is one line under the utterance
  function addResult(msg) {
    state.results.push(msg);
    const r = msg.result || {};
    if (r.type === "transcript") {
      addTranscript(Object.assign({}, r, {id: msg.utterance}));
      return;
    }
    const li = document.querySelector('#utterances li[data-id="' + msg.utterance + '"]');
    if (!li) return;
    const div = document.createElement("div");
    div.className = "result";
    const what = r.type === "file" ? "wrote " + r.path : r.type + " " + JSON.stringify(r);
    div.textContent = (msg.worker ? msg.worker + ": " : "") + what.slice(0, 160);
    li.appendChild(div);
  }

  // ---- settings -----------------------------------------------------------------------------
  function currentSettings() {
    const out = {};
    for (const el of document.querySelectorAll("#settings input")) out[el.name] = Number(el.value);
    return out;
  }

  function setSlider(name, value) {
    const el = document.querySelector("#settings [name=" + name + "]");
    if (!el || value === undefined) return;
    el.value = String(value);
    document.querySelector("output[data-for=" + name + "]").textContent = el.value;
  }

  // the effective settings from the server (neg_threshold null: threshold - 0.15)
  function showSettings(s) {
    if (!s) return;
    for (const k of Object.keys(s)) if (s[k] !== null) setSlider(k, s[k]);
    if (s.neg_threshold === null && s.threshold !== undefined) {
      setSlider("neg_threshold", Math.max(0.01, s.threshold - 0.15).toFixed(2));
    }
  }

  let settingsTimer = null;
  $("settings").addEventListener("input", (ev) => {
    const el = ev.target;
    state.tuned = true;
    document.querySelector("output[data-for=" + el.name + "]").textContent = el.value;
    const th = Number(document.querySelector("[name=threshold]").value);
    const neg = document.querySelector("[name=neg_threshold]");
    if (Number(neg.value) > th) setSlider("neg_threshold", Math.max(0.01, th - 0.15).toFixed(2));
    clearTimeout(settingsTimer);
    settingsTimer = setTimeout(() => {
      if (state.mode === "client") send({ type: "config", options: currentSettings() });
    }, 150);
  });

  // ---- microphone ---------------------------------------------------------------------------
  let ctx = null, stream = null, node = null;

  async function startMic() {
    say("");
    if (!navigator.mediaDevices || !window.AudioWorkletNode) {
      say("This browser cannot capture audio here (it needs AudioWorklet and a secure context: " +
          "https or localhost).", "error");
      return;
    }
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
      });
    } catch (e) {
      const denied = e && (e.name === "NotAllowedError" || e.name === "SecurityError");
      say(denied ? "Microphone access was denied. Allow it in the browser's site settings and " +
        "press Start again." : "No microphone could be opened (" + (e && e.name) + ": " +
        (e && e.message) + ").", "error");
      return;
    }
    ctx = new AudioContext();
    await ctx.audioWorklet.addModule("static/worklet.js");
    const src = ctx.createMediaStreamSource(stream);
    node = new AudioWorkletNode(ctx, "rxaudio-capture", { processorOptions: { block: 2048 } });
    node.port.onmessage = (ev) => onAudio(new Float32Array(ev.data));
    src.connect(node);
    await ctx.resume();
    state.rate = ctx.sampleRate;
    if (!ws) connect(); // closed as idle (4008): the hello will send our start
    state.format = $("format").value;
    state.mode = "client";
    state.session = null;
    state.pending = [];
    state.sent = 0;
    $("start").disabled = true;
    $("stop").disabled = false;
    $("listen").disabled = true;
    if (state.connected) sendStart();
  }

  function stopAll() {
    if (node) { node.port.onmessage = null; node.disconnect(); node = null; }
    if (stream) { stream.getTracks().forEach((t) => t.stop()); stream = null; }
    if (ctx) { ctx.close(); ctx = null; }
    send({ type: "stop" });
    state.live = false;
    state.mode = null;
    state.session = null;
    state.pending = [];
    $("start").disabled = !window.isSecureContext;
    $("stop").disabled = true;
    $("listen").disabled = false;
  }

  // Browsers give the microphone only to secure contexts (https, or localhost): opened over
  // plain HTTP by any other name, say why Start cannot work and what fixes it (listen still works)
  if (!window.isSecureContext) {
    $("insecure-host").textContent = location.host;
    $("insecure").hidden = false;
    $("start").disabled = true;
    $("start").title = "needs an https page (see the note above)";
  }

  $("start").addEventListener("click", startMic);
  $("stop").addEventListener("click", stopAll);
  $("listen").addEventListener("click", () => {
    state.mode = "listen";
    $("start").disabled = true;
    $("stop").disabled = false;
    if (!ws) connect(); // closed as idle (4008): the hello will send listen
    else send({ type: "listen", batch: true });
  });

  connect();
})();
