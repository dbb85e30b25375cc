/*
 * Unit tests of civil-date arithmetic and the timestamp forms (core/time.c).
 */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include <tally/time.h>

#include "ref_decode.h"

static bool
parse(const char *text, int64_t *secs, const char **err)
{
	return tally_time_parse(text, strlen(text), secs, err);
}

Test(time, days_from_civil_known_dates)
{
	cr_assert_eq(tally_days_from_civil(1970, 1, 1), 0);
	cr_assert_eq(tally_days_from_civil(1969, 12, 31), -1);
	cr_assert_eq(tally_days_from_civil(2026, 5, 7), 20580);
	cr_assert_eq(tally_days_from_civil(1, 1, 1), -719162);
	cr_assert_eq(tally_days_from_civil(9999, 12, 31), 2932896);
	cr_assert_eq(tally_days_from_civil(2000, 2, 29), 11016);
	cr_assert_eq(tally_days_from_civil(1900, 3, 1), -25508);
	cr_assert_eq(tally_days_from_civil(1600, 2, 29), -135081);
	cr_assert_eq(tally_days_from_civil(2024, 2, 29), 19782);
}

Test(time, civil_round_trip)
{
	int32_t prev = tally_days_from_civil(-1000, 1, 1) - 1;

	for (int y = -1000; y <= 10000; y++) {
		for (unsigned m = 1; m <= 12; m++) {
			for (unsigned d = 1; d <= 31; d++) {
				int yy;
				unsigned mm, dd;
				int32_t days;

				if (!tally_date_valid(y, m, d))
					continue;
				days = tally_days_from_civil(y, m, d);
				cr_assert_eq(days, prev + 1, "%d-%u-%u", y, m, d);
				tally_civil_from_days(days, &yy, &mm, &dd);
				cr_assert(yy == y && mm == m && dd == d, "%d-%u-%u", y, m, d);
				prev = days;
			}
		}
	}
}

Test(time, date_valid)
{
	cr_assert(tally_date_valid(2000, 2, 29));
	cr_assert(tally_date_valid(2024, 2, 29));
	cr_assert_not(tally_date_valid(1900, 2, 29));
	cr_assert_not(tally_date_valid(2025, 2, 29));
	cr_assert_not(tally_date_valid(2026, 2, 30));
	cr_assert_not(tally_date_valid(2026, 4, 31));
	cr_assert(tally_date_valid(2026, 12, 31));
	cr_assert_not(tally_date_valid(2026, 13, 1));
	cr_assert_not(tally_date_valid(2026, 0, 1));
	cr_assert_not(tally_date_valid(2026, 1, 0));
}

Test(time, date_parse)
{
	int32_t days = 12345;

	cr_assert(tally_date_parse("1986-03-14", 10, &days));
	cr_assert_eq(days, 5916);
	cr_assert(tally_date_parse("0001-01-01", 10, &days));
	cr_assert_eq(days, -719162);
	cr_assert_not(tally_date_parse("0000-01-01", 10, &days));
	cr_assert_not(tally_date_parse("2025-02-29", 10, &days));
	cr_assert_not(tally_date_parse("1986-03-14T00:00:00Z", 20, &days));
	cr_assert_not(tally_date_parse("1986-3-14", 9, &days));
	cr_assert_not(tally_date_parse("1986/03/14", 10, &days));
	cr_assert_not(tally_date_parse("1986-03-1x", 10, &days));
	cr_assert_not(tally_date_parse("1986-03-14", 9, &days));
	cr_assert_eq(days, -719162);
}

