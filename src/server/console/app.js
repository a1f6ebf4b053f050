// auditlog web console. Vanilla ES2020, no dependencies.
//
// Security: every piece of event data is attacker-controlled. The DOM is built with
// createElement/textContent only; nothing is ever parsed as HTML. The session lives in an
// HttpOnly cookie; every non-GET request carries the X-CSRF-Token the session handed out.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);

  // Form field (input id suffix and API parameter) -> filterdata dimension.
  const FILTERS = {
    event_type: 'event_type',
    action: 'action',
    status: 'status',
    severity: 'severity',
    user_id: 'user_id',
    email: 'email',
    ip: 'ip_address',
    resource_type: 'resource_type',
    resource_id: 'resource_id',
  };
  const PRESET_MS = {
    '15m': 15 * 60e3,
    '1h': 3600e3,
    '24h': 24 * 3600e3,
    '7d': 7 * 24 * 3600e3,
    '30d': 30 * 24 * 3600e3,
  };
  const PRESETS = ['15m', '1h', '24h', '7d', '30d', 'all', 'custom'];
  const SEVERITIES = new Set(['critical', 'high', 'medium', 'low', 'info']);
  const BAD_STATUS = new Set(['failed', 'failure', 'blocked', 'denied', 'error']);
  const DEFAULT_LIMIT = '50';
  const TAIL_CAP = 500;
  const STATUS_EVERY_MS = 10e3;
  const THEME_KEY = 'auditlog.console.theme';
  const API = '/api/audit-logs';

  const state = {
    session: null, // {name, roles, csrf_token}
    preCsrf: null, // a csrf token offered before login, if the server offers one
    order: 'desc',
    pages: [], // URLs fetched for the current query; the current page is the last
    nextUrl: null,
    rows: [], // entries of the current page
    selected: -1,
    queryId: 0,
    detailId: 0,
    statusTimer: null,
    tail: null,
  };

  // ------------------------------------------------------------------ small helpers

  function el(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function setText(id, text, className) {
    const e = typeof id === 'string' ? $(id) : id;
    e.textContent = text == null ? '' : String(text);
    if (className !== undefined) {
      e.classList.remove('ok', 'bad', 'warn');
      if (className) e.classList.add(className);
    }
    return e;
  }

  const fmtNum = (n) => (typeof n === 'number' ? n.toLocaleString() : String(n ?? '?'));
  const plural = (n, one, many) => `${fmtNum(n)} ${n === 1 ? one : many || one + 's'}`;

  function fmtBytes(n) {
    if (typeof n !== 'number' || !isFinite(n)) return '?';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i++;
    }
    return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
  }

  // RFC 3339 with up to nanoseconds; Date only promises milliseconds, so cut the rest.
  function parseTs(s) {
    if (typeof s !== 'string' || !s) return null;
    const d = new Date(s.replace(/(\.\d{3})\d+/, '$1'));
    return isNaN(d.getTime()) ? null : d;
  }

  const pad = (n, w = 2) => String(n).padStart(w, '0');

  function fmtLocal(d) {
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  // Value for <input type="datetime-local"> (local time, seconds).
  function toLocalInput(iso) {
    const d = parseTs(iso);
    return d ? fmtLocal(d).replace(' ', 'T') : '';
  }

  // From <input type="datetime-local"> (local) to RFC 3339 UTC. An unparseable value is
  // passed through so that the server names the parameter at fault.
  function fromLocalInput(v) {
    v = v.trim();
    if (!v) return '';
    const d = new Date(v);
    return isNaN(d.getTime()) ? v : d.toISOString().replace('.000Z', 'Z');
  }

  function isoUtc(raw, d) {
    return /Z$/i.test(raw) ? raw : d.toISOString();
  }

  function timeEl(raw) {
    const d = parseTs(raw);
    const t = el('time', null, d ? fmtLocal(d) : raw || '—');
    if (d) {
      t.dateTime = raw;
      t.title = isoUtc(raw, d);
    }
    return t;
  }

  function ago(raw) {
    const d = parseTs(raw);
    if (!d) return raw ? String(raw) : '?';
    const s = Math.round((Date.now() - d.getTime()) / 1000);
    if (s < 5) return 'just now';
    if (s < 60) return `${s} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
    return `${Math.floor(s / 86400)} d ago`;
  }

  const isTampered = (e) => !!(e && e.verification && e.verification.verified === false);
  const hasRole = (r) => {
    const roles = (state.session && state.session.roles) || [];
    return roles.includes(r) || roles.includes('admin');
  };

  // ------------------------------------------------------------------ HTTP

  class ApiError extends Error {
    constructor(status, code, message, param, body) {
      super(message);
      this.status = status;
      this.code = code;
      this.param = param;
      this.body = body;
    }
  }

  // fetch() with the session cookie, CSRF header on non-GET, JSON both ways. A 401 ends
  // the session (unless the caller handles it: login and the initial session check).
  async function api(url, opts = {}) {
    const method = opts.method || 'GET';
    const headers = { Accept: 'application/json' };
    const csrf = state.session ? state.session.csrf_token : state.preCsrf;
    if (method !== 'GET' && csrf) headers['X-CSRF-Token'] = csrf;
    const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
    if (opts.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(opts.body);
    }
    let res;
    try {
      res = await fetch(url, init);
    } catch (e) {
      throw new ApiError(0, 'network', `Network error: ${e.message}`);
    }
    const text = res.status === 204 ? '' : await res.text();
    let body = null;
    if (text) {
      try {
        body = JSON.parse(text);
      } catch (_) {
        body = null;
      }
    }
    if (!res.ok) {
      const err = (body && body.error) || {};
      const e = new ApiError(res.status, err.code || `http_${res.status}`,
        err.message || `${res.status} ${res.statusText}`.trim(), err.param, body);
      if (res.status === 401 && !opts.allow401) sessionEnded();
      throw e;
    }
    return body;
  }

  // ------------------------------------------------------------------ theme

  function storedTheme() {
    try {
      const t = localStorage.getItem(THEME_KEY);
      return t === 'light' || t === 'dark' ? t : null;
    } catch (_) {
      return null;
    }
  }

  const systemDark = window.matchMedia('(prefers-color-scheme: dark)');

  function applyTheme(t) {
    document.documentElement.dataset.theme = t;
    const btn = $('theme-toggle');
    btn.textContent = t === 'dark' ? '☀ Light' : '☾ Dark';
    btn.setAttribute('aria-label', `Theme: ${t}. Switch to ${t === 'dark' ? 'light' : 'dark'}`);
  }

  function initTheme() {
    applyTheme(storedTheme() || (systemDark.matches ? 'dark' : 'light'));
    const follow = () => {
      if (!storedTheme()) applyTheme(systemDark.matches ? 'dark' : 'light');
    };
    if (systemDark.addEventListener) systemDark.addEventListener('change', follow);
  }

  function toggleTheme() {
    const next = document.documentElement.dataset.theme === 'dark' ? 'light' : 'dark';
    applyTheme(next);
    try {
      localStorage.setItem(THEME_KEY, next);
    } catch (_) {
      /* private mode: not remembered */
    }
  }

  // ------------------------------------------------------------------ session

  function showLogin(message) {
    $('app').hidden = true;
    $('login').hidden = false;
    setText('login-error', message || '');
    $('login-token').focus();
  }

  function enterApp(session) {
    state.session = session;
    state.preCsrf = null;
    const roles = Array.isArray(session.roles) ? session.roles : [];
    setText('whoami', `${session.name || '?'} · ${roles.join(', ') || 'no roles'}`);
    $('verify-now').hidden = !roles.includes('admin');
    const canExport = hasRole('export');
    $('export-jsonl').hidden = !canExport;
    $('export-csv').hidden = !canExport;
    $('login').hidden = true;
    $('app').hidden = false;
    setText('login-error', '');
    readUrl();
    search(false);
    loadFilterdata();
    refreshStatus();
    clearInterval(state.statusTimer);
    state.statusTimer = setInterval(() => {
      if (!document.hidden) refreshStatus();
    }, STATUS_EVERY_MS);
  }

  // Stop everything that talks to the server and forget what was shown.
  function teardown() {
    stopTail();
    clearInterval(state.statusTimer);
    state.statusTimer = null;
    closeDetail();
    $('help').hidden = true;
    state.session = null;
    state.pages = [];
    state.nextUrl = null;
    state.rows = [];
    state.selected = -1;
    state.queryId++;
    state.detailId++;
    $('results').tBodies[0].replaceChildren();
    $('tail-list').replaceChildren();
    setText('results-total', '');
    setText('verify-result', '', '');
    $('results-empty').hidden = true;
    $('query-error').hidden = true;
    for (const f of Object.keys(FILTERS)) $(`dl-${f}`).replaceChildren();
  }

  function sessionEnded() {
    if (!state.session) return;
    teardown();
    showLogin('Your session has ended. Sign in again.');
  }

  async function onLogin(ev) {
    ev.preventDefault();
    const input = $('login-token');
    const token = input.value.trim();
    if (!token) {
      setText('login-error', 'Enter an API token.');
      return;
    }
    const btn = $('login-submit');
    btn.disabled = true;
    setText('login-error', 'Signing in…');
    try {
      const s = await api('/console/login', { method: 'POST', body: { token }, allow401: true });
      input.value = '';
      enterApp(s);
    } catch (e) {
      const msg = {
        401: 'That token was not accepted.',
        403: 'This token lacks the read role.',
      }[e.status] || e.message;
      setText('login-error', msg);
      input.select();
    } finally {
      btn.disabled = false;
    }
  }

  async function onLogout() {
    try {
      await api('/console/logout', { method: 'POST', allow401: true });
    } catch (e) {
      if (e.status !== 401) {
        showQueryError(`Sign-out failed: ${e.message}`);
        return;
      }
    }
    teardown();
    showLogin('Signed out.');
  }

  // ------------------------------------------------------------------ filters and URL

  function syncPreset() {
    const custom = $('f-preset').value === 'custom';
    $('f-start').disabled = !custom;
    $('f-end').disabled = !custom;
    if (custom && !$('f-start').value && !$('f-end').value) {
      $('f-start').value = toLocalInput(new Date(Date.now() - PRESET_MS['24h']).toISOString());
    }
  }

  // The filters as API parameters (no limit, order or cursor): what export takes too.
  function filterParams() {
    const p = new URLSearchParams();
    const preset = $('f-preset').value;
    if (PRESET_MS[preset]) {
      p.set('start_date', new Date(Date.now() - PRESET_MS[preset]).toISOString());
    } else if (preset === 'custom') {
      const s = fromLocalInput($('f-start').value);
      const e = fromLocalInput($('f-end').value);
      if (s) p.set('start_date', s);
      if (e) p.set('end_date', e);
    }
    for (const f of Object.keys(FILTERS)) {
      const v = $(`f-${f}`).value.trim();
      if (v) p.set(f, v);
    }
    return p;
  }

  function queryParams() {
    const p = filterParams();
    p.set('limit', $('f-limit').value.trim() || DEFAULT_LIMIT);
    p.set('order', state.order);
    return p;
  }

  // A relative preset is kept as a preset: opening a shared "last hour" link shows the
  // last hour as of opening it. Custom ranges are absolute.
  function readUrl() {
    const q = new URLSearchParams(location.search);
    for (const f of Object.keys(FILTERS)) $(`f-${f}`).value = q.getAll(f).join(',');
    let preset = q.get('preset');
    if (!PRESETS.includes(preset)) {
      preset = q.has('start_date') || q.has('end_date') ? 'custom' : 'all';
    }
    $('f-preset').value = preset;
    $('f-start').value = preset === 'custom' ? toLocalInput(q.get('start_date')) : '';
    $('f-end').value = preset === 'custom' ? toLocalInput(q.get('end_date')) : '';
    $('f-limit').value = q.get('limit') || DEFAULT_LIMIT;
    state.order = q.get('order') === 'asc' ? 'asc' : 'desc';
    syncPreset();
  }

  function writeUrl(params, push) {
    const p = new URLSearchParams(params);
    p.set('preset', $('f-preset').value);
    const url = `/?${p}`;
    if (url === location.pathname + location.search) return;
    if (push) history.pushState(null, '', url);
    else history.replaceState(null, '', url);
  }

  function updateExportLinks() {
    const p = filterParams();
    for (const fmt of ['jsonl', 'csv']) {
      const q = new URLSearchParams([['format', fmt], ...p]);
      $(`export-${fmt}`).href = `${API}/export?${q}`;
    }
  }

  async function loadFilterdata() {
    const dims = [...new Set(Object.values(FILTERS))].join(',');
    let data;
    try {
      data = await api(`${API}/filterdata?dimensions=${dims}`);
    } catch (_) {
      return; // suggestions are a convenience; a 401 has already been handled
    }
    const all = (data && data.dimensions) || {};
    for (const [f, dim] of Object.entries(FILTERS)) {
      const list = $(`dl-${f}`);
      const info = all[dim];
      list.replaceChildren();
      if (!info || !Array.isArray(info.values)) continue;
      for (const v of info.values) {
        const o = document.createElement('option');
        o.value = String(v.value);
        o.label = plural(v.count, 'event');
        list.append(o);
      }
      if (typeof info.distinct === 'number') {
        $(`f-${f}`).title = `${plural(info.distinct, 'distinct value')} (comma-separate to match any)`;
      }
    }
  }

  // ------------------------------------------------------------------ results

  function showQueryError(msg, param) {
    const box = $('query-error');
    box.textContent = param ? `${param}: ${msg}` : msg;
    box.hidden = false;
    const id = { start_date: 'f-start', end_date: 'f-end' }[param] || `f-${param}`;
    const input = param && $(id);
    if (input) {
      input.classList.add('invalid');
      input.setAttribute('aria-invalid', 'true');
    }
  }

  function clearQueryError() {
    $('query-error').hidden = true;
    for (const e of document.querySelectorAll('#filters .invalid')) {
      e.classList.remove('invalid');
      e.removeAttribute('aria-invalid');
    }
  }

  // A new query from the form (page 1). push: a user action (new history entry).
  function search(push) {
    clearQueryError();
    const p = queryParams();
    writeUrl(p, push);
    updateExportLinks();
    loadPage(`${API}?${p}`, 'new');
  }

  async function loadPage(url, mode) {
    const id = ++state.queryId;
    const table = $('results');
    table.setAttribute('aria-busy', 'true');
    table.classList.add('loading');
    if (mode === 'new') setText('results-total', 'Searching…');
    try {
      const data = await api(url);
      if (id !== state.queryId) return;
      if (mode === 'new') state.pages = [url];
      else if (mode === 'next') state.pages.push(url);
      else state.pages.pop();
      renderResults(data);
    } catch (e) {
      if (id !== state.queryId || e.status === 401) return;
      if (mode === 'new') {
        setText('results-total', '');
        state.pages = [];
        state.rows = [];
        state.nextUrl = null;
        $('results').tBodies[0].replaceChildren();
        updatePager();
      }
      showQueryError(e.message, e.param);
    } finally {
      if (id === state.queryId) {
        table.removeAttribute('aria-busy');
        table.classList.remove('loading');
      }
    }
  }

  function renderResults(data) {
    const rows = Array.isArray(data.audit_logs) ? data.audit_logs : [];
    state.rows = rows;
    state.selected = -1;
    state.nextUrl = typeof data.next_page === 'string' && data.next_page.startsWith('/') ? data.next_page : null;
    setText('results-total', plural(data.total_count ?? rows.length, 'event'));
    $('results').tBodies[0].replaceChildren(...rows.map(buildRow));
    $('results-empty').hidden = rows.length > 0;
    $('results-wrap').scrollTop = 0;
    updatePager();
    updateSortHeader();
  }

  function updatePager() {
    $('prev-page').disabled = state.pages.length <= 1;
    $('next-page').disabled = !state.nextUrl;
    setText('page-number', `Page ${Math.max(1, state.pages.length)}`);
  }

  function updateSortHeader() {
    const th = document.querySelector('#results th[data-sort="timestamp"]');
    th.setAttribute('aria-sort', state.order === 'asc' ? 'ascending' : 'descending');
    th.querySelector('.sort-ind').textContent = state.order === 'asc' ? '▲' : '▼';
    th.title = `Sorted ${state.order === 'asc' ? 'oldest' : 'newest'} first; click to reverse`;
  }

  function toggleSort() {
    state.order = state.order === 'asc' ? 'desc' : 'asc';
    updateSortHeader();
    search(true);
  }

  function nextPage() {
    if (state.nextUrl) loadPage(state.nextUrl, 'next');
  }

  function prevPage() {
    if (state.pages.length > 1) loadPage(state.pages[state.pages.length - 2], 'prev');
  }

  function sevBadge(sev) {
    const s = String(sev ?? '');
    return el('span', `sev ${SEVERITIES.has(s) ? `sev-${s}` : 'sev-unknown'}`, s || '—');
  }

  function statusEl(status) {
    const s = String(status ?? '');
    return el('span', BAD_STATUS.has(s.toLowerCase()) ? 'status status-bad' : 'status', s || '—');
  }

  function actorText(e) {
    const a = e.actor || {};
    return a.user_id || a.email || (e.redacted ? 'redacted' : '—');
  }

  function resourceText(e) {
    const r = e.resource;
    if (!r) return '—';
    return r.id != null && r.id !== '' ? `${r.type} · ${r.id}` : String(r.type ?? '—');
  }

  function cell(content, className) {
    const td = el('td', className);
    if (content instanceof Node) td.append(content);
    else td.textContent = content == null ? '' : String(content);
    return td;
  }

  function buildRow(e, i) {
    const tr = el('tr', 'event-row');
    tr.dataset.seq = String(e.seq);
    if (e.event_id != null) tr.dataset.eventId = String(e.event_id);
    tr.dataset.index = String(i);
    const tampered = isTampered(e);
    if (tampered) tr.classList.add('tampered');
    if (e.redacted) tr.classList.add('redacted');
    const a = e.actor || {};
    const who = a.user_id || a.email;
    const actor = cell(who || (e.redacted ? '' : '—'), 'actor');
    if (a.email && a.user_id) actor.title = a.email;
    if (e.redacted) actor.append(who ? ' ' : '', el('span', 'tag', 'redacted'));
    const flag = e.verification ? (tampered ? '✗ tampered' : '✓') : '?';
    const mac = cell(flag, 'verify-flag');
    if (e.verification && e.verification.hash) mac.title = e.verification.hash;
    tr.append(
      cell(timeEl(e.timestamp), 'time'),
      cell(e.event_type),
      cell(e.action),
      cell(statusEl(e.status)),
      cell(sevBadge(e.severity)),
      actor,
      cell(a.ip_address || '—', 'ip'),
      cell(resourceText(e), 'resource'),
      cell(e.seq, 'num'),
      mac,
    );
    return tr;
  }

  function selectRow(i) {
    const trs = $('results').tBodies[0].rows;
    if (!trs.length) return;
    i = Math.max(0, Math.min(trs.length - 1, i));
    const old = trs[state.selected];
    if (old) {
      old.classList.remove('selected');
      old.removeAttribute('aria-selected');
    }
    state.selected = i;
    trs[i].classList.add('selected');
    trs[i].setAttribute('aria-selected', 'true');
    trs[i].scrollIntoView({ block: 'nearest' });
  }

  function moveSelection(delta) {
    selectRow(state.selected < 0 ? (delta > 0 ? 0 : state.rows.length - 1) : state.selected + delta);
  }

  // ------------------------------------------------------------------ detail

  function redactionNodes(r) {
    const scope = r && r.scope;
    const what = {
      personal: 'Its personal data was removed: the actor (user ID, email, IP address) and the details.',
      content: 'Its content was removed: the details.',
    }[scope] || `Scope: ${JSON.stringify(scope)}.`;
    const nodes = [el('strong', null, 'Redacted record. '), document.createTextNode(what)];
    if (r && r.reason) nodes.push(el('br'), document.createTextNode(`Reason: ${r.reason}`));
    for (const [k, v] of Object.entries(r || {})) {
      if (k === 'scope' || k === 'reason') continue;
      nodes.push(el('br'), document.createTextNode(`${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`));
    }
    nodes.push(el('br'), el('span', 'muted',
      'The hash chain still verifies through the digest of the original record.'));
    return nodes;
  }

  function openDetail(entry) {
    if (!entry) return;
    const id = ++state.detailId;
    setText('detail-title', `Event ${entry.event_id ?? '(no event_id)'} · seq ${entry.seq}`);
    $('detail-json').textContent = JSON.stringify(entry, null, 2);
    const red = $('detail-redacted');
    red.replaceChildren();
    red.hidden = !entry.redacted;
    if (entry.redacted) red.append(...redactionNodes(entry.redacted));
    $('detail').classList.toggle('tampered', isTampered(entry));
    $('detail').hidden = false;
    $('detail').scrollTop = 0;
    const v = $('detail-verify');
    if (entry.event_id == null || entry.event_id === '') {
      setText(v, isTampered(entry)
        ? 'MAC mismatch — record tampered ✗ (checked with the query; no event_id to recheck)'
        : 'No event_id: cannot recheck by id (the query found its MAC valid)',
      isTampered(entry) ? 'bad' : 'warn');
      return;
    }
    setText(v, 'Rechecking MAC…', '');
    api(`${API}/${encodeURIComponent(entry.event_id)}/verify`).then((r) => {
      if (id !== state.detailId) return;
      let text = r.valid ? 'MAC verified ✓' : 'MAC mismatch — record tampered ✗';
      // event_id is the caller's string: the route checks the newest record carrying it.
      if (r.seq !== undefined && r.seq !== entry.seq) {
        text += ` (checked seq ${r.seq}, the newest record with this event_id)`;
      }
      setText(v, text, r.valid ? 'ok' : 'bad');
      if (r.hash) v.title = r.hash;
    }).catch((e) => {
      if (id === state.detailId) setText(v, `Could not recheck the MAC: ${e.message}`, 'warn');
    });
  }

  function closeDetail() {
    const d = $('detail');
    if (d.hidden) return;
    const hadFocus = d.contains(document.activeElement);
    d.hidden = true;
    state.detailId++;
    if (hadFocus) $('results').focus();
  }

  // ------------------------------------------------------------------ live tail

  function tailItem(e) {
    const li = el('li', 'tail-event');
    li.dataset.seq = String(e.seq);
    li.tabIndex = 0;
    if (isTampered(e)) li.classList.add('tampered');
    if (e.redacted) li.classList.add('redacted');
    li.append(
      timeEl(e.timestamp),
      sevBadge(e.severity),
      el('strong', 'what', `${e.event_type ?? '?'} / ${e.action ?? '?'}`),
      statusEl(e.status),
      el('span', 'who', actorText(e)),
      el('span', 'seq muted', `#${e.seq}`),
    );
    if (isTampered(e)) li.append(el('span', 'verify-flag', '✗ tampered'));
    tailEntries.set(li, e);
    return li;
  }

  const tailEntries = new WeakMap();

  function showTailEvents(entries) {
    if (!entries.length) return;
    const list = $('tail-list');
    const frag = document.createDocumentFragment();
    for (let i = entries.length - 1; i >= 0 && frag.childNodes.length < TAIL_CAP; i--) {
      frag.append(tailItem(entries[i]));
    }
    list.prepend(frag);
    while (list.children.length > TAIL_CAP) list.lastElementChild.remove();
  }

  function updateTailUi() {
    const t = state.tail;
    setText('tail-toggle', t ? 'Stop live tail' : 'Start live tail');
    $('tail-toggle').setAttribute('aria-pressed', t ? 'true' : 'false');
    const pause = $('tail-pause');
    pause.disabled = !t;
    pause.textContent = t && t.paused ? 'Resume' : 'Pause';
    setText('tail-count', t && t.paused ? `${fmtNum(t.unseen)} new` : '');
    $('tail-count').classList.toggle('has-new', !!(t && t.unseen > 0));
  }

  function setTailState(text) {
    const t = state.tail;
    const received = t && t.received ? ` · ${plural(t.received, 'event')} received` : '';
    setText('tail-state', text + received);
    if (t) t.stateText = text;
  }

  function startTail() {
    if (state.tail || !state.session) return;
    $('tail-list').replaceChildren();
    state.tail = {
      es: null, paused: false, buffer: [], unseen: 0, received: 0,
      lastSeq: null, retries: 0, timer: null, stateText: '',
    };
    connectTail(state.tail);
    updateTailUi();
  }

  function connectTail(t) {
    // After a drop, resume after the last seq seen so that nothing is missed.
    const url = `${API}/tail${t.lastSeq !== null ? `?after_seq=${t.lastSeq}` : ''}`;
    const es = new EventSource(url);
    t.es = es;
    setTailState('connecting…');
    es.onopen = () => {
      if (state.tail !== t) return;
      t.retries = 0;
      setTailState('live');
    };
    es.addEventListener('audit', (ev) => onTailEvent(t, ev));
    // `hello` names where the stream starts: a reconnect resumes there even when no event
    // came in the meantime.
    es.addEventListener('hello', (ev) => {
      if (state.tail !== t) return;
      let from = null;
      try {
        from = JSON.parse(ev.data).from_seq;
      } catch (_) {
        /* ignore */
      }
      if (t.lastSeq === null && Number.isInteger(from) && from > 0) t.lastSeq = from - 1;
      t.retries = 0;
      setTailState('live');
    });
    // Fires for a dropped connection and for a server-sent `error` event (which has data).
    es.onerror = (ev) => {
      if (state.tail !== t) return;
      es.close();
      t.es = null;
      let why = 'disconnected';
      if (ev && typeof ev.data === 'string' && ev.data) {
        try {
          why = `error: ${JSON.parse(ev.data).error}`;
        } catch (_) {
          why = 'error';
        }
      }
      setTailState(`${why}; reconnecting…`);
      // Find out whether the session is still alive (EventSource hides the status code).
      api('/console/session').then(() => scheduleReconnect(t), (e) => {
        if (e.status !== 401) scheduleReconnect(t);
      });
    };
  }

  function scheduleReconnect(t) {
    if (state.tail !== t || t.timer) return;
    const delay = Math.min(30e3, 1000 * 2 ** t.retries++);
    t.timer = setTimeout(() => {
      t.timer = null;
      if (state.tail === t) connectTail(t);
    }, delay);
  }

  function onTailEvent(t, ev) {
    if (state.tail !== t) return;
    let e;
    try {
      e = JSON.parse(ev.data);
    } catch (_) {
      return;
    }
    if (!e || typeof e !== 'object') return;
    const seq = Number(e.seq ?? ev.lastEventId);
    if (Number.isFinite(seq)) {
      if (t.lastSeq !== null && seq <= t.lastSeq) return; // already seen (reconnect overlap)
      t.lastSeq = seq;
    }
    t.received++;
    if (t.paused) {
      t.buffer.push(e);
      if (t.buffer.length > TAIL_CAP) t.buffer.shift();
      t.unseen++;
      updateTailUi();
    } else {
      showTailEvents([e]);
    }
    setTailState(t.stateText || 'live');
  }

  function togglePause() {
    const t = state.tail;
    if (!t) return;
    t.paused = !t.paused;
    if (!t.paused) {
      showTailEvents(t.buffer);
      t.buffer = [];
      t.unseen = 0;
    }
    updateTailUi();
  }

  function stopTail() {
    const t = state.tail;
    if (!t) return;
    if (t.es) t.es.close();
    clearTimeout(t.timer);
    state.tail = null;
    setText('tail-state', t.received ? `stopped · ${plural(t.received, 'event')} received` : '');
    updateTailUi();
  }

  const toggleTail = () => (state.tail ? stopTail() : startTail());

  // ------------------------------------------------------------------ status bar

  function retentionText(r) {
    const parts = [r.retention_days != null ? `retention ${r.retention_days} d` : 'keep forever'];
    if (r.archive_days != null) parts.push(`archive after ${r.archive_days} d`);
    return parts.join(' · ');
  }

  function lastRunTitle(run) {
    if (!run || typeof run !== 'object') return 'no retention run yet';
    const at = run.at || (typeof run.time_ns === 'number' ? new Date(run.time_ns / 1e6).toISOString() : null);
    return `last retention run: ${at ? `${at} (${ago(at)})` : JSON.stringify(run)}`;
  }

  function holdText(h) {
    if (!h || typeof h !== 'object') return String(h);
    const name = h.name || h.id || 'hold';
    const scope = h.scope && typeof h.scope === 'object' ? ` [${h.scope.type || JSON.stringify(h.scope)}]` : '';
    return `${name}${scope}${h.reason ? `: ${h.reason}` : ''}`;
  }

  // Sinks do not exist yet; accept an array of sinks or an object keyed by name, and a
  // numeric lag under a few likely names.
  function sinksSummary(sinks) {
    if (sinks == null) return { text: 'no sinks', title: '', lag: 0 };
    let list = [];
    if (Array.isArray(sinks)) list = sinks;
    else if (typeof sinks === 'object') {
      list = Object.entries(sinks).map(([name, v]) =>
        (v && typeof v === 'object' ? { name, ...v } : { name, lag: v }));
    }
    if (!list.length) return { text: 'no sinks', title: '', lag: 0 };
    const lagOf = (s) => {
      for (const k of ['lag', 'lag_events', 'lag_records', 'pending', 'behind']) {
        if (s && typeof s[k] === 'number') return s[k];
      }
      return null;
    };
    const lags = list.map(lagOf).filter((n) => n !== null);
    const max = lags.length ? Math.max(...lags) : null;
    return {
      text: plural(list.length, 'sink') + (max !== null ? ` · lag ${fmtNum(max)}` : ''),
      title: list.map((s) => `${(s && (s.name || s.id || s.kind)) || 'sink'}: lag ${lagOf(s) ?? '?'}`).join('\n'),
      lag: max || 0,
    };
  }

  function renderStatus(s) {
    const lv = s.last_verify;
    const v = $('st-verify');
    if (!lv) {
      setText(v, 'not verified yet', 'warn');
      v.title = 'No full verification has run since the server started';
    } else {
      // A failed run's record count covers only what was checked before the failure.
      const text = lv.ok
        ? `verified ✓ ${plural(lv.records, 'record')} · ${ago(lv.at)}`
        : `verification FAILED ✗ ${(lv.failure || '').split(':')[0]} · ${ago(lv.at)}`;
      setText(v, text, lv.ok ? 'ok' : 'bad');
      v.title = `last verification: ${lv.at}${lv.failure ? `\n${lv.failure}` : ''}`;
    }
    const cp = s.last_checkpoint;
    setText('st-checkpoint', cp ? `checkpoint seq ${fmtNum(cp.seq)} · ${ago(cp.at)}` : 'no checkpoint yet');
    $('st-checkpoint').title = cp ? `last checkpoint: ${cp.at}` : '';
    setText('st-events', plural(s.events ?? 0, 'event'));
    $('st-events').title = s.first_seq != null ? `seq ${s.first_seq}–${s.last_seq}` : 'empty log';
    setText('st-segments', `${plural(s.segments ?? 0, 'segment')} · ${fmtBytes(s.bytes)}`);
    $('st-segments').title = `${fmtBytes(s.data_bytes)} of records in ${fmtBytes(s.bytes)} on disk`;
    const r = s.retention || {};
    setText('st-retention', retentionText(r));
    $('st-retention').title = lastRunTitle(r.last_run);
    const holds = Array.isArray(r.holds) ? r.holds : [];
    setText('st-holds', holds.length ? plural(holds.length, 'legal hold') : 'no legal holds',
      holds.length ? 'warn' : '');
    $('st-holds').title = holds.map(holdText).join('\n');
    const sk = sinksSummary(s.sinks);
    setText('st-sinks', sk.text, sk.lag > 0 ? 'warn' : '');
    $('st-sinks').title = sk.title;
    $('st-readonly').hidden = !s.read_only;
    $('status').classList.remove('stale');
  }

  async function refreshStatus() {
    if (!state.session) return;
    try {
      renderStatus(await api(`${API}/status`));
    } catch (e) {
      if (e.status === 401) return;
      $('status').classList.add('stale');
      setText('st-events', `status unavailable: ${e.message}`);
    }
  }

  function failureText(f) {
    if (!f) return 'verification failed';
    if (typeof f !== 'object') return String(f);
    let t = String(f.kind || 'failure').replace(/_/g, ' ');
    if (f.seq != null) t += ` at seq ${f.seq}`;
    if (f.segment) t += ` in ${f.segment}`;
    if (f.offset != null) t += ` at byte ${f.offset}`;
    if (f.detail) t += `: ${f.detail}`;
    return t;
  }

  async function verifyNow() {
    const btn = $('verify-now');
    const out = $('verify-result');
    btn.disabled = true;
    setText(out, 'verifying…', '');
    out.title = '';
    try {
      const r = await api(`${API}/verify/run`, { method: 'POST' });
      const warnings = Array.isArray(r.warnings) ? r.warnings : [];
      if (r.ok) {
        let text = `verified ✓ ${plural(r.records ?? 0, 'record')} in ${plural(r.segments ?? 0, 'segment')}`;
        if (warnings.length) text += ` · ${plural(warnings.length, 'warning')}`;
        setText(out, text, 'ok');
      } else {
        setText(out, `FAILED ✗ ${failureText(r.failure)}`, 'bad');
      }
      out.title = warnings.join('\n');
    } catch (e) {
      if (e.status !== 401) setText(out, `verify failed: ${e.message}`, 'bad');
    } finally {
      btn.disabled = false;
      refreshStatus();
    }
  }

  // ------------------------------------------------------------------ keyboard

  function toggleHelp(show) {
    const h = $('help');
    h.hidden = show === undefined ? !h.hidden : !show;
    if (!h.hidden) $('help-close').focus();
  }

  function onKey(e) {
    if (!state.session || e.ctrlKey || e.metaKey || e.altKey) return;
    const t = e.target instanceof Element ? e.target : document.body;
    const typing = t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName);
    if (e.key === 'Escape') {
      if (!$('help').hidden) toggleHelp(false);
      else if (!$('detail').hidden) closeDetail();
      return;
    }
    if (typing) return;
    const inTable = $('results').contains(t);
    switch (e.key) {
      case '/':
        e.preventDefault();
        $('f-event_type').focus();
        break;
      case 'j':
        moveSelection(1);
        break;
      case 'k':
        moveSelection(-1);
        break;
      case 'ArrowDown':
      case 'ArrowUp':
        if (!inTable) return;
        e.preventDefault();
        moveSelection(e.key === 'ArrowDown' ? 1 : -1);
        break;
      case 'Enter':
        if (t.matches('th[data-sort]')) toggleSort();
        else if (t.classList.contains('tail-event')) openDetail(tailEntries.get(t));
        else if (t.closest('button, a, summary, #detail, #help')) return;
        else if (state.selected >= 0) openDetail(state.rows[state.selected]);
        else return;
        e.preventDefault();
        break;
      case 'n':
        nextPage();
        break;
      case 'p':
        prevPage();
        break;
      case 't':
        toggleTail();
        break;
      case '?':
        toggleHelp();
        break;
      default:
        return;
    }
  }

  // ------------------------------------------------------------------ wiring

  function bind() {
    $('login-form').addEventListener('submit', onLogin);
    $('logout').addEventListener('click', onLogout);
    $('theme-toggle').addEventListener('click', toggleTheme);
    $('help-toggle').addEventListener('click', () => toggleHelp());
    $('help-close').addEventListener('click', () => toggleHelp(false));

    const form = $('filters');
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      search(true);
    });
    form.addEventListener('input', updateExportLinks);
    $('f-preset').addEventListener('change', () => {
      syncPreset();
      updateExportLinks();
    });
    $('reset').addEventListener('click', () => {
      for (const f of Object.keys(FILTERS)) $(`f-${f}`).value = '';
      $('f-preset').value = 'all';
      $('f-start').value = '';
      $('f-end').value = '';
      $('f-limit').value = DEFAULT_LIMIT;
      state.order = 'desc';
      syncPreset();
      search(true);
    });
    for (const fmt of ['jsonl', 'csv']) {
      // Relative presets move with the clock: rebuild the link as it is followed.
      $(`export-${fmt}`).addEventListener('click', updateExportLinks);
    }

    const table = $('results');
    table.querySelector('th[data-sort]').addEventListener('click', toggleSort);
    table.tBodies[0].addEventListener('click', (e) => {
      const tr = e.target instanceof Element && e.target.closest('tr.event-row');
      if (!tr) return;
      const i = Number(tr.dataset.index);
      selectRow(i);
      openDetail(state.rows[i]);
    });
    $('prev-page').addEventListener('click', prevPage);
    $('next-page').addEventListener('click', nextPage);
    $('detail-close').addEventListener('click', closeDetail);

    $('tail-toggle').addEventListener('click', toggleTail);
    $('tail-pause').addEventListener('click', togglePause);
    $('tail-list').addEventListener('click', (e) => {
      const li = e.target instanceof Element && e.target.closest('li.tail-event');
      if (li) openDetail(tailEntries.get(li));
    });

    $('verify-now').addEventListener('click', verifyNow);
    $('st-refresh').addEventListener('click', refreshStatus);
    document.addEventListener('keydown', onKey);
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden) refreshStatus();
    });
    window.addEventListener('popstate', () => {
      if (!state.session) return;
      readUrl();
      search(false);
    });
  }

  async function boot() {
    initTheme();
    bind();
    updateTailUi();
    try {
      enterApp(await api('/console/session', { allow401: true }));
    } catch (e) {
      // Some servers hand out a pre-login CSRF token with the 401; use it if so.
      if (e.body && typeof e.body.csrf_token === 'string') state.preCsrf = e.body.csrf_token;
      showLogin(e.status === 401 ? '' : `Could not reach the server: ${e.message}`);
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
  else boot();
})();
