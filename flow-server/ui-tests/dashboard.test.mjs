// The dashboard as a person uses it: the example server, headless Chromium, the token typed
// in, an approval run started from the form, its signal sent as JSON and from the form built
// from the signal's JSON schema, the lit state moving to the end; then the page served under a
// path prefix. Prints `N passed, N failed` last and exits non-zero on a failure; the run
// page's screenshot goes to target/dashboard.png.
//
//   node flow-server/ui-tests/dashboard.test.mjs
//
// It runs the example with `cargo run`, or the binary $FLOW_SERVER_BIN names (CI builds it
// with the tests' features, so that nothing is built twice). Chromium is Debian's
// (/usr/bin/chromium, or $CHROMIUM); playwright-core only drives it.

import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const target = process.env.CARGO_TARGET_DIR ? resolve(process.env.CARGO_TARGET_DIR) : join(root, "target");
const STEP = 10_000;

// Starts the example server, with `env` added to its environment; resolves to its address
// and token once it prints them.
function startServer(env = {}) {
  const [command, args] = process.env.FLOW_SERVER_BIN
    ? [resolve(process.env.FLOW_SERVER_BIN), []]
    : ["cargo", ["run", "-q", "-p", "flow-machine-server", "--example", "server"]];
  const child = spawn(command, args, {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "inherit"],
    detached: true,
  });
  const ready = new Promise((resolveReady, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error("the example server printed no address in 5 minutes")), 300_000);
    child.on("error", reject);
    child.on("exit", (code) => reject(new Error(`the example server exited (${code}) before serving`)));
    child.stdout.on("data", (chunk) => {
      out += chunk;
      const address = out.match(/serving on (http:\/\/127\.0\.0\.1:\d+)/);
      const dashboard = out.match(/dashboard: (\S+)/);
      const token = out.match(/token: ([0-9a-f]+)/);
      if (address && dashboard && token) {
        clearTimeout(timer);
        resolveReady({ base: address[1], dashboard: dashboard[1], token: token[1] });
      }
    });
  });
  const stop = () => {
    try {
      process.kill(-child.pid, "SIGTERM");
    } catch (_) {
      // It had ended.
    }
  };
  return { ready, stop };
}

const results = [];
// What the page raised or logged as an error, said with the check that fails.
const errors = [];
async function check(name, body) {
  if (results.some((r) => !r.ok)) {
    results.push({ name, ok: false });
    console.log(`not run: ${name} (an earlier check failed)`);
    return;
  }
  const started = Date.now();
  try {
    await body();
    results.push({ name, ok: true });
    console.log(`ok: ${name} (${Date.now() - started} ms)`);
  } catch (error) {
    results.push({ name, ok: false });
    console.log(`FAILED: ${name}\n  ${String(error && error.stack || error).split("\n").slice(0, 6).join("\n  ")}`);
    if (errors.length) console.log(`  the page's errors: ${errors.join("; ")}`);
  }
}

function expect(condition, message) {
  if (!condition) throw new Error(message);
}

// However it hangs, it ends: failed, with its count.
setTimeout(() => {
  server.stop();
  console.log("FAILED: the checks did not finish within 5 minutes");
  console.log(`${results.filter((r) => r.ok).length} passed, ${results.filter((r) => !r.ok).length + 1} failed`);
  process.exit(1);
}, 300_000).unref();

