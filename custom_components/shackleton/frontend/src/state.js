// The card's state, as pure functions: no DOM and no LiveKit here, so it is unit-tested.

// The same rule as the integration's ROOM_NAME.
export const ROOM_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
export const MODES = ["hands_free", "push_to_talk"];
export const AGENT_STATES = ["initializing", "listening", "thinking", "speaking"];
export const MAX_CAPTIONS = 6;
export const MAX_TOOLS = 3;
export const AGENT_WAIT_MS = 15000;
export const CONNECT_TIMEOUT_MS = 10000;

// What each error says, and whether a retry can help without someone changing something.
export const ERRORS = {
  livekit_unreachable: "Can't reach the LiveKit server.",
  mic_denied: "Microphone access was denied. Allow it in the browser's site settings.",
  token_refused: "Home Assistant refused to connect you.",
  room_not_allowed: "You may not open this room.",
  rate_limited: "Too many attempts. Wait a moment.",
  not_configured: "Shackleton has no LiveKit server set up.",
  voice_unavailable: "The voice assistant is unavailable.",
  agent_unavailable: "The assistant did not join the room.",
};

/** Check a card configuration; return it with defaults, or throw an Error people can read. */
export function validateConfig(config) {
  if (!config || typeof config !== "object") {
    throw new Error("Shackleton card: the configuration is missing.");
  }
  const room = typeof config.room === "string" ? config.room.trim() : "";
  if (!ROOM_NAME.test(room)) {
    throw new Error(
      "Shackleton card: set `room` to a room name (1 to 64 letters, digits, dots, dashes or underscores).",
    );
  }
  const mode = config.mode ?? "hands_free";
  if (!MODES.includes(mode)) {
    throw new Error(`Shackleton card: \`mode\` must be one of ${MODES.join(", ")}.`);
  }
  return { ...config, room, mode, captions: config.captions !== false };
}

export function initialState() {
  return {
    connection: "idle", // idle | connecting | connected | reconnecting | error
    agentPresent: false,
    agentState: null,
    error: null, // {code, message}
    attempts: 0, // failed connections in a row (for the backoff)
    wantConnected: false, // the user pressed Connect and not Disconnect
    talking: false, // push-to-talk held
    micLevel: 0,
    captions: [], // {id, speaker, text, final}
    tools: [], // {tool, summary, success}
  };
}

/** The reconnection delay after `attempts` failures in a row: 1, 2, 4 … 30 s. */
export function backoffMs(attempts) {
  return Math.min(30000, 1000 * 2 ** Math.max(0, attempts - 1));
}

/** Turn a failed token request (HA's callApi rejection, or an Error) into an error state. */
export function tokenError(failure) {
  const status = failure?.status_code ?? failure?.status;
  const body = failure?.body && typeof failure.body === "object" ? failure.body : {};
  const code = body.code in ERRORS ? body.code : "token_refused";
  const message = body.message || failure?.error || failure?.message || ERRORS[code];
  return { code, message: String(message), status };
}

/** Map a getUserMedia/LiveKit failure to an error code. */
export function mediaErrorCode(error) {
  const name = error?.name ?? "";
  if (name === "NotAllowedError" || name === "SecurityError" || name === "PermissionDeniedError") {
    return "mic_denied";
  }
  return "livekit_unreachable";
}

/** Whether this error goes away by itself, so the card retries without being asked. */
export function retriesByItself(code) {
  return code === "livekit_unreachable" || code === "agent_unavailable" || code === "rate_limited";
}

function withError(state, code, message) {
  return {
    ...state,
    connection: "error",
    agentPresent: false,
    agentState: null,
    talking: false,
    micLevel: 0,
    error: { code, message: message || ERRORS[code] || code },
    attempts: state.attempts + 1,
    // Only what gets better by itself is retried; otherwise the button offers Connect.
    wantConnected: state.wantConnected && retriesByItself(code),
  };
}

function mergeCaption(captions, caption) {
  const index = captions.findIndex((c) => c.id === caption.id);
  const next = index === -1 ? [...captions, caption] : captions.map((c, i) => (i === index ? caption : c));
  return next.slice(-MAX_CAPTIONS);
}

/** The next state after an event; never mutates. */
export function reduce(state, event) {
  switch (event.type) {
    case "connect":
      return { ...state, connection: "connecting", error: null, wantConnected: true };
    case "token_refused": {
      const { code, message } = tokenError(event.failure);
      return withError(state, code, message);
    }
    case "connect_failed":
      return withError(state, mediaErrorCode(event.error), event.message);
    case "mic_denied":
      return withError(state, "mic_denied");
    case "connected":
      return { ...state, connection: "connected", error: null };
    case "reconnecting":
      return { ...state, connection: "reconnecting" };
    case "reconnected":
      return { ...state, connection: "connected" };
    case "disconnected":
      if (!state.wantConnected) {
        return { ...initialState(), captions: state.captions, tools: state.tools };
      }
      // Lost while wanted: an error the card recovers from by reconnecting.
      return withError(state, "livekit_unreachable", ERRORS.livekit_unreachable);
    case "disconnect":
      return { ...initialState(), captions: state.captions, tools: state.tools };
    case "agent_joined":
      return { ...state, agentPresent: true, attempts: 0 };
    case "agent_left":
      return { ...state, agentPresent: false, agentState: null };
    case "agent_timeout":
      return state.agentPresent || state.connection !== "connected"
        ? state
        : withError(state, "agent_unavailable");
    case "agent_state":
      return AGENT_STATES.includes(event.state)
        ? { ...state, agentPresent: true, agentState: event.state }
        : state;
    case "caption":
      return { ...state, captions: mergeCaption(state.captions, event.caption) };
    case "tool":
      return { ...state, tools: [...state.tools, event.result].slice(-MAX_TOOLS) };
    case "talk":
      return state.connection === "connected" ? { ...state, talking: event.down } : state;
    case "level":
      return { ...state, micLevel: Math.max(0, Math.min(1, event.level)) };
    default:
      return state;
  }
}

/** Parse a `shackleton.tool` data packet; null when it is not one. */
export function parseTool(payload) {
  try {
    const data = JSON.parse(typeof payload === "string" ? payload : new TextDecoder().decode(payload));
    if (typeof data?.summary !== "string" || !data.summary) return null;
    return { tool: String(data.tool ?? ""), summary: data.summary, success: data.success !== false };
  } catch {
    return null;
  }
}

/** What the status line says. */
export function statusText(state) {
  switch (state.connection) {
    case "connecting":
      return "Connecting…";
    case "reconnecting":
      return "Reconnecting…";
    case "error":
      return "Not connected";
    case "connected":
      if (!state.agentPresent) return "Waiting for the assistant…";
      return { listening: "Listening", thinking: "Thinking…", speaking: "Speaking", initializing: "Starting…" }[
        state.agentState
      ] ?? "Connected";
    default:
      return "Not connected";
  }
}
