// prefpage.mjs - drives headless Chromium (Debian's /usr/bin/chromium, through
// npm playwright-core installed under .deps/ by `scripts/deps.sh --npm`) the
// way a person does: open the preference link from a real message, read the
// page, turn one topic off, submit, and read the page the browser lands on.
//
//   node tests/e2e/prefpage.mjs <preferences_url> <topic> <result.json>
//
// Writes a JSON result for tests/e2e/test_prefpage.py to judge; exits
// non-zero only when the browser could not do its part. JavaScript is
// disabled in the page context: the page must work without it.
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const deps = process.env.HERALD_NODE_MODULES || path.join(here, '..', '..', '.deps', 'node_modules');
const require = createRequire(path.join(deps, 'noop.js'));
const { chromium } = require('playwright-core');

const [url, topic, out] = process.argv.slice(2);
if (!url || !topic || !out) {
  console.error('usage: prefpage.mjs <preferences_url> <topic> <result.json>');
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.HERALD_CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox'], // CI runs as root
});
const result = { requests: [] };
try {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  const failed = [];
  page.on('requestfailed', (r) => failed.push(r.url()));
  page.on('request', (r) => {
    if (r.method() === 'POST') {
      result.requests.push({ method: r.method(), origin: r.headers()['origin'] || null });
    }
  });

  const first = await page.goto(url, { waitUntil: 'load' });
  result.before = {
    status: first.status(),
    headers: first.headers(),
    title: await page.title(),
    text: await page.locator('body').innerText(),
  };
  const box = page.locator(`input[type=checkbox][name=topic_on][value="${topic}"]`);
  result.before.topic_checked = await box.isChecked();

  await box.uncheck();
  const [resp] = await Promise.all([
    page.waitForNavigation({ waitUntil: 'load' }),
    page.getByRole('button', { name: 'Save my choices' }).click(),
  ]);
  result.after = {
    status: resp ? resp.status() : null,
    url: page.url(),
    text: await page.locator('body').innerText(),
    topic_checked: await page.locator(`input[type=checkbox][name=topic_on][value="${topic}"]`).isChecked(),
  };
  result.failed_requests = failed;
} finally {
  await browser.close();
}
writeFileSync(out, JSON.stringify(result, null, 1));
