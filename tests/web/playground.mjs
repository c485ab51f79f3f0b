// playground.mjs: the playground in headless Chromium (Debian's), driven with
// puppeteer-core: load the page from a running rosimd, give the API key,
// paraphrase, compare, search, provoke an error, and check what is shown.
//
//   node tests/web/playground.mjs PORT KEY COLLECTION SCREENSHOT.png
//
// The collection must hold documents with meta; the tiny test model's
// outputs are meaningless, so the checks are about what the page shows,
// not what the model says.  Prints one line per check; exits 1 on failure.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer from 'puppeteer-core';

const [port, key, collection, shot] = process.argv.slice(2);
const base = 'http://127.0.0.1:' + port;
const profile = mkdtempSync(join(tmpdir(), 'rosim-chromium-'));
let failed = 0;
function ok(cond, what) {
  console.log((cond ? 'ok   ' : 'FAIL ') + what);
  if (!cond) failed++;
}

const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  timeout: 120000,   // a first start on a busy 2-core machine can pass the default 30 s
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync',
         '--user-data-dir=' + profile],
});
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1000, height: 1300 });
  const problems = [];
  const remote = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
  page.on('pageerror', (e) => problems.push(e.message));
  page.on('request', (r) => { if (!r.url().startsWith(base) && !r.url().startsWith('data:')) remote.push(r.url()); });
  const text = (sel) => page.$eval(sel, (e) => e.textContent.trim());
  const visible = (sel) => page.$eval(sel, (e) => !e.hidden);

  const first = await page.goto(base + '/', { waitUntil: 'networkidle0' });
  ok(first.status() === 200 && first.headers()['content-type'].startsWith('text/html'), 'the page loads without a key');
  ok((first.headers()['content-security-policy'] ?? '').includes("default-src 'none'"), 'the page has its Content-Security-Policy');
  // without a key, the API's own 401 is shown
  await page.waitForFunction(() => document.getElementById('search-error').textContent !== '');
  ok((await text('#search-error')).startsWith('401 unauthorized: '), 'without a key: ' + await text('#search-error'));

  // the key, kept for this tab
  await page.type('#api-key', key);
  await page.click('#key-save');
  await page.waitForFunction((c) => [...document.querySelectorAll('#search-collection option')]
    .some((o) => o.value === c), {}, collection);
  ok(await page.evaluate(() => sessionStorage.getItem('rosim.apiKey')) === key, 'the key is in sessionStorage');
  ok(!(await visible('#search-error')), 'with the key, the collections are listed');
  ok((await text('#model-info')).includes('roformer'), 'model: ' + await text('#model-info'));

  // a bad request first: the API's status, code and message, no results
  await page.type('#gen-text', '今天天气不错');
  await page.$eval('#gen-n', (e) => { e.value = '0'; });
  await page.click('#generate-form button[type=submit]');
  await page.waitForFunction(() => !document.getElementById('generate-error').hidden);
  const err = await text('#generate-error');
  ok(/^422 out_of_range: 'n' must be from 1 to \d+, not 0$/.test(err), 'a bad request shows the API error: ' + err);
  ok(await page.$$eval('#generate-results li', (l) => l.length) === 0, 'and no results');

  // paraphrases with scores
  await page.$eval('#gen-n', (e) => { e.value = '20'; });
  await page.$eval('#gen-seed', (e) => { e.value = '7'; });
  await page.click('#generate-form button[type=submit]');
  await page.waitForFunction(() => document.querySelectorAll('#generate-results li').length > 0 ||
                                   !document.getElementById('generate-error').hidden);
  const paraphrases = await page.$$eval('#generate-results li', (lis) => lis.map((li) => ({
    score: li.querySelector('.score')?.textContent, text: li.querySelector('.text')?.textContent })));
  ok(!(await visible('#generate-error')), 'the error is gone once a request succeeds');
  ok(paraphrases.length >= 1 && paraphrases.length <= 5 &&
     paraphrases.every((p) => /^-?[01]\.\d{4}$/.test(p.score) && p.text !== undefined),
     'paraphrases with scores: ' + JSON.stringify(paraphrases.slice(0, 2)));

  // similarity: a sentence with itself is 1
  await page.type('#sim-a', '我想买手机');
  await page.type('#sim-b', '我想买手机');
  await page.click('#similarity-form button[type=submit]');
  await page.waitForFunction(() => !document.getElementById('similarity-result').hidden ||
                                   !document.getElementById('similarity-error').hidden);
  ok(await text('#similarity-score') === '1.0000', 'similarity of a sentence with itself: ' + await text('#similarity-score'));

  // search: hits with their meta
  await page.select('#search-collection', collection);
  await page.type('#search-text', '手机多少钱');
  await page.click('#search-form button[type=submit]');
  await page.waitForFunction(() => document.querySelectorAll('#search-results li').length > 0 ||
                                   !document.getElementById('search-error').hidden);
  const hits = await page.$$eval('#search-results li', (lis) => lis.map((li) => ({
    id: li.querySelector('.id')?.textContent, score: li.querySelector('.score')?.textContent,
    meta: [...li.querySelectorAll('.meta span')].map((s) => s.textContent) })));
  ok(hits.length === 3 && hits.every((h) => h.id && /^-?[01]\.\d{4}$/.test(h.score)),
     'three hits with ids and scores: ' + JSON.stringify(hits.map((h) => h.id)));
  ok(hits.some((h) => h.meta.includes('topic: price')), 'hits show their meta: ' + JSON.stringify(hits[0]?.meta));

  ok(remote.length === 0, 'nothing loaded from elsewhere ' + JSON.stringify(remote));
  ok(problems.every((p) => p.includes('401') || p.includes('422')),
     'no script errors (only the provoked 401 and 422): ' + JSON.stringify(problems));
  await page.screenshot({ path: shot, fullPage: true });
  console.log('screenshot: ' + shot);
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(failed === 0 ? 'playground: all checks passed' : 'playground: ' + failed + ' checks failed');
process.exit(failed === 0 ? 0 : 1);
