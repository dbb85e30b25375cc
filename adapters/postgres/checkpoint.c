/*
 * Checkpoints (include/tally/pg_checkpoint.h): votes by binary COPY, the core's state and
 * the partitions' offsets, in one transaction; and reading them back on start. With parts
 * (several instances), the same transaction fenced by the parts' owner rows, one state per
 * partition, a NOTIFY for the watchers; claims of partitions and reading their states back.
 *
 * Binary COPY is PostgreSQL's documented wire format: a signature, a flags word and a
 * header extension length, then per row a field count and per field a length and the
 * value in network byte order (uuid: 16 bytes; timestamptz: microseconds since
 * 2000-01-01; int4, int8; text: its bytes), then -1.
 */
#include <endian.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tally/error.h>
#include <tally/pg.h>
#include <tally/pg_checkpoint.h>
#include <tally/pg_journal.h>

#include "pg_int.h"

#define COPY_BLOCK (256u * 1024u)

/* Seconds from 1970-01-01 to 2000-01-01, PostgreSQL's epoch. */
#define PG_EPOCH_OFFSET 946684800LL

void
tally__pg_set_error(PGconn *conn, const PGresult *res, const char *what, char *errstr,
                    size_t errstr_size)
{
	const char *m = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	char line[256];

	snprintf(line, sizeof(line), "%s",
	         m != NULL ? m : (conn != NULL ? PQerrorMessage(conn) : "unknown error"));
	line[strcspn(line, "\r\n")] = '\0';
	snprintf(errstr, errstr_size, "%s: %s", what, line[0] != '\0' ? line : "unknown error");
}

int
tally__pg_failed(PGconn *conn, const PGresult *res, const char *what, char *errstr,
                 size_t errstr_size)
{
	tally__pg_set_error(conn, res, what, errstr, errstr_size);
	return tally_pg_err(conn, res);
}

int
tally__pg_exec(PGconn *conn, const char *sql, int n, const char *const *values,
               const int *lengths, const int *formats, const char *what, char *errstr,
               size_t errstr_size)
{
	PGresult *res = PQexecParams(conn, sql, n, NULL, values, lengths, formats, 0);
	int rc = 0;

	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
		rc = tally__pg_failed(conn, res, what, errstr, errstr_size);
	PQclear(res);
	return rc;
}

void
tally__pg_rollback(PGconn *conn)
{
	if (PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) != PQTRANS_IDLE)
		PQclear(PQexec(conn, "ROLLBACK"));
}

/* ---- binary COPY of votes ---------------------------------------------------------- */

typedef struct copybuf {
	char *buf;
	size_t len, cap;
} copybuf_t;

static void
put(copybuf_t *b, const void *p, size_t n)
{
	memcpy(b->buf + b->len, p, n);
	b->len += n;
}

static void
put_i16(copybuf_t *b, int16_t v)
{
	uint16_t be = htobe16((uint16_t)v);

	put(b, &be, 2);
}

static void
put_i32(copybuf_t *b, int32_t v)
{
	uint32_t be = htobe32((uint32_t)v);

	put(b, &be, 4);
}

static void
put_i64(copybuf_t *b, int64_t v)
{
	uint64_t be = htobe64((uint64_t)v);

	put(b, &be, 8);
}

static int
copy_flush(PGconn *conn, copybuf_t *b, char *errstr, size_t errstr_size)
{
	if (b->len > 0 && PQputCopyData(conn, b->buf, (int)b->len) != 1) {
		tally__pg_set_error(conn, NULL, "could not send votes", errstr, errstr_size);
		return TALLY_EIO;
	}
	b->len = 0;
	return 0;
}

