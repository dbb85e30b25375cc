/*
 * The registry in PostgreSQL: bulk store with COPY FROM STDIN, load with COPY TO STDOUT.
 *
 * Both directions use COPY's text format. Values are escaped here, never spliced into SQL:
 * the only SQL sent is fixed text. Rows are buffered into blocks of about 64 KiB before
 * PQputCopyData(), and read back one row at a time with PQgetCopyData(), so memory stays
 * bounded whatever the table size.
 */
#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tally/error.h>
#include <tally/pg.h>
#include <tally/pg_registry.h>
#include <tally/uuid.h>

#include "pg_int.h"

#define COPY_BLOCK (64u * 1024u)

static const char *const table_names[] = {"parties", "candidates", "voters", "contests",
                                          "contest_regions"};

/* Fixed statements: the column lists are the original system's (FORMATS.md). */
static const char *const copy_in_sql[] = {
	"COPY parties (party_affiliation) FROM STDIN",
	"COPY candidates (candidate_id, candidate_name, party_affiliation, biography, "
	"campaign_platform, photo_url, contest_id) FROM STDIN",
	"COPY voters (voter_id, voter_name, date_of_birth, gender, nationality, "
	"registration_number, address_street, address_city, address_state, address_country, "
	"address_postcode, email, phone_number, cell_number, picture, registered_age) FROM STDIN",
	"COPY contests (contest_id, contest_name, level) FROM STDIN",
	"COPY contest_regions (contest_id, level, position, region) FROM STDIN",
};

struct tally_pg_copy {
	PGconn *conn;
	tally_pg_table_t which;
	char *buf;
	size_t len, cap;
	uint64_t rows;          /* rows added so far */
	int err;                /* first failure, 0 if none */
	char msg[256];          /* its message */
};

/* ---- errors ------------------------------------------------------------------------ */

/* The first line of a server or libpq message. */
static void
first_line(char *dst, size_t size, const char *msg)
{
	snprintf(dst, size, "%s", msg != NULL && *msg != '\0' ? msg : "unknown error");
	dst[strcspn(dst, "\r\n")] = '\0';
}

/* The server's primary message (no "ERROR:  " prefix), else libpq's own. */
static const char *
result_message(const PGresult *res)
{
	const char *m = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;

	return m != NULL ? m : PQresultErrorMessage(res);
}

/*
 * The row a COPY error names: the server's context reads `COPY voters, line 42, ...`.
 * Only the number is taken, never the row's text (it may hold personal data).
 */
static unsigned long
copy_error_line(const PGresult *res)
{
	const char *ctx = PQresultErrorField(res, PG_DIAG_CONTEXT), *p;

	if (ctx == NULL || strncmp(ctx, "COPY ", 5) != 0 || (p = strstr(ctx, ", line ")) == NULL)
		return 0;
	return strtoul(p + 7, NULL, 10);
}

static int
set_utf8(PGconn *conn, char *errstr, size_t errstr_size)
{
	char msg[200];

	if (PQsetClientEncoding(conn, "UTF8") == 0)
		return 0;
	first_line(msg, sizeof(msg), PQerrorMessage(conn));
	snprintf(errstr, errstr_size, "could not set client_encoding to \"UTF8\": %s", msg);
	return tally_pg_err(conn, NULL);
}

/* ---- rows from the generator ------------------------------------------------------- */

void
tally_pg_candidate_row_from_gen(const tally_gen_candidate_t *c, tally_pg_candidate_row_t *row)
{
	row->candidate_id = c->candidate_id;
	row->candidate_name = c->candidate_name;
	row->party_affiliation = c->party_affiliation;
	row->biography = c->biography;
	row->campaign_platform = c->campaign_platform;
	row->photo_url = c->photo_url;
	row->contest_id = c->contest_id;
}

void
tally_pg_voter_row_from_gen(const tally_gen_voter_t *v, tally_pg_voter_row_t *row)
{
	row->voter_id = v->voter_id;
	row->voter_name = v->voter_name;
	row->date_of_birth = v->date_of_birth;
	row->gender = v->gender;
	row->nationality = v->nationality;
	row->registration_number = v->registration_number;
	row->address_street = v->street;
	row->address_city = v->city;
	row->address_state = v->state;
	row->address_country = v->country;
	row->address_postcode = v->postcode;
	row->email = v->email;
	row->phone_number = v->phone_number;
	row->cell_number = v->cell_number;
	row->picture = v->picture;
	row->registered_age = v->registered_age;
}

/* ---- COPY FROM STDIN --------------------------------------------------------------- */

