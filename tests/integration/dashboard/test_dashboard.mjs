// The live dashboard (GET /) in headless Chromium against a running tallyd.
//
// tallyd --simulate --http 127.0.0.1:0 counts a seeded election (10 candidates, 600 regions)
// at a fixed pace while the page is open, then closes the polls and keeps serving. Meanwhile:
//  - every body /api/results serves is recorded by version (polled every 40 ms, the adapter
//    renders at most every 100 ms), so a DOM read at version V is compared figure by figure
//    with the body of version V while the count is still moving (the page follows);
//  - a vote the API shows must be in the DOM within 1 s;
//  - once the count is final, everything is compared again, the region table is sorted by
//    every column both ways and paged through to the last page (every region seen once);
//  - nothing is fetched from anywhere but tallyd, except candidates' photo_url (blocked here,
//    so the leader's photo must be the placeholder);
//  - desktop (1280x900) and phone (390x844) screenshots go to the output directory.
// Then server mode on the real services (TALLY_KAFKA_BROKERS/TALLY_PG_DSN or var/services.env):
// tally-gen and tally-sim into a private schema and topic prefix, tallyd --http; the DOM must
// equal /api/results (and tally-sim's truth) at rest, follow a second, paced tally-sim run
// (--append) within 1 s, and equal /api/results again once it is counted.
//
// usage: node test_dashboard.mjs TALLYD OUTDIR DEPSDIR   (DEPSDIR holds node_modules/playwright-core;
// CHROMIUM=/usr/bin/chromium by default). run.sh installs the dependency and runs this.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const [tallyd, outdir, depsdir] = process.argv.slice(2);
if (!tallyd || !outdir || !depsdir) {
	console.error('usage: node test_dashboard.mjs TALLYD OUTDIR DEPSDIR');
	process.exit(2);
}
const { chromium } = createRequire(join(resolve(depsdir), 'package.json'))('playwright-core');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const CANDIDATES = 10, REGIONS = 600, PAGE_SIZE = 25;
mkdirSync(outdir, { recursive: true });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.log('dashboard:', ...a);
let failures = 0;
function check(ok, what) {
	if (!ok) {
		failures++;
		console.error('FAIL:', what);
	}
	return ok;
}
function eq(got, want, what) {
	return check(got === want, `${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}
const fmtInt = (n) => Number(n).toLocaleString('en-US');
const fmtPct = (f) => (Number(f) * 100).toFixed(2) + '%';

// ---- tallyd -------------------------------------------------------------------------------

let proc = null, stderrText = '';
async function startTallyd() {
	const args = ['--simulate', '--http', '127.0.0.1:0', '--seed', '7', '--voters', '60000',
		'--candidates', String(CANDIDATES), '--regions', String(REGIONS), '--rate', '3000',
		'--quiet'];
	log('running', tallyd, args.join(' '));
	proc = spawn(tallyd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
	proc.stdout.on('data', (d) => process.stdout.write(d));
	return new Promise((resolve, reject) => {
		const t = setTimeout(() => reject(new Error('tallyd did not log its port in 30 s')), 30000);
		proc.stderr.on('data', (d) => {
			process.stderr.write(d);
			stderrText += d;
			const m = /\(port (\d+);/.exec(stderrText);
			if (m) {
				clearTimeout(t);
				resolve(Number(m[1]));
			}
		});
		proc.on('exit', (code) => reject(new Error(`tallyd exited early (${code})`)));
	});
}

// ---- the API, recorded by version ------------------------------------------------------------

const bodies = new Map();            // version -> parsed /api/results
let newest = null;
let recording = true;
async function fetchResults(base) {
	const res = await fetch(base + '/api/results', { cache: 'no-store' });
	if (res.status !== 200)
		throw new Error(`/api/results answered ${res.status}`);
	const r = await res.json();
	if (!bodies.has(r.version))
		bodies.set(r.version, r);
	if (!newest || r.version > newest.version)
		newest = r;
	return r;
}
async function recordLoop(base) {
	while (recording) {
		try {
			await fetchResults(base);
		} catch (e) {
			console.error('record:', e.message);
		}
		await sleep(40);
	}
}

// ---- the DOM ------------------------------------------------------------------------------

// One synchronous read of everything the page shows, so the figures belong to one version.
function readDom(page) {
	return page.evaluate(() => {
		const q = (id) => document.querySelector(`[data-testid="${id}"]`);
		const v = (id) => ({ value: q(id).dataset.value, text: q(id).textContent });
		const rows = (id, key) => [...q(id).tBodies[0].rows].map((tr) => {
			const o = { key: tr.dataset[key], cells: {} };
			for (const td of tr.cells)
				if (td.dataset.field)
					o.cells[td.dataset.field] = { value: td.dataset.value, text: td.textContent };
			return o;
		});
		const img = q('leader-photo');
		return {
			version: q('version').dataset.value,
			electionId: q('election-id').textContent,
			status: v('status'), updatedAt: v('updated-at'), conn: q('conn').dataset.value,
			accepted: v('accepted'), rejectedTotal: v('rejected-total'), registered: v('registered'),
			turnout: v('turnout'),
			leaderName: q('leader-name').textContent, leaderParty: q('leader-party').textContent,
			leaderVotes: v('leader-votes'), marginVotes: v('margin-votes'), marginPoints: v('margin-points'),
			photo: { src: img.currentSrc || img.src, complete: img.complete, width: img.naturalWidth },
			candidates: rows('candidates', 'candidateId'),
			parties: rows('parties', 'party'),
			reasons: rows('reasons', 'reason'),
			regions: rows('regions', 'region'),
			pageInfo: { page: q('page-info').dataset.page, pages: q('page-info').dataset.pages },
			points: Number(q('timeline').dataset.points || 0),
		};
	});
}

// Every figure of the DOM against the API body r of the same version.
function compare(d, r, when) {
	const n0 = failures;
	eq(d.version, String(r.version), `${when}: version`);
	eq(d.electionId, r.election.id, `${when}: election id`);
	eq(d.status.value, r.election.status, `${when}: status`);
	eq(d.updatedAt.value, r.updated_at, `${when}: updated_at`);
	eq(d.accepted.value, String(r.accepted), `${when}: accepted`);
	eq(d.accepted.text, fmtInt(r.accepted), `${when}: accepted as shown`);
	eq(d.rejectedTotal.value, String(r.rejected_total), `${when}: rejected_total`);
	eq(d.rejectedTotal.text, fmtInt(r.rejected_total), `${when}: rejected_total as shown`);
	eq(d.registered.value, String(r.registered), `${when}: registered`);
	eq(d.registered.text, fmtInt(r.registered), `${when}: registered as shown`);
	eq(d.turnout.value, String(r.turnout), `${when}: turnout`);
	eq(d.turnout.text, fmtPct(r.turnout), `${when}: turnout as shown`);
	if (r.leader) {
		eq(d.leaderName, r.leader.candidate_name, `${when}: leader name`);
		eq(d.leaderParty, r.leader.party_affiliation, `${when}: leader party`);
		eq(d.leaderVotes.value, String(r.leader.total_votes), `${when}: leader votes`);
		eq(d.marginVotes.value, String(r.margin.votes), `${when}: margin votes`);
		eq(d.marginVotes.text, fmtInt(r.margin.votes), `${when}: margin votes as shown`);
		eq(Number(d.marginPoints.value), Number(r.margin.share_points), `${when}: margin points`);
		eq(d.marginPoints.text, Number(r.margin.share_points).toFixed(2), `${when}: margin points as shown`);
	}
	eq(d.candidates.length, r.candidates.length, `${when}: candidate rows`);
	const dc = new Map(d.candidates.map((c) => [c.key, c.cells]));
	for (const c of r.candidates) {
		const row = dc.get(c.candidate_id);
		if (!check(row, `${when}: candidate ${c.candidate_id} shown`))
			continue;
		eq(row.name.text, c.candidate_name, `${when}: candidate ${c.candidate_id} name`);
		eq(row.party.text, c.party_affiliation, `${when}: candidate ${c.candidate_id} party`);
		eq(row.votes.value, String(c.total_votes), `${when}: candidate ${c.candidate_id} votes`);
		eq(row.votes.text, fmtInt(c.total_votes), `${when}: candidate ${c.candidate_id} votes as shown`);
		eq(row.share.text, fmtPct(c.share), `${when}: candidate ${c.candidate_id} share`);
	}
	eq(d.parties.length, r.parties.length, `${when}: party rows`);
	const dp = new Map(d.parties.map((p) => [p.key, p.cells]));
	for (const p of r.parties) {
		const row = dp.get(p.party);
		if (!check(row, `${when}: party ${p.party} shown`))
			continue;
		eq(row.votes.value, String(p.total_votes), `${when}: party ${p.party} votes`);
		eq(row.share.text, fmtPct(p.share), `${when}: party ${p.party} share`);
	}
	const reasons = Object.keys(r.rejected);
	eq(d.reasons.length, reasons.length, `${when}: reason rows`);
	const dr = new Map(d.reasons.map((x) => [x.key, x.cells]));
	for (const k of reasons) {
		const row = dr.get(k);
		if (check(row, `${when}: reason ${k} shown`))
			eq(row.votes.value, String(r.rejected[k]), `${when}: reason ${k}`);
	}
	// The region rows shown (one page) against the API's figures for those regions.
	const rr = new Map(r.regions.map((g) => [g.region, g]));
	for (const row of d.regions) {
		const g = rr.get(row.key);
		if (!check(g, `${when}: region ${row.key} exists`))
			continue;
		eq(row.cells.registered.value, String(g.registered), `${when}: region ${g.region} registered`);
		eq(row.cells.count.value, String(g.count), `${when}: region ${g.region} votes`);
		eq(row.cells.turnout.text, fmtPct(g.turnout), `${when}: region ${g.region} turnout`);
	}
	return failures === n0;
}

// ---- the region table --------------------------------------------------------------------------

async function clickAndRead(page, testid) {
	await page.click(`[data-testid="${testid}"]`);
	return readDom(page);
}

async function checkRegions(page, r) {
	const pages = Math.ceil(r.regions.length / PAGE_SIZE);
	const num = (row, f) => Number(row.cells[f].value);
	for (const key of ['region', 'registered', 'count', 'turnout']) {
		for (let pass = 0; pass < 2; pass++) {
			await page.click(`button[data-sort="${key}"]`);
			const dir = await page.getAttribute(`button[data-sort="${key}"]`, 'data-dir');
			// Expected order: as the page promises (ties by name), computed here from the API.
			const want = r.regions.slice().sort((a, b) => {
				let c = key === 'region' ? String(a.region).localeCompare(String(b.region))
					: Number(a[key]) - Number(b[key]);
				if (c === 0 && key !== 'region')
					return String(a.region).localeCompare(String(b.region));
				return dir === 'desc' ? -c : c;
			}).map((g) => g.region);
			let d = await readDom(page);
			eq(d.pageInfo.page, '1', `sort ${key} ${dir}: starts on page 1`);
			eq(d.regions.map((x) => x.key).join('|'), want.slice(0, PAGE_SIZE).join('|'),
				`sort ${key} ${dir}: first page`);
			d = await clickAndRead(page, 'page-last');
			eq(d.pageInfo.page, String(pages), `sort ${key} ${dir}: last page reached`);
			eq(d.regions.map((x) => x.key).join('|'), want.slice((pages - 1) * PAGE_SIZE).join('|'),
				`sort ${key} ${dir}: last page shows the last regions`);
			if (key !== 'region') {
				const vals = d.regions.map((x) => num(x, key));
				check(vals.every((x, i) => i === 0 || (dir === 'desc' ? vals[i - 1] >= x : vals[i - 1] <= x)),
					`sort ${key} ${dir}: last page in order`);
			}
		}
	}
	// Page through every region with next, then back with prev.
	await page.click('button[data-sort="region"]');
	if (await page.getAttribute('button[data-sort="region"]', 'data-dir') !== 'asc')
		await page.click('button[data-sort="region"]');
	let d = await readDom(page);           // a sort click goes back to page 1
	eq(d.pageInfo.pages, String(pages), 'region pages');
	const seen = [];
	for (let i = 1; ; i++) {
		eq(d.pageInfo.page, String(i), `next: page ${i}`);
		seen.push(...d.regions.map((x) => x.key));
		compare(d, r, `final, region page ${i}`);
		if (i >= pages)
			break;
		d = await clickAndRead(page, 'page-next');
	}
	eq(seen.length, r.regions.length, 'regions seen paging through');
	eq(new Set(seen).size, r.regions.length, 'distinct regions seen paging through');
	check(r.regions.every((g) => seen.includes(g.region)), 'every region of the API seen');
	check(await page.isDisabled('[data-testid="page-next"]'), 'next disabled on the last page');
	d = await clickAndRead(page, 'page-prev');
	eq(d.pageInfo.page, String(pages - 1), 'prev from the last page');
	d = await clickAndRead(page, 'page-first');
	eq(d.pageInfo.page, '1', 'first');
	check(await page.isDisabled('[data-testid="page-prev"]'), 'prev disabled on the first page');
	log(`region table: ${r.regions.length} regions in ${pages} pages, sorted by 4 columns both ways`);
}

// While votes are being counted: every ~150 ms the API's newest figures must reach the DOM
// within 1 s, and a DOM read at a version the recorder saw must equal that body exactly.
async function followLive(page, base, done, what) {
	let liveMatches = 0, lagChecks = 0, maxLag = 0;
	const acceptedSeen = new Set();
	for (let i = 0; i < 2000; i++) {
		const r = await fetchResults(base);
		if (done(r, i))
			break;
		const t0 = Date.now();
		let d;
		for (;;) {
			d = await readDom(page);
			acceptedSeen.add(d.accepted.value);
			if (Number(d.version) >= r.version || Date.now() - t0 > 1000)
				break;
			await sleep(20);
		}
		const lag = Date.now() - t0;
		lagChecks++;
		maxLag = Math.max(maxLag, lag);
		check(Number(d.version) >= r.version && Number(d.accepted.value) >= r.accepted,
			`${what} live: API version ${r.version} (accepted ${r.accepted}) not in the DOM after ${lag} ms ` +
			`(DOM version ${d.version}, accepted ${d.accepted.value})`);
		const same = bodies.get(Number(d.version));
		if (same && same.election.status === 'open' && compare(d, same, `${what} live at version ${d.version}`))
			liveMatches++;
		await sleep(150);
	}
	log(`${what} live: ${lagChecks} lag checks (slowest ${maxLag} ms), ${liveMatches} exact matches while ` +
		`counting, ${acceptedSeen.size} accepted totals seen`);
	check(lagChecks >= 10, `${what} live: at least 10 lag checks while counting (${lagChecks})`);
	check(liveMatches >= 3, `${what} live: at least 3 exact DOM = API matches while counting (${liveMatches})`);
	check(acceptedSeen.size >= 5, `${what} live: the accepted total moved in the DOM (${acceptedSeen.size} values)`);
}

// The API's figures once they satisfy pred and stay unchanged for 1 s.
async function waitStable(base, pred, what, limitMs = 120000) {
	let last = null, stable = 0;
	for (const t = Date.now(); Date.now() - t < limitMs; await sleep(200)) {
		const r = await fetchResults(base);
		stable = last && r.version === last.version && pred(r) ? stable + 1 : 0;
		last = r;
		if (stable >= 5)
			return r;
	}
	throw new Error(`${what}: the results did not settle in ${limitMs / 1000} s (last: version ` +
		`${last && last.version}, read ${last && last.read}, accepted ${last && last.accepted})`);
}

// ---- server mode: tallyd on real Kafka and PostgreSQL, votes added while the page is open ----

// TALLY_KAFKA_BROKERS and TALLY_PG_DSN from the environment, else var/services.env (as the C
// tests' support/services.c does). null when neither names them.
function services() {
	const env = { ...process.env };
	const file = join(dirname(fileURLToPath(import.meta.url)), '../../../var/services.env');
	if ((!env.TALLY_KAFKA_BROKERS || !env.TALLY_PG_DSN) && existsSync(file)) {
		for (const line of readFileSync(file, 'utf8').split('\n')) {
			const m = /^(TALLY_[A-Z_]+)='?([^']*)'?$/.exec(line.trim());
			if (m && !env[m[1]])
				env[m[1]] = m[2];
		}
	}
	return env.TALLY_KAFKA_BROKERS && env.TALLY_PG_DSN ? env : null;
}

function run(cmd, args, env) {
	return new Promise((resolve, reject) => {
		const p = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
		let out = '';
		p.stdout.on('data', (d) => { out += d; });
		p.stderr.on('data', (d) => { out += d; });
		p.on('error', reject);
		p.on('exit', (code) => code === 0 ? resolve(out)
			: reject(new Error(`${cmd} ${args.join(' ')}: exit ${code}\n${out}`)));
	});
}

function spawnTallyd(args, env) {
	const p = spawn(tallyd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
	p.stdout.on('data', (d) => process.stdout.write(d));
	let text = '';
	const port = new Promise((resolve, reject) => {
		const t = setTimeout(() => reject(new Error('tallyd did not log its port in 60 s')), 60000);
		p.stderr.on('data', (d) => {
			process.stderr.write(d);
			text += d;
			const m = /\(port (\d+);/.exec(text);
			if (m) {
				clearTimeout(t);
				resolve(Number(m[1]));
			}
		});
		p.once('exit', (code) => reject(new Error(`tallyd exited early (${code})`)));
	});
	return { p, port };
}

async function stopProc(p, what) {
	if (!p || p.exitCode !== null || p.signalCode !== null)
		return;
	p.removeAllListeners('exit');
	const exited = new Promise((r) => p.once('exit', (c, sig) => r([c, sig])));
	p.kill('SIGTERM');
	const [c, sig] = await Promise.race([exited, sleep(60000).then(() => [null, 'timeout'])]);
	if (sig === 'timeout')
		p.kill('SIGKILL');
	check(c === 0, `${what}: exit status ${c} ${sig || ''}`);
}

let serverProc = null, serverCleanup = null;
async function serverMode(browser) {
	const env = services();
	if (!env) {
		if (process.env.TALLY_DASHBOARD_NO_SERVICES === '1') {
			log('server mode skipped: no services (TALLY_DASHBOARD_NO_SERVICES=1)');
			return;
		}
		throw new Error('server mode: no TALLY_KAFKA_BROKERS/TALLY_PG_DSN nor var/services.env ' +
			'(run under ctest, or eval "$(scripts/services up)"; TALLY_DASHBOARD_NO_SERVICES=1 skips it)');
	}
	const bin = dirname(tallyd);
	const schema = `dash${process.pid}_${Date.now()}`;
	const prefix = schema + '_';
	const pgopt = `--pg.options=-csearch_path=${schema}`;
	const truth1 = join(outdir, 'server-truth-1.json'), truth2 = join(outdir, 'server-truth-2.json');
	log(`server mode: schema ${schema}, topic prefix ${prefix}`);
	await run('psql', [env.TALLY_PG_DSN, '-v', 'ON_ERROR_STOP=1', '-qc', `CREATE SCHEMA ${schema}`], env);
	serverCleanup = async () => {
		await run('psql', [env.TALLY_PG_DSN, '-qc', `DROP SCHEMA ${schema} CASCADE`], env)
			.catch((e) => console.error('server mode: drop schema:', e.message));
		if (process.env.TALLY_DASHBOARD_DROP_TOPICS)
			await run(process.env.TALLY_DASHBOARD_DROP_TOPICS, [prefix], env)
				.catch((e) => console.error('server mode: drop topics:', e.message));
	};
	await run(join(bin, 'tally-gen'), ['--voters', '60000', '--candidates', String(CANDIDATES),
		'--regions', String(REGIONS), '--partitions', '3', '--topic-prefix', prefix, pgopt, '--quiet'], env);
	await run(join(bin, 'tally-sim'), ['--topic-prefix', prefix, pgopt, '--truth', truth1, '--seed', '1',
		'--turnout', '0.4', '--quiet'], env);
	const t1 = JSON.parse(readFileSync(truth1, 'utf8'));

	const started = spawnTallyd(['--topic-prefix', prefix, pgopt, '--group-id', prefix,
		'--http', '127.0.0.1:0'], env);
	const p = started.p;
	serverProc = p;
	const port = await started.port;
	const base = `http://127.0.0.1:${port}`;
	bodies.clear();
	newest = null;
	recording = true;
	const recorder = recordLoop(base);
	const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
	await ctx.route('**/*', (route) => new URL(route.request().url()).host === `127.0.0.1:${port}`
		? route.continue() : route.abort());
	const page = await ctx.newPage();
	await page.goto(base + '/');

	// The known election: the first tally-sim run, counted exactly.
	let r = await waitStable(base, (x) => x.read === t1.messages, 'server, first run');
	eq(r.accepted, t1.accepted, 'server, first run: accepted = tally-sim truth');
	eq(r.rejected_total, t1.rejected_total, 'server, first run: rejected = tally-sim truth');
	eq(r.registered, t1.registered, 'server: registered = tally-sim truth');
	// tally-gen places voters in up to 600 regions; the smallest may get none and are not listed.
	check(r.regions.length > 500, `server: more than 500 regions (${r.regions.length})`);
	await page.waitForFunction((v) => document.body.dataset.version === String(v), r.version, { timeout: 5000 })
		.catch(() => {});
	compare(await readDom(page), r, 'server, first run');
	log(`server, first run: accepted ${r.accepted}, rejected ${r.rejected_total} (the truth's), DOM equal`);

	// Add votes: a second, paced tally-sim run; the page must follow.
	const sim2 = spawn(join(bin, 'tally-sim'), ['--topic-prefix', prefix, pgopt, '--truth', truth2,
		'--seed', '2', '--turnout', '0.15', '--rate', '1500', '--append', '--quiet'], { env, stdio: 'inherit' });
	let sim2Exit = null;
	sim2.on('exit', (c) => { sim2Exit = c; });
	await followLive(page, base, () => sim2Exit !== null, 'server, added votes');
	while (sim2Exit === null)
		await sleep(100);
	eq(sim2Exit, 0, 'server: second tally-sim run exit status');
	const t2 = JSON.parse(readFileSync(truth2, 'utf8'));
	r = await waitStable(base, (x) => x.read === t1.messages + t2.messages, 'server, added votes');
	eq(r.accepted + r.rejected_total, t1.messages + t2.messages, 'server: every message counted or rejected');
	await page.waitForFunction((v) => document.body.dataset.version === String(v), r.version, { timeout: 5000 })
		.catch(() => {});
	compare(await readDom(page), r, 'server, after added votes');
	log(`server, after added votes: accepted ${r.accepted}, rejected ${r.rejected_total}, DOM equal`);
	await page.click('[data-testid="page-last"]');
	const last = await readDom(page);
	eq(last.pageInfo.page, String(Math.ceil(r.regions.length / PAGE_SIZE)), 'server: last region page reachable');
	compare(last, r, 'server, last region page');
	await page.click('[data-testid="page-first"]');
	const shot = join(outdir, 'dashboard-server-desktop.png');
	await page.screenshot({ path: shot, fullPage: true });
	log(`screenshot: ${shot}`);
	recording = false;
	await recorder;
	await ctx.close();
	await stopProc(p, 'server tallyd (SIGTERM)');
}

// ---- main ------------------------------------------------------------------------------------

let browser = null;
async function main() {
	browser = await chromium.launch({ executablePath: CHROMIUM, headless: true,
		args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
	log('chromium', browser.version());
	const port = await startTallyd();
	const base = `http://127.0.0.1:${port}`;
	const recorder = recordLoop(base);

	const external = [];
	const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
	await ctx.route('**/*', (route) => {
		const u = new URL(route.request().url());
		if (u.host === `127.0.0.1:${port}`)
			return route.continue();
		external.push(u.href);
		return route.abort();
	});
	const page = await ctx.newPage();
	const pageErrors = [];
	page.on('pageerror', (e) => pageErrors.push(String(e)));
	// A blocked photo logs "Failed to load resource" for its URL: that one is expected.
	page.on('console', (m) => {
		if (m.type() === 'error' && !external.includes(m.location().url))
			pageErrors.push(`${m.text()} (${m.location().url})`);
	});
	await page.goto(base + '/');
	await page.waitForFunction(() =>
		document.querySelector('[data-testid="conn"]').dataset.value === 'live' &&
		document.querySelector('[data-testid="accepted"]').dataset.value !== '', null, { timeout: 10000 });
	log('page live');

	// While counting: DOM reads at a version the recorder saw are compared exactly, and
	// what the API shows must reach the DOM within 1 s.
	await followLive(page, base, (r, i) => r.election.status !== 'open' && i > 0, 'simulate');

	// Final: wait until the API stops changing, then until the page shows that version.
	const final = await waitStable(base, (r) => r.election.status !== 'open', 'simulate');
	eq(final.candidates.length, CANDIDATES, 'API candidates');
	eq(final.regions.length, REGIONS, 'API regions');
	await page.waitForFunction((v) => document.body.dataset.version === String(v), final.version,
		{ timeout: 5000 }).catch(() => {});
	let d = await readDom(page);
	compare(d, final, 'final');
	log(`final: version ${final.version}, accepted ${final.accepted}, rejected ${final.rejected_total}, ` +
		`status ${final.election.status}`);
	check(d.points >= 5, `votes over time: at least 5 points (${d.points})`);

	// The leader's photo: photo_url is elsewhere (blocked here), so the placeholder shows.
	await page.waitForFunction(() => {
		const img = document.querySelector('[data-testid="leader-photo"]');
		return img.complete && img.naturalWidth > 0 && /placeholder\.svg$/.test(img.src);
	}, null, { timeout: 5000 }).catch(() => {});
	d = await readDom(page);
	check(/placeholder\.svg$/.test(d.photo.src) && d.photo.width > 0,
		`leader photo falls back to the placeholder (src ${d.photo.src}, width ${d.photo.width})`);

	await checkRegions(page, final);

	const desktop = join(outdir, 'dashboard-desktop.png');
	await page.screenshot({ path: desktop, fullPage: true });

	const phoneCtx = await browser.newContext({ viewport: { width: 390, height: 844 },
		isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
	await phoneCtx.route('**/*', (route) => {
		const u = new URL(route.request().url());
		if (u.host === `127.0.0.1:${port}`)
			return route.continue();
		external.push(u.href);
		return route.abort();
	});
	const phone = await phoneCtx.newPage();
	phone.on('pageerror', (e) => pageErrors.push(String(e)));
	await phone.goto(base + '/');
	await phone.waitForFunction((v) => document.body.dataset.version === String(v), final.version,
		{ timeout: 10000 });
	compare(await readDom(phone), final, 'phone');
	const overflow = await phone.evaluate(() => document.documentElement.scrollWidth);
	check(overflow <= 390, `phone: the page fits 390 px (scrollWidth ${overflow})`);
	await phone.click('[data-testid="page-last"]');
	const pd = await readDom(phone);
	eq(pd.pageInfo.page, pd.pageInfo.pages, 'phone: last region page reachable');
	await phone.click('[data-testid="page-first"]');
	const phoneShot = join(outdir, 'dashboard-phone.png');
	await phone.screenshot({ path: phoneShot, fullPage: true });

	// The stream refused: the page polls /api/results?since=VERSION instead, and a photo that
	// loads (served here by the test for the leader's photo_url) is shown instead of the placeholder.
	const pollCtx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
	const leaderPhoto = final.candidates.find((c) => c.candidate_id === final.leader.candidate_id).photo_url;
	const photoSvg = '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40"><rect width="40" height="40" fill="#c33"/></svg>';
	let polls = 0;
	await pollCtx.route('**/*', (route) => {
		const u = new URL(route.request().url());
		if (u.host === `127.0.0.1:${port}`) {
			if (u.pathname === '/api/stream')
				return route.fulfill({ status: 503, contentType: 'application/json', body: '{"error":"test"}' });
			if (u.pathname === '/api/results')
				polls++;
			return route.continue();
		}
		external.push(u.href);
		if (u.href === leaderPhoto)
			return route.fulfill({ status: 200, contentType: 'image/svg+xml', body: photoSvg });
		return route.abort();
	});
	const pollPage = await pollCtx.newPage();
	pollPage.on('pageerror', (e) => pageErrors.push(String(e)));
	await pollPage.goto(base + '/');
	await pollPage.waitForFunction((v) => document.body.dataset.version === String(v), final.version,
		{ timeout: 10000 });
	const pdd = await readDom(pollPage);
	compare(pdd, final, 'stream refused, polling');
	eq(pdd.conn, 'polling', 'stream refused: the page says it is polling');
	await sleep(2500);
	check(polls >= 3, `stream refused: /api/results polled (${polls} requests in about 3 s)`);
	await pollPage.waitForFunction(() => {
		const img = document.querySelector('[data-testid="leader-photo"]');
		return img.complete && img.naturalWidth > 0;
	}, null, { timeout: 5000 }).catch(() => {});
	const photo = (await readDom(pollPage)).photo;
	check(photo.src === leaderPhoto && photo.width > 0,
		`a photo_url that loads is shown (src ${photo.src}, width ${photo.width})`);
	await pollCtx.close();

	// Nothing fetched from elsewhere except candidates' photos.
	const photos = new Set(final.candidates.map((c) => c.photo_url));
	const stray = external.filter((u) => !photos.has(u));
	check(stray.length === 0, `only photo_url fetched from elsewhere, also: ${stray.join(' ')}`);
	check(pageErrors.length === 0, `no page errors: ${pageErrors.join(' | ')}`);

	writeFileSync(join(outdir, 'results-final.json'), JSON.stringify(final, null, 1));
	log(`screenshots: ${desktop} ${phoneShot}`);
	recording = false;
	await recorder;
	await stopProc(proc, 'tallyd --simulate (0: every figure matched its ground truth)');

	await serverMode(browser);
}

let code = 0;
try {
	await main();
} catch (e) {
	console.error('FAIL:', e.stack || e);
	failures++;
} finally {
	recording = false;
	if (browser)
		await browser.close().catch(() => {});
	await stopProc(proc, 'tallyd --simulate');
	await stopProc(serverProc, 'server tallyd');
	if (serverCleanup)
		await serverCleanup();
	code = failures ? 1 : 0;
	console.log(failures ? `dashboard: FAILED (${failures} failures)` : 'dashboard: PASSED');
}
process.exit(code);
