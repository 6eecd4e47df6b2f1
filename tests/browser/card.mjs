// Log in to a real Home Assistant in Debian's Chromium and use the Shackleton card.
// Env: HA_URL, HA_USER, HA_PASSWORD, SCREENSHOT. Prints one JSON line; exits 1 on failure.
import { chromium } from "playwright-core";

const { HA_URL, HA_USER, HA_PASSWORD, SCREENSHOT } = process.env;
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
    // A fake microphone, allowed without a prompt.
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
  ],
});
const result = {};
const consoleErrors = [];
let failure = null;
let page = null;
try {
  const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  await context.grantPermissions(["microphone"], { origin: HA_URL });
  // Only Home Assistant answers here: anything else (brand icons, fonts) would wait on a
  // closed network and hold the page's load event, so it is refused at once.
  result.refused = [];
  await context.route(
    (url) => !url.href.startsWith(HA_URL),
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
  page = await context.newPage();
  page.setDefaultTimeout(60000);
  page.on("console", (m) => m.type() === "error" && consoleErrors.push(m.text()));
  page.on("pageerror", (e) => consoleErrors.push(String(e)));

  // HA's own login page.
  await page.goto(HA_URL);
  await page.locator('input[name="username"]').fill(HA_USER);
  await page.locator('input[name="password"]').fill(HA_PASSWORD);
  await page.locator('input[name="password"]').press("Enter");
  const card = page.locator("shackleton-card");
  const connect = card.locator("#connect");
  await connect.waitFor({ state: "visible" });
  mark("logged_in_card_visible");
  result.rendered = (await connect.textContent()).trim() === "Connect";
  result.title = (await card.locator("#title").textContent()).trim();

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

  // Connect: HA gives a token, and LiveKit cannot be reached (no server runs here).
  const tokenResponse = page.waitForResponse((r) => r.url().endsWith("/api/shackleton/token"));
  await connect.click();
  const response = await tokenResponse;
  result.token_status = response.status();
  result.token_body = await response.json();
  mark("token");
  const error = card.locator("#error");
  await error.waitFor({ state: "visible", timeout: 30000 });
  result.error_code = await error.getAttribute("data-code");
  result.error_text = (await card.locator("#error-text").textContent()).trim();
  result.status_state = await card.locator("#status").getAttribute("data-state");
  mark("error_shown");
  if (SCREENSHOT) {
    await page.screenshot({ path: SCREENSHOT });
    await card.screenshot({ path: SCREENSHOT.replace(/\.png$/, "-card.png") });
  }
  // Disconnect stops the retries and returns to idle.
  await connect.click();
  result.after_disconnect = await card.locator("#status").getAttribute("data-state");
  result.seconds = seconds;
} catch (error) {
  failure = error;
  if (page && SCREENSHOT) {
    await page.screenshot({ path: SCREENSHOT.replace(/\.png$/, "-failure.png") }).catch(() => {});
  }
  result.page_url = page?.url();
  result.page_state = await page
    ?.evaluate(() => ({
      defined: Boolean(customElements.get("shackleton-card")),
      loaded: performance.getEntriesByType("resource").map((r) => r.name).filter((n) => n.includes("shackleton")),
      scripts: [...document.scripts].map((s) => s.src || s.textContent.slice(0, 200)),
    }))
    .catch((e) => String(e));
  result.console_errors = consoleErrors;
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
if (failure) {
  console.error(`card.mjs: ${failure.stack ?? failure}`);
  process.exit(1);
}
