/*
 * Civil-date arithmetic, the timestamp forms votes carry, and the two clocks.
 *
 * Day numbers use the era decomposition of the proleptic Gregorian calendar: a 400-year era
 * has exactly 146097 days, and counting years from March puts the leap day last, so the
 * day of the year follows from the month by a linear formula. All of it is integer math
 * valid for any int year whose day number fits in int32 (about +-5.8 million years).
 */
#include <time.h>

#include <tally/time.h>

#define SECS_PER_DAY 86400

/* Floor division for a positive divisor. */
static inline int64_t
floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	return (a % b < 0) ? q - 1 : q;
}

int32_t
tally_days_from_civil(int year, unsigned month, unsigned day)
{
	int64_t y = (int64_t)year - (month <= 2);
	int64_t era = floor_div(y, 400);
	int64_t yoe = y - era * 400;                                   /* [0, 399] */
	int64_t mp = (month + 9) % 12;                                 /* March = 0 */
	int64_t doy = (153 * mp + 2) / 5 + (int64_t)day - 1;           /* [0, 365] */
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           /* [0, 146096] */

	return (int32_t)(era * 146097 + doe - 719468);
}

void
tally_civil_from_days(int32_t days, int *year, unsigned *month, unsigned *day)
{
	int64_t z = (int64_t)days + 719468;
	int64_t era = floor_div(z, 146097);
	int64_t doe = z - era * 146097;                                /* [0, 146096] */
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);         /* [0, 365] */
	int64_t mp = (5 * doy + 2) / 153;                              /* March = 0 */
	unsigned d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
	unsigned m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);

	*year = (int)(yoe + era * 400 + (m <= 2));
	*month = m;
	*day = d;
}

static inline bool
is_leap(int year)
{
	return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

static inline unsigned
days_in_month(int year, unsigned month)
{
	static const unsigned char mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	return month == 2 && is_leap(year) ? 29u : mdays[month - 1];
}

bool
tally_date_valid(int year, unsigned month, unsigned day)
{
	return month >= 1 && month <= 12 && day >= 1 && day <= days_in_month(year, month);
}

/* Value of n ASCII digits at s, or -1 if one of them is not a digit. */
static inline int
digits(const char *s, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		unsigned d = (unsigned char)s[i] - (unsigned)'0';

		if (d > 9)
			return -1;
		v = v * 10 + (int)d;
	}
	return v;
}

/*
 * "YYYY-MM-DD" at text (at least 10 bytes). On success sets *days and returns NULL; on
 * failure returns a static reason.
 */
static const char *
parse_date10(const char *text, int32_t *days)
{
	int y = digits(text, 4), m, d;

	if (y < 0)
		return "expected a four-digit year";
	if (text[4] != '-')
		return "expected '-' after the year";
	m = digits(text + 5, 2);
	if (m < 0)
		return "expected a two-digit month";
	if (text[7] != '-')
		return "expected '-' after the month";
	d = digits(text + 8, 2);
	if (d < 0)
		return "expected a two-digit day";
	if (y < 1)
		return "year out of range";
	if (m < 1 || m > 12)
		return "month out of range";
	if (!tally_date_valid(y, (unsigned)m, (unsigned)d))
		return "day out of range";
	*days = tally_days_from_civil(y, (unsigned)m, (unsigned)d);
	return NULL;
}

bool
tally_date_parse(const char *text, size_t len, int32_t *days)
{
	int32_t v;

	if (len != 10 || parse_date10(text, &v) != NULL)
		return false;
	*days = v;
	return true;
}

