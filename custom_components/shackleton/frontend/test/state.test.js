import { describe, expect, it } from "vitest";
import {
  MAX_CAPTIONS,
  MAX_TOOLS,
  backoffMs,
  initialState,
  mediaErrorCode,
  parseTool,
  reduce,
  retriesByItself,
  statusText,
  tokenError,
  validateConfig,
} from "../src/state.js";

const run = (events, state = initialState()) => events.reduce(reduce, state);
const connected = () => run([{ type: "connect" }, { type: "connected" }]);

describe("validateConfig", () => {
  it("fills in defaults and trims the room", () => {
    expect(validateConfig({ room: " kitchen " })).toEqual({ room: "kitchen", mode: "hands_free", captions: true });
    expect(validateConfig({ room: "hall.1", mode: "push_to_talk", captions: false }).captions).toBe(false);
  });

  it.each([[null], [{}], [{ room: "no spaces" }], [{ room: "x".repeat(65) }], [{ room: "kitchen", mode: "shout" }]])(
    "rejects %j with a readable error",
    (config) => {
      expect(() => validateConfig(config)).toThrow(/Shackleton card/);
    },
  );
});

describe("connecting", () => {
  it("goes idle → connecting → connected, and waits for the agent", () => {
    let state = reduce(initialState(), { type: "connect" });
    expect(state.connection).toBe("connecting");
    expect(state.wantConnected).toBe(true);
    state = reduce(state, { type: "connected" });
    expect(state.connection).toBe("connected");
    expect(statusText(state)).toBe("Waiting for the assistant…");
  });

  it("maps the token endpoint's refusals to their codes and keeps the server's message", () => {
    const failure = { status_code: 403, body: { code: "room_not_allowed", message: "You may not open the room office." } };
    const state = run([{ type: "connect" }, { type: "token_refused", failure }]);
    expect(state.connection).toBe("error");
    expect(state.error).toEqual({ code: "room_not_allowed", message: "You may not open the room office." });
    expect(state.attempts).toBe(1);
    // Nothing changes by waiting: no retry, and the button offers Connect again.
    expect(state.wantConnected).toBe(false);
    const unreachable = run([{ type: "connect" }, { type: "connect_failed", error: new Error("x") }]);
    expect(unreachable.wantConnected).toBe(true);
  });

  it("calls an unknown refusal token_refused", () => {
    expect(tokenError({ status_code: 401, body: "401: Unauthorized" })).toMatchObject({ code: "token_refused", status: 401 });
    expect(tokenError(new Error("Failed to fetch"))).toEqual({ code: "token_refused", message: "Failed to fetch", status: undefined });
    expect(tokenError({ status_code: 429, body: { code: "rate_limited", message: "Try again in 9 seconds." } }).code).toBe(
      "rate_limited",
    );
  });

  it("tells a refused microphone from an unreachable server", () => {
    expect(mediaErrorCode({ name: "NotAllowedError" })).toBe("mic_denied");
    expect(mediaErrorCode({ name: "SecurityError" })).toBe("mic_denied");
    expect(mediaErrorCode(new Error("could not establish signal connection"))).toBe("livekit_unreachable");
    const state = run([{ type: "connect" }, { type: "connect_failed", error: new Error("websocket error") }]);
    expect(state.error.code).toBe("livekit_unreachable");
    expect(run([{ type: "connect" }, { type: "connected" }, { type: "mic_denied" }]).error.code).toBe("mic_denied");
  });

  it("retries by itself only what can get better by itself", () => {
    expect(retriesByItself("livekit_unreachable")).toBe(true);
    expect(retriesByItself("agent_unavailable")).toBe(true);
    expect(retriesByItself("rate_limited")).toBe(true);
    for (const code of ["mic_denied", "room_not_allowed", "token_refused", "not_configured"]) {
      expect(retriesByItself(code)).toBe(false);
    }
  });

  it("backs off 1, 2, 4 … and caps at 30 s", () => {
    expect([1, 2, 3, 4, 5, 6, 7, 20].map(backoffMs)).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
    expect(backoffMs(0)).toBe(1000);
  });

  it("counts failures in a row until the agent is found", () => {
    let state = run([
      { type: "connect" },
      { type: "connect_failed", error: new Error("x") },
      { type: "connect" },
      { type: "connect_failed", error: new Error("x") },
    ]);
    expect(state.attempts).toBe(2);
    state = run([{ type: "connect" }, { type: "connected" }, { type: "agent_joined" }], state);
    expect(state.attempts).toBe(0);
  });
});

