// shackleton-card: talk to Shackleton from a Home Assistant dashboard, over LiveKit.
// livekit-client (most of the bundle) loads on the first Connect: HA loads this module on
// every dashboard, with or without the card.
import {
  AGENT_WAIT_MS,
  CONNECT_TIMEOUT_MS,
  backoffMs,
  initialState,
  mediaErrorCode,
  parseTool,
  reduce,
  retriesByItself,
  statusText,
  validateConfig,
} from "./state.js";

// The engine's side of the contract (custom_components/shackleton/voice/client.py).
const TOOL_TOPIC = "shackleton.tool";
const INTERRUPT_RPC = "shackleton.interrupt";
const AGENT_IDENTITY = "shackleton-agent";
// LiveKit Agents' own names.
const AGENT_STATE_ATTRIBUTE = "lk.agent.state";
const TRANSCRIPTION_TOPIC = "lk.transcription";

let livekit = null;
const loadLivekit = async () => (livekit ??= await import("livekit-client"));

const isAgent = (participant) =>
  participant?.kind === livekit?.ParticipantKind.AGENT || participant?.identity === AGENT_IDENTITY;

function withTimeout(promise, ms) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const STYLE = `
  :host { display: block; }
  .card { padding: 16px; color: var(--primary-text-color); }
  .head { display: flex; align-items: center; justify-content: space-between; gap: 8px; }
  h2 { margin: 0; font-size: 1.1em; font-weight: 500; }
  #status { color: var(--secondary-text-color); font-size: 0.95em; }
  #status[data-state="error"] { color: var(--error-color, #db4437); }
  .dot { display: inline-block; width: 10px; height: 10px; border-radius: 50%; margin-right: 6px;
         background: var(--disabled-text-color, #bdbdbd); vertical-align: middle; }
  [data-agent-state="listening"] .dot { background: var(--success-color, #43a047); }
  [data-agent-state="thinking"] .dot { background: var(--warning-color, #ffa600); }
  [data-agent-state="speaking"] .dot { background: var(--primary-color, #03a9f4); }
  .controls { display: flex; flex-wrap: wrap; gap: 8px; margin-top: 12px; }
  button { font: inherit; border-radius: 18px; padding: 6px 16px; cursor: pointer;
           border: 1px solid var(--divider-color, #ccc); background: none; color: var(--primary-text-color); }
  button.primary { background: var(--primary-color, #03a9f4); color: var(--text-primary-color, #fff); border: none; }
  button:disabled { opacity: 0.45; cursor: default; }
  button:focus-visible { outline: 2px solid var(--primary-color, #03a9f4); outline-offset: 2px; }
  button[aria-pressed="true"] { background: var(--primary-color, #03a9f4); color: var(--text-primary-color, #fff); }
  button[hidden], [hidden] { display: none !important; }
  .meter { height: 6px; margin-top: 12px; border-radius: 3px; background: var(--divider-color, #e0e0e0); overflow: hidden; }
  .meter > div { height: 100%; width: 0; background: var(--primary-color, #03a9f4); transition: width 80ms linear; }
  #error { margin-top: 12px; padding: 8px 12px; border-radius: 8px;
           background: rgba(219, 68, 55, 0.1); color: var(--error-color, #db4437); }
  #error p { margin: 0 0 6px; }
  #captions { margin-top: 12px; max-height: 10em; overflow-y: auto; font-size: 0.95em; }
  #captions p { margin: 4px 0; }
  #captions .user { color: var(--secondary-text-color); }
  #captions .interim { opacity: 0.6; }
  #tools { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 8px; }
  .tool { font-size: 0.85em; padding: 4px 10px; border-radius: 12px; border: 1px solid var(--divider-color, #ccc); }
  .tool.failed { color: var(--error-color, #db4437); }
`;

class ShackletonCard extends HTMLElement {
  constructor() {
    super();
    this.attachShadow({ mode: "open" });
    this._state = initialState();
    this._room = null;
    this._timers = new Set();
    this._audio = null;
  }

  static getConfigElement() {
    return document.createElement("shackleton-card-editor");
  }

  static getStubConfig() {
    return { room: "living_room", mode: "hands_free", captions: true };
  }

  setConfig(config) {
    const next = validateConfig(config);
    const changed = this._config && (this._config.room !== next.room || this._config.mode !== next.mode);
    this._config = next;
    if (changed) this._leave();
    this._build();
    this._update();
  }

  set hass(hass) {
    this._hass = hass;
  }

  getCardSize() {
    return this._config?.captions ? 5 : 3;
  }

  disconnectedCallback() {
    this._leave();
  }

  // --- state ---------------------------------------------------------------------

  _dispatch(event) {
    this._state = reduce(this._state, event);
    this._update();
  }