int
tally__pg_copy_votes(PGconn *conn, const char *election_id, const tally_pg_vote_row_t *votes,
                     size_t n, char *errstr, size_t errstr_size)
{
	static const char signature[11] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', '\377', '\r', '\n',
	                                   '\0'};
	size_t elen = strlen(election_id);
	/* One row: field count, 6 lengths, uuid, uuid, time, election, partition, offset. */
	size_t row = 2 + 6 * 4 + 16 + 16 + 8 + elen + 4 + 8;
	copybuf_t b = {NULL, 0, COPY_BLOCK + row + 64};
	PGresult *res;
	int rc = 0;

	res = PQexec(conn, "COPY votes (voter_id, candidate_id, voting_time, election_id, "
	                   "source_partition, source_offset) FROM STDIN (FORMAT binary)");
	if (PQresultStatus(res) != PGRES_COPY_IN) {
		rc = tally_pg_err(conn, res);
		tally__pg_set_error(conn, res, "could not start COPY of votes", errstr, errstr_size);
		PQclear(res);
		return rc;
	}
	PQclear(res);
	if ((b.buf = malloc(b.cap)) == NULL) {
		PQputCopyEnd(conn, "out of memory");
		PQclear(PQgetResult(conn));
		snprintf(errstr, errstr_size, "could not COPY votes: out of memory");
		return TALLY_ENOMEM;
	}
	put(&b, signature, sizeof(signature));
	put_i32(&b, 0);
	put_i32(&b, 0);
	for (size_t i = 0; i < n && rc == 0; i++) {
		const tally_pg_vote_row_t *v = &votes[i];

		put_i16(&b, 6);
		put_i32(&b, 16);
		put_i64(&b, (int64_t)v->voter_id.hi);
		put_i64(&b, (int64_t)v->voter_id.lo);
		put_i32(&b, 16);
		put_i64(&b, (int64_t)v->candidate_id.hi);
		put_i64(&b, (int64_t)v->candidate_id.lo);
		put_i32(&b, 8);
		put_i64(&b, (v->voting_time - PG_EPOCH_OFFSET) * 1000000LL);
		put_i32(&b, (int32_t)elen);
		put(&b, election_id, elen);
		put_i32(&b, 4);
		put_i32(&b, v->partition);
		put_i32(&b, 8);
		put_i64(&b, v->offset);
		if (b.len >= COPY_BLOCK)
			rc = copy_flush(conn, &b, errstr, errstr_size);
	}
	if (rc == 0) {
		put_i16(&b, -1);
		rc = copy_flush(conn, &b, errstr, errstr_size);
	}
	free(b.buf);
	if (PQputCopyEnd(conn, rc == 0 ? NULL : "aborted") != 1 && rc == 0) {
		tally__pg_set_error(conn, NULL, "could not end COPY of votes", errstr, errstr_size);
		rc = TALLY_EIO;
	}
	while ((res = PQgetResult(conn)) != NULL) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK && rc == 0) {
			rc = tally_pg_err(conn, res);
			tally__pg_set_error(conn, res, "could not COPY votes", errstr, errstr_size);
		}
		PQclear(res);
	}
	return rc;
}

/* ---- writing ----------------------------------------------------------------------- */

/* Upsert one topic's partition offsets in one statement (arrays, not a statement each). */
static int
offsets_store(PGconn *conn, const tally_pg_checkpoint_t *c, const char *topic,
              const tally_pg_offset_t *offsets, size_t n, char *errstr, size_t errstr_size)
{
	char gen[24], *parts, *offs;
	size_t pl = 0, ol = 0;
	int rc;

	if (n == 0)
		return 0;
	parts = malloc(n * 12 + 3);
	offs = malloc(n * 21 + 3);
	if (parts == NULL || offs == NULL) {
		free(parts);
		free(offs);
		tally_errstr_set(errstr, errstr_size, "could not store offsets: out of memory");
		return TALLY_ENOMEM;
	}
	parts[pl++] = '{';
	offs[ol++] = '{';
	for (size_t i = 0; i < n; i++) {
		pl += (size_t)sprintf(parts + pl, "%s%d", i ? "," : "", (int)offsets[i].partition);
		ol += (size_t)sprintf(offs + ol, "%s%lld", i ? "," : "",
		                      (long long)offsets[i].next_offset);
	}
	strcpy(parts + pl, "}");
	strcpy(offs + ol, "}");
	snprintf(gen, sizeof(gen), "%lld", (long long)c->generation);
	{
		const char *v[6] = {c->election_id, topic, parts, offs, c->owner, gen};

		rc = tally__pg_exec(conn,
		                    "INSERT INTO checkpoint_offsets (election_id, topic, partition,"
		                    " next_offset, owner, generation)"
		                    " SELECT $1, $2, p, o, $5, $6"
		                    " FROM unnest($3::integer[], $4::bigint[]) AS t(p, o)"
		                    " ON CONFLICT (election_id, topic, partition) DO UPDATE SET"
		                    " next_offset = EXCLUDED.next_offset, owner = EXCLUDED.owner,"
		                    " generation = EXCLUDED.generation, updated_at = now()",
		                    6, v, NULL, NULL, "could not store offsets", errstr, errstr_size);
	}
	free(parts);
	free(offs);
	return rc;
}

/* ---- partitions: owners, states, fencing ------------------------------------------ */

static int
cmp_i32(const void *a, const void *b)
{
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;

	return (x > y) - (x < y);
}

/* Sorted copy of n partitions, refused if one is negative or comes twice. */
static int32_t *
partitions_sorted(const int32_t *partitions, size_t n, const char *topic, int *rc,
                  char *errstr, size_t errstr_size)
{
	int32_t *sorted = malloc((n > 0 ? n : 1) * sizeof(*sorted));

	if (sorted == NULL) {
		tally_errstr_set(errstr, errstr_size, "could not sort partitions: out of memory");
		*rc = TALLY_ENOMEM;
		return NULL;
	}
	memcpy(sorted, partitions, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), cmp_i32);
	for (size_t i = 0; i < n; i++) {
		if (sorted[i] < 0 || (i > 0 && sorted[i] == sorted[i - 1])) {
			tally_errstr_set(errstr, errstr_size, "partition %d of \"%s\" %s",
			                 (int)sorted[i], topic,
			                 sorted[i] < 0 ? "is negative" : "is given twice");
			free(sorted);
			*rc = TALLY_EINVAL;
			return NULL;
		}
	}
	*rc = 0;
	return sorted;
}

