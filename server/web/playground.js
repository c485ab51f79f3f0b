/*
 * playground.js: the rosim playground.  Every action is one call of the
 * HTTP API (docs/openapi.json) with the API key from the key field
 * (Authorization: Bearer, kept in sessionStorage: this tab only).  Errors
 * are shown as the API gives them: status, code and message.  Text from
 * the server is put in the page as text, never as HTML.
 */
'use strict';

const KEY_ITEM = 'rosim.apiKey';
const $ = (id) => document.getElementById(id);

function apiKey() {
  return sessionStorage.getItem(KEY_ITEM) || '';
}

/* One API call; resolves to the reply's JSON, or throws an Error whose
 * message is "STATUS code: message" as the API said it. */
async function call(method, path, body) {
  const headers = {};
  if (apiKey() !== '') headers.Authorization = 'Bearer ' + apiKey();
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let reply;
  try {
    reply = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new Error('no reply from the server: ' + e.message);
  }
  let json = null;
  try {
    json = await reply.json();
  } catch (e) {
    json = null;
  }
  if (!reply.ok) {
    const err = json && json.error;
    if (err && typeof err.message === 'string')
      throw new Error(reply.status + ' ' + (err.code || err.type || 'error') + ': ' + err.message);
    throw new Error(reply.status + ' ' + reply.statusText);
  }
  if (json === null) throw new Error(reply.status + ': the reply is not JSON');
  return json;
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function showError(panel, err) {
  const box = $(panel + '-error');
  box.textContent = err ? err.message : '';
  box.hidden = !err;
}

/* An optional integer field: undefined when empty, else what was typed
 * (the server checks the range and says what is wrong). */
function intField(id) {
  const v = $(id).value.trim();
  return v === '' ? undefined : Number(v);
}

/* Run action for a panel: clear its error, show the new one if any. */
function handle(panel, action) {
  return async (ev) => {
    if (ev) ev.preventDefault();
    showError(panel, null);
    try {
      await action();
    } catch (e) {
      showError(panel, e);
    }
  };
}

async function loadInfo() {
  try {
    const info = await call('GET', '/v1/info');
    const m = info.model;
    $('model-info').textContent = m.arch + ', ' + m.layers + ' layers, hidden ' + m.hidden +
      ', ' + m.format + (m.demo ? ' (random demo model: outputs are meaningless)' : '') +
      '; rosim ' + info.version;
  } catch (e) {
    $('model-info').textContent = e.message;
  }
}

async function loadCollections() {
  const list = await call('GET', '/v1/collections');
  const sel = $('search-collection');
  const keep = sel.value;
  sel.replaceChildren();
  for (const c of list.collections) {
    const opt = el('option', '', c.state === 'open'
      ? c.name + ' (' + c.documents + ' documents)' : c.name + ' (failed)');
    opt.value = c.name;
    opt.disabled = c.state !== 'open';
    sel.append(opt);
  }
  if (keep) sel.value = keep;
  if (list.collections.length === 0) sel.append(el('option', '', 'no collections'));
}

async function generate() {
  const out = $('generate-results');
  out.replaceChildren();
  const body = { text: $('gen-text').value, n: intField('gen-n'), k: intField('gen-k'),
                 seed: intField('gen-seed') };
  const res = await call('POST', '/v1/generate', body);
  for (const p of res.paraphrases) {
    const li = el('li');
    li.append(el('span', 'score', p.score.toFixed(4)), el('span', 'text', p.text));
    out.append(li);
  }
  if (res.paraphrases.length === 0) out.append(el('li', 'muted', 'no paraphrase'));
}

async function similarity() {
  $('similarity-result').hidden = true;
  const res = await call('POST', '/v1/similarity',
                         { source: $('sim-a').value, targets: [$('sim-b').value] });
  $('similarity-score').textContent = res.scores[0].toFixed(4);
  $('similarity-meter').value = res.scores[0];
  $('similarity-result').hidden = false;
}

async function search() {
  const out = $('search-results');
  out.replaceChildren();
  const name = $('search-collection').value;
  const res = await call('POST', '/v1/collections/' + encodeURIComponent(name) + '/search',
                         { text: $('search-text').value, k: intField('search-k') });
  for (const h of res.hits) {
    const li = el('li');
    li.append(el('span', 'score', h.score.toFixed(4)), el('span', 'id', h.id),
              el('span', 'text', h.text));
    const meta = el('div', 'meta');
    for (const [k, v] of Object.entries(h.meta))
      meta.append(el('span', '', k + ': ' + (typeof v === 'string' ? v : JSON.stringify(v))));
    if (meta.childElementCount > 0) li.append(meta);
    out.append(li);
  }
  if (res.hits.length === 0) out.append(el('li', 'muted', 'no hits'));
}

function useKey(ev) {
  ev.preventDefault();
  const key = $('api-key').value.trim();
  if (key === '') sessionStorage.removeItem(KEY_ITEM);
  else sessionStorage.setItem(KEY_ITEM, key);
  $('key-state').textContent = key === '' ? 'no key' : 'key set for this tab';
  loadInfo();
  handle('search', loadCollections)();
}

document.addEventListener('DOMContentLoaded', () => {
  $('api-key').value = apiKey();
  $('key-state').textContent = apiKey() === '' ? 'no key' : 'key set for this tab';
  $('key-form').addEventListener('submit', useKey);
  $('generate-form').addEventListener('submit', handle('generate', generate));
  $('similarity-form').addEventListener('submit', handle('similarity', similarity));
  $('search-form').addEventListener('submit', handle('search', search));
  $('search-refresh').addEventListener('click', handle('search', loadCollections));
  loadInfo();
  handle('search', loadCollections)();
});
