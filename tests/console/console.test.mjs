// Real-browser tests of the auditlog web console: Debian's chromium driven by playwright-core
// against a real server that tests/console/run.sh starts, seeds and tampers with.
// Plain Node (no test runner): every check is a named step printed as `ok - NAME`; the first
// failure prints what went wrong, the page's console errors and a screenshot path, and exits 1.
//
// Environment (set by run.sh): BASE_URL, ADMIN_TOKEN, READ_TOKEN, READ_NAME, INGEST_TOKEN,
// TAMPERED_EVENT_ID, SEEDED (events seeded), SCREENSHOT_DIR, CHROMIUM (default /usr/bin/chromium).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

function env(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`console.test.mjs: environment variable ${name} is not set (run tests/console/run.sh)`);
    process.exit(2);
  }
  return v;
}

const BASE = env('BASE_URL').replace(/\/$/, '');
const ADMIN_TOKEN = env('ADMIN_TOKEN');
const READ_TOKEN = env('READ_TOKEN');
const READ_NAME = env('READ_NAME');
const INGEST_TOKEN = env('INGEST_TOKEN');
const TAMPERED = env('TAMPERED_EVENT_ID');
const SEEDED = Number(process.env.SEEDED || '1');
const SHOTS = process.env.SCREENSHOT_DIR || join(tmpdir(), 'auditlog-console-screenshots');
const TIMEOUT = 10_000;
const API = '/api/audit-logs';
// The seeded events' type used to filter: the server itself never writes this type (it writes
// data_access for every read, authentication and authorization for logins and refusals), so
// its total does not move while the test runs.
const FILTER_TYPE = 'configuration_change';
mkdirSync(SHOTS, { recursive: true });

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);
const offLoopback = []; // requests aborted because they would have left the machine
let requestsSeen = 0;

// Browser console errors that the steps cause on purpose (Chrome logs every 4xx answer as
// "Failed to load resource"): [status, path] pairs. Anything else logged as an error fails.
const EXPECTED_HTTP_ERRORS = [
  [401, '/console/session'], // the console's boot check before login
  [403, `${API}/verify/run`], // the read session's refused verify, with and without CSRF
  [401, API], // the query after logout
];
const consoleErrors = []; // every error seen: {text, url, expected}
let unreported = 0;

let passed = 0;
let current = null; // the page a failure screenshot is taken of
let browser;

// ---------------------------------------------------------------- helpers

