/*
 * Terminal views (view.h): the live block and the results tables.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tally/contest.h>
#include <tally/time.h>

#include "view.h"

/* 1234567 as "1,234,567" into buf (at least 27 bytes). */
const char *
tallyd_fmt_count(uint64_t v, char *buf)
{
	char digits[24];
	int n = snprintf(digits, sizeof(digits), "%" PRIu64, v), k = 0;

	for (int i = 0; i < n; i++) {
		if (i > 0 && (n - i) % 3 == 0)
			buf[k++] = ',';
		buf[k++] = digits[i];
	}
	buf[k] = '\0';
	return buf;
}

static double
pct(uint64_t part, uint64_t whole)
{
	return whole == 0 ? 0.0 : 100.0 * (double)part / (double)whole;
}

static int
text_width(const char *s, int cap)
{
	int w = 0;

	/* Names are ASCII here; count bytes that start a UTF-8 sequence to be safe. */
	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w > cap ? cap : w;
}

/* ---- the live view --------------------------------------------------------------- */

void
tallyd_view_init(tallyd_view_t *v)
{
	memset(v, 0, sizeof(*v));
	v->tty = isatty(STDOUT_FILENO) != 0;
	v->start_ns = v->last_ns = v->last_line_ns = tally_mono_ns();
}

void
tallyd_view_draw(tallyd_view_t *v, const tally_registry_t *reg, const tally_snapshot_t *snap,
                 const char *header, const char *note, bool final)
{
	uint64_t now = tally_mono_ns();
	double dt = (double)(now - v->last_ns) / 1e9, elapsed = (double)(now - v->start_ns) / 1e9;
	double rate = dt > 0 ? (double)(snap->read - v->last_read) / dt : 0;
	char a[32], b[32], c[32];
	int32_t leader = tally_snapshot_leader(snap);

	v->last_read = snap->read;
	v->last_ns = now;

	if (!v->tty) {
		if (!final && now - v->last_line_ns < 2000000000u)
			return;
		v->last_line_ns = now;
		/* Lines are seconds apart: the average rate says more than the last 200 ms. */
		printf("progress: %.1f s, %s, %s read, %s accepted, ", elapsed, note,
		       tallyd_fmt_count(snap->read, a), tallyd_fmt_count(snap->accepted, b));
		printf("%s rejected, %s votes/s\n", tallyd_fmt_count(snap->rejected_total, a),
		       tallyd_fmt_count(elapsed > 0 ? (uint64_t)((double)snap->read / elapsed) : 0, b));
		fflush(stdout);
		return;
	}

	if (v->lines > 0)
		printf("\033[%dA", v->lines);
	v->lines = 0;
#define LINE(...)                                  \
	do {                                       \
		printf(__VA_ARGS__);               \
		printf("\033[K\n");                \
		v->lines++;                        \
	} while (0)
	LINE("%s   %.1f s", header, elapsed);
	LINE("  votes/s  %12.0f     %s", rate, note);
	LINE("  read     %12s     accepted  %s   rejected %s", tallyd_fmt_count(snap->read, a),
	     tallyd_fmt_count(snap->accepted, b), tallyd_fmt_count(snap->rejected_total, c));
	for (int r = 1; r < TALLY_REASON__COUNT; r++)
		LINE("    %-18s %12s", tally_reason_name(r), tallyd_fmt_count(snap->rejected[r], a));
	for (uint32_t i = 0; i < snap->ncandidates && i < 10; i++) {
		tally_candidate_info_t info;

		if (tally_registry_candidate_get(reg, i, &info))
			LINE("  %s %-28.28s %-22.22s %12s %5.1f%%", (int32_t)i == leader ? "*" : " ",
			     info.name, tally_registry_party_name(reg, info.party),
			     tallyd_fmt_count(snap->candidates[i], a),
			     pct(snap->candidates[i], snap->accepted));
	}
	if (leader < 0)
		LINE("  leader   none yet");
#undef LINE
	fflush(stdout);
}