const server = startServer();
process.on("SIGINT", () => {
  server.stop();
  process.exit(130);
});
const profile = mkdtempSync(join(tmpdir(), "flow-dashboard-"));
let context = null;
try {
  const { base, dashboard, token } = await server.ready;
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    timeout: 60_000,
    viewport: { width: 1360, height: 900 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(STEP);
  page.on("pageerror", (error) => errors.push(error.message));
  // A console error is a script the page could not load or run, or a policy it broke; the
  // API's refusals (no token yet, a signal of the wrong type) are the checks' own doing.
  page.on("console", (message) => {
    if (message.type() !== "error") return;
    const url = message.location().url || "";
    const refused = message.text().startsWith("Failed to load resource") && url.startsWith(base + "/") &&
      url !== dashboard && !url.startsWith(base + "/ui/");
    if (!refused) errors.push(`console: ${message.text()}` + (url ? ` (${url})` : ""));
  });
  let run = "";

  await check("the example prints the dashboard's address, and the page loads without a token", async () => {
    expect(dashboard === base + "/", `dashboard at ${dashboard}, server at ${base}`);
    const response = await page.goto(dashboard);
    expect(response.ok(), `GET / answered ${response.status()}`);
    expect(response.headers()["content-security-policy"], "the page has no content security policy");
    await page.locator("#notice", { hasText: "needs a token" }).waitFor();
  });

  await check("with the token, the runs table offers the machines", async () => {
    await page.fill("#token", token);
    await page.click("#token-form button");
    await page.locator("#filter-machine option[value=approval]").waitFor({ state: "attached" });
    await page.locator("#start-machine option[value=checkout]").waitFor({ state: "attached" });
    expect(await page.evaluate(() => localStorage.getItem("flow.token")) === token, "the token was not kept");
  });

  await check("a run started from the form waits at its signal state, lit up", async () => {
    await page.selectOption("#start-machine", "approval");
    await page.fill("#start-input", JSON.stringify(`memo ${Date.now()}`));
    await page.click("#start-button");
    await page.waitForURL(/#\/runs\/[0-9a-f]{32}$/);
    run = page.url().split("/").pop();
    await page.locator('svg.machine g.state.current.is-waiting[data-state="review"]').waitFor();
    await page.locator("#signal-form:not([hidden])").waitFor();
    expect((await page.locator("svg.machine g.state").count()) === 4, "the diagram does not have the 4 states");
    expect((await page.locator("#run-status").textContent()).includes("waiting"), "the status is not waiting");
    await page.locator(".live.on").waitFor();
    mkdirSync(target, { recursive: true });
    await page.screenshot({ path: join(target, "dashboard-waiting.png"), fullPage: true });
  });

  await check("a signal that does not read as the type is refused with the server's reason", async () => {
    await page.fill("#signal-input", '{"Maybe": 1}');
    await page.click("#signal-send");
    await page.locator("#notice.error", { hasText: "Decision" }).waitFor();
    await page.locator('svg.machine g.state.current[data-state="review"]').waitFor();
  });

  await check("a rejection from the form goes round the loop and waits again", async () => {
    await page.fill("#signal-input", '{"Reject": "too short"}');
    await page.click("#signal-send");
    await page.locator("#timeline li", { hasText: "→ revise" }).waitFor();
    await page.locator("#timeline li", { hasText: "→ review" }).nth(1).waitFor();
    await page.locator('svg.machine g.state.current.is-waiting[data-state="review"]').waitFor();
    await page.locator('svg.machine path.edge.taken[data-from="revise"][data-to="review"]').waitFor({ state: "attached" });
  });

  await check("the signal form is built from the signal's JSON schema, and a rejection sent from it goes round again", async () => {
    // Decision is "Approve" or {"Reject": why}: a select of its variants, and a text field
    // for Reject's reason once it is picked.
    const variant = page.locator('#signal-fields select[data-field="signal"]');
    await variant.waitFor();
    const options = await variant.locator("option").allTextContents();
    expect(options.join() === "Approve,Reject", `the variants offered are ${options}`);
    await variant.selectOption("Reject");
    await page.fill('#signal-fields input[data-field="signal.Reject"]', "needs a summary");
    const sent = await page.inputValue("#signal-input");
    expect(sent === '{"Reject":"needs a summary"}', `the form wrote ${sent}`);
    await page.click("#signal-send");
    await page.locator("#timeline li", { hasText: "→ review" }).nth(2).waitFor();
    await page.locator('svg.machine g.state.current.is-waiting[data-state="review"]').waitFor();
  });

  await check("JSON typed below the form is read back into it", async () => {
    await page.fill("#signal-input", '{"Reject": "typed"}');
    const variant = await page.inputValue('#signal-fields select[data-field="signal"]');
    const reason = await page.inputValue('#signal-fields input[data-field="signal.Reject"]');
    expect(variant === "Reject" && reason === "typed", `the form shows ${variant} ${reason}`);
    await page.locator('#signal-fields select[data-field="signal"]').selectOption("Approve");
    expect(await page.inputValue("#signal-input") === '"Approve"', "picking Approve did not write \"Approve\"");
    await page.fill("#signal-input", "");
  });

  await check("an approval from the form moves the lit state to the end, and the run completes", async () => {
    await page.fill("#signal-input", '"Approve"');
    await page.click("#signal-send");
    await page.locator('svg.machine g.state.current.is-completed[data-state="publish"]').waitFor();
    await page.locator("#run-status .badge.completed").waitFor();
    await page.locator("#timeline li.now", { hasText: "published memo" }).waitFor();
    await page.locator("#events li.end", { hasText: "completed" }).waitFor();
    expect(await page.locator("#cancel").isDisabled(), "a completed run can still be cancelled");
    await page.locator("#signal-form").waitFor({ state: "hidden" });
    await page.screenshot({ path: join(target, "dashboard.png"), fullPage: true });
  });

  await check("the runs table lists the completed run, and filters by status", async () => {
    await page.click("nav a");
    await page.locator(`tr[data-run="${run}"] .badge.completed`).waitFor();
    await page.selectOption("#filter-status", "running");
    await page.locator(`tr[data-run="${run}"]`).waitFor({ state: "detached" });
    await page.selectOption("#filter-status", "completed");
    await page.locator(`tr[data-run="${run}"]`).waitFor();
    await page.screenshot({ path: join(target, "dashboard-runs.png"), fullPage: true });
  });

  await check("a run is paused, resumed and cancelled from its page", async () => {
    await page.selectOption("#start-machine", "approval");
    await page.fill("#start-input", '"to be cancelled"');
    await page.click("#start-button");
    await page.locator('svg.machine g.state.current.is-waiting[data-state="review"]').waitFor();
    await page.click("#pause");
    await page.locator("#run-status .badge.paused").waitFor();
    await page.click("#resume");
    await page.locator("#run-status .badge.running").waitFor();
    await page.click("#cancel");
    await page.locator("#run-status .badge.cancelled").waitFor();
    await page.locator('svg.machine g.state.current.is-cancelled[data-state="review"]').waitFor();
  });

  await check("a checkout whose card is declined fails in charge, and its history says why", async () => {
    await page.click("nav a");
    await page.selectOption("#start-machine", "checkout");
    await page.fill("#start-input", '{"id": 9, "lines": [{"sku": "declined", "cents": 450}]}');
    await page.click("#start-button");
    await page.locator('svg.machine g.state.current.is-failed[data-state="charge"]').waitFor();
    await page.locator("#run-status .badge.failed").waitFor();
    await page.locator("#timeline li.error", { hasText: "permanent error: the card for order 9 was declined" }).waitFor();
    await page.locator("#timeline li.now", { hasText: "charge failed after 1 attempt" }).waitFor();
  });

  await check("a checkout started from the form built from its input's JSON schema ships", async () => {
    await page.click("nav a");
    await page.selectOption("#start-machine", "checkout");
    // Order: `id` a number field, `lines` (a list of objects) a JSON field of its own.
    const id = page.locator('#start-fields input[data-field="start.id"]');
    await id.waitFor();
    expect(await id.getAttribute("type") === "number", "id is not a number field");
    await id.fill("12");
    await page.fill('#start-fields textarea[data-field="start.lines"]', '[{"sku": "book", "cents": 800}]');
    const sent = await page.inputValue("#start-input");
    expect(sent === '{"id":12,"lines":[{"sku":"book","cents":800}]}', `the form wrote ${sent}`);
    await page.click("#start-button");
    await page.waitForURL(/#\/runs\/[0-9a-f]{32}$/);
    await page.locator("#run-status .badge.completed").waitFor();
    await page.locator("#timeline li.now", { hasText: "order 12 shipped" }).waitFor();
  });

  await check("a flaky checkout is retried now from its page, then deleted once it ships", async () => {
    await page.click("nav a");
    await page.selectOption("#start-machine", "checkout");
    await page.fill("#start-input", '{"id": 10, "lines": [{"sku": "flaky", "cents": 300}]}');
    await page.click("#start-button");
    await page.waitForURL(/#\/runs\/[0-9a-f]{32}$/);
    const flaky = page.url().split("/").pop();
    expect(await page.locator("#delete").isHidden(), "an unfinished run offers to be deleted");
    await page.locator("#run-status", { hasText: "waiting: backoff" }).waitFor();
    await page.locator("#context", { hasText: "charged_cents" }).waitFor();
    // The backoff is 20 s: the run completes within the step only if retried now.
    await page.click("#retry");
    await page.locator("#run-status .badge.completed").waitFor();
    await page.locator("#retry").waitFor({ state: "hidden" });
    page.once("dialog", (dialog) => dialog.accept());
    await page.click("#delete");
    await page.locator("#notice.ok", { hasText: `Deleted run ${flaky}` }).waitFor();
    await page.locator("#filter-machine").waitFor();
    expect(await page.locator(`tr[data-run="${flaky}"]`).count() === 0, "the deleted run is still listed");
  });

  await check("the runs table filters by what a run waits for", async () => {
    await page.selectOption("#filter-status", "");
    await page.locator(`tr[data-run="${run}"]`).waitFor();
    await page.selectOption("#filter-wait", "signal");
    await page.locator(`tr[data-run="${run}"]`).waitFor({ state: "detached" });
    await page.selectOption("#filter-wait", "");
    await page.locator(`tr[data-run="${run}"]`).waitFor();
  });

  await check("served under a path prefix, the page finds its files, the API and its events there", async () => {
    const nested = startServer({ FLOW_SERVER_PREFIX: "/flow", FLOW_SERVER_DB: join(profile, "prefix.db") });
    try {
      const at = await nested.ready;
      // At `/flow`, not `/flow/`: links that resolved against the root would miss.
      expect(at.dashboard === at.base + "/flow", `dashboard at ${at.dashboard}, server at ${at.base}`);
      const other = await context.newPage();
      other.setDefaultTimeout(STEP);
      const problems = [];
      other.on("pageerror", (error) => problems.push(error.message));
      other.on("requestfinished", async (request) => {
        const response = await request.response();
        const url = request.url();
        // Before the token, the API refuses; anything outside the prefix is a wrong link,
        // but for the icon the browser asks of every site's root.
        if (url === at.base + "/favicon.ico") return;
        if (!url.startsWith(at.dashboard)) problems.push(`asked outside the prefix: ${url}`);
        else if (response && response.status() === 404) problems.push(`404: ${url}`);
      });
      await other.goto(at.dashboard);
      await other.fill("#token", at.token);
      await other.click("#token-form button");
      await other.locator("#start-machine option[value=approval]").waitFor({ state: "attached" });
      await other.locator("#live", { hasText: "live" }).waitFor();
      await other.close();
      expect(problems.length === 0, problems.join("; "));
    } finally {
      nested.stop();
    }
  });

  await check("the page raised no script errors and logged no errors", async () => {
    expect(errors.length === 0, errors.join("; "));
  });
} catch (error) {
  results.push({ name: "start the server and the browser", ok: false });
  console.log(`FAILED: start the server and the browser\n  ${error && error.stack || error}`);
} finally {
  if (context) await context.close().catch(() => {});
  server.stop();
  rmSync(profile, { recursive: true, force: true });
}

const passed = results.filter((r) => r.ok).length;
const failed = results.length - passed;
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