/* "{1,2,3}": an integer[] parameter (malloc'd), or NULL when out of memory. */
static char *
int_array(const int32_t *v, size_t n)
{
	char *a = malloc(n * 12 + 3);
	size_t len = 0;

	if (a == NULL)
		return NULL;
	a[len++] = '{';
	for (size_t i = 0; i < n; i++)
		len += (size_t)sprintf(a + len, "%s%d", i ? "," : "", (int)v[i]);
	strcpy(a + len, "}");
	return a;
}

static int32_t
get_i32(const PGresult *res, int row, int col)
{
	uint32_t be;

	memcpy(&be, PQgetvalue(res, row, col), 4);
	return (int32_t)be32toh(be);
}

static int64_t
get_i64(const PGresult *res, int row, int col)
{
	uint64_t be;

	memcpy(&be, PQgetvalue(res, row, col), 8);
	return (int64_t)be64toh(be);
}

/* A malloc'd copy of a binary bytea field (at least one byte allocated). */
static void *
get_bytes(const PGresult *res, int row, int col, size_t *len)
{
	size_t n = (size_t)PQgetlength(res, row, col);
	void *p = malloc(n > 0 ? n : 1);

	if (p != NULL)
		memcpy(p, PQgetvalue(res, row, col), n);
	*len = n;
	return p;
}

/* The parts' partitions sorted, checked distinct, and every source offset among them. */
static int32_t *
parts_checked(const tally_pg_checkpoint_t *c, int *rc, char *errstr, size_t errstr_size)
{
	int32_t *sorted = malloc(c->nparts * sizeof(*sorted));

	if (sorted == NULL) {
		tally_errstr_set(errstr, errstr_size, "could not store the parts: out of memory");
		*rc = TALLY_ENOMEM;
		return NULL;
	}
	for (size_t i = 0; i < c->nparts; i++)
		sorted[i] = c->parts[i].partition;
	{
		int32_t *s = partitions_sorted(sorted, c->nparts, c->topic, rc, errstr, errstr_size);

		free(sorted);
		if ((sorted = s) == NULL)
			return NULL;
	}
	/* Another instance owns every other partition's offset: never write one unfenced. */
	for (size_t i = 0; i < c->noffsets; i++) {
		int32_t p = c->offsets[i].partition;

		if (bsearch(&p, sorted, c->nparts, sizeof(*sorted), cmp_i32) == NULL) {
			tally_errstr_set(errstr, errstr_size, "the offset of partition %d of \"%s\" "
			                 "comes without its part", (int)p, c->topic);
			free(sorted);
			*rc = TALLY_EINVAL;
			return NULL;
		}
	}
	*rc = 0;
	return sorted;
}

/*
 * Lock the parts' owner rows (ascending, as claims take them) and check each names the
 * writer at the part's epoch. Held to the commit: a claim waits for this cut, and a cut
 * after a claim sees the new epoch.
 */
static int
parts_fence(PGconn *conn, const tally_pg_checkpoint_t *c, const int32_t *sorted,
            char *errstr, size_t errstr_size)
{
	char *arr = int_array(sorted, c->nparts);
	const char *v[3] = {c->election_id, c->topic, arr};
	PGresult *res;
	int rc = 0;

	if (arr == NULL) {
		tally_errstr_set(errstr, errstr_size, "could not check the owners: out of memory");
		return TALLY_ENOMEM;
	}
	res = PQexecParams(conn,
	                   "SELECT partition, owner, epoch FROM partition_owners"
	                   " WHERE election_id = $1 AND topic = $2"
	                   " AND partition = ANY ($3::integer[])"
	                   " ORDER BY partition FOR UPDATE",
	                   3, NULL, v, NULL, NULL, 0);
	free(arr);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		rc = tally__pg_failed(conn, res, "could not check the partitions' owners", errstr,
		                      errstr_size);
		PQclear(res);
		return rc;
	}
	for (size_t i = 0; i < c->nparts && rc == 0; i++) {
		const tally_pg_part_t *pt = &c->parts[i];
		int row = -1;

		for (int r = 0; r < PQntuples(res) && row < 0; r++)
			if (strtol(PQgetvalue(res, r, 0), NULL, 10) == pt->partition)
				row = r;
		if (row < 0) {
			tally_errstr_set(errstr, errstr_size, "fenced: partition %d of \"%s\" is claimed "
			                 "by no one, not \"%s\" at epoch %" PRId64, (int)pt->partition,
			                 c->topic, c->owner, pt->epoch);
			rc = TALLY_EFENCED;
		} else if (strcmp(PQgetvalue(res, row, 1), c->owner) != 0 ||
		           strtoll(PQgetvalue(res, row, 2), NULL, 10) != pt->epoch) {
			tally_errstr_set(errstr, errstr_size, "fenced: partition %d of \"%s\" is owned by "
			                 "\"%s\" at epoch %s, not \"%s\" at epoch %" PRId64,
			                 (int)pt->partition, c->topic, PQgetvalue(res, row, 1),
			                 PQgetvalue(res, row, 2), c->owner, pt->epoch);
			rc = TALLY_EFENCED;
		}
	}
	PQclear(res);
	return rc;
}