async function api(path, { token = ADMIN_TOKEN, method = 'GET', body, type } = {}) {
  const headers = { Authorization: `Bearer ${token}` };
  if (type) headers['Content-Type'] = type;
  const res = await fetch(BASE + path, { method, headers, body });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${text.slice(0, 300)}`);
  return json;
}

// Appends one event (ingest token) and returns its seq.
async function appendEvent(eventId) {
  const ev = {
    event_id: eventId,
    timestamp: new Date().toISOString(),
    event_type: 'security_event',
    action: 'console_tail_probe',
    status: 'success',
    severity: 'high',
    actor: { user_id: 'user-tail-test', email: 'tail@company.com', ip_address: '192.0.2.200' },
    details: { probe: eventId },
  };
  const r = await api(API, {
    token: INGEST_TOKEN,
    method: 'POST',
    body: JSON.stringify(ev) + '\n',
    type: 'application/x-ndjson',
  });
  assert.equal(r.accepted, 1, `append of ${eventId}: ${JSON.stringify(r)}`);
  assert.equal(r.receipts[0].event_id, eventId);
  return r.receipts[0].seq;
}

const numberIn = (text) => {
  const m = String(text).replace(/[,\u00a0\u202f ]/g, '').match(/\d+/);
  return m ? Number(m[0]) : NaN;
};

async function newPage({ width = 1280, height = 800 } = {}) {
  const context = await browser.newContext({
    viewport: { width, height },
    colorScheme: 'light',
    locale: 'en-US',
    timezoneId: 'UTC',
  });
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    requestsSeen++;
    if (!LOOPBACK.has(url.hostname)) {
      offLoopback.push(route.request().url());
      return route.abort('blockedbyclient').catch(() => {});
    }
    // A request still pending when its context closes (the live tail) cannot be continued.
    return route.continue().catch(() => {});
  });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const text = msg.text();
    const loc = msg.location() && msg.location().url ? new URL(msg.location().url, BASE) : null;
    const status = Number((text.match(/status of (\d{3})/) || [])[1]);
    const expected = /^Failed to load resource/.test(text) && loc &&
      EXPECTED_HTTP_ERRORS.some(([s, p]) => s === status && loc.pathname === p);
    consoleErrors.push({ text, url: loc ? loc.href : '', expected });
    if (!expected) unreported++;
  });
  page.on('pageerror', (err) => {
    consoleErrors.push({ text: `uncaught: ${err.message}`, url: '', expected: false });
    unreported++;
  });
  current = page;
  return { context, page };
}

// Waits until `fn` (run in the page with `arg`) is truthy; on timeout, fails with `what` and
// the value `describe` (also run in the page) gives of the current state.
async function until(page, what, fn, arg, describe, timeout = TIMEOUT) {
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: 100 });
  } catch (e) {
    let now = '';
    if (describe) {
      try {
        now = ` (now: ${JSON.stringify(await page.evaluate(describe, arg))})`;
      } catch {
        /* page gone */
      }
    }
    throw new Error(`timed out after ${timeout} ms waiting for ${what}${now}`);
  }
}

function stateOf([sel]) {
  const e = document.querySelector(sel);
  return e ? { class: e.className, text: e.textContent.trim().slice(0, 200), hidden: e.hidden } : 'no element';
}

async function waitClass(page, sel, cls, timeout = TIMEOUT) {
  await until(page, `${sel} to get class "${cls}"`,
    ([s, c]) => {
      const e = document.querySelector(s);
      return !!e && e.classList.contains(c);
    }, [sel, cls], stateOf, timeout);
}

async function visible(page, sel, what = sel) {
  try {
    await page.locator(sel).first().waitFor({ state: 'visible' });
  } catch {
    throw new Error(`${what} is not visible after ${TIMEOUT} ms`);
  }
}

async function hidden(page, sel, what = sel) {
  try {
    await page.locator(sel).first().waitFor({ state: 'hidden' });
  } catch {
    throw new Error(`${what} is still visible after ${TIMEOUT} ms`);
  }
}

// The rows of #results: seq, event_id, classes and the text of the Type column.
async function rows(page) {
  return page.evaluate(() => {
    const ths = [...document.querySelectorAll('#results thead th')];
    const typeCol = ths.findIndex((th) => /^\s*type\b/i.test(th.textContent));
    return [...document.querySelectorAll('#results tr.event-row')].map((tr) => ({
      seq: Number(tr.dataset.seq),
      eventId: tr.dataset.eventId,
      tampered: tr.classList.contains('tampered'),
      type: typeCol >= 0 && tr.cells[typeCol] ? tr.cells[typeCol].textContent.trim() : null,
    }));
  });
}

const seqs = async (page) => (await rows(page)).map((r) => r.seq);

// Waits until the result rows' seqs are exactly `want` (in order).
async function waitSeqs(page, want, what) {
  await until(page, `${what}: rows with seqs ${JSON.stringify(want)}`,
    (w) => {
      const got = [...document.querySelectorAll('#results tr.event-row')].map((tr) => Number(tr.dataset.seq));
      return got.length === w.length && got.every((s, i) => s === w[i]) &&
        !document.querySelector('#results[aria-busy="true"]');
    }, want,
    () => [...document.querySelectorAll('#results tr.event-row')].map((tr) => Number(tr.dataset.seq)));
}

async function totalShown(page) {
  const t = await page.locator('#results-total').textContent();
  const n = numberIn(t);
  assert.ok(Number.isFinite(n), `#results-total shows no number: ${JSON.stringify(t)}`);
  return n;
}