describe("the connection", () => {
  it("shows reconnecting, and a lost room as an error it recovers from", () => {
    let state = reduce(connected(), { type: "reconnecting" });
    expect(statusText(state)).toBe("Reconnecting…");
    expect(reduce(state, { type: "reconnected" }).connection).toBe("connected");
    state = reduce(state, { type: "disconnected" });
    expect(state.error.code).toBe("livekit_unreachable");
    expect(state.wantConnected).toBe(true);
  });

  it("goes back to idle on Disconnect, keeping what was said", () => {
    const caption = { id: "s1", speaker: "user", text: "hi", final: true };
    const state = run([{ type: "caption", caption }, { type: "disconnect" }], connected());
    expect(state.connection).toBe("idle");
    expect(state.wantConnected).toBe(false);
    expect(state.captions).toEqual([caption]);
    expect(reduce(state, { type: "disconnected" }).error).toBeNull();
  });

  it("gives up on an agent that never came, but not on one that did", () => {
    expect(reduce(connected(), { type: "agent_timeout" }).error.code).toBe("agent_unavailable");
    const joined = reduce(connected(), { type: "agent_joined" });
    expect(reduce(joined, { type: "agent_timeout" })).toBe(joined);
    const connecting = reduce(initialState(), { type: "connect" });
    expect(reduce(connecting, { type: "agent_timeout" })).toBe(connecting);
  });

  it("follows the agent's state attribute and ignores unknown values", () => {
    let state = reduce(connected(), { type: "agent_state", state: "thinking" });
    expect(state.agentPresent).toBe(true);
    expect(statusText(state)).toBe("Thinking…");
    state = reduce(state, { type: "agent_state", state: "dancing" });
    expect(state.agentState).toBe("thinking");
    state = reduce(state, { type: "agent_left" });
    expect([state.agentPresent, state.agentState]).toEqual([false, null]);
  });
});

describe("captions and tools", () => {
  it("merges updates of a segment and keeps the last few", () => {
    let state = connected();
    state = reduce(state, { type: "caption", caption: { id: "a", speaker: "agent", text: "Turning", final: false } });
    state = reduce(state, { type: "caption", caption: { id: "a", speaker: "agent", text: "Turning on", final: true } });
    expect(state.captions).toEqual([{ id: "a", speaker: "agent", text: "Turning on", final: true }]);
    for (let i = 0; i < 10; i += 1) {
      state = reduce(state, { type: "caption", caption: { id: `u${i}`, speaker: "user", text: `${i}`, final: true } });
    }
    expect(state.captions).toHaveLength(MAX_CAPTIONS);
    expect(state.captions.at(-1).id).toBe("u9");
  });

  it("parses tool results and keeps the last three", () => {
    const packet = new TextEncoder().encode(JSON.stringify({ tool: "HassTurnOn", summary: "Kitchen light → on", success: true }));
    expect(parseTool(packet)).toEqual({ tool: "HassTurnOn", summary: "Kitchen light → on", success: true });
    expect(parseTool('{"tool":"reminder_set","summary":"Reminder set failed","success":false}').success).toBe(false);
    expect(parseTool("not json")).toBeNull();
    expect(parseTool('{"tool":"x"}')).toBeNull();
    let state = connected();
    for (let i = 0; i < 5; i += 1) state = reduce(state, { type: "tool", result: { tool: "t", summary: `${i}`, success: true } });
    expect(state.tools.map((t) => t.summary)).toEqual(["2", "3", "4"]);
    expect(state.tools).toHaveLength(MAX_TOOLS);
  });
});

describe("push-to-talk and the meter", () => {
  it("talks only while connected", () => {
    expect(reduce(initialState(), { type: "talk", down: true }).talking).toBe(false);
    const state = reduce(connected(), { type: "talk", down: true });
    expect(state.talking).toBe(true);
    expect(reduce(state, { type: "talk", down: false }).talking).toBe(false);
    expect(reduce(state, { type: "connect_failed", error: new Error("x") }).talking).toBe(false);
  });

  it("clamps the level to 0–1", () => {
    expect(reduce(connected(), { type: "level", level: 3 }).micLevel).toBe(1);
    expect(reduce(connected(), { type: "level", level: -1 }).micLevel).toBe(0);
    expect(reduce(connected(), { type: "level", level: 0.25 }).micLevel).toBe(0.25);
  });
});
