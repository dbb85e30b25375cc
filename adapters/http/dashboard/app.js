/*
 * tally's live dashboard: follows /api/stream (Server-Sent Events, event "results", data the
 * /api/results JSON) and draws every figure. If the stream drops it polls
 * /api/results?since=VERSION every second until the stream is back. Plain JS, nothing fetched
 * from elsewhere except candidates' photos. Names come from the election's data and are
 * untrusted: they are only ever written with textContent, never as HTML.
 */
'use strict';

(function () {
	const PAGE_SIZE = 25;
	const SERIES_MAX = 720;          // points kept for the votes-over-time chart
	const POLL_MS = 1000;
	const RECONNECT_MS = 5000;
	const PLACEHOLDER = 'placeholder.svg';

	const $ = (id) => document.querySelector('[data-testid="' + id + '"]');
	const fmtInt = (n) => Number(n).toLocaleString('en-US');
	const fmtPct = (f) => (Number(f) * 100).toFixed(2) + '%';

	let last = null;                 // the newest results shown
	let series = [];                 // [[ms, accepted], ...]
	let sortKey = 'registered';
	let sortDesc = true;
	let page = 0;                    // region page, 0-based
	let es = null;
	let pollTimer = null;
	let pollBusy = false;

	function setVal(id, value, text) {
		const el = $(id);
		el.dataset.value = String(value);
		el.textContent = text === undefined ? String(value) : text;
	}

	function el(tag, text, cls) {
		const e = document.createElement(tag);
		if (text !== undefined && text !== null)
			e.textContent = String(text);
		if (cls)
			e.className = cls;
		return e;
	}

	function bar(share) {
		const td = el('td', null, 'barcol');
		const outer = el('div', null, 'bar');
		const inner = el('div', null, 'fill');
		inner.style.width = Math.max(0, Math.min(100, Number(share) * 100)).toFixed(2) + '%';
		outer.appendChild(inner);
		td.appendChild(outer);
		return td;
	}

	function numCell(value, text, field) {
		const td = el('td', text, 'num');
		td.dataset.field = field;
		td.dataset.value = String(value);
		return td;
	}

	function safePhoto(url) {
		if (typeof url !== 'string' || url === '')
			return PLACEHOLDER;
		try {
			const u = new URL(url, location.href);
			if (u.protocol === 'https:' || u.protocol === 'http:')
				return u.href;
		} catch (e) { /* not a URL */ }
		return PLACEHOLDER;
	}

	function fmtTime(iso) {
		if (!iso)
			return '-';
		const d = new Date(iso);
		if (isNaN(d.getTime()))
			return String(iso);
		return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
	}

	/* ---- sections ----------------------------------------------------------------- */

	function renderHeader(r) {
		$('election-id').textContent = r.election ? r.election.id : '-';
		const st = r.election ? r.election.status : '-';
		const s = $('status');
		s.dataset.value = st;
		s.textContent = st;
		s.className = 'status status-' + String(st).replace(/[^a-z_]/g, '');
		setVal('updated-at', r.updated_at, fmtTime(r.updated_at));
		setVal('version', r.version);
	}

	function renderTotals(r) {
		setVal('accepted', r.accepted, fmtInt(r.accepted));
		setVal('rejected-total', r.rejected_total, fmtInt(r.rejected_total));
		setVal('registered', r.registered, fmtInt(r.registered));
		setVal('turnout', r.turnout, fmtPct(r.turnout));
	}

	function renderLeader(r) {
		const img = $('leader-photo');
		const l = r.leader;
		if (!l) {
			$('leader-name').textContent = 'no votes yet';
			$('leader-party').textContent = '';
			setVal('leader-votes', 0, '0');
			setVal('margin-votes', 0, '0');
			setVal('margin-points', 0, '0.00');
			img.dataset.candidateId = '';
			if (img.getAttribute('src') !== PLACEHOLDER)
				img.src = PLACEHOLDER;
			return;
		}
		$('leader-name').textContent = l.candidate_name;
		$('leader-party').textContent = l.party_affiliation;
		setVal('leader-votes', l.total_votes, fmtInt(l.total_votes));
		setVal('margin-votes', r.margin.votes, fmtInt(r.margin.votes));
		setVal('margin-points', r.margin.share_points, Number(r.margin.share_points).toFixed(2));
		if (img.dataset.candidateId !== l.candidate_id) {
			// A new leader: try the photo; the placeholder if it cannot be loaded.
			const c = (r.candidates || []).find((x) => x.candidate_id === l.candidate_id);
			img.dataset.candidateId = l.candidate_id;
			img.dataset.placeholder = '0';
			img.src = safePhoto(c ? c.photo_url : '');
			img.alt = 'photo of ' + l.candidate_name;
		}
	}

	function renderCandidates(r) {
		const rows = (r.candidates || []).slice().sort((a, b) =>
			b.total_votes - a.total_votes || String(a.candidate_name).localeCompare(String(b.candidate_name)));
		const tbody = $('candidates').tBodies[0];
		const frag = document.createDocumentFragment();
		for (const c of rows) {
			const tr = el('tr');
			tr.dataset.candidateId = c.candidate_id;
			if (r.leader && r.leader.candidate_id === c.candidate_id)
				tr.className = 'lead';
			const name = el('td', c.candidate_name);
			name.dataset.field = 'name';
			const party = el('td', c.party_affiliation);
			party.dataset.field = 'party';
			tr.append(name, party, numCell(c.total_votes, fmtInt(c.total_votes), 'votes'),
				numCell(c.share, fmtPct(c.share), 'share'), bar(c.share));
			frag.appendChild(tr);
		}
		tbody.replaceChildren(frag);
	}

	function renderParties(r) {
		const rows = (r.parties || []).slice().sort((a, b) =>
			b.total_votes - a.total_votes || String(a.party).localeCompare(String(b.party)));
		const tbody = $('parties').tBodies[0];
		const frag = document.createDocumentFragment();
		for (const p of rows) {
			const tr = el('tr');
			tr.dataset.party = p.party;
			const name = el('td', p.party);
			name.dataset.field = 'party';
			tr.append(name, numCell(p.total_votes, fmtInt(p.total_votes), 'votes'),
				numCell(p.share, fmtPct(p.share), 'share'), bar(p.share));
			frag.appendChild(tr);
		}
		tbody.replaceChildren(frag);
	}

	function renderReasons(r) {
		const tbody = $('reasons').tBodies[0];
		const frag = document.createDocumentFragment();
		const reasons = r.rejected || {};
		for (const k of Object.keys(reasons)) {
			const tr = el('tr');
			tr.dataset.reason = k;
			tr.append(el('td', k.replace(/_/g, ' ')), numCell(reasons[k], fmtInt(reasons[k]), 'votes'));
			frag.appendChild(tr);
		}
		tbody.replaceChildren(frag);
	}

	function regionCompare(a, b) {
		let d;
		if (sortKey === 'region')
			d = String(a.region).localeCompare(String(b.region));
		else
			d = Number(a[sortKey]) - Number(b[sortKey]);
		if (d === 0 && sortKey !== 'region')
			return String(a.region).localeCompare(String(b.region));   // ties: by name, ascending
		return sortDesc ? -d : d;
	}

	function renderRegions() {
		if (!last)
			return;
		const all = (last.regions || []).slice().sort(regionCompare);
		const pages = Math.max(1, Math.ceil(all.length / PAGE_SIZE));
		page = Math.min(Math.max(0, page), pages - 1);
		const tbody = $('regions').tBodies[0];
		const frag = document.createDocumentFragment();
		for (const g of all.slice(page * PAGE_SIZE, (page + 1) * PAGE_SIZE)) {
			const tr = el('tr');
			tr.dataset.region = g.region;
			const name = el('td', g.region);
			name.dataset.field = 'region';
			tr.append(name, numCell(g.registered, fmtInt(g.registered), 'registered'),
				numCell(g.count, fmtInt(g.count), 'count'),
				numCell(g.turnout, fmtPct(g.turnout), 'turnout'));
			frag.appendChild(tr);
		}
		tbody.replaceChildren(frag);
		const info = $('page-info');
		info.dataset.page = String(page + 1);
		info.dataset.pages = String(pages);
		info.textContent = 'page ' + (page + 1) + ' of ' + pages;
		$('page-first').disabled = $('page-prev').disabled = page === 0;
		$('page-next').disabled = $('page-last').disabled = page >= pages - 1;
		$('region-count').textContent = '(' + fmtInt(all.length) + ' regions)';
		for (const b of document.querySelectorAll('[data-sort]')) {
			const on = b.dataset.sort === sortKey;
			b.parentElement.setAttribute('aria-sort', on ? (sortDesc ? 'descending' : 'ascending') : 'none');
			b.dataset.dir = on ? (sortDesc ? 'desc' : 'asc') : '';
		}
	}

	function renderTimeline(r) {
		const now = Date.now();
		const lastPt = series[series.length - 1];
		if (!lastPt || lastPt[1] !== r.accepted || now - lastPt[0] >= 1000)
			series.push([now, Number(r.accepted)]);
		if (series.length > SERIES_MAX) {
			// Keep the first point and thin the older half, so the whole history stays drawn.
			const half = Math.floor(series.length / 2);
			series = series.slice(0, half).filter((p, i) => i % 2 === 0).concat(series.slice(half));
		}
		const svg = $('timeline');
		const W = 600, H = 200, pad = 4;
		const t0 = series[0][0], t1 = Math.max(series[series.length - 1][0], t0 + 1);
		const vmax = Math.max(1, series[series.length - 1][1], ...series.map((p) => p[1]));
		const pts = series.map((p) => {
			const x = pad + (p[0] - t0) / (t1 - t0) * (W - 2 * pad);
			const y = H - pad - p[1] / vmax * (H - 2 * pad);
			return x.toFixed(1) + ',' + y.toFixed(1);
		});
		if (pts.length === 1) {      // one point so far (opened on a count at rest): a level line
			const y = pts[0].split(',')[1];
			pts.splice(0, 1, pad + ',' + y, (W - pad) + ',' + y);
		}
		const ns = 'http://www.w3.org/2000/svg';
		const area = document.createElementNS(ns, 'polygon');
		area.setAttribute('points', pad + ',' + (H - pad) + ' ' + pts.join(' ') + ' ' +
			pts[pts.length - 1].split(',')[0] + ',' + (H - pad));
		area.setAttribute('class', 'area');
		const line = document.createElementNS(ns, 'polyline');
		line.setAttribute('points', pts.join(' '));
		line.setAttribute('class', 'line');
		svg.replaceChildren(area, line);
		$('timeline-max').textContent = 'top: ' + fmtInt(vmax) + ' votes';
		svg.dataset.points = String(series.length);
		const tfmt = (ms) => new Date(ms).toISOString().slice(11, 19);
		$('timeline-from').textContent = tfmt(t0);
		$('timeline-to').textContent = tfmt(t1);
	}

	function render(r) {
		if (!r || typeof r.version !== 'number')
			return;
		// An older body (a poll answer racing the stream) is dropped; a lower version with a
		// newer updated_at is a restarted server and is shown.
		if (last && r.version < last.version && !(String(r.updated_at) > String(last.updated_at)))
			return;
		last = r;
		renderHeader(r);
		renderTotals(r);
		renderLeader(r);
		renderCandidates(r);
		renderParties(r);
		renderReasons(r);
		renderRegions();
		renderTimeline(r);
		document.body.dataset.version = String(r.version);
	}

	/* ---- live data: the stream, the poll when it is down ------------------------------- */

	function setConn(state) {
		const c = $('conn');
		c.dataset.value = state;
		c.textContent = state;
		c.className = 'conn conn-' + state;
	}

	async function pollOnce() {
		if (pollBusy)
			return;
		pollBusy = true;
		try {
			const url = '/api/results' + (last ? '?since=' + last.version : '');
			const res = await fetch(url, { cache: 'no-store' });
			if (res.status === 200) {
				render(await res.json());
				if (pollTimer)
					setConn('polling');
			} else if (res.status !== 304) {
				setConn('offline');
			}
		} catch (e) {
			setConn('offline');
		} finally {
			pollBusy = false;
		}
	}

	function startPoll() {
		if (pollTimer)
			return;
		pollTimer = setInterval(pollOnce, POLL_MS);
		pollOnce();
	}

	function stopPoll() {
		if (pollTimer) {
			clearInterval(pollTimer);
			pollTimer = null;
		}
	}

	function connect() {
		if (!('EventSource' in window)) {
			startPoll();
			return;
		}
		es = new EventSource('/api/stream');
		es.addEventListener('results', (ev) => {
			let r;
			try {
				r = JSON.parse(ev.data);
			} catch (e) {
				return;
			}
			stopPoll();
			setConn('live');
			render(r);
		});
		es.addEventListener('error', () => {
			// The browser retries a dropped stream by itself; poll meanwhile. A stream it gave
			// up on (an HTTP error such as 503 when the server has too many) is reopened later.
			startPoll();
			if (es.readyState === EventSource.CLOSED) {
				es = null;
				setTimeout(connect, RECONNECT_MS);
			}
		});
	}

	/* ---- controls ------------------------------------------------------------------ */

	function setup() {
		for (const b of document.querySelectorAll('[data-sort]')) {
			b.addEventListener('click', () => {
				const k = b.dataset.sort;
				if (sortKey === k) {
					sortDesc = !sortDesc;
				} else {
					sortKey = k;
					sortDesc = k !== 'region';    // numbers biggest first, names A to Z
				}
				page = 0;
				renderRegions();
			});
		}
		$('page-first').addEventListener('click', () => { page = 0; renderRegions(); });
		$('page-prev').addEventListener('click', () => { page--; renderRegions(); });
		$('page-next').addEventListener('click', () => { page++; renderRegions(); });
		$('page-last').addEventListener('click', () => { page = Number.MAX_SAFE_INTEGER; renderRegions(); });
		const img = $('leader-photo');
		img.addEventListener('error', () => {
			if (img.dataset.placeholder !== '1') {
				img.dataset.placeholder = '1';
				img.src = PLACEHOLDER;
			}
		});
		connect();
	}

	if (document.readyState === 'loading')
		document.addEventListener('DOMContentLoaded', setup);
	else
		setup();
})();