async function login(page, token) {
  await page.goto(BASE + '/');
  await visible(page, '#login', 'the login form (#login)');
  await page.locator('#login-token').fill(token);
  await page.locator('#login-submit').click();
  await visible(page, '#app', 'the console (#app) after login');
  await hidden(page, '#login', '#login after login');
}

async function shot(page, name) {
  const path = join(SHOTS, name);
  await page.screenshot({ path });
  return path;
}

async function step(name, fn) {
  try {
    await fn();
    if (unreported) throw new Error('the page logged errors (see below)');
    passed++;
    console.log(`ok - ${name}`);
  } catch (e) {
    console.log(`not ok - ${name}`);
    console.log(`  ${String(e && e.stack ? e.message : e).split('\n').join('\n  ')}`);
    const errs = consoleErrors.filter((c) => !c.expected);
    if (errs.length) {
      console.log('  page console errors:');
      for (const c of errs) console.log(`    ${c.text}${c.url ? ` [${c.url}]` : ''}`);
    }
    if (current) {
      try {
        const p = join(tmpdir(), 'auditlog-console-failure.png');
        await current.screenshot({ path: p, fullPage: true });
        console.log(`  page: ${current.url()}\n  screenshot of the failure: ${p}`);
      } catch {
        /* page closed */
      }
    }
    console.log(`console: ${passed} passed, 1 failed`);
    if (browser) await browser.close().catch(() => {});
    process.exit(1);
  }
}

// ---------------------------------------------------------------- the steps

const started = Date.now();
browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox'],
});

// ---- the read token's session
const { context: readCtx, page } = await newPage();
let fullTypeSeqs; // seqs of FILTER_TYPE events, newest first

await step('the console page loads under its CSP and shows the login form', async () => {
  const res = await page.goto(BASE + '/');
  assert.equal(res.status(), 200);
  const csp = res.headers()['content-security-policy'] || '';
  assert.match(csp, /default-src 'none'/, `CSP: ${csp}`);
  await visible(page, '#login', 'the login form (#login)');
  assert.equal(await page.locator('#app').isVisible(), false, '#app is visible before login');
});

await step('log in with the read token', async () => {
  await login(page, READ_TOKEN);
  const who = await page.locator('#whoami').textContent();
  assert.ok(who.includes(READ_NAME), `#whoami ${JSON.stringify(who)} does not name ${READ_NAME}`);
  assert.equal(await page.locator('#login-token').inputValue(), '', 'the token stays in the login field');
});

await step('the session cookie is HttpOnly and SameSite=Strict', async () => {
  const cookies = await readCtx.cookies(BASE);
  const c = cookies.find((k) => k.name === 'auditlog_session');
  assert.ok(c, `no auditlog_session cookie: ${JSON.stringify(cookies.map((k) => k.name))}`);
  assert.equal(c.httpOnly, true, 'cookie is not HttpOnly');
  assert.equal(c.sameSite, 'Strict', `cookie SameSite is ${c.sameSite}`);
  assert.notEqual(c.value, READ_TOKEN, 'the cookie holds the token itself');
  assert.equal(await page.evaluate(() => document.cookie.includes('auditlog_session')), false,
    'the session cookie is readable from script');
});

await step('the results table shows the seeded events and their total', async () => {
  await until(page, 'rows in #results and a total in #results-total',
    () => document.querySelectorAll('#results tr.event-row').length > 0 &&
      /\d/.test(document.getElementById('results-total').textContent),
    undefined, () => document.getElementById('results-total').textContent);
  const total = await totalShown(page);
  // The server records every read as a data_access event, so the total is the seeded events
  // plus those records.
  assert.ok(total >= SEEDED, `#results-total shows ${total}, fewer than the ${SEEDED} seeded`);
  const r = await rows(page);
  assert.equal(r.length, Math.min(total, 50), `${r.length} rows for a total of ${total} (50 a page)`);
  for (const x of r) assert.ok(Number.isInteger(x.seq), `a row without data-seq: ${JSON.stringify(x)}`);
  assert.equal(await page.locator('#export-jsonl').isVisible(), false, 'export is offered to a read token');
  await shot(page, 'search.png');
});