tally_pg_copy_t *
tally_pg_copy_begin(PGconn *conn, tally_pg_table_t which, char *errstr, size_t errstr_size)
{
	tally_pg_copy_t *copy;
	PGresult *res;
	char msg[200];

	if (conn == NULL || (unsigned)which > TALLY_PG_CONTEST_REGIONS) {
		snprintf(errstr, errstr_size, "could not begin a copy: no connection or no such table");
		return NULL;
	}
	if (set_utf8(conn, errstr, errstr_size) != 0)
		return NULL;
	if ((copy = calloc(1, sizeof(*copy))) == NULL ||
	    (copy->buf = malloc(COPY_BLOCK + 1024)) == NULL) {
		free(copy);
		snprintf(errstr, errstr_size, "could not begin a copy into \"%s\": out of memory",
		         table_names[which]);
		return NULL;
	}
	copy->cap = COPY_BLOCK + 1024;
	copy->conn = conn;
	copy->which = which;
	res = PQexec(conn, copy_in_sql[which]);
	if (PQresultStatus(res) != PGRES_COPY_IN) {
		first_line(msg, sizeof(msg), result_message(res));
		snprintf(errstr, errstr_size, "could not begin a copy into \"%s\": %s",
		         table_names[which], msg);
		PQclear(res);
		/* A COPY that did start in another mode would leave conn busy: drain it. */
		while ((res = PQgetResult(conn)) != NULL)
			PQclear(res);
		free(copy->buf);
		free(copy);
		return NULL;
	}
	PQclear(res);
	return copy;
}

static void
copy_fail(tally_pg_copy_t *copy, int err, const char *fmt, const char *arg)
{
	if (copy->err != 0)
		return;
	copy->err = err;
	snprintf(copy->msg, sizeof(copy->msg), fmt, arg);
}

static int
flush(tally_pg_copy_t *copy)
{
	char msg[200];

	if (copy->len == 0)
		return 0;
	if (PQputCopyData(copy->conn, copy->buf, (int)copy->len) != 1) {
		first_line(msg, sizeof(msg), PQerrorMessage(copy->conn));
		copy_fail(copy, TALLY_EIO, "%s", msg);
		return copy->err;
	}
	copy->len = 0;
	return 0;
}

static int
reserve(tally_pg_copy_t *copy, size_t more)
{
	char *nbuf;
	size_t ncap;

	if (copy->len + more <= copy->cap)
		return 0;
	ncap = copy->cap;
	while (ncap < copy->len + more)
		ncap *= 2;
	if ((nbuf = realloc(copy->buf, ncap)) == NULL) {
		copy_fail(copy, TALLY_ENOMEM, "%s", "out of memory");
		return TALLY_ENOMEM;
	}
	copy->buf = nbuf;
	copy->cap = ncap;
	return 0;
}

/*
 * Append one value in COPY text format, then the separator sep ('\t' or '\n').
 * NULL is \N; backslash, tab, newline and carriage return are backslash escapes. Every
 * other byte, UTF-8 sequences included, is sent as it is (the server checks the encoding).
 */
static int
put_text(tally_pg_copy_t *copy, const char *s, char sep)
{
	size_t n;
	char *out;

	if (s == NULL) {
		if (reserve(copy, 3) != 0)
			return copy->err;
		memcpy(copy->buf + copy->len, "\\N", 2);
		copy->buf[copy->len + 2] = sep;
		copy->len += 3;
		return 0;
	}
	n = strlen(s);
	if (reserve(copy, 2 * n + 1) != 0)
		return copy->err;
	out = copy->buf + copy->len;
	for (const char *p = s; *p != '\0'; p++) {
		switch (*p) {
		case '\\': *out++ = '\\'; *out++ = '\\'; break;
		case '\t': *out++ = '\\'; *out++ = 't'; break;
		case '\n': *out++ = '\\'; *out++ = 'n'; break;
		case '\r': *out++ = '\\'; *out++ = 'r'; break;
		default: *out++ = *p; break;
		}
	}
	*out++ = sep;
	copy->len = (size_t)(out - copy->buf);
	return 0;
}

static int
put_int(tally_pg_copy_t *copy, int v, char sep)
{
	char num[16];

	if (v == TALLY_PG_NULL_INT)
		return put_text(copy, NULL, sep);
	snprintf(num, sizeof(num), "%d", v);
	return put_text(copy, num, sep);
}

/* Common to every row: the copy must be healthy and for this table. */
static int
row_start(tally_pg_copy_t *copy, tally_pg_table_t which, const void *row)
{
	if (copy == NULL)
		return TALLY_EINVAL;
	if (copy->err != 0)
		return copy->err;
	if (row == NULL) {
		copy_fail(copy, TALLY_EINVAL, "a NULL row was added%s", "");
		return copy->err;
	}
	if (copy->which != which) {
		copy_fail(copy, TALLY_EINVAL, "a row for \"%s\" was added", table_names[which]);
		return copy->err;
	}
	return 0;
}

static int
row_done(tally_pg_copy_t *copy)
{
	if (copy->err != 0)
		return copy->err;
	copy->rows++;
	return copy->len >= COPY_BLOCK ? flush(copy) : 0;
}

int
tally_pg_copy_party(tally_pg_copy_t *copy, const tally_pg_party_row_t *row)
{
	int rc;

	if ((rc = row_start(copy, TALLY_PG_PARTIES, row)) != 0)
		return rc;
	put_text(copy, row->party_affiliation, '\n');
	return row_done(copy);
}

int
tally_pg_copy_candidate(tally_pg_copy_t *copy, const tally_pg_candidate_row_t *row)
{
	int rc;

	if ((rc = row_start(copy, TALLY_PG_CANDIDATES, row)) != 0)
		return rc;
	put_text(copy, row->candidate_id, '\t');
	put_text(copy, row->candidate_name, '\t');
	put_text(copy, row->party_affiliation, '\t');
	put_text(copy, row->biography, '\t');
	put_text(copy, row->campaign_platform, '\t');
	put_text(copy, row->photo_url, '\t');
	put_text(copy, row->contest_id, '\n');
	return row_done(copy);
}

