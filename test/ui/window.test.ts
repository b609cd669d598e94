import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execute, queryRows } from '../../src/engine/db/pool.js';
import { createI18n } from '../../renderer/src/i18n/index.js';
import { createTestDb, type TestDb } from '../helpers/db.js';
import { createClinicSchema } from '../helpers/fixture.js';
import { launchChromium, screenshot, serve, VIEWPORT, type Served } from './harness.js';

/*
 * The window driven in Chromium against real engines (issue "The React window", Done when): two
 * `clinic-sync serve` processes on the local MariaDB, each started on an empty home (setup mode).
 * The main server is set up through its wizard, the clinic through its own, cloned from it over
 * HTTP; then the status through Up to date, Changes waiting and Can't reach the main server, a
 * conflict, a USB round trip through a folder standing in for a key, and the settings. The whole
 * of it runs once in English and once in French; every text the test looks for comes from the
 * window's own translations. Screenshots land in test-output/screens/.
 */

let browser: Browser;
beforeAll(async () => {
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
});

for (const language of ['en', 'fr'] as const) {
  describe(`the window in ${language === 'en' ? 'English' : 'French'}`, () => {
    const t = createI18n(language).t;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `cs-ui-${language}-`));
    const media = path.join(dir, 'media');
    const key = path.join(media, 'KEY');
    const removable = { CLINICSYNC_REMOVABLE_ROOTS: media };
    let parentDb: TestDb;
    let childDb: TestDb;
    let parent: Served;
    let child: Served;
    let parentPage: Page;
    let childPage: Page;
    let parentListen = '';
    let code = '';
    let shownFingerprint = '';
    const shot = (page: Page, name: string) => screenshot(page, `${language}-${name}`);
    // The French run's main server serves HTTPS: the clinic confirms its certificate.
    const https = language === 'fr';

    beforeAll(async () => {
      fs.mkdirSync(key, { recursive: true });
      parentDb = await createTestDb('cs_ui_parent');
      await createClinicSchema(parentDb.pool);
      childDb = await createTestDb('cs_ui_child');
      parent = serve(path.join(dir, 'district'), https ? ['--https'] : [], removable);
      child = serve(path.join(dir, 'centre'), ['--interval', '86400'], removable);
      parentPage = await browser.newPage({ viewport: VIEWPORT });
      childPage = await browser.newPage({ viewport: VIEWPORT });
    });
    afterAll(async () => {
      await parentPage?.close();
      await childPage?.close();
      await child?.stop();
      await parent?.stop();
      await childDb?.drop();
      await parentDb?.drop();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    /** Opens the node's admin page in the language of this run. */
    async function open(page: Page, node: Served): Promise<void> {
      await page.goto(`${await node.adminUrl()}&lang=${language}`);
    }

    async function fillDatabase(page: Page, db: TestDb): Promise<void> {
      // OpenMRS's settings were looked for first (none on this machine).
      await page.getByText(t('wizard.db.notFound')).waitFor();
      await page.locator('#db-host').fill(db.target.host);
      await page.locator('#db-port').fill(String(db.target.port));
      await page.locator('#db-database').fill(db.name);
      await page.locator('#db-user').fill(db.target.user);
      await page.locator('#db-password').fill(db.target.password ?? '');
      await page.getByRole('button', { name: t('wizard.db.test') }).click();
      await page.getByText(t('wizard.db.privilegesOk')).waitFor();
    }

    it('sets up the main server with its wizard and hands out a pairing code', async () => {
      await parent.line('setup');
      await open(parentPage, parent);
      await parentPage.getByRole('heading', { name: t('wizard.role.heading') }).waitFor();
      await shot(parentPage, 'wizard-1-role');
      // By keyboard alone: the step's heading has the focus, the first choice is one Tab away.
      await parentPage.keyboard.press('Tab');
      await expect(
        parentPage.evaluate(() => document.activeElement?.textContent),
      ).resolves.toContain(t('wizard.role.rootTitle'));
      await parentPage.keyboard.press('Enter');
      await parentPage.getByRole('heading', { name: t('wizard.db.heading') }).waitFor();

      await fillDatabase(parentPage, parentDb);
      await expect
        .poll(() => parentPage.getByTestId('db-result').innerText())
        .toContain(t('wizard.db.isOpenmrs'));
      await shot(parentPage, 'wizard-2-database-main');
      await parentPage.getByRole('button', { name: t('common.next') }).click();

      await parentPage.locator('#node-name').fill('District Hospital');
      await parentPage.getByRole('button', { name: t('wizard.name.make') }).click();
      await parentPage.getByRole('heading', { name: t('wizard.pairing.heading') }).waitFor();
      parentListen = await parent.line('listening');
      await parentPage.getByRole('button', { name: t('wizard.pairing.make') }).click();
      code = (await parentPage.getByTestId('pairing-code').innerText()).trim();
      // Over HTTPS the main server shows its certificate's fingerprint beside the code.
      const own = parentPage.getByTestId('own-fingerprint');
      if (https) shownFingerprint = (await own.innerText()).trim();
      else expect(await own.count()).toBe(0);
      expect(code).toMatch(/^[A-Z0-9]{4}(-[A-Z0-9]{4}){2,}$/);
      await shot(parentPage, 'wizard-3-pairing');
      await parentPage.getByRole('button', { name: t('common.next') }).click();
      await parentPage.getByRole('button', { name: t('wizard.finish') }).click();

      await parentPage.locator('[data-state="up-to-date"]').waitFor();
      const [meta] = await queryRows(
        parentDb.pool,
        "SELECT v FROM clinicsync_meta WHERE k = 'role'",
      );
      expect(meta?.v).toBe('root');
    });

    it('makes a clinic from the main server: database, address, code, copy with progress, schedule', async () => {
      await child.line('setup');
      await open(childPage, child);
      await childPage.getByRole('button', { name: t('wizard.role.childTitle') }).click();
      await fillDatabase(childPage, childDb);
      await childPage.getByText(t('wizard.db.empty', { db: childDb.name })).waitFor();
      await shot(childPage, 'wizard-4-database-clinic');
      await childPage.getByRole('button', { name: t('common.next') }).click();

      // Left and come back: the wizard resumes at the step it was on, with what was entered.
      await childPage.getByRole('heading', { name: t('wizard.parent.heading') }).waitFor();
      await open(childPage, child);
      await childPage.getByRole('heading', { name: t('wizard.parent.heading') }).waitFor();
      const saved = JSON.parse(
        fs.readFileSync(path.join(child.home, 'setup-progress.json'), 'utf8'),
      ) as { step: string; role: string; dbUrl: string };
      expect(saved).toMatchObject({ step: 'parent', role: 'child' });
      expect(saved.dbUrl).toBe(
        `mysql://${childDb.target.user}@${childDb.target.host}:${childDb.target.port}/${childDb.name}`,
      );

      // The address as a person types it: an IP address and the port (https:// when it is).
      const typed = https ? parentListen : new URL(parentListen).host;
      await childPage.locator('#parent-address').fill(typed);
      await childPage.getByRole('button', { name: t('wizard.parent.check') }).click();
      await childPage.getByText(t('wizard.parent.found', { name: 'District Hospital' })).waitFor();
      await childPage.locator('#clinic-name').fill('Butaro');
      await childPage.locator('#pairing-code').fill(code);
      const next = childPage.getByRole('button', { name: t('common.next') });
      if (https) {
        // The same fingerprint the main server printed, to be confirmed before going on.
        const printed = /certificate fingerprint (SHA256:\S+)/.exec(parent.output())?.[1];
        expect(printed).toMatch(/^SHA256:/);
        expect(shownFingerprint).toBe(printed);
        expect(await childPage.locator('.fingerprint code').innerText()).toBe(printed);
        expect(await next.isDisabled()).toBe(true);
        await childPage.getByLabel(t('wizard.parent.fingerprintSame')).check();
      } else {
        await childPage.getByText(t('wizard.parent.plainHttp')).waitFor();
      }
      await shot(childPage, 'wizard-5-main-server');
      await childPage.getByRole('button', { name: t('common.next') }).click();

      // The overwrite warning must be acknowledged before the copy starts.
      await childPage.getByText(t('wizard.clone.warningTitle', { db: childDb.name })).waitFor();
      const start = childPage.getByRole('button', { name: t('wizard.clone.start') });
      expect(await start.isDisabled()).toBe(true);
      await shot(childPage, 'wizard-6-copy-warning');
      await childPage.getByLabel(t('wizard.clone.understand')).check();
      await start.click();
      const progress = childPage.getByTestId('clone-progress');
      await progress.waitFor();
      await expect
        .poll(() => progress.getAttribute('data-phase'), { timeout: 60_000 })
        .toBe('done');
      expect(await progress.innerText()).toContain(t('wizard.clone.phase.done'));
      await shot(childPage, 'wizard-7-copy-done');
      const onward = childPage.getByRole('button', { name: t('common.next') });
      await expect.poll(() => onward.isEnabled(), { timeout: 30_000 }).toBe(true);
      await onward.click();

      await childPage.getByRole('heading', { name: t('wizard.schedule.heading') }).waitFor();
      await childPage.locator('#interval').selectOption('86400');
      await shot(childPage, 'wizard-8-schedule');
      await childPage.getByRole('button', { name: t('common.next') }).click();
      await childPage.getByText(t('wizard.done.child', { name: 'Butaro' })).waitFor();
      // The main server hands out no identifiers from a counter here: nothing to warn about.
      expect(await childPage.getByTestId('identifier-notice').count()).toBe(0);
      await childPage.getByRole('button', { name: t('wizard.finish') }).click();

      // The copy is real: the main server's rows are here, and this is now its child.
      await childPage.locator('[data-state]').waitFor();
      const [row] = await queryRows(
        childDb.pool,
        "SELECT property_value AS v FROM global_property WHERE property = 'locale'",
      );
      expect(row?.v).toBe('en');
      const settings = JSON.parse(
        fs.readFileSync(path.join(child.home, 'settings.json'), 'utf8'),
      ) as { role: string; sync: { intervalSeconds: number } };
      expect(settings.role).toBe('child');
      expect(settings.sync.intervalSeconds).toBe(86400);
    });

    it('shows Up to date, then the changes waiting to be sent', async () => {
      const state = childPage.locator('[data-state]');
      await expect
        .poll(() => state.getAttribute('data-state'), { timeout: 30_000 })
        .toBe('up-to-date');
      await expect(state.innerText()).resolves.toContain(t('state.up-to-date'));
      await expect(state.innerText()).resolves.toMatch(
        new RegExp(t('status.upToDateAsOf', { time: '\\d{1,2}:\\d{2}' })),
      );
      await shot(childPage, 'status-up-to-date');

      await execute(
        childDb.pool,
        "INSERT INTO person (gender, creator, date_created, uuid) VALUES ('F', 1, '2026-01-01', 'p-ui-waiting')",
      );
      await expect
        .poll(() => state.getAttribute('data-state'), { timeout: 20_000 })
        .toBe('waiting');
      await expect(childPage.getByTestId('pending-out').innerText()).resolves.toBe(
        t('status.toSend', { count: 1 }),
      );
      await shot(childPage, 'status-changes-waiting');
    });

    it('syncs now and shows the conflict that made, with both clinics and values', async () => {
      await execute(
        parentDb.pool,
        "UPDATE global_property SET property_value = 'fr' WHERE property = 'locale'",
      );
      await new Promise((r) => setTimeout(r, 20));
      await execute(
        childDb.pool,
        "UPDATE global_property SET property_value = 'rw' WHERE property = 'locale'",
      );
      await childPage.getByRole('button', { name: t('status.syncNow') }).click();
      await childPage.locator('.notice-good').waitFor();
      await expect
        .poll(() => childPage.locator('[data-state]').getAttribute('data-state'))
        .toBe('up-to-date');
      await childPage.getByRole('button', { name: t('status.conflictsLink') }).click();

      const table = childPage.getByTestId('conflicts');
      await table.waitFor();
      const text = await table.innerText();
      expect(text).toContain('global_property');
      expect(text).toContain('rw');
      expect(text).toContain('fr');
      expect(text).toContain(t('conflicts.by', { name: 'Butaro' }));
      expect(text).toContain(t('conflicts.by', { name: 'District Hospital' }));
      await shot(childPage, 'conflicts');
      const [kept] = await queryRows(
        parentDb.pool,
        "SELECT property_value AS v FROM global_property WHERE property = 'locale'",
      );
      expect(kept?.v).toBe('rw');
    });

    it('shows the main server its clinic, in contact', async () => {
      await parentPage.reload();
      const row = parentPage.getByTestId('children').locator('tr[data-contact]');
      await expect.poll(() => row.getAttribute('data-contact'), { timeout: 15_000 }).toBe('recent');
      await expect(row.innerText()).resolves.toContain('Butaro');
      await expect(row.innerText()).resolves.toContain(t('status.childRecent'));
      await shot(parentPage, 'status-main-server');
    });

    it('saves to a USB key, loads it on the main server, and brings the reply back', async () => {
      await execute(
        childDb.pool,
        "INSERT INTO person (gender, creator, date_created, uuid) VALUES ('M', 1, '2026-01-02', 'p-ui-usb')",
      );
      await childPage.getByRole('button', { name: t('nav.usb') }).click();
      await childPage.getByRole('button', { name: t('usb.saveTo', { label: 'KEY' }) }).click();
      const saved = childPage.getByTestId('export-summary');
      await saved.waitFor();
      const savedText = await saved.innerText();
      expect(savedText).toContain(
        t('usb.saved', { count: 1, to: 'District Hospital', size: 'X' }).split('(')[0]!.trim(),
      );
      const written = fs.readdirSync(key);
      expect(written).toHaveLength(1);
      await shot(childPage, 'usb-saved');

      // The way the tray's "Save to USB key" opens it: the address names the screen.
      await parentPage.evaluate(() => {
        window.location.hash = '#/usb';
      });
      const load = parentPage.getByRole('button', { name: t('usb.load'), exact: true });
      await load.click();
      const imported = parentPage.getByTestId('import-summary');
      await imported.waitFor();
      expect(await imported.innerText()).toContain(t('usb.summaryReceived', { count: 1 }));
      await shot(parentPage, 'usb-loaded-main-server');
      const [arrived] = await queryRows(
        parentDb.pool,
        "SELECT gender FROM person WHERE uuid = 'p-ui-usb'",
      );
      expect(arrived).toEqual({ gender: 'M' });

      await childPage.getByRole('button', { name: t('usb.lookAgain') }).click();
      await childPage.getByRole('button', { name: t('usb.load'), exact: true }).click();
      const reply = childPage.getByTestId('import-summary');
      await reply.waitFor();
      expect(await reply.innerText()).toContain(t('usb.loaded', { from: 'District Hospital' }));
      await shot(childPage, 'usb-reply-loaded');
    });

    it('changes settings: no retries and a short wait, so the next failure shows at once', async () => {
      await childPage.getByRole('button', { name: t('nav.settings') }).click();
      await childPage.locator('#retries').fill('0');
      await childPage.locator('#timeout').fill('5');
      await childPage
        .getByRole('region', { name: t('settings.syncHeading') })
        .getByRole('button', { name: t('common.save') })
        .click();
      await childPage.getByText(t('common.saved')).waitFor();
      await shot(childPage, 'settings');
      const settings = JSON.parse(
        fs.readFileSync(path.join(child.home, 'settings.json'), 'utf8'),
      ) as { sync: { retries: number; timeoutSeconds: number } };
      expect(settings.sync).toMatchObject({ retries: 0, timeoutSeconds: 5 });
      // A value the settings refuse is explained, not saved.
      await childPage.locator('#retries').fill('many');
      await childPage
        .getByRole('region', { name: t('settings.syncHeading') })
        .getByRole('button', { name: t('common.save') })
        .click();
      await childPage.locator('[data-error-kind="usage"]').waitFor();
      expect(await childPage.locator('[data-error-kind="usage"]').innerText()).toContain(
        t('errors.usage.title'),
      );
    });

    it("names the clinic's OpenMRS: the password goes with the secrets, never the settings", async () => {
      const panel = childPage.getByRole('region', { name: t('settings.openmrsHeading') });
      await childPage.locator('#openmrs-url').fill('http://localhost:8080/openmrs');
      await childPage.locator('#openmrs-user').fill('admin');
      // No password yet: refused in plain words, nothing saved.
      await panel.getByRole('button', { name: t('common.save') }).click();
      await panel.locator('[data-error-kind="usage"]').waitFor();
      await childPage.locator('#openmrs-password').fill('Admin123');
      await panel.getByRole('button', { name: t('common.save') }).click();
      await panel.getByText(t('common.saved'), { exact: true }).waitFor();
      await panel.getByText(t('settings.openmrsPasswordKept')).waitFor();
      expect(await childPage.locator('#openmrs-password').inputValue()).toBe('');
      await shot(childPage, 'settings-openmrs');
      const file = fs.readFileSync(path.join(child.home, 'settings.json'), 'utf8');
      expect(JSON.parse(file)).toMatchObject({
        openmrs: { url: 'http://localhost:8080/openmrs', user: 'admin' },
      });
      expect(file).not.toContain('Admin123');
      expect(fs.readFileSync(path.join(child.home, 'secrets', 'openmrs-password'), 'utf8')).toBe(
        'Admin123',
      );
    });

    it("says it can't reach the main server once it is stopped, in plain words", async () => {
      await parent.stop();
      await execute(
        childDb.pool,
        "INSERT INTO person (gender, creator, date_created, uuid) VALUES ('F', 1, '2026-01-03', 'p-ui-offline')",
      );
      await childPage.getByRole('button', { name: t('nav.status') }).click();
      await childPage.getByRole('button', { name: t('status.syncNow') }).click();
      const notice = childPage.locator('[data-error-kind="unreachable"]').first();
      await notice.waitFor({ timeout: 30_000 });
      expect(await notice.innerText()).toContain(t('errors.unreachable.title'));
      await expect
        .poll(() => childPage.locator('[data-state]').getAttribute('data-state'))
        .toBe('offline');
      await expect(childPage.locator('[data-state]').innerText()).resolves.toContain(
        t('state.offline'),
      );
      // Nothing is lost: the change waits here for the link.
      await expect
        .poll(() => childPage.getByTestId('pending-out').innerText())
        .toBe(t('status.toSend', { count: 1 }));
      // The engine's own sentence waits behind "Details".
      const details = notice.getByRole('button', { name: t('common.details') });
      await details.click();
      expect(await notice.locator('.notice-detail').isVisible()).toBe(true);
      await shot(childPage, 'status-offline');
    });
  });
}