await step(`filter by event type (${FILTER_TYPE}): rows, total and URL agree with the API`, async () => {
  await page.locator('#f-event_type').fill(FILTER_TYPE);
  await page.locator('#search').click();
  await until(page, `every row to be of type ${FILTER_TYPE}`,
    (t) => {
      const ths = [...document.querySelectorAll('#results thead th')];
      const col = ths.findIndex((th) => /^\s*type\b/i.test(th.textContent));
      const trs = [...document.querySelectorAll('#results tr.event-row')];
      return col >= 0 && trs.length > 0 && trs.every((tr) => tr.cells[col].textContent.trim() === t) &&
        !document.querySelector('#results[aria-busy="true"]');
    }, FILTER_TYPE, () => document.getElementById('results-total').textContent);
  const want = await api(`${API}?event_type=${FILTER_TYPE}&limit=50&order=desc`);
  assert.ok(want.total_count > 1, `the API finds ${want.total_count} ${FILTER_TYPE} events`);
  assert.equal(await totalShown(page), want.total_count, '#results-total differs from the API');
  fullTypeSeqs = want.audit_logs.map((e) => e.seq);
  assert.deepEqual(await seqs(page), fullTypeSeqs, 'rows differ from the API answer to the same query');
  assert.ok(page.url().includes(`event_type=${FILTER_TYPE}`), `the URL holds no filter: ${page.url()}`);
});

await step('reloading the page keeps the filter (it is in the URL)', async () => {
  await page.goto(page.url());
  await visible(page, '#app', 'the console (#app) after reload');
  assert.equal(await page.locator('#f-event_type').inputValue(), FILTER_TYPE, 'the filter field is not restored');
  await waitSeqs(page, fullTypeSeqs, 'after reload');
  assert.equal(await totalShown(page), fullTypeSeqs.length);
});

await step('sorting by timestamp reverses the order, and back', async () => {
  const desc = await seqs(page);
  await page.locator('#results th[data-sort="timestamp"]').click();
  await waitSeqs(page, [...desc].reverse(), 'oldest first');
  assert.ok(page.url().includes('order=asc'), `the URL holds no order: ${page.url()}`);
  await page.locator('#results th[data-sort="timestamp"]').click();
  await waitSeqs(page, desc, 'newest first again');
});

await step('paging: 5 per page, next page shows the next 5, previous page the first 5', async () => {
  assert.ok(fullTypeSeqs.length > 5, `${fullTypeSeqs.length} events: not enough to page`);
  await page.locator('#f-limit').fill('5');
  await page.locator('#search').click();
  const first = fullTypeSeqs.slice(0, 5);
  await waitSeqs(page, first, 'page 1');
  assert.equal(await page.locator('#prev-page').isDisabled(), true, '#prev-page is enabled on page 1');
  await page.locator('#next-page').click();
  const second = fullTypeSeqs.slice(5, 10);
  await waitSeqs(page, second, 'page 2');
  await page.locator('#prev-page').click();
  await waitSeqs(page, first, 'back on page 1');
});

await step('open an event: the detail shows its JSON and a verified MAC', async () => {
  const row = page.locator('#results tr.event-row').first();
  const id = await row.getAttribute('data-event-id');
  assert.ok(id, 'the first row has no data-event-id');
  await row.click();
  await visible(page, '#detail', 'the detail panel (#detail)');
  const json = await page.locator('#detail-json').textContent();
  assert.ok(json.includes(id), `#detail-json does not contain ${id}`);
  JSON.parse(json); // it is the event as JSON
  await waitClass(page, '#detail-verify', 'ok');
  await page.locator('#detail-close').click();
  await hidden(page, '#detail', 'the detail panel after Close');
});