  _later(fn, ms) {
    const timer = setTimeout(() => {
      this._timers.delete(timer);
      fn();
    }, ms);
    this._timers.add(timer);
  }

  _clearTimers() {
    for (const timer of this._timers) clearTimeout(timer);
    this._timers.clear();
  }

  _retryIfUseful() {
    const code = this._state.error?.code;
    if (this._state.wantConnected && code && retriesByItself(code)) {
      this._later(() => this._connect(), backoffMs(this._state.attempts));
    }
  }

  // --- LiveKit -------------------------------------------------------------------

  async _connect() {
    if (!this._hass || this._room || this._state.connection === "connecting") return;
    this._clearTimers();
    this._dispatch({ type: "connect" });
    const body = { room: this._config.room };
    if (this._config.config_entry_id) body.config_entry_id = this._config.config_entry_id;
    let grant;
    try {
      // A fresh short-lived token for every connection; HA checks who may have it.
      grant = await this._hass.callApi("POST", "shackleton/token", body);
    } catch (failure) {
      this._dispatch({ type: "token_refused", failure });
      this._retryIfUseful();
      return;
    }
    let Room;
    try {
      ({ Room } = await loadLivekit());
    } catch (error) {
      this._dispatch({ type: "connect_failed", error, message: `The card could not load LiveKit: ${error}` });
      this._retryIfUseful();
      return;
    }
    if (!this._state.wantConnected) return; // Disconnect pressed meanwhile
    const room = new Room({ adaptiveStream: true, dynacast: true });
    this._room = room;
    this._wire(room);
    try {
      await withTimeout(room.connect(grant.url, grant.token), CONNECT_TIMEOUT_MS);
    } catch (error) {
      this._room = null;
      room.removeAllListeners();
      room.disconnect().catch(() => {});
      this._dispatch({ type: "connect_failed", error, message: `Can't reach the LiveKit server at ${grant.url}.` });
      this._retryIfUseful();
      return;
    }
    this._dispatch({ type: "connected" });
    room.startAudio().catch(() => {}); // the Connect click allows playback
    try {
      const publication = await room.localParticipant.setMicrophoneEnabled(true);
      this._mic = publication?.track ?? null;
      if (this._config.mode === "push_to_talk") await this._mic?.mute();
      this._startMeter();
    } catch (error) {
      if (mediaErrorCode(error) === "mic_denied") {
        this._dispatch({ type: "mic_denied" });
        await this._closeRoom();
        return;
      }
    }
    for (const participant of room.remoteParticipants.values()) this._seeParticipant(participant);
    this._later(() => {
      this._dispatch({ type: "agent_timeout" });
      if (this._state.error?.code === "agent_unavailable") {
        this._closeRoom().then(() => this._retryIfUseful());
      }
    }, AGENT_WAIT_MS);
  }

  _wire(room) {
    const { RoomEvent, Track } = livekit;
    room
      .on(RoomEvent.ParticipantConnected, (p) => this._seeParticipant(p))
      .on(RoomEvent.ParticipantDisconnected, (p) => isAgent(p) && this._dispatch({ type: "agent_left" }))
      .on(RoomEvent.ParticipantAttributesChanged, (_changed, p) => this._seeParticipant(p))
      .on(RoomEvent.TrackSubscribed, (track) => {
        if (track.kind === Track.Kind.Audio) this.shadowRoot.appendChild(track.attach());
      })
      .on(RoomEvent.TrackUnsubscribed, (track) => track.detach().forEach((el) => el.remove()))
      .on(RoomEvent.DataReceived, (payload, _p, _kind, topic) => {
        const result = topic === TOOL_TOPIC ? parseTool(payload) : null;
        if (result) this._dispatch({ type: "tool", result });
      })
      .on(RoomEvent.Reconnecting, () => this._dispatch({ type: "reconnecting" }))
      .on(RoomEvent.Reconnected, () => this._dispatch({ type: "reconnected" }))
      .on(RoomEvent.Disconnected, () => {
        if (this._room !== room) return; // our own leave
        this._room = null;
        this._stopMeter();
        this._dispatch({ type: "disconnected" });
        this._retryIfUseful();
      });
    room.registerTextStreamHandler(TRANSCRIPTION_TOPIC, (reader, info) => this._caption(room, reader, info));
  }

  _seeParticipant(participant) {
    if (!isAgent(participant)) return;
    this._agent = participant.identity;
    this._dispatch({ type: "agent_joined" });
    const state = participant.attributes?.[AGENT_STATE_ATTRIBUTE];
    if (state) this._dispatch({ type: "agent_state", state });
  }