/* ---- the results tables ----------------------------------------------------------- */

/* Contests closest first: the smaller majority, a tie before any. */
static const tally_contests_t *sort_res;

static int
by_majority(const void *a, const void *b)
{
	const tally_contest_result_t *x = &sort_res->contests[*(const uint32_t *)a];
	const tally_contest_result_t *y = &sort_res->contests[*(const uint32_t *)b];
	uint64_t mx = x->tie ? 0 : x->majority, my = y->tie ? 0 : y->majority;

	return mx < my ? -1 : mx > my ? 1 : (int)x->contest - (int)y->contest;
}

/*
 * An election of many contests: the seats per party at each level, then the contests
 * (every one up to 40, else the 20 closest), each with its leader, majority, turnout and
 * status.
 */
static void
print_contests(const tally_registry_t *reg, const tally_snapshot_t *snap, int wc, int wp)
{
	tally_contests_t res = {0};
	uint32_t *order, n = 0, shown;
	char a[32], b[32];
	int wk = 7;

	if (tally_contests_compute(reg, snap, snap->election.status >= TALLY_ELECTION_CLOSED,
	                           &res) != 0 ||
	    (order = calloc(res.ncontests + 1, sizeof(uint32_t))) == NULL) {
		tally_contests_free(&res);
		printf("\n(contests: out of memory)\n");
		return;
	}
	printf("\nreport: %s\n", tally_report_status_name(res.report));
	for (uint32_t l = 0; l < res.nlevels; l++) {
		if (res.level_contests[l] == 0)
			continue;
		printf("\n%s: %u contests, %u declared, %u tied\n", tally_registry_level_name(reg, l),
		       res.level_contests[l], res.level_declared[l], res.level_ties[l]);
		printf("%-*s  %6s  %6s  %12s  %6s\n", wp, "party", "won", "led", "votes", "share");
		for (uint32_t p = 0; p < res.nparties; p++) {
			size_t i = (size_t)l * res.nparties + p;

			printf("%-*.*s  %6u  %6u  %12s  %5.1f%%\n", wp, wp,
			       tally_registry_party_name(reg, p), res.seats_won[i], res.seats_led[i],
			       tallyd_fmt_count(res.party_votes[i], a),
			       pct(res.party_votes[i], res.level_votes[l]));
		}
	}
	for (uint32_t k = 0; k < res.ncontests; k++) {
		tally_contest_info_t info;

		if (res.contests[k].ncandidates == 0 || !tally_registry_contest_get(reg, k, &info))
			continue;
		order[n++] = k;
		wk = text_width(info.name, 40) > wk ? text_width(info.name, 40) : wk;
	}
	sort_res = &res;
	shown = n <= 40 ? n : 20;
	if (n > 40)
		qsort(order, n, sizeof(uint32_t), by_majority);
	printf("\n%s\n", n <= 40 ? "contests" : "the 20 closest contests");
	printf("%-*s  %-*s  %-*s  %12s  %10s  %7s  %s\n", wk, "contest", wc, "leader", wp, "party",
	       "votes", "majority", "turnout", "status");
	for (uint32_t i = 0; i < shown; i++) {
		const tally_contest_result_t *r = &res.contests[order[i]];
		tally_contest_info_t info;
		tally_candidate_info_t lead = {0};
		const char *who = "(tie)", *party = "";

		tally_registry_contest_get(reg, r->contest, &info);
		if (r->leader >= 0 && tally_registry_candidate_get(reg, (uint32_t)r->leader, &lead)) {
			who = lead.name;
			party = tally_registry_party_name(reg, lead.party);
		} else if (!r->tie) {
			who = "(no votes)";
		}
		printf("%-*.*s  %-*.*s  %-*.*s  %12s  %10s  %6.1f%%  %s\n", wk, wk, info.name, wc, wc,
		       who, wp, wp, party, tallyd_fmt_count(r->votes, a),
		       tallyd_fmt_count(r->majority, b), pct(r->votes, r->registered),
		       tally_contest_status_name(r->status));
	}
	sort_res = NULL;
	free(order);
	tally_contests_free(&res);
}