/* Upsert each part's state (one statement a part: the state is a binary parameter). */
static int
parts_store(PGconn *conn, const tally_pg_checkpoint_t *c, char *errstr, size_t errstr_size)
{
	int rc = 0;

	for (size_t i = 0; i < c->nparts && rc == 0; i++) {
		const tally_pg_part_t *pt = &c->parts[i];
		char part[16], epoch[24], version[24];
		const char *v[8] = {c->election_id, c->topic, part, c->owner, epoch, version,
		                    pt->state != NULL ? pt->state : "", pt->forward};
		int len[8] = {0, 0, 0, 0, 0, 0, (int)pt->state_len, (int)pt->forward_len};
		int fmt[8] = {0, 0, 0, 0, 0, 0, 1, 1};

		snprintf(part, sizeof(part), "%d", (int)pt->partition);
		snprintf(epoch, sizeof(epoch), "%" PRId64, pt->epoch);
		snprintf(version, sizeof(version), "%" PRIu64, pt->version);
		rc = tally__pg_exec(conn,
		                    "INSERT INTO partition_states (election_id, topic, partition, owner,"
		                    " epoch, version, state, forward)"
		                    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
		                    " ON CONFLICT (election_id, topic, partition) DO UPDATE SET"
		                    " owner = EXCLUDED.owner, epoch = EXCLUDED.epoch,"
		                    " version = EXCLUDED.version, state = EXCLUDED.state,"
		                    " forward = EXCLUDED.forward, committed_at = now()",
		                    8, v, len, fmt, "could not store a partition's state", errstr,
		                    errstr_size);
	}
	return rc;
}

int
tally_pg_partitions_claim(PGconn *conn, const char *election_id, const char *topic,
                          const char *owner, const int32_t *partitions, size_t n,
                          tally_pg_claimed_t *out, char *errstr, size_t errstr_size)
{
	int32_t *sorted;
	char *arr;
	PGresult *res = NULL;
	int rc;

	if (n == 0)
		return 0;
	if ((sorted = partitions_sorted(partitions, n, topic, &rc, errstr, errstr_size)) == NULL)
		return rc;
	arr = int_array(sorted, n);
	free(sorted);
	if (arr == NULL) {
		tally_errstr_set(errstr, errstr_size, "could not claim partitions: out of memory");
		return TALLY_ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		out[i] = (tally_pg_claimed_t){.partition = partitions[i], .next_offset = -1};
	if ((rc = tally__pg_exec(conn, "BEGIN", 0, NULL, NULL, NULL, "could not begin a claim",
	                         errstr, errstr_size)) != 0)
		goto fail;
	{
		const char *v[4] = {election_id, topic, owner, arr};

		/* Ascending, as cuts lock them. Waits for a cut in flight on these rows. */
		res = PQexecParams(conn,
		                   "INSERT INTO partition_owners (election_id, topic, partition, owner,"
		                   " epoch) SELECT $1, $2, p, $3, 1 FROM unnest($4::integer[]) AS t(p)"
		                   " ORDER BY p"
		                   " ON CONFLICT (election_id, topic, partition) DO UPDATE SET"
		                   " owner = EXCLUDED.owner, epoch = partition_owners.epoch + 1,"
		                   " claimed_at = now()"
		                   " RETURNING partition, epoch",
		                   4, NULL, v, NULL, NULL, 1);
		if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != (int)n) {
			rc = PQresultStatus(res) != PGRES_TUPLES_OK
			         ? tally__pg_failed(conn, res, "could not claim partitions", errstr,
			                            errstr_size)
			         : TALLY_EIO;
			if (rc == TALLY_EIO && PQresultStatus(res) == PGRES_TUPLES_OK)
				tally_errstr_set(errstr, errstr_size, "could not claim partitions: %d rows "
				                 "claimed, not %zu", PQntuples(res), n);
			goto fail;
		}
		for (int r = 0; r < PQntuples(res); r++)
			for (size_t i = 0; i < n; i++)
				if (out[i].partition == get_i32(res, r, 0))
					out[i].epoch = get_i64(res, r, 1);
		PQclear(res);
	}
	{
		const char *v[3] = {election_id, topic, arr};

		/* A new statement, a new snapshot: it sees a cut that committed while the claim
		 * waited for its rows, and no later cut of theirs can commit (they are ours). */
		res = PQexecParams(conn,
		                   "SELECT t.p, s.version, s.state, o.next_offset, s.forward"
		                   " FROM unnest($3::integer[]) AS t(p)"
		                   " LEFT JOIN partition_states AS s ON s.election_id = $1"
		                   " AND s.topic = $2 AND s.partition = t.p"
		                   " LEFT JOIN checkpoint_offsets AS o ON o.election_id = $1"
		                   " AND o.topic = $2 AND o.partition = t.p",
		                   3, NULL, v, NULL, NULL, 1);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			rc = tally__pg_failed(conn, res, "could not read the claimed partitions", errstr,
			                      errstr_size);
			goto fail;
		}
		for (int r = 0; r < PQntuples(res) && rc == 0; r++) {
			int32_t p = get_i32(res, r, 0);

			for (size_t i = 0; i < n && rc == 0; i++) {
				if (out[i].partition != p)
					continue;
				if (!PQgetisnull(res, r, 1)) {
					out[i].version = (uint64_t)get_i64(res, r, 1);
					if ((out[i].state = get_bytes(res, r, 2, &out[i].state_len)) == NULL) {
						tally_errstr_set(errstr, errstr_size, "could not read the claimed "
						                 "partitions: out of memory");
						rc = TALLY_ENOMEM;
					}
				}
				if (!PQgetisnull(res, r, 3))
					out[i].next_offset = get_i64(res, r, 3);
				if (rc == 0 && !PQgetisnull(res, r, 4) &&
				    (out[i].forward = get_bytes(res, r, 4, &out[i].forward_len)) == NULL) {
					tally_errstr_set(errstr, errstr_size, "could not read the claimed "
					                 "partitions: out of memory");
					rc = TALLY_ENOMEM;
				}
			}
		}
		PQclear(res);
		res = NULL;
		if (rc != 0)
			goto fail;
	}
	{
		/* The watchers learn of the new owners (the results leadership follows the owner
		 * of the lowest partition) at once. */
		const char *v[2] = {TALLY_PG_PARTS_CHANNEL, election_id};

		if ((rc = tally__pg_exec(conn, "SELECT pg_notify($1, $2)", 2, v, NULL, NULL,
		                         "could not notify the watchers of a claim", errstr,
		                         errstr_size)) != 0)
			goto fail;
	}
	if ((rc = tally__pg_exec(conn, "COMMIT", 0, NULL, NULL, NULL, "could not commit a claim",
	                         errstr, errstr_size)) != 0)
		goto fail;
	free(arr);
	return 0;