  async _caption(room, reader, info) {
    const attributes = reader.info?.attributes ?? {};
    const id = attributes["lk.segment_id"] ?? reader.info?.id;
    const speaker = info.identity === room.localParticipant.identity ? "user" : "agent";
    const final = attributes["lk.transcription_final"] === "true";
    let text = "";
    // The agent streams its words as they are spoken; each user update carries all of it.
    for await (const chunk of reader) {
      text += chunk;
      this._dispatch({ type: "caption", caption: { id, speaker, text, final } });
    }
    this._dispatch({ type: "caption", caption: { id, speaker, text, final: true } });
  }

  _interrupt() {
    if (!this._room || !this._agent) return;
    this._room.localParticipant
      .performRpc({ destinationIdentity: this._agent, method: INTERRUPT_RPC, payload: "" })
      .catch(() => {}); // speaking over it interrupts too
  }

  async _talk(down) {
    if (this._config.mode !== "push_to_talk" || !this._mic || down === this._state.talking) return;
    this._dispatch({ type: "talk", down });
    if (down) {
      this._interrupt();
      await this._mic.unmute();
    } else {
      await this._mic.mute();
    }
  }

  _startMeter() {
    const track = this._mic?.mediaStreamTrack;
    if (!track || this._audio) return;
    const context = new AudioContext();
    const analyser = context.createAnalyser();
    analyser.fftSize = 512;
    context.createMediaStreamSource(new MediaStream([track])).connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    const timer = setInterval(() => {
      analyser.getFloatTimeDomainData(samples);
      const rms = Math.sqrt(samples.reduce((sum, x) => sum + x * x, 0) / samples.length);
      const level = this._mic?.isMuted ? 0 : Math.min(1, rms * 4);
      if (Math.abs(level - this._state.micLevel) > 0.02) this._dispatch({ type: "level", level });
    }, 100);
    this._audio = { context, timer };
  }

  _stopMeter() {
    if (!this._audio) return;
    clearInterval(this._audio.timer);
    this._audio.context.close().catch(() => {});
    this._audio = null;
  }

  async _closeRoom() {
    const room = this._room;
    this._room = null;
    this._mic = null;
    this._agent = null;
    this._stopMeter();
    if (room) {
      room.unregisterTextStreamHandler?.(TRANSCRIPTION_TOPIC);
      await room.disconnect().catch(() => {});
    }
  }

  _leave() {
    this._clearTimers();
    this._closeRoom();
    this._dispatch({ type: "disconnect" });
  }

  // --- view ----------------------------------------------------------------------

  _build() {
    if (this._built) return;
    this._built = true;
    this.shadowRoot.innerHTML = `
      <style>${STYLE}</style>
      <ha-card>
        <div class="card">
          <div class="head">
            <h2 id="title"></h2>
            <span id="status" role="status" aria-live="polite"><span class="dot"></span><span id="status-text"></span></span>
          </div>
          <div class="meter" role="meter" id="meter" aria-label="Microphone level" aria-valuemin="0" aria-valuemax="100" aria-valuenow="0"><div></div></div>
          <div class="controls">
            <button id="connect" class="primary" type="button"></button>
            <button id="ptt" type="button" aria-pressed="false">Hold to talk</button>
            <button id="interrupt" type="button" aria-label="Interrupt the assistant">Interrupt</button>
          </div>
          <div id="error" role="alert" hidden><p id="error-text"></p><button id="retry" type="button">Try again</button></div>
          <div id="tools" aria-label="What the assistant did"></div>
          <div id="captions" aria-live="polite" aria-label="Captions"></div>
        </div>
      </ha-card>`;
    const $ = (id) => this.shadowRoot.getElementById(id);
    $("connect").addEventListener("click", () => (this._state.wantConnected ? this._leave() : this._connect()));
    $("retry").addEventListener("click", () => {
      this._clearTimers();
      this._connect();
    });
    $("interrupt").addEventListener("click", () => this._interrupt());
    const ptt = $("ptt");
    ptt.addEventListener("pointerdown", (e) => {
      ptt.setPointerCapture?.(e.pointerId);
      this._talk(true);
    });
    for (const type of ["pointerup", "pointercancel", "lostpointercapture"]) {
      ptt.addEventListener(type, () => this._talk(false));
    }
    ptt.addEventListener("keydown", (e) => {
      if ((e.key === " " || e.key === "Enter") && !e.repeat) {
        e.preventDefault();
        this._talk(true);
      }
    });
    ptt.addEventListener("keyup", (e) => {
      if (e.key === " " || e.key === "Enter") this._talk(false);
    });
  }