void
tallyd_print_results(const tally_registry_t *reg, const tally_snapshot_t *snap, double seconds)
{
	char a[32], b[32], when[32];
	int wc = 9, wp = 5, wr = 6;

	for (uint32_t c = 0; c < snap->ncandidates; c++) {
		tally_candidate_info_t info;

		if (tally_registry_candidate_get(reg, c, &info)) {
			int w = text_width(info.name, 40);

			wc = w > wc ? w : wc;
		}
	}
	for (uint32_t p = 0; p < snap->nparties; p++) {
		int w = text_width(tally_registry_party_name(reg, p), 40);

		wp = w > wp ? w : wp;
	}
	for (uint32_t r = 0; r < snap->nregions; r++) {
		int w = text_width(tally_registry_region_name(reg, r), 40);

		wr = w > wr ? w : wr;
	}

	tally_time_format(snap->election.closes_at, when);
	printf("\nresults of election \"%s\" (%s; polls closed at %s UTC)\n", snap->election.id,
	       tally_election_status_name(snap->election.status), when);
	printf("%s votes read in %.2f s (%s votes/s)\n", tallyd_fmt_count(snap->read, a), seconds,
	       tallyd_fmt_count(seconds > 0 ? (uint64_t)((double)snap->read / seconds) : 0, b));

	if (snap->ncontests > 1) {
		print_contests(reg, snap, wc, wp);
		goto parties;
	}
	printf("\n%-*s  %-*s  %12s  %6s\n", wc, "candidate", wp, "party", "votes", "share");
	for (uint32_t c = 0; c < snap->ncandidates; c++) {
		tally_candidate_info_t info;

		if (!tally_registry_candidate_get(reg, c, &info))
			continue;
		printf("%-*.*s  %-*.*s  %12s  %5.1f%%\n", wc, wc, info.name, wp, wp,
		       tally_registry_party_name(reg, info.party), tallyd_fmt_count(snap->candidates[c], a),
		       pct(snap->candidates[c], snap->accepted));
	}

parties:
	printf("\n%-*s  %12s  %6s\n", wp, "party", "votes", "share");
	for (uint32_t p = 0; p < snap->nparties; p++)
		printf("%-*.*s  %12s  %5.1f%%\n", wp, wp, tally_registry_party_name(reg, p),
		       tallyd_fmt_count(snap->parties[p], a), pct(snap->parties[p], snap->accepted));

	printf("\n%-*s  %12s  %12s  %7s\n", wr, "region", "registered", "votes", "turnout");
	for (uint32_t r = 0; r < snap->nregions; r++)
		printf("%-*.*s  %12s  %12s  %6.1f%%\n", wr, wr, tally_registry_region_name(reg, r),
		       tallyd_fmt_count(snap->region_registered[r], a), tallyd_fmt_count(snap->regions[r], b),
		       pct(snap->regions[r], snap->region_registered[r]));

	printf("\n%-18s  %12s  %6s\n", "rejected", "votes", "share");
	for (int r = 1; r < TALLY_REASON__COUNT; r++)
		printf("%-18s  %12s  %5.1f%%\n", tally_reason_name(r), tallyd_fmt_count(snap->rejected[r], a),
		       pct(snap->rejected[r], snap->read));
	printf("%-18s  %12s  %5.1f%%\n", "total", tallyd_fmt_count(snap->rejected_total, a),
	       pct(snap->rejected_total, snap->read));

	printf("\nread %s, accepted %s, ", tallyd_fmt_count(snap->read, a), tallyd_fmt_count(snap->accepted, b));
	printf("rejected %s, registered %s, turnout %.1f%%\n", tallyd_fmt_count(snap->rejected_total, a),
	       tallyd_fmt_count(snap->registered, b), pct(snap->accepted, snap->registered));
}