int
tally_pg_copy_contest(tally_pg_copy_t *copy, const tally_pg_contest_row_t *row)
{
	int rc;

	if ((rc = row_start(copy, TALLY_PG_CONTESTS, row)) != 0)
		return rc;
	put_text(copy, row->contest_id, '\t');
	put_text(copy, row->contest_name, '\t');
	put_text(copy, row->level, '\n');
	return row_done(copy);
}

int
tally_pg_copy_contest_region(tally_pg_copy_t *copy, const tally_pg_contest_region_row_t *row)
{
	int rc;

	if ((rc = row_start(copy, TALLY_PG_CONTEST_REGIONS, row)) != 0)
		return rc;
	put_text(copy, row->contest_id, '\t');
	put_text(copy, row->level, '\t');
	put_int(copy, row->position, '\t');
	put_text(copy, row->region, '\n');
	return row_done(copy);
}

int
tally_pg_copy_voter(tally_pg_copy_t *copy, const tally_pg_voter_row_t *row)
{
	int rc;

	if ((rc = row_start(copy, TALLY_PG_VOTERS, row)) != 0)
		return rc;
	put_text(copy, row->voter_id, '\t');
	put_text(copy, row->voter_name, '\t');
	put_text(copy, row->date_of_birth, '\t');
	put_text(copy, row->gender, '\t');
	put_text(copy, row->nationality, '\t');
	put_text(copy, row->registration_number, '\t');
	put_text(copy, row->address_street, '\t');
	put_text(copy, row->address_city, '\t');
	put_text(copy, row->address_state, '\t');
	put_text(copy, row->address_country, '\t');
	put_text(copy, row->address_postcode, '\t');
	put_text(copy, row->email, '\t');
	put_text(copy, row->phone_number, '\t');
	put_text(copy, row->cell_number, '\t');
	put_text(copy, row->picture, '\t');
	put_int(copy, row->registered_age, '\n');
	return row_done(copy);
}

static void
copy_free(tally_pg_copy_t *copy)
{
	free(copy->buf);
	free(copy);
}

/*
 * End the COPY (with abort_msg: make the server refuse it) and collect its results.
 * Returns 0 with *stored set, or the tally error with msg set from the server's refusal.
 */
static int
copy_finish(tally_pg_copy_t *copy, const char *abort_msg, uint64_t *stored, char *msg,
            size_t msg_size)
{
	PGconn *conn = copy->conn;
	PGresult *res;
	int rc = 0, got = 0;

	/*
	 * PQputCopyEnd() may fail because the server has already refused the batch (libpq then
	 * has its error result waiting): the results below tell, so its return is not decisive.
	 */
	if (PQputCopyEnd(conn, abort_msg) != 1 && PQstatus(conn) != CONNECTION_OK) {
		first_line(msg, msg_size, PQerrorMessage(conn));
		rc = TALLY_EIO;
	}
	while ((res = PQgetResult(conn)) != NULL) {
		ExecStatusType st = PQresultStatus(res);

		if (st == PGRES_COMMAND_OK) {
			*stored = strtoull(PQcmdTuples(res), NULL, 10);
			got = 1;
		} else if (st == PGRES_COPY_IN) {
			/* Still copying: the end was not sent. Give up on the connection's state. */
			PQclear(res);
			if (rc == 0) {
				first_line(msg, msg_size, PQerrorMessage(conn));
				rc = TALLY_EIO;
			}
			break;
		} else if (rc == 0) {
			unsigned long line = copy_error_line(res);
			char first[200];
			size_t n;

			first_line(first, sizeof(first), result_message(res));
			n = (size_t)snprintf(msg, msg_size, "%s", first);
			if (line > 0 && n < msg_size)
				snprintf(msg + n, msg_size - n, " (row %lu)", line);
			rc = tally_pg_err(conn, res);
			got = 1;
		}
		PQclear(res);
	}
	if (rc == 0 && !got) {
		first_line(msg, msg_size, PQerrorMessage(conn));
		rc = TALLY_EIO;
	}
	return rc;
}

int
tally_pg_copy_end(tally_pg_copy_t *copy, uint64_t *rows, char *errstr, size_t errstr_size)
{
	char msg[256];
	uint64_t stored = 0;
	int rc;

	if (rows != NULL)
		*rows = 0;
	if (copy == NULL) {
		snprintf(errstr, errstr_size, "could not end a copy: there is none");
		return TALLY_EINVAL;
	}
	msg[0] = '\0';
	if (copy->err == 0)
		flush(copy);
	if (copy->err == 0) {
		rc = copy_finish(copy, NULL, &stored, msg, sizeof(msg));
	} else {
		/* A local failure: make the server drop the batch, but prefer its own refusal. */
		rc = copy_finish(copy, "tally abandoned the copy", &stored, msg, sizeof(msg));
		if (copy->err != TALLY_EIO || rc == 0 || rc == TALLY_EIO) {
			rc = copy->err;
			snprintf(msg, sizeof(msg), "%s", copy->msg);
		}
	}
	if (rc != 0)
		snprintf(errstr, errstr_size, "could not copy into \"%s\": %s",
		         table_names[copy->which], msg);
	else if (rows != NULL)
		*rows = stored;
	copy_free(copy);
	return rc;
}