await step(`the tampered record ${TAMPERED} is flagged in the table and in its detail`, async () => {
  const ev = await api(`${API}/${encodeURIComponent(TAMPERED)}`);
  const user = (ev.actor && ev.actor.user_id) || (ev.audit_logs && ev.audit_logs[0].actor.user_id);
  assert.ok(user, `no user_id for ${TAMPERED}: ${JSON.stringify(ev).slice(0, 300)}`);
  await page.locator('#f-event_type').fill('');
  await page.locator('#f-user_id').fill(user);
  await page.locator('#f-limit').fill('50');
  await page.locator('#search').click();
  const sel = `#results tr.event-row[data-event-id="${TAMPERED}"]`;
  await visible(page, sel, `the row of ${TAMPERED}`);
  const r = await rows(page);
  const bad = r.filter((x) => x.tampered).map((x) => x.eventId);
  assert.deepEqual(bad, [TAMPERED], 'rows flagged tampered');
  await page.locator(sel).click();
  await visible(page, '#detail', 'the detail panel (#detail)');
  assert.ok((await page.locator('#detail-json').textContent()).includes(TAMPERED));
  await waitClass(page, '#detail-verify', 'bad');
  await shot(page, 'detail-tampered.png');
  await page.locator('#detail-close').click();
  await hidden(page, '#detail', 'the detail panel after Close');
});

await step('live tail: an event appended meanwhile appears; paused, it is counted, then shown', async () => {
  const opened = page.waitForResponse((res) => new URL(res.url()).pathname === `${API}/tail`);
  await page.locator('#tail-toggle').click();
  const res = await opened;
  assert.equal(res.status(), 200, `the tail answered ${res.status()}`);
  // The server fixes where the stream starts before it answers: an event appended now is in it.
  const probe = `evt_tail_${randomBytes(6).toString('hex')}`;
  const seq = await appendEvent(probe);
  await visible(page, `#tail-list li.tail-event[data-seq="${seq}"]`, `the tail entry of ${probe} (seq ${seq})`);
  const text = await page.locator(`#tail-list li.tail-event[data-seq="${seq}"]`).textContent();
  assert.ok(text.includes('console_tail_probe'), `the tail entry reads ${JSON.stringify(text)}`);

  await page.locator('#tail-pause').click();
  await until(page, '#tail-pause to offer Resume', () => /resume/i.test(document.getElementById('tail-pause').textContent),
    undefined, () => document.getElementById('tail-pause').textContent);
  const probe2 = `evt_tail_${randomBytes(6).toString('hex')}`;
  const seq2 = await appendEvent(probe2);
  await until(page, '#tail-count to read "1 new"', () => /(^|\D)1 new\b/.test(document.getElementById('tail-count').textContent),
    undefined, () => document.getElementById('tail-count').textContent);
  assert.equal(await page.locator(`#tail-list li.tail-event[data-seq="${seq2}"]`).count(), 0,
    'the paused tail shows the new event');
  await page.locator('#tail-pause').click();
  await visible(page, `#tail-list li.tail-event[data-seq="${seq2}"]`, `the tail entry of ${probe2} after Resume`);
  const order = await page.$$eval('#tail-list li.tail-event', (lis) => lis.map((li) => Number(li.dataset.seq)));
  assert.ok(order.indexOf(seq2) < order.indexOf(seq), `newest first expected in the tail: ${JSON.stringify(order)}`);
  assert.doesNotMatch(await page.locator('#tail-count').textContent(), /1 new/, '#tail-count still counts after Resume');
  await page.locator('#tail-toggle').click(); // stop
  await until(page, '#tail-pause to be disabled once stopped', () => document.getElementById('tail-pause').disabled);
});

await step('a read token cannot trigger admin actions (hidden button, 403 with and without CSRF)', async () => {
  assert.equal(await page.locator('#verify-now').isVisible(), false, '#verify-now is visible for a read session');
  const r = await page.evaluate(async (api) => {
    const s = await (await fetch('/console/session')).json();
    const post = async (headers) => {
      const res = await fetch(`${api}/verify/run`, { method: 'POST', headers });
      let code = null;
      try {
        code = (await res.json()).error.code;
      } catch {
        /* no JSON */
      }
      return { status: res.status, code };
    };
    return {
      roles: s.roles,
      withCsrf: await post({ 'X-CSRF-Token': s.csrf_token }),
      withoutCsrf: await post({}),
    };
  }, API);
  assert.deepEqual(r.roles, ['read']);
  assert.equal(r.withCsrf.status, 403, `verify/run with CSRF: ${JSON.stringify(r.withCsrf)}`);
  assert.notEqual(r.withCsrf.code, 'csrf', 'refused for CSRF although the header was right');
  assert.equal(r.withoutCsrf.status, 403, `verify/run without CSRF: ${JSON.stringify(r.withoutCsrf)}`);
  assert.equal(r.withoutCsrf.code, 'csrf', `verify/run without CSRF: ${JSON.stringify(r.withoutCsrf)}`);
});