  _update() {
    if (!this._built) return;
    const s = this._state;
    const $ = (id) => this.shadowRoot.getElementById(id);
    const live = s.connection === "connected";
    $("title").textContent = this._config.title ?? `Shackleton · ${this._config.room}`;
    const status = $("status");
    status.dataset.state = s.connection;
    status.dataset.agentState = s.agentState ?? "";
    $("status-text").textContent = statusText(s);
    const connect = $("connect");
    connect.textContent = s.wantConnected ? "Disconnect" : "Connect";
    connect.setAttribute("aria-label", s.wantConnected ? "Disconnect from the assistant" : "Connect to the assistant");
    const ptt = $("ptt");
    ptt.hidden = this._config.mode !== "push_to_talk";
    ptt.disabled = !live;
    ptt.setAttribute("aria-pressed", String(s.talking));
    $("interrupt").disabled = !live || !s.agentPresent;
    const meter = $("meter");
    meter.setAttribute("aria-valuenow", String(Math.round(s.micLevel * 100)));
    meter.firstElementChild.style.width = `${Math.round(s.micLevel * 100)}%`;
    const error = $("error");
    error.hidden = !s.error;
    error.dataset.code = s.error?.code ?? "";
    $("error-text").textContent = s.error?.message ?? "";
    const tools = $("tools");
    tools.replaceChildren(
      ...s.tools.map((t) => {
        const chip = document.createElement("span");
        chip.className = `tool${t.success ? "" : " failed"}`;
        chip.textContent = `${t.success ? "✓" : "✗"} ${t.summary}`;
        return chip;
      }),
    );
    const captions = $("captions");
    captions.hidden = !this._config.captions;
    captions.replaceChildren(
      ...s.captions.map((c) => {
        const line = document.createElement("p");
        line.className = `${c.speaker}${c.final ? "" : " interim"}`;
        line.textContent = `${c.speaker === "user" ? "You" : "Shackleton"}: ${c.text}`;
        return line;
      }),
    );
    captions.scrollTop = captions.scrollHeight;
  }
}

class ShackletonCardEditor extends HTMLElement {
  constructor() {
    super();
    this.attachShadow({ mode: "open" });
  }

  set hass(hass) {
    this._hass = hass;
  }

  setConfig(config) {
    this._config = { ...config };
    this._render();
  }

  _render() {
    if (!this._built) {
      this._built = true;
      this.shadowRoot.innerHTML = `
        <style>
          label { display: block; margin: 8px 0; color: var(--primary-text-color); }
          input[type="text"], select { display: block; width: 100%; box-sizing: border-box; padding: 6px; font: inherit; }
        </style>
        <label>Room <input id="room" type="text" autocomplete="off" aria-describedby="room-help"></label>
        <small id="room-help">The LiveKit room, for example kitchen. Non-administrators need it allowed in Shackleton's options.</small>
        <label>Talking <select id="mode">
          <option value="hands_free">Hands-free</option>
          <option value="push_to_talk">Push-to-talk</option>
        </select></label>
        <label><input id="captions" type="checkbox"> Show captions</label>
        <label>Title (optional) <input id="title" type="text" autocomplete="off"></label>`;
      for (const id of ["room", "mode", "captions", "title"]) {
        this.shadowRoot.getElementById(id).addEventListener("change", () => this._changed());
        this.shadowRoot.getElementById(id).addEventListener("input", () => this._changed());
      }
    }
    const $ = (id) => this.shadowRoot.getElementById(id);
    $("room").value = this._config.room ?? "";
    $("mode").value = this._config.mode ?? "hands_free";
    $("captions").checked = this._config.captions !== false;
    $("title").value = this._config.title ?? "";
  }

  _changed() {
    const $ = (id) => this.shadowRoot.getElementById(id);
    const config = {
      ...this._config,
      room: $("room").value.trim(),
      mode: $("mode").value,
      captions: $("captions").checked,
    };
    const title = $("title").value.trim();
    if (title) config.title = title;
    else delete config.title;
    this._config = config;
    this.dispatchEvent(new CustomEvent("config-changed", { detail: { config }, bubbles: true, composed: true }));
  }
}

const define = () => {
  if (!customElements.get("shackleton-card")) customElements.define("shackleton-card", ShackletonCard);
  if (!customElements.get("shackleton-card-editor")) {
    customElements.define("shackleton-card-editor", ShackletonCardEditor);
  }
};
// Home Assistant's app may swap window.customElements for a scoped-registry polyfill
// that knows nothing defined before it, and this module can run first: the dashboard
// would then say "Custom element doesn't exist". The app defines <home-assistant> after
// the swap, so define the card then (in the registry current at that moment).
if (customElements.get("home-assistant")) define();
else customElements.whenDefined("home-assistant").then(define);
window.customCards = window.customCards || [];
if (!window.customCards.some((card) => card.type === "shackleton-card")) {
  window.customCards.push({
    type: "shackleton-card",
    name: "Shackleton",
    description: "Talk to the Shackleton voice assistant: microphone, captions, push-to-talk.",
    preview: false,
    documentationURL: "https://github.com/shackleton-voice/shackleton#dashboard-card",
  });
}