void
tally_pg_copy_abort(tally_pg_copy_t *copy)
{
	char msg[256];
	uint64_t stored;

	if (copy == NULL)
		return;
	copy_finish(copy, "tally abandoned the copy", &stored, msg, sizeof(msg));
	copy_free(copy);
}

/* ---- COPY TO STDOUT ---------------------------------------------------------------- */

int64_t
tally_pg_voter_estimate(PGconn *conn)
{
	/* The planner's estimate (kept by ANALYZE and autovacuum) costs nothing; an exact
	 * count of 10 M rows costs a quarter of a second. Never analysed: count. */
	PGresult *res = PQexecParams(conn, "SELECT reltuples::bigint FROM pg_class"
	                                   " WHERE oid = 'voters'::regclass",
	                             0, NULL, NULL, NULL, NULL, 0);
	int64_t n = -1;

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return n >= 0 ? n : tally_pg_voter_count(conn);
}

int64_t
tally_pg_voter_count(PGconn *conn)
{
	PGresult *res = PQexecParams(conn, "SELECT count(*) FROM voters", 0, NULL, NULL, NULL, NULL,
	                             0);
	int64_t n;

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		n = tally_pg_err(conn, res);
		PQclear(res);
		return n;
	}
	n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return n;
}

#define MAX_FIELDS 5

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Split one line of COPY text output into fields, unescaping in place. A field that is \N
 * becomes NULL. Returns the number of fields, or -1 if there are more than max.
 */
static int
split_row(char *line, size_t len, char **fields, int max)
{
	char *in = line, *end = line + len, *out = line;
	int n = 0;

	if (len > 0 && end[-1] == '\n')
		end--;
	for (;;) {
		char *start = out;

		if (n == max)
			return -1;
		if (end - in >= 2 && in[0] == '\\' && in[1] == 'N' && (end - in == 2 || in[2] == '\t')) {
			fields[n++] = NULL;
			in += 2;
		} else {
			while (in < end && *in != '\t') {
				if (*in != '\\' || in + 1 == end) {
					*out++ = *in++;
					continue;
				}
				in++;
				switch (*in) {
				case 'b': *out++ = '\b'; in++; break;
				case 'f': *out++ = '\f'; in++; break;
				case 'n': *out++ = '\n'; in++; break;
				case 'r': *out++ = '\r'; in++; break;
				case 't': *out++ = '\t'; in++; break;
				case 'v': *out++ = '\v'; in++; break;
				case 'x': {
					int v = 0, d, k = 0;

					in++;
					while (k < 2 && in < end && (d = hexval(*in)) >= 0) {
						v = v * 16 + d;
						in++;
						k++;
					}
					*out++ = k > 0 ? (char)v : 'x';
					break;
				}
				default:
					if (*in >= '0' && *in <= '7') {
						int v = 0, k = 0;

						while (k < 3 && in < end && *in >= '0' && *in <= '7') {
							v = v * 8 + (*in - '0');
							in++;
							k++;
						}
						*out++ = (char)v;
					} else {
						*out++ = *in++;
					}
					break;
				}
			}
			/* The terminator overwrites a tab already consumed, or lies before end. */
			fields[n++] = start;
		}
		if (in >= end) {
			*out = '\0';
			return n;
		}
		in++;           /* the tab */
		*out++ = '\0';
	}
}

struct load {
	tally_registry_t *reg;
	uint64_t parties, candidates, voters, contests;
	char *errstr;
	size_t errstr_size;
	/* The contest being read (its regions come one row each, in order). */
	char contest_id[TALLY_CONTEST_ID_MAX + 1], *contest_name, *contest_level;
	char **regions;
	uint32_t nregions, cap_regions;
	uint64_t contest_row;
};

static int
refusal_err(tally_refusal_t r)
{
	switch (r) {
	case TALLY_REFUSAL_DUPLICATE_ID:
	case TALLY_REFUSAL_DUPLICATE_NAME:
		return TALLY_EEXISTS;
	case TALLY_REFUSAL_UNKNOWN_PARTY:
		return TALLY_ENOENT;
	case TALLY_REFUSAL_FULL:
		return TALLY_EFULL;
	default:
		return TALLY_EINVAL;
	}
}

static int
refused(struct load *ld, const char *table, uint64_t row, tally_refusal_t r)
{
	snprintf(ld->errstr, ld->errstr_size, "could not register %s row %llu: %s", table,
	         (unsigned long long)row, tally_refusal_name(r));
	return refusal_err(r);
}

static int
unreadable(struct load *ld, const char *table, uint64_t row, const char *what)
{
	snprintf(ld->errstr, ld->errstr_size, "could not read %s row %llu: %s", table,
	         (unsigned long long)row, what);
	return TALLY_EFORMAT;
}

static int
load_party(struct load *ld, char **f, int n, uint64_t row)
{
	tally_refusal_t r;

	if (n != 1)
		return unreadable(ld, "parties", row, "wrong number of columns");
	if ((r = tally_registry_add_party(ld->reg, f[0], NULL)) != TALLY_REFUSAL_NONE)
		return refused(ld, "parties", row, r);
	ld->parties++;
	return 0;
}

