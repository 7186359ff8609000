// pagelayout.mjs - the preference page in real Chromium (Debian's
// /usr/bin/chromium through npm playwright-core under .deps/), as people
// with different languages and screens meet it:
//   - every page of the plan at each width: whether anything scrolls
//     sideways (document.scrollingElement.scrollWidth against the viewport),
//     the size of every control a finger has to hit, <html lang dir>, and a
//     full-page screenshot kept for people to look at;
//   - a keyboard-only pass: Tab from the top, Space on a topic, Enter on an
//     order button, then on the save button; the focus order is recorded;
//   - their data downloaded through the link on the page, then erased
//     through the confirmation page.
// JavaScript is off in every page (the pages must work without it); the
// measurements are made by Playwright, not by the page.
//
//   node tests/e2e/pagelayout.mjs <plan.json> <result.json>
//
// plan: {"shots": dir, "pages": [{"name", "url", "accept"}], "widths": [1280, 360],
//        "keyboard": {"url", "accept", "topic"}, "data": {"url", "download": path}}
// Writes a JSON result for tests/e2e/test_pagelayout.py to judge; exits
// non-zero only when the browser could not do its part.
import { createRequire } from 'node:module';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const deps = process.env.HERALD_NODE_MODULES || path.join(here, '..', '..', '.deps', 'node_modules');
const require = createRequire(path.join(deps, 'noop.js'));
const { chromium } = require('playwright-core');

const [planPath, out] = process.argv.slice(2);
if (!planPath || !out) {
  console.error('usage: pagelayout.mjs <plan.json> <result.json>');
  process.exit(2);
}
const plan = JSON.parse(readFileSync(planPath, 'utf8'));
mkdirSync(plan.shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.HERALD_CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox'], // CI runs as root
});

// What a finger has to hit: every button, link, text field and the label of
// every checkbox (the box itself is inside its label).
const TARGETS = 'button, a, input[type=text], input[type=time], label:has(input[type=checkbox])';

async function measure(page, width) {
  const m = await page.evaluate(() => ({
    scrollWidth: document.scrollingElement.scrollWidth,
    innerWidth: window.innerWidth,
    lang: document.documentElement.lang,
    dir: document.documentElement.dir,
    title: document.title,
  }));
  const small = [];
  for (const el of await page.locator(TARGETS).all()) {
    if (!(await el.isVisible())) continue;
    const box = await el.boundingBox();
    if (!box) continue;
    // Links inside running text are exempt from the size (WCAG 2.5.8 "inline").
    const inline = await el.evaluate((e) => e.tagName === 'A' && getComputedStyle(e).display === 'inline');
    if (!inline && (box.height < 44 || box.width < 44)) {
      small.push({ what: (await el.evaluate((e) => e.outerHTML)).slice(0, 120), width: box.width, height: box.height });
    }
  }
  // Anything wider than the viewport, for the report when it scrolls.
  const wide = await page.evaluate((w) => [...document.querySelectorAll('body *')]
    .filter((e) => e.getBoundingClientRect().right > w + 0.5)
    .slice(0, 5).map((e) => e.outerHTML.slice(0, 120)), width);
  return { ...m, small, wide };
}

const result = { pages: [], failed_requests: [] };
try {
  for (const p of plan.pages) {
    for (const width of plan.widths) {
      const context = await browser.newContext({
        javaScriptEnabled: false,
        viewport: { width, height: 800 },
        extraHTTPHeaders: p.accept ? { 'Accept-Language': p.accept } : {},
      });
      const page = await context.newPage();
      page.on('requestfailed', (r) => result.failed_requests.push(r.url()));
      const resp = await page.goto(p.url, { waitUntil: 'load' });
      const m = await measure(page, width);
      const shot = path.join(plan.shots, `${p.name}-${width}.png`);
      await page.screenshot({ path: shot, fullPage: true });
      result.pages.push({ name: p.name, width, status: resp.status(), shot, ...m });
      await context.close();
    }
  }

  if (plan.keyboard) {
    const k = plan.keyboard;
    const context = await browser.newContext({
      javaScriptEnabled: false,
      viewport: { width: 360, height: 800 },
      extraHTTPHeaders: k.accept ? { 'Accept-Language': k.accept } : {},
    });
    const page = await context.newPage();
    await page.goto(k.url, { waitUntil: 'load' });
    const focused = () => page.evaluate(() => {
      const e = document.activeElement;
      return e ? { tag: e.tagName, name: e.getAttribute('name'), value: e.getAttribute('value'),
                   type: e.getAttribute('type'), text: (e.textContent || '').trim().slice(0, 60) } : null;
    });
    const order = [];
    // Tab until the topic's box has the focus: Space turns it off.
    let found = false;
    for (let i = 0; i < 80 && !found; i++) {
      await page.keyboard.press('Tab');
      const f = await focused();
      order.push(f);
      found = f && f.name === 'topic_on' && f.value === k.topic;
    }
    const kb = { reached_topic: found, order };
    if (found) {
      await page.keyboard.press('Space');
      kb.topic_unchecked = !(await page.locator(`input[name=topic_on][value="${k.topic}"]`).isChecked());
    }
    // Back to the top, then Tab to the first order button; Enter posts it.
    await page.evaluate(() => document.activeElement && document.activeElement.blur());
    let onMove = false;
    for (let i = 0; i < 80 && !onMove; i++) {
      await page.keyboard.press('Tab');
      const f = await focused();
      onMove = f && f.name === 'move';
      if (onMove) kb.move = f.value;
    }
    if (onMove) {
      await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.keyboard.press('Enter')]);
      kb.after_move = await page.locator('body').innerText();
      // The save button, by keyboard only.
      let onSave = false;
      for (let i = 0; i < 120 && !onSave; i++) {
        await page.keyboard.press('Tab');
        const f = await focused();
        onSave = f && f.tag === 'BUTTON' && f.name === 'save';
      }
      kb.reached_save = onSave;
      if (onSave) {
        const [resp] = await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.keyboard.press('Enter')]);
        kb.saved_status = resp ? resp.status() : null;
        kb.saved_url = page.url();
        kb.saved_text = await page.locator('body').innerText();
      }
    }
    result.keyboard = kb;
    await context.close();
  }

  if (plan.data) {
    const d = plan.data;
    const context = await browser.newContext({ javaScriptEnabled: false, acceptDownloads: true });
    const page = await context.newPage();
    await page.goto(d.url, { waitUntil: 'load' });
    const links = page.locator('a[download]');
    const [download] = await Promise.all([page.waitForEvent('download'), links.first().click()]);
    await download.saveAs(d.download);
    const erase = { download_name: download.suggestedFilename() };
    await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.locator('a.button.secondary[href$="/erase"]').click()]);
    erase.confirm_text = await page.locator('body').innerText();
    const [resp] = await Promise.all([page.waitForNavigation({ waitUntil: 'load' }),
      page.locator('button[name=erase]').click()]);
    erase.status = resp ? resp.status() : null;
    erase.text = await page.locator('body').innerText();
    result.data = erase;
    await context.close();
  }
} finally {
  await browser.close();
}
writeFileSync(out, JSON.stringify(result, null, 1));
