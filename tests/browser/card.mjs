// Log in to a real Home Assistant in Debian's Chromium and talk to Shackleton through its card.
// Env: HA_URL, HA_USER, HA_PASSWORD, LIVEKIT_URL, SCREENSHOT, MIC_WAV (the fake microphone's
// file) and SPEECH (JSON: where its two utterances start and end, in seconds into the file).
// Asks the test to stop the LiveKit server with a line "stop-livekit" and waits for its answer
// on stdin. Prints one JSON line of what the page showed, and when, last; exits 1 on failure.
// The Python test makes the assertions.
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const { HA_URL, HA_USER, HA_PASSWORD, LIVEKIT_URL, SCREENSHOT, MIC_WAV } = process.env;
const SPEECH = JSON.parse(process.env.SPEECH);
const LIVEKIT_HTTP = LIVEKIT_URL.replace(/^ws/, "http");
const stdin = createInterface({ input: process.stdin });
const answers = stdin[Symbol.asyncIterator]();
const ask = async (request) => {
  console.log(request);
  return (await answers.next()).value;
};
const started = Date.now();
const seconds = {};
const mark = (name) => (seconds[name] = (Date.now() - started) / 1000);

// Playwright starts it with a fresh, temporary profile.
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    // The machine's network is closed: no background calls to Google's hosts.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    // A fake microphone, allowed without a prompt. It plays the file once from the moment a
    // page opens it (each getUserMedia starts it again), then silence.
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    `--use-file-for-fake-audio-capture=${MIC_WAV}%noloop`,
  ],
});
const result = {};
const consoleErrors = [];
let failure = null;
let page = null;
try {
  const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  await context.grantPermissions(["microphone"], { origin: HA_URL });
  // Only Home Assistant and the LiveKit server answer here: anything else (brand icons, fonts)
  // would wait on a closed network and hold the page's load event, so it is refused at once.
  result.refused = [];
  await context.route(
    (url) => !url.href.startsWith(HA_URL) && !url.href.startsWith(LIVEKIT_HTTP),
    (route) => (result.refused.push(route.request().url()), route.abort()),
  );
  // The order of HA's app and the card's module. It once mattered: a card that ran before
  // HA's app swapped window.customElements for a scoped-registry polyfill left the card
  // undefined ("Custom element doesn't exist"). HA 2026.11's page loads extra modules only
  // after that swap (its app calls __haLoadExtraModules), so the card always comes second;
  // the test records the order the card met.
  result.load_order = [];
  await context.route(/\/shackleton\/card\/shackleton-card\.js|\/frontend_latest\/app\.[0-9a-f]+\.js$/, async (route) => {
    result.load_order.push(route.request().url().includes("shackleton") ? "card" : "app");
    await route.continue();
  });
  // When the microphone opened, on the page's clock: the fake device's file starts then, so
  // this is where the utterances fall. Observed only; the card's call goes through as it is.
  await context.addInitScript(() => {
    window.__micOpened = [];
    const devices = navigator.mediaDevices;
    const getUserMedia = devices.getUserMedia.bind(devices);
    devices.getUserMedia = async (constraints) => {
      const stream = await getUserMedia(constraints);
      if (constraints?.audio) window.__micOpened.push(performance.now());
      return stream;
    };
  });
  page = await context.newPage();
  page.setDefaultTimeout(60000);
  page.on("console", (m) => m.type() === "error" && consoleErrors.push(m.text()));
  page.on("pageerror", (e) => consoleErrors.push(String(e)));

  // HA's own login page.
  await page.goto(HA_URL);
  await page.locator('input[name="username"]').fill(HA_USER);
  await page.locator('input[name="password"]').fill(HA_PASSWORD);
  await page.locator('input[name="password"]').press("Enter");
  const cardIn = (room) =>
    page.locator("shackleton-card").filter({ has: page.locator("#title", { hasText: `· ${room}` }) });
  const kitchen = cardIn("kitchen");
  const hall = cardIn("hall");
  await kitchen.locator("#connect").waitFor({ state: "visible" });
  await hall.locator("#connect").waitFor({ state: "visible" });
  mark("logged_in_card_visible");
  result.rendered = (await kitchen.locator("#connect").textContent()).trim() === "Connect";
  result.title = (await kitchen.locator("#title").textContent()).trim();
  result.hall_ptt_hidden = await hall.locator("#ptt").isHidden();

  // The visual editor: change the room and the mode, and read HA's config-changed event.
  result.editor_config = await page.evaluate(async () => {
    const editor = document.createElement("shackleton-card-editor");
    editor.hass = document.querySelector("home-assistant").hass;
    editor.setConfig({ type: "custom:shackleton-card", room: "kitchen", mode: "hands_free", captions: true });
    document.body.appendChild(editor);
    let last = null;
    editor.addEventListener("config-changed", (event) => (last = event.detail.config));
    const $ = (id) => editor.shadowRoot.getElementById(id);
    $("room").value = "office";
    $("room").dispatchEvent(new Event("input", { bubbles: true }));
    $("mode").value = "push_to_talk";
    $("mode").dispatchEvent(new Event("change", { bubbles: true }));
    editor.remove();
    return last;
  });
  mark("editor");

  // A log of what each card shows, sampled every 50 ms on the page's clock: its connection
  // and agent state, its captions and tool cards, and whether the agent's audio, as the card
  // plays it, is audible (a tone of RMS ~0.06 from the fake speech; silence is ~0).
  await page.evaluate(
    (cards) => {
      const log = (window.__log = []);
      let audioContext = null;
      // Per stream, not per element: livekit-client recycles a detached <audio> for the
      // next track, with a new stream in it.
      const analysers = new Map();
      const samples = new Float32Array(1024);
      const level = (root) => {
        let loudest = 0;
        for (const audio of root.querySelectorAll("audio")) {
          const stream = audio.srcObject;
          if (!stream) continue;
          if (!analysers.has(stream)) {
            // After the Connect click: the page has the user activation audio needs.
            audioContext ??= new AudioContext();
            audioContext.resume();
            const analyser = audioContext.createAnalyser();
            analyser.fftSize = samples.length;
            audioContext.createMediaStreamSource(stream).connect(analyser);
            analysers.set(stream, analyser);
          }
          analysers.get(stream).getFloatTimeDomainData(samples);
          loudest = Math.max(loudest, Math.sqrt(samples.reduce((sum, x) => sum + x * x, 0) / samples.length));
        }
        return loudest;
      };
      const last = {};
      setInterval(() => {
        const t = performance.now();
        for (const [name, card] of Object.entries(cards)) {
          const root = card.shadowRoot;
          const status = root.getElementById("status");
          const seen = {
            connection: status.dataset.state,
            agent: status.dataset.agentState,
            captions: [...root.getElementById("captions").children].map((p) => `${p.className}|${p.textContent}`),
            tools: [...root.getElementById("tools").children].map((chip) => chip.textContent),
            audible: level(root) > 0.01,
          };
          for (const [field, value] of Object.entries(seen)) {
            const key = `${name}.${field}`;
            if (JSON.stringify(value) === JSON.stringify(last[key])) continue;
            last[key] = value;
            log.push({ t, card: name, field, value });
          }
        }
      }, 50);
    },
    { kitchen: await kitchen.elementHandle(), hall: await hall.elementHandle() },
  );
  const now = () => page.evaluate(() => performance.now());
  const micOpenedAt = async (count) => {
    await page.waitForFunction((n) => window.__micOpened.length >= n, count);
    return page.evaluate((n) => window.__micOpened[n - 1], count);
  };
  // Wait until `ms` on the page's clock.
  const until = async (ms) => page.waitForTimeout(Math.max(0, ms - (await now())));
  const finalAgentCaptions = (card) => card.locator("#captions p.agent:not(.interim)");
  const agentState = (card, state) => card.locator(`#status[data-agent-state="${state}"]`);
  const captionsOf = (card) =>
    card.locator("#captions p").evaluateAll((lines) =>
      lines.map((p) => ({
        speaker: p.classList.contains("user") ? "user" : "agent",
        final: !p.classList.contains("interim"),
        text: p.textContent,
      })),
    );

  // Hands-free: the agent joins, and hears the first utterance, acts and answers.
  const tokenResponse = page.waitForResponse((r) => r.url().endsWith("/api/shackleton/token"));
  result.kitchen = { clicked: await now() };
  await kitchen.locator("#connect").click();
  const response = await tokenResponse;
  result.token_status = response.status();
  result.token_body = await response.json();
  mark("token");
  result.kitchen.mic = await micOpenedAt(1);
  await agentState(kitchen, "listening").waitFor({ timeout: 30000 });
  result.kitchen.listening = await now();
  mark("kitchen_agent_listening");
  await finalAgentCaptions(kitchen).first().waitFor({ timeout: 30000 });
  await kitchen.locator("#tools .tool").first().waitFor();
  await agentState(kitchen, "listening").waitFor();
  mark("kitchen_answered");
  if (SCREENSHOT) {
    await page.screenshot({ path: SCREENSHOT });
    await kitchen.screenshot({ path: SCREENSHOT.replace(/\.png$/, "-card.png") });
  }
  // The second utterance gets a long answer: Interrupt, 1.5 s into it.
  await agentState(kitchen, "speaking").waitFor({ timeout: 30000 });
  await page.waitForFunction(
    () => window.__log.findLast((e) => e.card === "kitchen" && e.field === "audible")?.value === true,
  );
  await page.waitForTimeout(1500);
  result.kitchen.interrupted = await now();
  await kitchen.locator("#interrupt").click();
  await agentState(kitchen, "listening").waitFor({ timeout: 10000 });
  // Long enough to hear the rest of the answer if it went on.
  await page.waitForTimeout(3000);
  result.kitchen.captions = await captionsOf(kitchen);
  result.kitchen.tools = await kitchen.locator("#tools .tool").allTextContents();
  await kitchen.locator("#connect").click();
  result.kitchen.after_disconnect = await kitchen.locator("#status").getAttribute("data-state");
  mark("kitchen_done");

  // Push-to-talk: the first utterance plays while the button is up, the second while it is
  // held (from before it starts until after it ends).
  result.hall = { clicked: await now() };
  await hall.locator("#connect").click();
  const mic = (result.hall.mic = await micOpenedAt(2));
  await agentState(hall, "listening").waitFor({ timeout: 30000 });
  result.hall.listening = await now();
  await until(mic + 1000 * (SPEECH.first[1] + 2.0));
  result.hall.captions_before_holding = await hall.locator("#captions p").allTextContents();
  const ptt = hall.locator("#ptt");
  const box = await ptt.boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await until(mic + 1000 * (SPEECH.second[0] - 1.2));
  result.hall.pressed = await now();
  await page.mouse.down();
  result.hall.aria_pressed = await ptt.getAttribute("aria-pressed");
  await until(mic + 1000 * (SPEECH.second[1] + 0.5));
  result.hall.released = await now();
  await page.mouse.up();
  await finalAgentCaptions(hall).first().waitFor({ timeout: 30000 });
  await agentState(hall, "listening").waitFor();
  result.hall.captions = await captionsOf(hall);
  await hall.locator("#connect").click();
  mark("hall_done");

  // The LiveKit server goes away: Connect says so, and Disconnect stops the retries.
  await ask("stop-livekit");
  await kitchen.locator("#connect").click();
  const error = kitchen.locator("#error");
  await error.waitFor({ state: "visible", timeout: 30000 });
  result.unreachable = {
    code: await error.getAttribute("data-code"),
    text: (await kitchen.locator("#error-text").textContent()).trim(),
    status: await kitchen.locator("#status").getAttribute("data-state"),
  };
  await kitchen.locator("#connect").click();
  result.unreachable.after_disconnect = await kitchen.locator("#status").getAttribute("data-state");
  mark("unreachable_shown");
  result.log = await page.evaluate(() => window.__log);
  result.seconds = seconds;
} catch (error) {
  failure = error;
  if (page && SCREENSHOT) {
    await page.screenshot({ path: SCREENSHOT.replace(/\.png$/, "-failure.png") }).catch(() => {});
  }
  result.page_url = page?.url();
  result.log = await page?.evaluate(() => window.__log).catch((e) => String(e));
  result.page_state = await page
    ?.evaluate(() => ({
      defined: Boolean(customElements.get("shackleton-card")),
      loaded: performance.getEntriesByType("resource").map((r) => r.name).filter((n) => n.includes("shackleton")),
      scripts: [...document.scripts].map((s) => s.src || s.textContent.slice(0, 200)),
    }))
    .catch((e) => String(e));
  result.console_errors = consoleErrors;
} finally {
  stdin.close();
  await browser.close();
}
console.log(JSON.stringify(result));
if (failure) {
  console.error(`card.mjs: ${failure.stack ?? failure}`);
  process.exit(1);
}