/* Register the contest read so far, if any, and forget it. */
static int
contest_flush(struct load *ld)
{
	tally_contest_reg_t c = {ld->contest_id, ld->contest_name, ld->contest_level,
	                         (const char *const *)ld->regions, ld->nregions};
	tally_refusal_t r = TALLY_REFUSAL_NONE;

	if (ld->contest_id[0] != '\0' &&
	    (r = tally_registry_add_contest(ld->reg, &c, NULL)) == TALLY_REFUSAL_NONE)
		ld->contests++;
	for (uint32_t i = 0; i < ld->nregions; i++)
		free(ld->regions[i]);
	free(ld->contest_name);
	free(ld->contest_level);
	ld->contest_name = ld->contest_level = NULL;
	ld->nregions = 0;
	ld->contest_id[0] = '\0';
	return r == TALLY_REFUSAL_NONE ? 0 : refused(ld, "contests", ld->contest_row, r);
}

/* One (contest, region) row, contests in registration order, regions by position. */
static int
load_contest_region(struct load *ld, char **f, int n, uint64_t row)
{
	int rc;

	if (n != 4 || f[0] == NULL || f[1] == NULL || f[2] == NULL || f[3] == NULL)
		return unreadable(ld, "contests", row, "wrong number of columns");
	if (strcmp(f[0], ld->contest_id) != 0) {
		if ((rc = contest_flush(ld)) != 0)
			return rc;
		if (strlen(f[0]) > TALLY_CONTEST_ID_MAX)
			return unreadable(ld, "contests", row, "contest_id is too long");
		strcpy(ld->contest_id, f[0]);
		ld->contest_name = strdup(f[1]);
		ld->contest_level = strdup(f[2]);
		ld->contest_row = row;
		if (ld->contest_name == NULL || ld->contest_level == NULL)
			return unreadable(ld, "contests", row, "out of memory");
	}
	if (ld->nregions == ld->cap_regions) {
		uint32_t cap = ld->cap_regions ? 2 * ld->cap_regions : 16;
		char **p = realloc(ld->regions, cap * sizeof(char *));

		if (p == NULL)
			return unreadable(ld, "contests", row, "out of memory");
		ld->regions = p;
		ld->cap_regions = cap;
	}
	if ((ld->regions[ld->nregions] = strdup(f[3])) == NULL)
		return unreadable(ld, "contests", row, "out of memory");
	ld->nregions++;
	return 0;
}

typedef int (*row_fn)(struct load *ld, char **f, int n, uint64_t row);
static int copy_out(PGconn *conn, const char *sql, const char *table, row_fn fn,
                    struct load *ld);

/* Read every contest with its regions (before the candidates that stand in them). */
static int
load_contests(PGconn *conn, struct load *ld)
{
	int rc = copy_out(conn,
	                  "COPY (SELECT c.contest_id, c.contest_name, c.level, r.region "
	                  "FROM contests c JOIN contest_regions r USING (contest_id) "
	                  "ORDER BY c.registered_at, c.contest_id, r.position) TO STDOUT",
	                  "contests", load_contest_region, ld);

	if (rc == 0)
		rc = contest_flush(ld);
	else
		(void)contest_flush(ld);
	free(ld->regions);
	ld->regions = NULL;
	ld->cap_regions = 0;
	return rc;
}

static int
load_candidate(struct load *ld, char **f, int n, uint64_t row)
{
	tally_candidate_reg_t c;
	tally_refusal_t r;

	if (n != 5)
		return unreadable(ld, "candidates", row, "wrong number of columns");
	if (f[0] == NULL || !tally_uuid_parse(f[0], strlen(f[0]), &c.id))
		return unreadable(ld, "candidates", row, "candidate_id is not a uuid");
	c.name = f[1];
	c.party = f[2];
	c.photo_url = f[3];
	c.contest = f[4];       /* NULL: the national race */
	if ((r = tally_registry_add_candidate(ld->reg, &c, NULL)) != TALLY_REFUSAL_NONE)
		return refused(ld, "candidates", row, r);
	ld->candidates++;
	return 0;
}

/* Days from 1970-01-01 to 2000-01-01: binary dates count from PostgreSQL's epoch. */
#define PG_DATE_EPOCH_DAYS 10957

static uint32_t
be32(const char *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return be32toh(v);
}

static uint64_t
be64(const char *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return be64toh(v);
}

/* A voters row in COPY's binary format: voter_id uuid, date_of_birth date, region text,
 * registration_number text. Text fields are NUL-terminated in place: the byte after each
 * one is the next field's length, already read, or the NUL libpq adds after the row. */
static int
load_voter_bin(struct load *ld, char *p, int n, uint64_t row)
{
	char *end = p + n, *f[4];
	int32_t len[4];
	tally_voter_reg_t v;
	tally_refusal_t r;

	if (n < 2 || (int16_t)(((uint8_t)p[0] << 8) | (uint8_t)p[1]) != 4)
		return unreadable(ld, "voters", row, "wrong number of columns");
	p += 2;
	for (int i = 0; i < 4; i++) {
		if (end - p < 4)
			return unreadable(ld, "voters", row, "truncated");
		len[i] = (int32_t)be32(p);
		p += 4;
		if (len[i] < 0) {
			f[i] = NULL;
			continue;
		}
		if (end - p < len[i])
			return unreadable(ld, "voters", row, "truncated");
		f[i] = p;
		p += len[i];
	}
	for (int i = 2; i < 4; i++)
		if (f[i] != NULL)
			f[i][len[i]] = '\0';
	if (f[0] == NULL || len[0] != 16)
		return unreadable(ld, "voters", row, "voter_id is not a uuid");
	if (f[1] == NULL || len[1] != 4)
		return unreadable(ld, "voters", row, "date_of_birth is not a date");
	v.id.hi = be64(f[0]);
	v.id.lo = be64(f[0] + 8);
	v.date_of_birth = (int32_t)be32(f[1]) + PG_DATE_EPOCH_DAYS;
	v.region = f[2];
	v.registration_number = f[3];
	if ((r = tally_registry_add_voter(ld->reg, &v)) != TALLY_REFUSAL_NONE)
		return refused(ld, "voters", row, r);
	ld->voters++;
	return 0;
}