bool
tally_time_parse(const char *text, size_t len, int64_t *secs, const char **err)
{
	const char *why;
	int32_t days;
	int hh, mi, ss;
	int64_t offset = 0;
	size_t i;

	if (len < 19) {
		why = "too short for a time";
		goto fail;
	}
	why = parse_date10(text, &days);
	if (why)
		goto fail;
	if (text[10] != ' ' && text[10] != 'T') {
		why = "expected ' ' or 'T' between date and time";
		goto fail;
	}
	hh = digits(text + 11, 2);
	mi = digits(text + 14, 2);
	ss = digits(text + 17, 2);
	if (hh < 0 || mi < 0 || ss < 0) {
		why = "expected two-digit hours, minutes and seconds";
		goto fail;
	}
	if (text[13] != ':' || text[16] != ':') {
		why = "expected ':' between hours, minutes and seconds";
		goto fail;
	}
	if (hh > 23) {
		why = "hour out of range";
		goto fail;
	}
	if (mi > 59) {
		why = "minute out of range";
		goto fail;
	}
	if (ss > 59) {
		why = "second out of range";
		goto fail;
	}

	i = 19;
	if (i < len && text[i] == '.') {
		size_t first = ++i;

		/* Fractional seconds are truncated: only their form matters. */
		while (i < len && (unsigned)((unsigned char)text[i] - '0') <= 9)
			i++;
		if (i == first) {
			why = "expected digits after '.'";
			goto fail;
		}
	}

	if (text[10] == ' ') {
		if (i != len) {
			why = "unexpected characters after the time";
			goto fail;
		}
	} else if (i < len && text[i] == 'Z') {
		if (i + 1 != len) {
			why = "unexpected characters after the time";
			goto fail;
		}
	} else if (i < len && (text[i] == '+' || text[i] == '-')) {
		int oh, om;

		if (len - i != 6 || text[i + 3] != ':' || (oh = digits(text + i + 1, 2)) < 0 ||
		    (om = digits(text + i + 4, 2)) < 0) {
			why = "expected an offset of the form +HH:MM";
			goto fail;
		}
		if (oh > 23) {
			why = "offset hour out of range";
			goto fail;
		}
		if (om > 59) {
			why = "offset minute out of range";
			goto fail;
		}
		offset = (int64_t)oh * 3600 + om * 60;
		if (text[i] == '-')
			offset = -offset;
	} else {
		why = "expected 'Z' or an offset after an ISO-8601 time";
		goto fail;
	}

	*secs = (int64_t)days * SECS_PER_DAY + hh * 3600 + mi * 60 + ss - offset;
	return true;

fail:
	if (err)
		*err = why;
	return false;
}

/* Split secs, clamped to years 0001..9999 so the text always has its fixed width. */
static void
split_secs(int64_t secs, int *y, unsigned *mo, unsigned *d, int *h, int *mi, int *s)
{
	const int64_t lo = -62135596800LL;  /* 0001-01-01 00:00:00 */
	const int64_t hi = 253402300799LL;  /* 9999-12-31 23:59:59 */
	int64_t days, rem;

	if (secs < lo)
		secs = lo;
	if (secs > hi)
		secs = hi;
	days = floor_div(secs, SECS_PER_DAY);
	rem = secs - days * SECS_PER_DAY;
	tally_civil_from_days((int32_t)days, y, mo, d);
	*h = (int)(rem / 3600);
	*mi = (int)(rem / 60 % 60);
	*s = (int)(rem % 60);
}

static char *
put2(char *p, unsigned v)
{
	p[0] = (char)('0' + v / 10);
	p[1] = (char)('0' + v % 10);
	return p + 2;
}

static char *
format(int64_t secs, char *buf, char sep)
{
	int y, h, mi, s;
	unsigned mo, d;
	char *p = buf;

	split_secs(secs, &y, &mo, &d, &h, &mi, &s);
	p = put2(p, (unsigned)y / 100);
	p = put2(p, (unsigned)y % 100);
	*p++ = '-';
	p = put2(p, mo);
	*p++ = '-';
	p = put2(p, d);
	*p++ = sep;
	p = put2(p, (unsigned)h);
	*p++ = ':';
	p = put2(p, (unsigned)mi);
	*p++ = ':';
	p = put2(p, (unsigned)s);
	if (sep == 'T')
		*p++ = 'Z';
	*p = '\0';
	return buf;
}

char *
tally_time_format(int64_t secs, char *buf)
{
	return format(secs, buf, ' ');
}

char *
tally_time_format_iso(int64_t secs, char *buf)
{
	return format(secs, buf, 'T');
}

int64_t
tally_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

uint64_t
tally_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
