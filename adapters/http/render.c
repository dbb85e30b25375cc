/*
 * The HTTP adapter's bodies: Prometheus text 0.0.4 and OpenMetrics 1.0 of a snapshot and
 * of the app's metrics, the /api/results JSON and CSV.
 *
 * DESIGN: runs on the render thread only (the builder on whichever thread calls the app's
 * callback, which is also the render thread). Nothing is shared; see http.c for how the
 * bodies are published.
 *
 * The two metric formats differ only in the metadata lines: a counter family is named
 * with "_total" in text 0.0.4 and without it in OpenMetrics (whose sample keeps the
 * suffix), tally_build_info is a gauge in text and an info family in OpenMetrics, and
 * OpenMetrics escapes quotes in HELP and ends with "# EOF" (added by http.c, after the
 * app's families). Samples are byte-for-byte the same in both.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tally/error.h>
#include <tally/time.h>
#include <tally/uuid.h>
#include <tally/vote.h>

#include <tally/contest.h>

#include "render.h"

/* ---- buffers ------------------------------------------------------------------------- */

void
hbuf_reset(hbuf_t *b)
{
	b->len = 0;
	b->oom = false;
}

void
hbuf_free(hbuf_t *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

static bool
hbuf_grow(hbuf_t *b, size_t n)
{
	size_t cap;
	char *p;

	if (b->oom)
		return false;
	if (b->len + n + 1 <= b->cap)
		return true;
	cap = b->cap ? b->cap : 4096;
	while (cap < b->len + n + 1)
		cap *= 2;
	if ((p = realloc(b->p, cap)) == NULL) {
		b->oom = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

void
hbuf_put(hbuf_t *b, const void *s, size_t n)
{
	if (n == 0 && b->p != NULL)
		return;
	if (!hbuf_grow(b, n))
		return;
	if (n > 0)
		memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void
hbuf_puts(hbuf_t *b, const char *s)
{
	hbuf_put(b, s, strlen(s));
}

void
hbuf_putc(hbuf_t *b, char c)
{
	hbuf_put(b, &c, 1);
}

void
hbuf_u64(hbuf_t *b, uint64_t v)
{
	char tmp[24];
	int i = sizeof(tmp);

	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	hbuf_put(b, tmp + i, sizeof(tmp) - (size_t)i);
}

void
hbuf_printf(hbuf_t *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !hbuf_grow(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void
hbuf_double(hbuf_t *b, double v)
{
	if (v != v)
		hbuf_puts(b, "NaN");
	else if (v > 1.7976931348623157e308)
		hbuf_puts(b, "+Inf");
	else if (v < -1.7976931348623157e308)
		hbuf_puts(b, "-Inf");
	else if (v >= 0 && v < 9007199254740992.0 && v == (double)(uint64_t)v)
		hbuf_u64(b, (uint64_t)v);
	else
		hbuf_printf(b, "%.10g", v);
}

void
hbuf_fixed(hbuf_t *b, double v, int decimals)
{
	static const uint64_t pow10[] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000,
	                                 100000000, 1000000000};
	uint64_t scale, u, frac;
	char digits[16];

	/* The common case (ratios, shares) without printf: the render thread writes thousands
	 * of these per body. Rounded half away from zero, as printf nearly always does. */
	if (decimals < 1 || decimals > 9 || !(v >= 0) || v >= 1e9) {
		hbuf_printf(b, "%.*f", decimals, v);
		return;
	}
	scale = pow10[decimals];
	u = (uint64_t)(v * (double)scale + 0.5);
	hbuf_u64(b, u / scale);
	frac = u % scale;
	for (int i = decimals - 1; i >= 0; i--) {
		digits[i] = (char)('0' + frac % 10);
		frac /= 10;
	}
	digits[decimals] = '.';
	hbuf_putc(b, '.');
	hbuf_put(b, digits, (size_t)decimals);
}

void
hbuf_json_str(hbuf_t *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const char *run = s;

	hbuf_putc(b, '"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		hbuf_put(b, run, (size_t)(s - run));
		run = s + 1;
		switch (c) {
		case '"': hbuf_puts(b, "\\\""); break;
		case '\\': hbuf_puts(b, "\\\\"); break;
		case '\n': hbuf_puts(b, "\\n"); break;
		case '\r': hbuf_puts(b, "\\r"); break;
		case '\t': hbuf_puts(b, "\\t"); break;
		default: {
			char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};

			hbuf_put(b, u, 6);
		}
		}
	}
	hbuf_put(b, run, (size_t)(s - run));
	hbuf_putc(b, '"');
}

void
hbuf_csv_field(hbuf_t *b, const char *s)
{
	/* A field a spreadsheet would take for a formula (OWASP's CSV injection list: =, +, -, @,
	 * tab, carriage return first) gets a single quote in front, inside the quotes, so it
	 * stays text. */
	bool formula = s[0] != '\0' && strchr("=+-@\t\r", s[0]) != NULL;

	if (!formula && strpbrk(s, ",\"\r\n") == NULL) {
		hbuf_puts(b, s);
		return;
	}
	hbuf_putc(b, '"');
	if (formula)
		hbuf_putc(b, '\'');
	for (; *s; s++) {
		if (*s == '"')
			hbuf_putc(b, '"');
		hbuf_putc(b, *s);
	}
	hbuf_putc(b, '"');
}

void
hbuf_label_value(hbuf_t *b, const char *s)
{
	const char *run = s;

	for (; *s; s++) {
		if (*s != '\\' && *s != '"' && *s != '\n')
			continue;
		hbuf_put(b, run, (size_t)(s - run));
		run = s + 1;
		hbuf_puts(b, *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" : "\\n");
	}
	hbuf_put(b, run, (size_t)(s - run));
}

/* HELP text: text 0.0.4 escapes backslash and newline; OpenMetrics also the quote. */
static void
hbuf_help(hbuf_t *b, const char *s, bool om)
{
	for (; *s; s++) {
		if (*s == '\\')
			hbuf_puts(b, "\\\\");
		else if (*s == '\n')
			hbuf_puts(b, "\\n");
		else if (*s == '"' && om)
			hbuf_puts(b, "\\\"");
		else
			hbuf_putc(b, *s);
	}
}

void
hbuf_iso_ms(hbuf_t *b, int64_t us)
{
	char ts[24];
	int64_t secs = us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000);
	int ms = (int)((us - secs * 1000000) / 1000);

	tally_time_format_iso(secs, ts);
	/* "YYYY-MM-DDTHH:MM:SSZ" -> insert the milliseconds before the Z. */
	ts[19] = '\0';
	hbuf_printf(b, "%s.%03dZ", ts, ms);
}

/* ---- metric families ------------------------------------------------------------------ */

enum mtype { M_COUNTER, M_GAUGE, M_INFO };

/*
 * HELP and TYPE of a family in both formats. name is the sample name (with "_total" for
 * counters, "_info" for info).
 */
static void
family(hbuf_t *text, hbuf_t *om, const char *name, const char *help, enum mtype type)
{
	size_t n = strlen(name);
	size_t omn = type == M_COUNTER ? n - 6 : type == M_INFO ? n - 5 : n;
	const char *tname = type == M_COUNTER ? "counter" : "gauge";
	const char *omtype = type == M_COUNTER ? "counter" : type == M_INFO ? "info" : "gauge";

	hbuf_puts(text, "# HELP ");
	hbuf_puts(text, name);
	hbuf_putc(text, ' ');
	hbuf_help(text, help, false);
	hbuf_puts(text, "\n# TYPE ");
	hbuf_puts(text, name);
	hbuf_putc(text, ' ');
	hbuf_puts(text, tname);
	hbuf_putc(text, '\n');

	hbuf_puts(om, "# HELP ");
	hbuf_put(om, name, omn);
	hbuf_putc(om, ' ');
	hbuf_help(om, help, true);
	hbuf_puts(om, "\n# TYPE ");
	hbuf_put(om, name, omn);
	hbuf_putc(om, ' ');
	hbuf_puts(om, omtype);
	hbuf_putc(om, '\n');
}

/* The sample line is written to text and copied to om. */
static size_t
sample_begin(hbuf_t *text, const char *name)
{
	size_t start = text->len;

	hbuf_puts(text, name);
	return start;
}

static void
sample_end_u64(hbuf_t *text, hbuf_t *om, size_t start, uint64_t v)
{
	hbuf_putc(text, ' ');
	hbuf_u64(text, v);
	hbuf_putc(text, '\n');
	if (!text->oom)
		hbuf_put(om, text->p + start, text->len - start);
}

static void
sample_end_double(hbuf_t *text, hbuf_t *om, size_t start, double v)
{
	hbuf_putc(text, ' ');
	hbuf_double(text, v);
	hbuf_putc(text, '\n');
	if (!text->oom)
		hbuf_put(om, text->p + start, text->len - start);
}

static void
label1(hbuf_t *text, const char *name, const char *value)
{
	hbuf_putc(text, '{');
	hbuf_puts(text, name);
	hbuf_puts(text, "=\"");
	hbuf_label_value(text, value);
	hbuf_puts(text, "\"}");
}

/* Regions by registered voters, most first, ties by name. */
struct sort_ctx {
	const tally_snapshot_t *snap;
	const tally_registry_t *reg;
};

static int
region_cmp(const void *a, const void *b, void *arg)
{
	const struct sort_ctx *sc = arg;
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	uint64_t rx = sc->snap->region_registered[x], ry = sc->snap->region_registered[y];

	if (rx != ry)
		return rx > ry ? -1 : 1;
	return strcmp(tally_registry_region_name(sc->reg, x) ?: "",
	              tally_registry_region_name(sc->reg, y) ?: "");
}

void
tally__render_scratch_free(render_scratch_t *rs)
{
	free(rs->order);
	memset(rs, 0, sizeof(*rs));
}

/*
 * rs->order[0..nregions): the regions in series order. Sorted again only when regions or
 * registrations changed (every registration changes the total registered).
 */
static bool
region_order(const tally_snapshot_t *snap, const tally_registry_t *reg, render_scratch_t *rs)
{
	if (rs->valid && rs->nregions == snap->nregions && rs->registered == snap->registered)
		return true;
	if (snap->nregions > rs->cap) {
		uint32_t *p = realloc(rs->order, (size_t)snap->nregions * sizeof(uint32_t));

		if (p == NULL)
			return false;
		rs->order = p;
		rs->cap = snap->nregions;
	}
	for (uint32_t r = 0; r < snap->nregions; r++)
		rs->order[r] = r;
	{
		struct sort_ctx sc = {snap, reg};

		qsort_r(rs->order, snap->nregions, sizeof(uint32_t), region_cmp, &sc);
	}
	rs->nregions = snap->nregions;
	rs->registered = snap->registered;
	rs->valid = true;
	return true;
}

void
tally__render_metrics(const tally_snapshot_t *snap, const tally_registry_t *reg,
                      unsigned max_region_series, const char *build_version,
                      render_scratch_t *rs, hbuf_t *text, hbuf_t *om)
{
	char id[TALLY_UUID_STRLEN + 1];
	size_t s;

	hbuf_reset(text);
	hbuf_reset(om);

	family(text, om, "tally_votes_read_total",
	       "Votes judged by the core, accepted or rejected.", M_COUNTER);
	s = sample_begin(text, "tally_votes_read_total");
	sample_end_u64(text, om, s, snap->read);

	family(text, om, "tally_votes_accepted_total", "Votes counted.", M_COUNTER);
	s = sample_begin(text, "tally_votes_accepted_total");
	sample_end_u64(text, om, s, snap->accepted);

	family(text, om, "tally_votes_rejected_total", "Votes rejected, by reason.", M_COUNTER);
	for (int k = 1; k < TALLY_REASON__COUNT; k++) {
		s = sample_begin(text, "tally_votes_rejected_total");
		label1(text, "reason", tally_reason_name(k));
		sample_end_u64(text, om, s, snap->rejected[k]);
	}

	family(text, om, "tally_candidate_votes_total", "Votes counted per candidate.", M_COUNTER);
	for (uint32_t c = 0; c < snap->ncandidates; c++) {
		tally_candidate_info_t info;

		if (!tally_registry_candidate_get(reg, c, &info))
			continue;
		s = sample_begin(text, "tally_candidate_votes_total");
		hbuf_puts(text, "{candidate_id=\"");
		hbuf_puts(text, tally_uuid_format(&info.id, id));
		hbuf_puts(text, "\",candidate=\"");
		hbuf_label_value(text, info.name);
		hbuf_puts(text, "\",party=\"");
		hbuf_label_value(text, tally_registry_party_name(reg, info.party) ?: "");
		hbuf_puts(text, "\"}");
		sample_end_u64(text, om, s, snap->candidates[c]);
	}

	family(text, om, "tally_party_votes_total", "Votes counted per party.", M_COUNTER);
	for (uint32_t p = 0; p < snap->nparties; p++) {
		s = sample_begin(text, "tally_party_votes_total");
		label1(text, "party", tally_registry_party_name(reg, p) ?: "");
		sample_end_u64(text, om, s, snap->parties[p]);
	}

	/*
	 * Regions: the max_region_series with the most registered voters (ties by name) get
	 * their own series; the rest, and a region literally named "other", are summed into
	 * region="other", which appears only when it sums something.
	 */
	{
		bool ordered = region_order(snap, reg, rs);
		uint64_t other_votes = 0, other_reg = 0;
		uint32_t own = 0, nother = 0;
		static const char *const names[2] = {"tally_region_votes_total",
		                                     "tally_region_registered_voters"};

		for (int pass = 0; pass < 2; pass++) {
			if (pass == 0)
				family(text, om, names[0], "Votes counted per region (bounded, see region=\"other\").",
				       M_COUNTER);
			else
				family(text, om, names[1],
				       "Voters registered per region (bounded, see region=\"other\").", M_GAUGE);
			own = 0;
			nother = 0;
			other_votes = other_reg = 0;
			for (uint32_t i = 0; i < snap->nregions; i++) {
				uint32_t r = ordered ? rs->order[i] : i;
				const char *name = tally_registry_region_name(reg, r) ?: "";

				if (own >= max_region_series || strcmp(name, "other") == 0) {
					other_votes += snap->regions[r];
					other_reg += snap->region_registered[r];
					nother++;
					continue;
				}
				own++;
				s = sample_begin(text, names[pass]);
				label1(text, "region", name);
				sample_end_u64(text, om, s, pass == 0 ? snap->regions[r] : snap->region_registered[r]);
			}
			if (nother > 0) {
				s = sample_begin(text, names[pass]);
				hbuf_puts(text, "{region=\"other\"}");
				sample_end_u64(text, om, s, pass == 0 ? other_votes : other_reg);
			}
		}
	}

	family(text, om, "tally_registered_voters", "Voters registered.", M_GAUGE);
	s = sample_begin(text, "tally_registered_voters");
	sample_end_u64(text, om, s, snap->registered);

	family(text, om, "tally_turnout_ratio", "Votes counted over voters registered.", M_GAUGE);
	s = sample_begin(text, "tally_turnout_ratio");
	sample_end_double(text, om, s,
	                  snap->registered ? (double)snap->accepted / (double)snap->registered : 0.0);

	family(text, om, "tally_snapshot_version", "Version of the results snapshot served.", M_GAUGE);
	s = sample_begin(text, "tally_snapshot_version");
	sample_end_u64(text, om, s, snap->version);

	family(text, om, "tally_election_status", "1 for the election's current status.", M_GAUGE);
	for (int st = TALLY_ELECTION_SCHEDULED; st <= TALLY_ELECTION_FINAL; st++) {
		s = sample_begin(text, "tally_election_status");
		label1(text, "status", tally_election_status_name(st));
		sample_end_u64(text, om, s, (int)snap->election.status == st ? 1 : 0);
	}

	family(text, om, "tally_build_info", "The build of tally serving these metrics.", M_INFO);
	s = sample_begin(text, "tally_build_info");
	label1(text, "version", build_version);
	sample_end_u64(text, om, s, 1);
}

/* ---- the app's metrics builder ------------------------------------------------------- */

void
tally__metrics_builder_reset(tally_metrics_builder_t *b)
{
	hbuf_reset(&b->text);
	hbuf_reset(&b->om);
	hbuf_reset(&b->seen);
	hbuf_putc(&b->seen, '\n');
	b->family[0] = '\0';
	b->errors = 0;
}

void
tally__metrics_builder_free(tally_metrics_builder_t *b)
{
	hbuf_free(&b->text);
	hbuf_free(&b->om);
	hbuf_free(&b->seen);
}

static bool
valid_name(const char *s, bool label)
{
	if (s == NULL || *s == '\0')
		return false;
	for (const char *p = s; *p; p++) {
		char c = *p;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
		          (!label && c == ':') || (p != s && c >= '0' && c <= '9');

		if (!ok)
			return false;
	}
	return !(label && s[0] == '_' && s[1] == '_');
}

static bool
ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

static int
builder_add(tally_metrics_builder_t *b, const char *name, const char *help,
            const char *const *labels, double value, enum mtype type)
{
	size_t s;

	if (b == NULL)
		return TALLY_EINVAL;
	if (!valid_name(name, false) || strlen(name) >= sizeof(b->family) || help == NULL ||
	    (type == M_COUNTER) != ends_with(name, "_total") ||
	    (type == M_COUNTER && strlen(name) <= 6)) {
		b->errors++;
		return TALLY_EINVAL;
	}
	for (size_t i = 0; labels != NULL && labels[i] != NULL; i += 2) {
		if (!valid_name(labels[i], true) || labels[i + 1] == NULL) {
			b->errors++;
			return TALLY_EINVAL;
		}
	}
	if (strcmp(b->family, name) != 0) {
		char key[176];

		/* A family's samples must be consecutive: a second HELP/TYPE would make the whole
		 * exposition invalid, so a family seen before another is refused. */
		snprintf(key, sizeof(key), "\n%s\n", name);
		if (b->seen.p != NULL && strstr(b->seen.p, key) != NULL) {
			b->errors++;
			return TALLY_EINVAL;
		}
		family(&b->text, &b->om, name, help, type);
		snprintf(b->family, sizeof(b->family), "%s", name);
		hbuf_puts(&b->seen, name);
		hbuf_putc(&b->seen, '\n');
	}
	s = sample_begin(&b->text, name);
	for (size_t i = 0; labels != NULL && labels[i] != NULL; i += 2) {
		hbuf_putc(&b->text, i == 0 ? '{' : ',');
		hbuf_puts(&b->text, labels[i]);
		hbuf_puts(&b->text, "=\"");
		hbuf_label_value(&b->text, labels[i + 1]);
		hbuf_putc(&b->text, '"');
	}
	if (labels != NULL && labels[0] != NULL)
		hbuf_putc(&b->text, '}');
	sample_end_double(&b->text, &b->om, s, value);
	return 0;
}

int
tally_metrics_counter(tally_metrics_builder_t *b, const char *name, const char *help,
                      const char *const *labels, double value)
{
	return builder_add(b, name, help, labels, value, M_COUNTER);
}

int
tally_metrics_gauge(tally_metrics_builder_t *b, const char *name, const char *help,
                    const char *const *labels, double value)
{
	return builder_add(b, name, help, labels, value, M_GAUGE);
}

/* ---- JSON and CSV ------------------------------------------------------------------------ */

void
tally__render_election(const tally_election_t *e, hbuf_t *out)
{
	char ts[24];

	hbuf_puts(out, "{\"id\":");
	hbuf_json_str(out, e->id);
	hbuf_puts(out, ",\"status\":");
	hbuf_json_str(out, tally_election_status_name(e->status));
	hbuf_puts(out, ",\"opens_at\":");
	hbuf_json_str(out, tally_time_format_iso(e->opens_at, ts));
	hbuf_puts(out, ",\"closes_at\":");
	hbuf_json_str(out, tally_time_format_iso(e->closes_at, ts));
	hbuf_putc(out, '}');
}

static double
ratio(uint64_t num, uint64_t den)
{
	return den ? (double)num / (double)den : 0.0;
}

/* The runner-up's votes: the most of any candidate other than the leader. */
static uint64_t
runner_up(const tally_snapshot_t *snap, int32_t leader)
{
	uint64_t best = 0;

	for (uint32_t c = 0; c < snap->ncandidates; c++)
		if ((int32_t)c != leader && snap->candidates[c] > best)
			best = snap->candidates[c];
	return best;
}

/* An election of many contests: ,"report":..., "seats":[per level and party] (/api/contests
 * has each contest). */
static void
render_seats(const tally_snapshot_t *snap, const tally_registry_t *reg, hbuf_t *out)
{
	tally_contests_t res = {0};
	bool first = true;

	if (tally_contests_compute(reg, snap, snap->election.status >= TALLY_ELECTION_CLOSED,
	                           &res) != 0) {
		out->oom = true;
		return;
	}
	hbuf_puts(out, ",\"report\":\"");
	hbuf_puts(out, tally_report_status_name(res.report));
	hbuf_puts(out, "\",\"seats\":[");
	for (uint32_t l = 0; l < res.nlevels; l++)
		for (uint32_t p = 0; p < res.nparties && res.level_contests[l] > 0; p++) {
			size_t i = (size_t)l * res.nparties + p;

			if (!first)
				hbuf_putc(out, ',');
			first = false;
			hbuf_puts(out, "{\"level\":");
			hbuf_json_str(out, tally_registry_level_name(reg, l) ?: "");
			hbuf_puts(out, ",\"party_affiliation\":");
			hbuf_json_str(out, tally_registry_party_name(reg, p) ?: "");
			hbuf_puts(out, ",\"seats_won\":");
			hbuf_u64(out, res.seats_won[i]);
			hbuf_puts(out, ",\"seats_led\":");
			hbuf_u64(out, res.seats_led[i]);
			hbuf_puts(out, ",\"contests\":");
			hbuf_u64(out, res.level_contests[l]);
			hbuf_puts(out, ",\"declared\":");
			hbuf_u64(out, res.level_declared[l]);
			hbuf_putc(out, '}');
		}
	hbuf_putc(out, ']');
	tally_contests_free(&res);
}

void
tally__render_json(const tally_snapshot_t *snap, const tally_registry_t *reg, hbuf_t *out)
{
	char id[TALLY_UUID_STRLEN + 1];
	int32_t leader = tally_snapshot_leader(snap);

	hbuf_reset(out);
	hbuf_puts(out, "{\"election\":");
	tally__render_election(&snap->election, out);
	hbuf_puts(out, ",\"version\":");
	hbuf_u64(out, snap->version);
	hbuf_puts(out, ",\"updated_at\":\"");
	hbuf_iso_ms(out, snap->taken_at_us);
	hbuf_puts(out, "\",\"read\":");
	hbuf_u64(out, snap->read);
	hbuf_puts(out, ",\"accepted\":");
	hbuf_u64(out, snap->accepted);
	hbuf_puts(out, ",\"rejected_total\":");
	hbuf_u64(out, snap->rejected_total);
	hbuf_puts(out, ",\"rejected\":{");
	for (int k = 1; k < TALLY_REASON__COUNT; k++) {
		if (k > 1)
			hbuf_putc(out, ',');
		hbuf_json_str(out, tally_reason_name(k));
		hbuf_putc(out, ':');
		hbuf_u64(out, snap->rejected[k]);
	}
	hbuf_puts(out, "},\"registered\":");
	hbuf_u64(out, snap->registered);
	hbuf_puts(out, ",\"turnout\":");
	hbuf_fixed(out, ratio(snap->accepted, snap->registered), 6);

	hbuf_puts(out, ",\"candidates\":[");
	for (uint32_t c = 0; c < snap->ncandidates; c++) {
		tally_candidate_info_t info;

		if (!tally_registry_candidate_get(reg, c, &info))
			continue;
		if (c > 0)
			hbuf_putc(out, ',');
		hbuf_puts(out, "{\"candidate_id\":\"");
		hbuf_puts(out, tally_uuid_format(&info.id, id));
		hbuf_puts(out, "\",\"candidate_name\":");
		hbuf_json_str(out, info.name);
		hbuf_puts(out, ",\"party_affiliation\":");
		hbuf_json_str(out, tally_registry_party_name(reg, info.party) ?: "");
		hbuf_puts(out, ",\"photo_url\":");
		hbuf_json_str(out, info.photo_url ? info.photo_url : "");
		hbuf_puts(out, ",\"total_votes\":");
		hbuf_u64(out, snap->candidates[c]);
		hbuf_puts(out, ",\"share\":");
		hbuf_fixed(out, ratio(snap->candidates[c], snap->accepted), 6);
		hbuf_putc(out, '}');
	}
	hbuf_puts(out, "],\"parties\":[");
	for (uint32_t p = 0; p < snap->nparties; p++) {
		if (p > 0)
			hbuf_putc(out, ',');
		hbuf_puts(out, "{\"party\":");
		hbuf_json_str(out, tally_registry_party_name(reg, p) ?: "");
		hbuf_puts(out, ",\"total_votes\":");
		hbuf_u64(out, snap->parties[p]);
		hbuf_puts(out, ",\"share\":");
		hbuf_fixed(out, ratio(snap->parties[p], snap->accepted), 6);
		hbuf_putc(out, '}');
	}
	hbuf_puts(out, "],\"regions\":[");
	for (uint32_t r = 0; r < snap->nregions; r++) {
		if (r > 0)
			hbuf_putc(out, ',');
		hbuf_puts(out, "{\"region\":");
		hbuf_json_str(out, tally_registry_region_name(reg, r) ?: "");
		hbuf_puts(out, ",\"registered\":");
		hbuf_u64(out, snap->region_registered[r]);
		hbuf_puts(out, ",\"count\":");
		hbuf_u64(out, snap->regions[r]);
		hbuf_puts(out, ",\"turnout\":");
		hbuf_fixed(out, ratio(snap->regions[r], snap->region_registered[r]), 6);
		hbuf_putc(out, '}');
	}
	hbuf_putc(out, ']');
	if (snap->ncontests > 1)
		render_seats(snap, reg, out);
	hbuf_puts(out, ",\"leader\":");
	if (leader < 0) {
		hbuf_puts(out, "null,\"margin\":{\"votes\":0,\"share_points\":0.000000}}");
		return;
	}
	{
		tally_candidate_info_t info;
		uint64_t lv = snap->candidates[leader], rv = runner_up(snap, leader);

		tally_registry_candidate_get(reg, (uint32_t)leader, &info);
		hbuf_puts(out, "{\"candidate_id\":\"");
		hbuf_puts(out, tally_uuid_format(&info.id, id));
		hbuf_puts(out, "\",\"candidate_name\":");
		hbuf_json_str(out, info.name);
		hbuf_puts(out, ",\"party_affiliation\":");
		hbuf_json_str(out, tally_registry_party_name(reg, info.party) ?: "");
		hbuf_puts(out, ",\"total_votes\":");
		hbuf_u64(out, lv);
		hbuf_puts(out, "},\"margin\":{\"votes\":");
		hbuf_u64(out, lv - rv);
		hbuf_puts(out, ",\"share_points\":");
		hbuf_fixed(out, 100.0 * ratio(lv - rv, snap->accepted), 6);
		hbuf_puts(out, "}}");
	}
}

void
tally__render_csv(const tally_snapshot_t *snap, const tally_registry_t *reg, hbuf_t *out)
{
	char id[TALLY_UUID_STRLEN + 1];

	hbuf_reset(out);
	hbuf_puts(out, "kind,id,name,party,votes,share,registered,turnout\r\n");
	for (uint32_t c = 0; c < snap->ncandidates; c++) {
		tally_candidate_info_t info;
		const char *party;

		if (!tally_registry_candidate_get(reg, c, &info))
			continue;
		party = tally_registry_party_name(reg, info.party) ?: "";
		hbuf_puts(out, "candidate,");
		hbuf_puts(out, tally_uuid_format(&info.id, id));
		hbuf_putc(out, ',');
		hbuf_csv_field(out, info.name);
		hbuf_putc(out, ',');
		hbuf_csv_field(out, party);
		hbuf_putc(out, ',');
		hbuf_u64(out, snap->candidates[c]);
		hbuf_putc(out, ',');
		hbuf_fixed(out, ratio(snap->candidates[c], snap->accepted), 6);
		hbuf_puts(out, ",,\r\n");
	}
	for (uint32_t p = 0; p < snap->nparties; p++) {
		const char *party = tally_registry_party_name(reg, p) ?: "";

		hbuf_puts(out, "party,,");
		hbuf_csv_field(out, party);
		hbuf_putc(out, ',');
		hbuf_csv_field(out, party);
		hbuf_putc(out, ',');
		hbuf_u64(out, snap->parties[p]);
		hbuf_putc(out, ',');
		hbuf_fixed(out, ratio(snap->parties[p], snap->accepted), 6);
		hbuf_puts(out, ",,\r\n");
	}
	for (uint32_t r = 0; r < snap->nregions; r++) {
		hbuf_puts(out, "region,,");
		hbuf_csv_field(out, tally_registry_region_name(reg, r) ?: "");
		hbuf_puts(out, ",,");
		hbuf_u64(out, snap->regions[r]);
		hbuf_puts(out, ",,");
		hbuf_u64(out, snap->region_registered[r]);
		hbuf_putc(out, ',');
		hbuf_fixed(out, ratio(snap->regions[r], snap->region_registered[r]), 6);
		hbuf_puts(out, "\r\n");
	}
}