fail:
	PQclear(res);
	tally__pg_rollback(conn);
	free(arr);
	for (size_t i = 0; i < n; i++) {
		free(out[i].state);
		free(out[i].forward);
		out[i] = (tally_pg_claimed_t){.partition = partitions[i], .next_offset = -1};
	}
	return rc;
}

void
tally_pg_parts_free(tally_pg_part_t *parts, size_t n)
{
	if (parts == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free(parts[i].state);
		free(parts[i].forward);
	}
	free(parts);
}

int
tally_pg_parts_read(PGconn *conn, const char *election_id, const char *topic,
                    tally_pg_part_t **parts, size_t *n, char *errstr, size_t errstr_size)
{
	const char *v[2] = {election_id, topic};
	PGresult *res = PQexecParams(conn,
	                             "SELECT partition, epoch, version, state FROM partition_states"
	                             " WHERE election_id = $1 AND topic = $2 ORDER BY partition",
	                             2, NULL, v, NULL, NULL, 1);
	tally_pg_part_t *p = NULL;
	size_t rows;
	int rc = 0;

	*parts = NULL;
	*n = 0;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		rc = tally__pg_failed(conn, res, "could not read the partitions' states", errstr,
		                      errstr_size);
		PQclear(res);
		return rc;
	}
	rows = (size_t)PQntuples(res);
	if (rows > 0 && (p = calloc(rows, sizeof(*p))) == NULL)
		rc = TALLY_ENOMEM;
	for (size_t r = 0; r < rows && rc == 0; r++) {
		p[r].partition = get_i32(res, (int)r, 0);
		p[r].epoch = get_i64(res, (int)r, 1);
		p[r].version = (uint64_t)get_i64(res, (int)r, 2);
		if ((p[r].state = get_bytes(res, (int)r, 3, &p[r].state_len)) == NULL)
			rc = TALLY_ENOMEM;
	}
	PQclear(res);
	if (rc != 0) {
		tally_pg_parts_free(p, rows);
		tally_errstr_set(errstr, errstr_size, "could not read the partitions' states: out of "
		                 "memory");
		return rc;
	}
	*parts = p;
	*n = rows;
	return 0;
}

/* ---- writing a checkpoint ------------------------------------------------------------ */