Test(time, parse_forms)
{
	int64_t s = 0;
	const char *err = NULL;

	cr_assert(parse("2026-05-07 09:15:00", &s, &err));
	cr_assert_eq(s, 1778145300);
	cr_assert(parse("2026-05-07T09:15:00Z", &s, &err));
	cr_assert_eq(s, 1778145300);
	cr_assert(parse("2026-05-07T10:15:00+01:00", &s, &err));
	cr_assert_eq(s, 1778145300);
	cr_assert(parse("2026-05-07T04:15:00-05:00", &s, &err));
	cr_assert_eq(s, 1778145300);
	cr_assert(parse("2026-05-07 09:15:00.999999", &s, &err));
	cr_assert_eq(s, 1778145300);
	cr_assert(parse("2026-05-07T09:15:00.5Z", &s, &err));
	cr_assert_eq(s, 1778145300);
	cr_assert(parse("2026-05-07T09:45:00.12345678901234567890+00:30", &s, &err));
	cr_assert_eq(s, 1778145300);
	cr_assert(parse("2026-05-07T00:01:00+00:30", &s, &err));
	cr_assert_eq(s, 1778110260);
	cr_assert(parse("0001-01-01 00:00:00", &s, &err));
	cr_assert_eq(s, -62135596800LL);
	cr_assert(parse("9999-12-31T23:59:59Z", &s, &err));
	cr_assert_eq(s, 253402300799LL);
	cr_assert(parse("0001-01-01T00:00:00+01:00", &s, &err));
	cr_assert_eq(s, -62135596800LL - 3600);
	cr_assert(parse("2000-02-29T00:00:00+14:00", &s, &err));
	cr_assert_eq(s, 951732000);
	cr_assert(parse("1970-01-01 00:00:00", &s, &err));
	cr_assert_eq(s, 0);
	cr_assert(tally_time_parse("2026-05-07 09:15:00 trailing", 19, &s, &err));
	cr_assert_eq(s, 1778145300);
}

