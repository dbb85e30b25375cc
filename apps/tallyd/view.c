/*
 * Terminal views (view.h): the live block and the results tables.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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

	printf("\n%-*s  %-*s  %12s  %6s\n", wc, "candidate", wp, "party", "votes", "share");
	for (uint32_t c = 0; c < snap->ncandidates; c++) {
		tally_candidate_info_t info;

		if (!tally_registry_candidate_get(reg, c, &info))
			continue;
		printf("%-*.*s  %-*.*s  %12s  %5.1f%%\n", wc, wc, info.name, wp, wp,
		       tally_registry_party_name(reg, info.party), tallyd_fmt_count(snap->candidates[c], a),
		       pct(snap->candidates[c], snap->accepted));
	}

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