int
tally_pg_checkpoint_write(PGconn *conn, const tally_pg_checkpoint_t *c, char *errstr,
                          size_t errstr_size)
{
	char version[24];
	int32_t *sorted = NULL;
	int rc;

	snprintf(version, sizeof(version), "%llu", (unsigned long long)c->version);
	if (c->nparts > 0 && c->xact != NULL)
		*c->xact = 0;
	if (c->nparts > 0 && (sorted = parts_checked(c, &rc, errstr, errstr_size)) == NULL)
		return rc;
	if ((rc = tally__pg_exec(conn, "BEGIN", 0, NULL, NULL, NULL, "could not begin checkpoint",
	                   errstr, errstr_size)) != 0)
		goto fail;
	/* Fenced first: a cut of a lost partition writes nothing, not even its votes. */
	if (c->nparts > 0 && (rc = parts_fence(conn, c, sorted, errstr, errstr_size)) != 0)
		goto fail;
	if (c->nvotes > 0 &&
	    (rc = c->journal ? tally_pg_journal_append(conn, c->election_id, c->votes, c->nvotes,
	                                               errstr, errstr_size)
	                     : tally__pg_copy_votes(conn, c->election_id, c->votes, c->nvotes,
	                                            errstr, errstr_size)) != 0)
		goto fail;
	if (c->nparts > 0) {
		if ((rc = parts_store(conn, c, errstr, errstr_size)) != 0)
			goto fail;
	} else {
		const char *v[3] = {c->election_id, version, c->state};
		int len[3] = {0, 0, (int)c->state_len};
		int fmt[3] = {0, 0, 1};

		if ((rc = tally__pg_exec(conn,
		                   "INSERT INTO checkpoints (election_id, version, state)"
		                   " VALUES ($1, $2, $3)",
		                   3, v, len, fmt, "could not insert checkpoint", errstr,
		                   errstr_size)) != 0)
			goto fail;
	}
	if (c->set_status &&
	    (rc = tally_pg_election_set_status(conn, c->election_id, c->status, errstr,
	                                       errstr_size)) != 0)
		goto fail;
	if ((rc = offsets_store(conn, c, c->topic, c->offsets, c->noffsets, errstr,
	                        errstr_size)) != 0 ||
	    (c->dl_topic != NULL &&
	     (rc = offsets_store(conn, c, c->dl_topic, c->dl_offsets, c->ndl_offsets, errstr,
	                         errstr_size)) != 0))
		goto fail;
	if (c->nparts > 0) {
		/* Delivered at the commit, to every watcher of the election (store.h). */
		const char *v[2] = {TALLY_PG_PARTS_CHANNEL, c->election_id};

		if ((rc = tally__pg_exec(conn, "SELECT pg_notify($1, $2)", 2, v, NULL, NULL,
		                         "could not notify the watchers", errstr, errstr_size)) != 0)
			goto fail;
		/* If the COMMIT's answer is lost, this id says whether it went through, even
		 * after a new owner has overwritten the parts (their rows could not). */
		if (c->xact != NULL) {
			PGresult *res = PQexec(conn, "SELECT txid_current()");

			if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
				rc = tally__pg_failed(conn, res, "could not read the transaction's id",
				                      errstr, errstr_size);
				PQclear(res);
				goto fail;
			}
			*c->xact = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
			PQclear(res);
		}
	} else {
		char keep[16];
		const char *v[2] = {c->election_id, keep};

		snprintf(keep, sizeof(keep), "%d", TALLY_PG_CHECKPOINTS_KEPT);
		if ((rc = tally__pg_exec(conn,
		                   "DELETE FROM checkpoints WHERE election_id = $1 AND checkpoint_id <"
		                   " (SELECT min(checkpoint_id) FROM (SELECT checkpoint_id FROM"
		                   " checkpoints WHERE election_id = $1 ORDER BY checkpoint_id DESC"
		                   " LIMIT $2) AS newest)",
		                   2, v, NULL, NULL, "could not prune checkpoints", errstr,
		                   errstr_size)) != 0)
			goto fail;
	}
	if ((rc = tally__pg_exec(conn, "COMMIT", 0, NULL, NULL, NULL, "could not commit checkpoint",
	                   errstr, errstr_size)) != 0)
		goto fail;
	free(sorted);
	return 0;
fail:
	tally__pg_rollback(conn);
	free(sorted);
	return rc;
}

/* ---- reading ----------------------------------------------------------------------- */

int
tally_pg_checkpoint_latest(PGconn *conn, const char *election_id, void **state,
                           size_t *state_len, uint64_t *version, char *errstr,
                           size_t errstr_size)
{
	const char *v[1] = {election_id};
	PGresult *res = PQexecParams(conn,
	                             "SELECT state, version FROM checkpoints WHERE election_id = $1"
	                             " ORDER BY checkpoint_id DESC LIMIT 1",
	                             1, NULL, v, NULL, NULL, 1);
	int rc = 0;

	*state = NULL;
	*state_len = 0;
	if (version != NULL)
		*version = 0;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		rc = tally_pg_err(conn, res);
		tally__pg_set_error(conn, res, "could not read the latest checkpoint", errstr, errstr_size);
	} else if (PQntuples(res) == 1) {
		size_t n = (size_t)PQgetlength(res, 0, 0);
		uint64_t be;

		if ((*state = malloc(n > 0 ? n : 1)) == NULL) {
			rc = TALLY_ENOMEM;
			snprintf(errstr, errstr_size, "could not read the latest checkpoint: out of memory");
		} else {
			memcpy(*state, PQgetvalue(res, 0, 0), n);
			*state_len = n;
			memcpy(&be, PQgetvalue(res, 0, 1), 8);
			if (version != NULL)
				*version = be64toh(be);
		}
	}
	PQclear(res);
	return rc;
}

/* Whether the write's transaction committed (by its id, if it got one), else whether
 * every part's stored row is the part (epoch, version, bytes). */