Test(time, parse_errors)
{
	static const struct {
		const char *text;
		const char *why;
	} cases[] = {
		{"", "too short for a time"},
		{"2026-05-07", "too short for a time"},
		{"2026-05-07 09:15", "too short for a time"},
		{"2026-13-07 09:15:00", "month out of range"},
		{"2026-00-07 09:15:00", "month out of range"},
		{"2026-02-30 09:15:00", "day out of range"},
		{"2025-02-29 09:15:00", "day out of range"},
		{"1900-02-29 09:15:00", "day out of range"},
		{"2026-05-00 09:15:00", "day out of range"},
		{"0000-05-07 09:15:00", "year out of range"},
		{"2026-05-07 24:00:00", "hour out of range"},
		{"2026-05-07 09:60:00", "minute out of range"},
		{"2026-05-07 09:15:60", "second out of range"},
		{"2026-05-07T09:15:00+24:00", "offset hour out of range"},
		{"2026-05-07T09:15:00+05:60", "offset minute out of range"},
		{"2026-05-07T09:15:00", "expected 'Z' or an offset after an ISO-8601 time"},
		{"2026-05-07T09:15:00z", "expected 'Z' or an offset after an ISO-8601 time"},
		{"2026-05-07T09:15:00+0100", "expected an offset of the form +HH:MM"},
		{"2026-05-07T09:15:00+01:00:00", "expected an offset of the form +HH:MM"},
		{"2026-05-07T09:15:00Z ", "unexpected characters after the time"},
		{"2026-05-07 09:15:00Z", "unexpected characters after the time"},
		{"2026-05-07 09:15:00 ", "unexpected characters after the time"},
		{"2026-05-07 09:15:00.", "expected digits after '.'"},
		{"2026-05-07T09:15:00.Z", "expected digits after '.'"},
		{"2026-05-07t09:15:00Z", "expected ' ' or 'T' between date and time"},
		{"2026/05/07 09:15:00", "expected '-' after the year"},
		{"2026-05/07 09:15:00", "expected '-' after the month"},
		{"+026-05-07 09:15:00", "expected a four-digit year"},
		{"2026-5-07 09:15:00.1", "expected a two-digit month"},
		{"2026-05-7 09:15:00.1", "expected a two-digit day"},
		{"2026-05-07 9:15:00Z", "expected two-digit hours, minutes and seconds"},
		{"2026-05-07 09.15.00", "expected ':' between hours, minutes and seconds"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t s = 42;
		const char *err = NULL;

		cr_assert_not(parse(cases[i].text, &s, &err), "accepted \"%s\"", cases[i].text);
		cr_assert_str_eq(err, cases[i].why, "for \"%s\"", cases[i].text);
		cr_assert_eq(s, 42);
		cr_assert_not(parse(cases[i].text, &s, NULL));
	}
}

Test(time, format)
{
	char buf[32];

	cr_assert_str_eq(tally_time_format(1778145300, buf), "2026-05-07 09:15:00");
	cr_assert_str_eq(tally_time_format_iso(1778145300, buf), "2026-05-07T09:15:00Z");
	cr_assert_str_eq(tally_time_format(0, buf), "1970-01-01 00:00:00");
	cr_assert_str_eq(tally_time_format(-1, buf), "1969-12-31 23:59:59");
	cr_assert_str_eq(tally_time_format(951782400, buf), "2000-02-29 00:00:00");
	cr_assert_str_eq(tally_time_format(-62135596800LL, buf), "0001-01-01 00:00:00");
	cr_assert_str_eq(tally_time_format_iso(253402300799LL, buf), "9999-12-31T23:59:59Z");
	/* Out of range: clamped, never wider than the buffer the contract promises. */
	cr_assert_str_eq(tally_time_format(INT64_MIN, buf), "0001-01-01 00:00:00");
	cr_assert_str_eq(tally_time_format_iso(INT64_MAX, buf), "9999-12-31T23:59:59Z");
	cr_assert_eq(strlen(tally_time_format_iso(INT64_MAX, buf)), 20);
}

Test(time, format_parse_round_trip)
{
	char buf[32];

	for (int64_t s = -62135596800LL; s <= 253402300799LL; s += 86399LL * 37 + 17) {
		int64_t back;

		cr_assert(parse(tally_time_format(s, buf), &back, NULL), "%s", buf);
		cr_assert_eq(back, s, "%s", buf);
		cr_assert(parse(tally_time_format_iso(s, buf), &back, NULL), "%s", buf);
		cr_assert_eq(back, s, "%s", buf);
	}
}

Test(time, clocks)
{
	int64_t now = tally_now_us();
	uint64_t a = tally_mono_ns(), b = tally_mono_ns();

	cr_assert_gt(now, 1700000000LL * 1000000);       /* after November 2023 */
	cr_assert_geq(b, a);
}

/* splitmix64, for the randomised cross-check below. */
static uint64_t
next(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

Test(time, agrees_with_reference_parser)
{
	static const char *const zones[] = {"", "Z", "+01:00", "-05:30", "+23:59", "+24:00", "-00:60",
	                                    "z", "+0100", "Z ", " ", ".", ".5", ".123Z", ".9+01:00"};
	uint64_t st = 20260507;
	char text[64];

	for (int i = 0; i < 300000; i++) {
		uint64_t r = next(&st);
		int n = snprintf(text, sizeof(text), "%04u-%02u-%02u%c%02u:%02u:%02u%s",
		                 (unsigned)(r % 10001), (unsigned)((r >> 14) % 14), (unsigned)((r >> 18) % 33),
		                 (r >> 24) & 1 ? 'T' : ' ', (unsigned)((r >> 25) % 25),
		                 (unsigned)((r >> 30) % 61), (unsigned)((r >> 36) % 61),
		                 zones[(r >> 42) % (sizeof(zones) / sizeof(zones[0]))]);
		int64_t a = -1, b = -2;
		bool ok;

		/* Now and then damage one character. */
		if ((r >> 50) % 4 == 0)
			text[(r >> 52) % (uint64_t)n] = "0:-T Z+.9x"[(r >> 58) % 10];
		ok = tally_time_parse(text, (size_t)n, &a, NULL);
		cr_assert_eq(ok, ref_time_parse(text, (size_t)n, &b), "\"%s\"", text);
		if (ok)
			cr_assert_eq(a, b, "\"%s\"", text);
	}
}
