// Drives Debian's chromium (headless) against the sink's live view and checks what a person
// would see. Run through meshtap_test_support::browser by sink/tests/view_browser.rs (a sink fed
// by the test) and tests/tests/e2e_demo_view.rs (the demo mesh):
//   node view.mjs <page url> <screenshot path> <user data dir> <expectations JSON>
// Expectations: services, edges, tcp_services, push_types, log_service, log_origins,
// scrape_jobs (each job must have a target `up`); optionally the ambient part: ambient_services
// (service rows a waypoint reports, marked ambient), ambient_edges (dashed graph edges) and
// ambient_pairs ([source, destination, counted by] rows of ztunnel's L4 table with a rate).
// Every step has its own timeout; the first failed check exits 1 with a message.
import { chromium } from "playwright-core";

const [url, screenshot, userDataDir, expectText] = process.argv.slice(2);
const expect = JSON.parse(expectText);
const STEP_MS = 20000;

function check(condition, message) {
  if (!condition) throw new Error(message);
}

const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  viewport: { width: 1400, height: 1000 },
  timeout: STEP_MS,
});
const problems = [];
try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(STEP_MS);
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console error: ${message.text()}`);
  });
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("requestfailed", (request) => problems.push(`request failed: ${request.url()}`));
  await page.goto(url, { timeout: STEP_MS });

  // Services with non-zero rates (the trend lines need a few points too).
  await page.waitForFunction((services) => {
    const rows = [...document.querySelectorAll("#services tbody tr")];
    return services.every((name) => rows.some((row) => {
      const cells = row.querySelectorAll("td");
      return cells[0]?.textContent === name && parseFloat(cells[2].textContent) > 0
        && row.querySelectorAll(".spark path").length > 0;
    }));
  }, expect.services, { timeout: STEP_MS });

  // The graph's edges, source workload to destination service.
  await page.waitForFunction((edges) => edges.every(([from, to]) =>
    document.querySelector(`#graph g.edge[data-from="${from}"][data-to="${to}"]`)), expect.edges, { timeout: STEP_MS });
  const edgeLabels = await page.$$eval("#graph g.edge text", (texts) => texts.map((t) => t.textContent));
  check(edgeLabels.every((label) => /\/s/.test(label)), `edge labels without a rate: ${edgeLabels}`);

  // TCP traffic per service, with a rate.
  await page.waitForFunction((services) => {
    const rows = [...document.querySelectorAll("#tcp tbody tr")];
    return services.every((name) => rows.some((row) => {
      const cells = row.querySelectorAll("td");
      return cells[0]?.textContent === name && parseFloat(cells[1].textContent) > 0;
    }));
  }, expect.tcp_services, { timeout: STEP_MS });

  // Ambient: waypoint-reported services and edges marked as such, ztunnel's workload pairs.
  if (expect.ambient_services) {
    await page.waitForFunction((services) => {
      const rows = [...document.querySelectorAll("#services tbody tr")];
      return services.every((name) => rows.some((row) => {
        const cells = row.querySelectorAll("td");
        return cells[0]?.textContent === name && cells[1].querySelector(".badge")?.textContent === "ambient"
          && parseFloat(cells[2].textContent) > 0;
      }));
    }, expect.ambient_services, { timeout: STEP_MS });
    await page.waitForFunction((edges) => edges.every(([from, to]) =>
      document.querySelector(`#graph g.edge.ambient[data-from="${from}"][data-to="${to}"]`)),
    expect.ambient_edges, { timeout: STEP_MS });
    const solid = await page.$$eval("#graph g.edge:not(.ambient)", (edges) => edges.map((e) => e.dataset.reporter));
    check(solid.every((reporter) => reporter !== "waypoint"), `waypoint edges not marked ambient: ${solid}`);
    await page.waitForFunction((pairs) => {
      const rows = [...document.querySelectorAll("#ambient tbody tr")].map((row) =>
        [...row.querySelectorAll("td")].map((td) => td.textContent));
      return pairs.every(([source, destination, reporter]) => rows.filter((cells) =>
        cells[0] === source && cells[1] === destination).length === 1 && rows.some((cells) =>
        cells[0] === source && cells[1] === destination && cells[3] === `${reporter} ztunnel`
          && parseFloat(cells[6]) > 0));
    }, expect.ambient_pairs, { timeout: STEP_MS });
  }

  // istiod's pushes, with a rate.
  await page.waitForFunction((types) => {
    const rows = [...document.querySelectorAll("#pushes tbody tr")];
    return types.every((type) => rows.some((row) => {
      const cells = row.querySelectorAll("td");
      return cells[0].textContent === type && parseFloat(cells[1].textContent) > 0;
    }));
  }, expect.push_types, { timeout: STEP_MS });

  // Log lines from the filter's reports and from the tailed files.
  await page.waitForFunction((wanted) => {
    const origins = [...document.querySelectorAll("#logs tbody tr td:nth-child(2)")].map((td) => td.textContent);
    return wanted.every((origin) => origins.includes(origin));
  }, expect.log_origins, { timeout: STEP_MS });

  // Filtering by status keeps only matching lines.
  await page.selectOption("#log-status", "5xx");
  await page.waitForFunction(() => {
    const statuses = [...document.querySelectorAll("#logs tbody tr td:nth-child(5)")].map((td) => td.textContent);
    return statuses.length > 0 && statuses.every((s) => s.startsWith("5"));
  }, null, { timeout: STEP_MS });
  await page.selectOption("#log-status", "");
  await page.selectOption("#log-service", expect.log_service);
  await page.waitForFunction((service) => {
    const services = [...document.querySelectorAll("#logs tbody tr td:nth-child(4)")].map((td) => td.textContent);
    return services.length > 0 && services.every((s) => s === service);
  }, expect.log_service, { timeout: STEP_MS });
  await page.selectOption("#log-service", "");

  // The pipeline panel names every scrape job as up.
  await page.waitForFunction((jobs) => {
    const rows = [...document.querySelectorAll("#targets tbody tr")].map((row) => row.textContent);
    return jobs.every((job) => rows.some((text) => text.includes(job) && text.includes("up")));
  }, expect.scrape_jobs, { timeout: STEP_MS });

  // Let a few more polls and trend points land, then keep the picture.
  await page.waitForTimeout(2500);
  await page.screenshot({ path: screenshot, fullPage: true, timeout: STEP_MS });
  check(problems.length === 0, problems.join("\n"));
  console.log(JSON.stringify({ ok: true, edges: edgeLabels.length }));
} finally {
  await context.close();
}