/* COPY ... TO STDOUT (FORMAT binary) of voters, each row to load_voter_bin(). */
#define WINDOW 16
struct pending_row {
	char *line;     /* PQgetCopyData()'s buffer */
	char *p;        /* the row in it */
	int n;
};

static int
copy_out_voters_bin(PGconn *conn, const char *sql, struct load *ld)
{
	PGresult *res = PQexec(conn, sql);
	char msg[200], *line;
	uint64_t row = 0;
	int rc = 0, n = 0;
	bool header = true;
	struct pending_row win[WINDOW];
	unsigned first = 0, nwin = 0;

	if (PQresultStatus(res) != PGRES_COPY_OUT) {
		first_line(msg, sizeof(msg), result_message(res));
		snprintf(ld->errstr, ld->errstr_size, "could not read \"voters\": %s", msg);
		rc = tally_pg_err(conn, res);
		PQclear(res);
		while ((res = PQgetResult(conn)) != NULL)
			PQclear(res);
		return rc;
	}
	PQclear(res);
	/* Rows wait in a small window while their voters' slots are prefetched: the tables are
	 * far larger than the cache, so each insert would otherwise wait on memory. */
	for (bool more = true;;) {
		bool took = false;

		if (more && (n = PQgetCopyData(conn, &line, 0)) > 0) {
			char *p = line;

			/* The header (signature, flags, extension length: 19 bytes) comes with the
			 * first row; the trailer is a field count of -1. */
			if (header) {
				p += 19;
				n -= 19;
				header = false;
			}
			if (n >= 2 + 4 + 16 && !(p[0] == '\xff' && p[1] == '\xff')) {
				tally_uuid_t id = {be64(p + 6), be64(p + 14)};

				tally_registry_prefetch_voter(ld->reg, &id);
				win[(first + nwin) % WINDOW] = (struct pending_row){line, p, n};
				nwin++;
				took = true;
			} else {
				PQfreemem(line);
			}
		} else if (more) {
			more = false;       /* n is -1 (done) or -2 (failed) */
		}
		if (nwin == WINDOW || (!took && nwin > 0)) {
			struct pending_row *w = &win[first];

			if (rc == 0)
				rc = load_voter_bin(ld, w->p, w->n, ++row);
			PQfreemem(w->line);
			first = (first + 1) % WINDOW;
			nwin--;
			continue;
		}
		if (!more && nwin == 0)
			break;
	}
	if (n == -2 && rc == 0) {
		first_line(msg, sizeof(msg), PQerrorMessage(conn));
		snprintf(ld->errstr, ld->errstr_size, "could not read \"voters\": %s", msg);
		rc = TALLY_EIO;
	}
	while ((res = PQgetResult(conn)) != NULL) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK && rc == 0) {
			first_line(msg, sizeof(msg), result_message(res));
			snprintf(ld->errstr, ld->errstr_size, "could not read \"voters\": %s", msg);
			rc = tally_pg_err(conn, res);
		}
		PQclear(res);
	}
	return rc;
}


/*
 * Run one COPY ... TO STDOUT and hand each row to fn. When fn fails, the rest of the
 * output is read and dropped (libpq offers no way to stop a COPY OUT short of cancelling,
 * and a cancel could race with the next command), then the error is returned.
 */
static int
copy_out(PGconn *conn, const char *sql, const char *table, row_fn fn, struct load *ld)
{
	PGresult *res = PQexec(conn, sql);
	char msg[200], *line;
	uint64_t row = 0;
	int rc = 0, n;

	if (PQresultStatus(res) != PGRES_COPY_OUT) {
		first_line(msg, sizeof(msg), result_message(res));
		snprintf(ld->errstr, ld->errstr_size, "could not read \"%s\": %s", table, msg);
		rc = tally_pg_err(conn, res);
		PQclear(res);
		while ((res = PQgetResult(conn)) != NULL)
			PQclear(res);
		return rc;
	}
	PQclear(res);
	while ((n = PQgetCopyData(conn, &line, 0)) > 0) {
		char *fields[MAX_FIELDS];
		int nf;

		row++;
		if (rc == 0) {
			nf = split_row(line, (size_t)n, fields, MAX_FIELDS);
			rc = nf < 0 ? unreadable(ld, table, row, "too many columns")
			            : fn(ld, fields, nf, row);
		}
		PQfreemem(line);
	}
	if (n == -2 && rc == 0) {
		first_line(msg, sizeof(msg), PQerrorMessage(conn));
		snprintf(ld->errstr, ld->errstr_size, "could not read \"%s\": %s", table, msg);
		rc = TALLY_EIO;
	}
	while ((res = PQgetResult(conn)) != NULL) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK && rc == 0) {
			first_line(msg, sizeof(msg), result_message(res));
			snprintf(ld->errstr, ld->errstr_size, "could not read \"%s\": %s", table, msg);
			rc = tally_pg_err(conn, res);
		}
		PQclear(res);
	}
	return rc;
}