await step('log out: the login form is back and the API answers 401', async () => {
  await page.locator('#logout').click();
  await visible(page, '#login', 'the login form after Sign out');
  await hidden(page, '#app', '#app after Sign out');
  const status = await page.evaluate(async (api) => (await fetch(api)).status, API);
  assert.equal(status, 401, `GET ${API} after logout answered ${status}`);
  const left = (await readCtx.cookies(BASE)).filter((c) => c.name === 'auditlog_session' && c.value);
  assert.equal(left.length, 0, 'the session cookie is still set after logout');
});
await readCtx.close();

// ---- the admin token's session, in a fresh context
const { context: adminCtx, page: admin } = await newPage();

await step('log in with the admin token: verify and export are offered', async () => {
  await login(admin, ADMIN_TOKEN);
  await visible(admin, '#verify-now', '#verify-now for an admin session');
  for (const id of ['export-jsonl', 'export-csv']) {
    await visible(admin, `#${id}`, `#${id} for an admin session`);
    const href = await admin.locator(`#${id}`).getAttribute('href');
    assert.ok(href && href.includes(`${API}/export?format=`), `#${id} href is ${href}`);
  }
});

await step('verify now fails on the tampered log, and the status bar says so', async () => {
  await until(admin, 'rows in #results', () => document.querySelectorAll('#results tr.event-row').length > 0);
  await admin.locator('#verify-now').click();
  await waitClass(admin, '#verify-result', 'bad', 30_000);
  const text = await admin.locator('#verify-result').textContent();
  assert.ok(text.trim().length > 0, '#verify-result is empty');
  await admin.locator('#st-refresh').click();
  await waitClass(admin, '#st-verify', 'bad');
});

await step('dark theme', async () => {
  const bg = () => admin.evaluate(() => getComputedStyle(document.body).backgroundColor);
  const light = await bg();
  await admin.locator('#theme-toggle').click();
  await until(admin, 'the background to change with the theme', (l) => getComputedStyle(document.body).backgroundColor !== l,
    light, () => getComputedStyle(document.body).backgroundColor);
  await shot(admin, 'dark.png');
  await admin.locator('#theme-toggle').click();
  await until(admin, 'the light theme back', (l) => getComputedStyle(document.body).backgroundColor === l, light,
    () => getComputedStyle(document.body).backgroundColor);
});

await step('phone viewport (390x844): no sideways scrolling of the page', async () => {
  await admin.setViewportSize({ width: 390, height: 844 });
  await visible(admin, '#results tr.event-row', 'the result rows on a phone');
  const { scroll, client } = await admin.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    client: document.documentElement.clientWidth,
  }));
  // The filters fill the first screen of a phone: show the results.
  await admin.evaluate(() => document.getElementById('results-section').scrollIntoView({ block: 'start' }));
  await shot(admin, 'phone.png');
  assert.ok(scroll <= client + 1, `the page is ${scroll} px wide in a ${client} px viewport`);
});
await adminCtx.close();

await step('no request left loopback', async () => {
  assert.ok(requestsSeen > 10, `only ${requestsSeen} requests were seen by the route`);
  assert.deepEqual(offLoopback, [], 'requests to other hosts');
});

await browser.close();
const expected = consoleErrors.filter((c) => c.expected).length;
console.log(`(${requestsSeen} requests, all to loopback; ${expected} expected 4xx console messages; ` +
  `${((Date.now() - started) / 1000).toFixed(1)} s; screenshots in ${SHOTS})`);
console.log(`console: ${passed} passed, 0 failed`);
