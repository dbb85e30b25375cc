/*
 * PostgreSQL connections: keyword merging, retry with backoff, and SQLSTATE mapping.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tally/error.h>
#include <tally/pg.h>
#include <tally/time.h>

#define MAX_PARAMS 64

int
tally_pg_check_params(const tally_pg_param_t *params, size_t nparams, char *errstr,
                      size_t errstr_size)
{
	PQconninfoOption *known = PQconndefaults();

	for (size_t i = 0; i < nparams; i++) {
		int found = 0;

		for (PQconninfoOption *o = known; o != NULL && o->keyword != NULL; o++)
			if (strcmp(o->keyword, params[i].key) == 0)
				found = 1;
		if (!found || strcmp(params[i].key, "dbname") == 0) {
			snprintf(errstr, errstr_size, "\"%s\" is not a libpq connection keyword tally accepts",
			         params[i].key);
			PQconninfoFree(known);
			return TALLY_ECONFIG;
		}
	}
	PQconninfoFree(known);
	return 0;
}

static void
sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* libpq's message, first line only, with the connection target but no password. */
static void
conn_error(PGconn *conn, char *errstr, size_t errstr_size)
{
	const char *host = PQhost(conn), *port = PQport(conn);
	char msg[256];

	snprintf(msg, sizeof(msg), "%s", PQerrorMessage(conn));
	msg[strcspn(msg, "\n")] = '\0';
	snprintf(errstr, errstr_size, "could not connect to PostgreSQL at \"%s:%s\": %s",
	         host != NULL ? host : "?", port != NULL ? port : "?", msg);
}

/* Server notices ("relation already exists, skipping") are not errors: drop them. */
static void
ignore_notice(void *arg, const PGresult *res)
{
	(void)arg;
	(void)res;
}

PGconn *
tally_pg_connect(const char *dsn, const tally_pg_param_t *params, size_t nparams,
                 unsigned timeout_ms, char *errstr, size_t errstr_size)
{
	const char *keys[MAX_PARAMS + 3], *values[MAX_PARAMS + 3];
	uint64_t deadline = tally_mono_ns() + (uint64_t)timeout_ms * 1000000ULL;
	unsigned backoff = 100;
	size_t k = 0;
	char *perr = NULL;
	PQconninfoOption *parsed;

	if (nparams > MAX_PARAMS) {
		snprintf(errstr, errstr_size, "too many PostgreSQL settings (%zu, at most %d)", nparams,
		         MAX_PARAMS);
		return NULL;
	}
	if (tally_pg_check_params(params, nparams, errstr, errstr_size) != 0)
		return NULL;
	if ((parsed = PQconninfoParse(dsn, &perr)) == NULL) {
		snprintf(errstr, errstr_size, "invalid PostgreSQL connection string: %s",
		         perr != NULL ? perr : "out of memory");
		errstr[strcspn(errstr, "\n")] = '\0';
		PQfreemem(perr);
		return NULL;
	}
	PQconninfoFree(parsed);
	/* dbname with expand_dbname=1 takes the whole DSN; later keywords override it. */
	keys[k] = "dbname";
	values[k++] = dsn;
	keys[k] = "application_name";
	values[k++] = "tally";
	for (size_t i = 0; i < nparams; i++) {
		keys[k] = params[i].key;
		values[k++] = params[i].value;
	}
	keys[k] = NULL;
	values[k] = NULL;
	for (;;) {
		PGconn *conn = PQconnectdbParams(keys, values, 1);

		if (conn != NULL && PQstatus(conn) == CONNECTION_OK) {
			PQsetNoticeReceiver(conn, ignore_notice, NULL);
			return conn;
		}
		if (conn == NULL) {
			snprintf(errstr, errstr_size, "could not connect to PostgreSQL: out of memory");
			return NULL;
		}
		conn_error(conn, errstr, errstr_size);
		PQfinish(conn);
		if (tally_mono_ns() + (uint64_t)backoff * 1000000ULL > deadline)
			return NULL;
		sleep_ms(backoff);
		backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
	}
}

int
tally_pg_err(PGconn *conn, const PGresult *res)
{
	const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	if (conn != NULL && PQstatus(conn) != CONNECTION_OK)
		return TALLY_EIO;
	if (state == NULL)
		return TALLY_EIO;
	if (strncmp(state, "08", 2) == 0 || strncmp(state, "57", 2) == 0 ||
	    strncmp(state, "53", 2) == 0)
		return TALLY_EIO;         /* connection, shutdown, resources: retry later */
	if (strcmp(state, "23505") == 0)
		return TALLY_EEXISTS;     /* unique violation */
	if (strcmp(state, "23503") == 0)
		return TALLY_ENOENT;      /* foreign key: the referenced row is missing */
	if (strncmp(state, "23", 2) == 0 || strncmp(state, "22", 2) == 0)
		return TALLY_EINVAL;      /* constraint or data exception */
	if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0)
		return TALLY_EAGAIN;      /* serialization failure, deadlock */
	return TALLY_EIO;
}