static int
exec_cmd(PGconn *conn, const char *sql, const char *what, char *errstr, size_t errstr_size)
{
	PGresult *res = PQexec(conn, sql);
	char msg[200];
	int rc = 0;

	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		first_line(msg, sizeof(msg), result_message(res));
		snprintf(errstr, errstr_size, "%s: %s", what, msg);
		rc = tally_pg_err(conn, res);
	}
	PQclear(res);
	return rc;
}

int
tally__pg_load_parties_candidates(PGconn *conn, tally_registry_t *reg, uint64_t *parties,
                                  uint64_t *candidates, char *errstr, size_t errstr_size)
{
	struct load ld = {.reg = reg, .errstr = errstr, .errstr_size = errstr_size};
	int rc;

	if ((rc = set_utf8(conn, errstr, errstr_size)) == 0 &&
	    (rc = copy_out(conn,
	                   "COPY (SELECT party_affiliation FROM parties "
	                   "ORDER BY registered_at, party_affiliation) TO STDOUT",
	                   "parties", load_party, &ld)) == 0 &&
	    (rc = load_contests(conn, &ld)) == 0)
		rc = copy_out(conn,
		              "COPY (SELECT candidate_id, candidate_name, party_affiliation, photo_url, "
		              "contest_id FROM candidates ORDER BY registered_at, candidate_id) TO STDOUT",
		              "candidates", load_candidate, &ld);
	*parties = ld.parties;
	*candidates = ld.candidates;
	return rc;
}

int
tally_pg_registry_load(PGconn *conn, tally_registry_t *reg, uint64_t *parties,
                       uint64_t *candidates, uint64_t *voters, char *errstr, size_t errstr_size)
{
	struct load ld = {.reg = reg, .errstr = errstr, .errstr_size = errstr_size};
	bool own_tx;
	int rc;

	if (conn == NULL || reg == NULL) {
		snprintf(errstr, errstr_size, "could not load the registry: no connection or registry");
		return TALLY_EINVAL;
	}
	own_tx = PQtransactionStatus(conn) == PQTRANS_IDLE;
	if ((rc = set_utf8(conn, errstr, errstr_size)) != 0)
		goto out;
	/* One snapshot for the three tables: a candidate never misses its party. */
	if (own_tx && (rc = exec_cmd(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
	                             "could not begin reading the registry", errstr,
	                             errstr_size)) != 0)
		goto out;
	/* Rows registered in one statement share registered_at: the name or id breaks ties. */
	if ((rc = copy_out(conn,
	                   "COPY (SELECT party_affiliation FROM parties "
	                   "ORDER BY registered_at, party_affiliation) TO STDOUT",
	                   "parties", load_party, &ld)) != 0 ||
	    (rc = load_contests(conn, &ld)) != 0 ||
	    (rc = copy_out(conn,
	                   "COPY (SELECT candidate_id, candidate_name, party_affiliation, photo_url, "
	                   "contest_id FROM candidates ORDER BY registered_at, candidate_id) TO STDOUT",
	                   "candidates", load_candidate, &ld)) != 0 ||
	    /* Binary: uuids and dates as numbers, nothing to format or parse, no DateStyle. */
	    (rc = copy_out_voters_bin(conn,
	                              "COPY (SELECT voter_id, date_of_birth, region, "
	                              "registration_number FROM voters) TO STDOUT (FORMAT binary)",
	                              &ld)) != 0)
		goto out;
	if (own_tx)
		rc = exec_cmd(conn, "COMMIT", "could not end reading the registry", errstr,
		              errstr_size);
	own_tx = false;
out:
	if (own_tx && PQtransactionStatus(conn) != PQTRANS_IDLE) {
		PGresult *res = PQexec(conn, "ROLLBACK");

		PQclear(res);
	}
	if (parties != NULL)
		*parties = ld.parties;
	if (candidates != NULL)
		*candidates = ld.candidates;
	if (voters != NULL)
		*voters = ld.voters;
	return rc;
}

/* ---- full voters rows ---------------------------------------------------------------- */

#define VOTER_COLUMNS 17

struct tally_pg_voter_reader {
	PGconn *conn;
	char *line;             /* the current row, from PQgetCopyData() */
	uint64_t rows;
	int state;              /* 1 reading, 0 ended well, < 0 failed (the tally error) */
	char msg[256];          /* the failure, repeated by later calls */
};