static int
parts_committed(PGconn *conn, const tally_pg_checkpoint_t *c, char *errstr,
                size_t errstr_size)
{
	tally_pg_part_t *stored;
	size_t n;
	int rc;

	if (c->xact != NULL) {
		char id[24];
		const char *v[1] = {id};
		PGresult *res;
		const char *status;

		/* No id: the connection broke before the COMMIT was sent. */
		if (*c->xact == 0)
			return 0;
		snprintf(id, sizeof(id), "%" PRId64, *c->xact);
		res = PQexecParams(conn, "SELECT txid_status($1::bigint)", 1, NULL, v, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
			rc = tally__pg_failed(conn, res, "could not check the checkpoint's commit", errstr,
			                      errstr_size);
			PQclear(res);
			return rc;
		}
		status = PQgetisnull(res, 0, 0) ? NULL : PQgetvalue(res, 0, 0);
		if (status != NULL && strcmp(status, "in progress") == 0) {
			/* Its backend has not noticed the broken connection yet: ask again later. */
			tally_errstr_set(errstr, errstr_size, "the checkpoint's transaction %s is still "
			                 "in progress", id);
			rc = TALLY_EAGAIN;
		} else if (status != NULL) {
			rc = strcmp(status, "committed") == 0;
		}
		PQclear(res);
		/* NULL: too old for PostgreSQL to know; the rows say instead. */
		if (status != NULL)
			return rc;
	}
	if ((rc = tally_pg_parts_read(conn, c->election_id, c->topic, &stored, &n, errstr,
	                              errstr_size)) != 0)
		return rc;
	rc = 1;
	for (size_t i = 0; i < c->nparts && rc == 1; i++) {
		const tally_pg_part_t *pt = &c->parts[i];
		const tally_pg_part_t *s = NULL;

		for (size_t j = 0; j < n && s == NULL; j++)
			if (stored[j].partition == pt->partition)
				s = &stored[j];
		if (s == NULL || s->epoch != pt->epoch || s->version != pt->version ||
		    s->state_len != pt->state_len ||
		    (pt->state_len > 0 && memcmp(s->state, pt->state, pt->state_len) != 0))
			rc = 0;
	}
	tally_pg_parts_free(stored, n);
	return rc;
}

int
tally_pg_checkpoint_committed(PGconn *conn, const tally_pg_checkpoint_t *c, char *errstr,
                              size_t errstr_size)
{
	void *state;
	size_t len;
	uint64_t version;
	int rc;

	if (c->nparts > 0)
		return parts_committed(conn, c, errstr, errstr_size);
	rc = tally_pg_checkpoint_latest(conn, c->election_id, &state, &len, &version, errstr,
	                                errstr_size);
	if (rc != 0)
		return rc;
	rc = state != NULL && version == c->version && len == c->state_len &&
	     memcmp(state, c->state, len) == 0;
	free(state);
	return rc;
}

int
tally_pg_offsets_load(PGconn *conn, const char *election_id, const char *topic,
                      int64_t *offsets, int n, char *errstr, size_t errstr_size)
{
	const char *v[2] = {election_id, topic};
	PGresult *res = PQexecParams(conn,
	                             "SELECT partition, next_offset FROM checkpoint_offsets"
	                             " WHERE election_id = $1 AND topic = $2",
	                             2, NULL, v, NULL, NULL, 0);
	int rc = 0;

	for (int p = 0; p < n; p++)
		offsets[p] = -1;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		rc = tally_pg_err(conn, res);
		tally__pg_set_error(conn, res, "could not read checkpoint offsets", errstr, errstr_size);
	} else {
		for (int i = 0; i < PQntuples(res); i++) {
			long p = strtol(PQgetvalue(res, i, 0), NULL, 10);

			if (p >= 0 && p < n) {
				offsets[p] = strtoll(PQgetvalue(res, i, 1), NULL, 10);
				rc++;
			}
		}
	}
	PQclear(res);
	return rc;
}

int
tally_pg_votes_voters(PGconn *conn, tally_uuid_t **ids, size_t *count, char *errstr,
                      size_t errstr_size)
{
	PGresult *res;
	tally_uuid_t *v = NULL;
	size_t n = 0, cap = 0;
	char *line;
	int len, rc = 0;
	bool header = true;
	bool own_tx = PQtransactionStatus(conn) == PQTRANS_IDLE;

	*ids = NULL;
	*count = 0;
	/* The votes table and the journal in one snapshot: a piece moved meanwhile is in one. */
	if (own_tx && (rc = tally__pg_exec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0,
	                             NULL, NULL, NULL, "could not begin reading the stored votes",
	                             errstr, errstr_size)) != 0)
		return rc;
	/* A fixed statement: one vote per voter is the votes table's primary key. */
	res = PQexec(conn, "COPY votes (voter_id) TO STDOUT (FORMAT binary)");
	if (PQresultStatus(res) != PGRES_COPY_OUT) {
		rc = tally_pg_err(conn, res);
		tally__pg_set_error(conn, res, "could not read the stored votes", errstr, errstr_size);
		PQclear(res);
		if (own_tx)
			tally__pg_rollback(conn);
		return rc;
	}
	PQclear(res);
	while ((len = PQgetCopyData(conn, &line, 0)) > 0) {
		/* The first buffer starts with the 19-byte header; the last is the -1 trailer. */
		const char *p = line;
		int left = len;

		if (header) {
			p += 19;
			left -= 19;
			header = false;
		}
		if (left == 2 + 4 + 16 && rc == 0) {
			uint64_t be[2];

			if (n == cap) {
				size_t ncap = cap ? cap * 2 : 1u << 16;
				tally_uuid_t *nv = realloc(v, ncap * sizeof(*nv));

				if (nv == NULL) {
					rc = TALLY_ENOMEM;
					snprintf(errstr, errstr_size, "could not read the stored votes: out of "
					         "memory");
				} else {
					v = nv;
					cap = ncap;
				}
			}
			if (rc == 0) {
				memcpy(be, p + 6, 16);
				v[n].hi = be64toh(be[0]);
				v[n].lo = be64toh(be[1]);
				n++;
			}
		}
		PQfreemem(line);
	}
	if (len == -2 && rc == 0) {
		rc = TALLY_EIO;
		tally__pg_set_error(conn, NULL, "could not read the stored votes", errstr, errstr_size);
	}
	while ((res = PQgetResult(conn)) != NULL) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK && rc == 0) {
			rc = tally_pg_err(conn, res);
			tally__pg_set_error(conn, res, "could not read the stored votes", errstr, errstr_size);
		}
		PQclear(res);
	}
	if (rc == 0)
		rc = tally_pg_journal_voters(conn, &v, &n, &cap, errstr, errstr_size);
	if (rc == 0 && own_tx)
		rc = tally__pg_exec(conn, "COMMIT", 0, NULL, NULL, NULL, "could not end reading the stored "
		              "votes", errstr, errstr_size);
	if (rc != 0) {
		if (own_tx)
			tally__pg_rollback(conn);
		free(v);
		return rc;
	}
	*ids = v;
	*count = n;
	return 0;
}

/* ---- the election row ------------------------------------------------------------ */

int
tally_pg_election_get(PGconn *conn, const char *election_id, tally_election_t *out,
                      char *errstr, size_t errstr_size)
{
	const char *v[1] = {election_id};
	PGresult *res = PQexecParams(conn,
	                             "SELECT extract(epoch FROM opens_at)::bigint,"
	                             " extract(epoch FROM closes_at)::bigint, status"
	                             " FROM elections WHERE election_id = $1",
	                             1, NULL, v, NULL, NULL, 0);
	int rc = 0;

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		rc = tally_pg_err(conn, res);
		tally__pg_set_error(conn, res, "could not read the election", errstr, errstr_size);
	} else if (PQntuples(res) != 1) {
		rc = TALLY_ENOENT;
		snprintf(errstr, errstr_size, "election \"%s\" is not in the elections table "
		         "(run tally-gen first, or give --election-id)", election_id);
	} else {
		const char *status = PQgetvalue(res, 0, 2);

		memset(out, 0, sizeof(*out));
		snprintf(out->id, sizeof(out->id), "%s", election_id);
		out->opens_at = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		out->closes_at = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
		out->status = TALLY_ELECTION_SCHEDULED;
		for (int s = TALLY_ELECTION_SCHEDULED; s <= TALLY_ELECTION_FINAL; s++)
			if (strcmp(status, tally_election_status_name(s)) == 0)
				out->status = (tally_election_status_t)s;
	}
	PQclear(res);
	return rc;
}

int
tally_pg_election_ensure(PGconn *conn, const char *election_id, int64_t opens_at,
                         int64_t closes_at, char *errstr, size_t errstr_size)
{
	char opens[24], closes[24];
	const char *v[3] = {election_id, opens, closes};
	tally_election_t row;
	int rc;

	snprintf(opens, sizeof(opens), "%" PRId64, opens_at);
	snprintf(closes, sizeof(closes), "%" PRId64, closes_at);
	if ((rc = tally__pg_exec(conn,
	                         "INSERT INTO elections (election_id, opens_at, closes_at)"
	                         " VALUES ($1, to_timestamp($2::bigint), to_timestamp($3::bigint))"
	                         " ON CONFLICT (election_id) DO NOTHING",
	                         3, v, NULL, NULL, "could not insert the election", errstr,
	                         errstr_size)) != 0 ||
	    (rc = tally_pg_election_get(conn, election_id, &row, errstr, errstr_size)) != 0)
		return rc;
	if (row.opens_at != opens_at || row.closes_at != closes_at) {
		snprintf(errstr, errstr_size,
		         "election \"%s\" exists with another window (opens %" PRId64 ", closes %"
		         PRId64 ", not %" PRId64 " and %" PRId64 ")",
		         election_id, row.opens_at, row.closes_at, opens_at, closes_at);
		return TALLY_EEXISTS;
	}
	return 0;
}

int
tally_pg_election_set_status(PGconn *conn, const char *election_id,
                             tally_election_status_t status, char *errstr, size_t errstr_size)
{
	const char *v[2] = {election_id, tally_election_status_name((int)status)};

	return tally__pg_exec(conn, "UPDATE elections SET status = $2 WHERE election_id = $1", 2, v,
	                NULL, NULL, "could not update the election's status", errstr,
	                errstr_size);
}