tally_pg_voter_reader_t *
tally_pg_voter_reader_open(PGconn *conn, char *errstr, size_t errstr_size)
{
	/* Fixed text. The date twice: as text independent of DateStyle, and as a day number. */
	static const char sql[] =
	    "COPY (SELECT voter_id, voter_name, to_char(date_of_birth, 'YYYY-MM-DD'), gender, "
	    "nationality, registration_number, address_street, address_city, address_state, "
	    "address_country, address_postcode, email, phone_number, cell_number, picture, "
	    "registered_age, date_of_birth - DATE '1970-01-01' FROM voters) TO STDOUT";
	tally_pg_voter_reader_t *rd;
	PGresult *res;
	char msg[200];

	if (conn == NULL) {
		snprintf(errstr, errstr_size, "could not read \"voters\": no connection");
		return NULL;
	}
	if (set_utf8(conn, errstr, errstr_size) != 0)
		return NULL;
	if ((rd = calloc(1, sizeof(*rd))) == NULL) {
		snprintf(errstr, errstr_size, "could not read \"voters\": out of memory");
		return NULL;
	}
	res = PQexec(conn, sql);
	if (PQresultStatus(res) != PGRES_COPY_OUT) {
		first_line(msg, sizeof(msg), result_message(res));
		snprintf(errstr, errstr_size, "could not read \"voters\": %s", msg);
		PQclear(res);
		while ((res = PQgetResult(conn)) != NULL)
			PQclear(res);
		free(rd);
		return NULL;
	}
	PQclear(res);
	rd->conn = conn;
	rd->state = 1;
	return rd;
}

static int
reader_fail(tally_pg_voter_reader_t *rd, int err, const char *why)
{
	snprintf(rd->msg, sizeof(rd->msg), "could not read voters row %llu: %s",
	         (unsigned long long)rd->rows + 1, why);
	rd->state = err;
	return err;
}

/* After the last row: the COPY's own result says whether it ended well. */
static int
reader_end(tally_pg_voter_reader_t *rd, int n)
{
	PGresult *res;
	char msg[200];
	int rc = 0;

	if (n == -2) {
		first_line(msg, sizeof(msg), PQerrorMessage(rd->conn));
		rc = reader_fail(rd, TALLY_EIO, msg);
	}
	while ((res = PQgetResult(rd->conn)) != NULL) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK && rc == 0) {
			first_line(msg, sizeof(msg), result_message(res));
			rc = reader_fail(rd, tally_pg_err(rd->conn, res), msg);
		}
		PQclear(res);
	}
	if (rc == 0)
		rd->state = 0;
	return rc;
}

int
tally_pg_voter_reader_next(tally_pg_voter_reader_t *rd, tally_pg_voter_row_t *row,
                           int32_t *dob_days, char *errstr, size_t errstr_size)
{
	char *f[VOTER_COLUMNS], *endp;
	long v;
	int n;

	if (rd->line != NULL) {
		PQfreemem(rd->line);
		rd->line = NULL;
	}
	if (rd->state <= 0)
		goto done;
	if ((n = PQgetCopyData(rd->conn, &rd->line, 0)) <= 0) {
		rd->line = NULL;
		reader_end(rd, n);
		goto done;
	}
	if (split_row(rd->line, (size_t)n, f, VOTER_COLUMNS) != VOTER_COLUMNS) {
		reader_fail(rd, TALLY_EFORMAT, "wrong number of columns");
		goto done;
	}
	if (f[0] == NULL || f[2] == NULL || f[16] == NULL) {
		reader_fail(rd, TALLY_EFORMAT, "voter_id or date_of_birth is NULL");
		goto done;
	}
	row->voter_id = f[0];
	row->voter_name = f[1];
	row->date_of_birth = f[2];
	row->gender = f[3];
	row->nationality = f[4];
	row->registration_number = f[5];
	row->address_street = f[6];
	row->address_city = f[7];
	row->address_state = f[8];
	row->address_country = f[9];
	row->address_postcode = f[10];
	row->email = f[11];
	row->phone_number = f[12];
	row->cell_number = f[13];
	row->picture = f[14];
	row->registered_age = TALLY_PG_NULL_INT;
	if (f[15] != NULL) {
		errno = 0;
		v = strtol(f[15], &endp, 10);
		if (errno != 0 || endp == f[15] || *endp != '\0' || v < 0 || v > INT_MAX) {
			reader_fail(rd, TALLY_EFORMAT, "registered_age is not a number");
			goto done;
		}
		row->registered_age = (int)v;
	}
	errno = 0;
	v = strtol(f[16], &endp, 10);
	if (errno != 0 || endp == f[16] || *endp != '\0' || v < INT32_MIN || v > INT32_MAX) {
		reader_fail(rd, TALLY_EFORMAT, "date_of_birth is not a day number");
		goto done;
	}
	if (dob_days != NULL)
		*dob_days = (int32_t)v;
	rd->rows++;
	return 1;
done:
	if (rd->state < 0)
		snprintf(errstr, errstr_size, "%s", rd->msg);
	return rd->state;
}

uint64_t
tally_pg_voter_reader_rows(const tally_pg_voter_reader_t *rd)
{
	return rd->rows;
}

void
tally_pg_voter_reader_close(tally_pg_voter_reader_t *rd)
{
	char *line;
	int n;

	if (rd == NULL)
		return;
	if (rd->line != NULL)
		PQfreemem(rd->line);
	if (rd->state == 1) {
		PGcancel *cancel = PQgetCancel(rd->conn);
		char msg[256];

		if (cancel != NULL) {
			PQcancel(cancel, msg, sizeof(msg));
			PQfreeCancel(cancel);
		}
		while ((n = PQgetCopyData(rd->conn, &line, 0)) > 0)
			PQfreemem(line);
		reader_end(rd, n);
	}
	free(rd);
}
