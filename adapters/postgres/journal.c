/*
 * The vote journal (include/tally/pg_journal.h): votes packed into pieces by a checkpoint,
 * moved into the votes table later, one piece per transaction.
 *
 * Within a checkpoint's votes, consecutive votes mostly come from the same partition at
 * nearby offsets and close voting times, so the deltas fit in one or two bytes; the voter
 * ids are random and stay 16 bytes. Candidates are few: each piece carries its own table.
 */
#include <endian.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tally/error.h>
#include <tally/pg.h>
#include <tally/pg_journal.h>

#include "pg_int.h"

#define MAGIC "TVJ1"
#define HEADER (4 + 4 + 4)
#define VARINT_MAX 10

/* ---- encoding -------------------------------------------------------------------------- */

static uint64_t
zigzag(int64_t v)
{
	return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static int64_t
unzigzag(uint64_t v)
{
	return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

static uint8_t *
put_varint(uint8_t *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

static void
put_u32le(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static void
put_uuid(uint8_t *p, const tally_uuid_t *id)
{
	uint64_t be[2] = {htobe64(id->hi), htobe64(id->lo)};

	memcpy(p, be, 16);
}

/* Candidates of one piece: an open-addressing map from id to index. */
typedef struct cand_map {
	tally_uuid_t *ids;        /* by index */
	uint32_t *slots;          /* index + 1, 0 empty */
	uint32_t n, mask;
} cand_map_t;

static int
cand_index(cand_map_t *m, const tally_uuid_t *id, uint32_t *idx)
{
	uint32_t i;

	if ((m->n + 1) * 2 > m->mask + 1) {
		uint32_t nmask = m->mask ? m->mask * 2 + 1 : 255;
		uint32_t *ns = calloc((size_t)nmask + 1, sizeof(*ns));
		tally_uuid_t *ni = realloc(m->ids, ((size_t)nmask + 1) * sizeof(*ni));

		if (ns == NULL || ni == NULL) {
			free(ns);
			if (ni != NULL)
				m->ids = ni;
			return TALLY_ENOMEM;
		}
		m->ids = ni;
		for (uint32_t k = 0; k < m->n; k++) {
			uint32_t j = (uint32_t)tally_uuid_hash(&m->ids[k]) & nmask;

			while (ns[j] != 0)
				j = (j + 1) & nmask;
			ns[j] = k + 1;
		}
		free(m->slots);
		m->slots = ns;
		m->mask = nmask;
	}
	for (i = (uint32_t)tally_uuid_hash(id) & m->mask; m->slots[i] != 0; i = (i + 1) & m->mask) {
		if (tally_uuid_equal(&m->ids[m->slots[i] - 1], id)) {
			*idx = m->slots[i] - 1;
			return 0;
		}
	}
	m->ids[m->n] = *id;
	m->slots[i] = ++m->n;
	*idx = m->n - 1;
	return 0;
}

int
tally_pg_journal_encode(const tally_pg_vote_row_t *votes, size_t n, void **out, size_t *len)
{
	cand_map_t cm = {0};
	uint32_t *cidx = NULL;
	uint8_t *buf = NULL, *p;
	int64_t part = 0, off = 0, t = 0;
	int rc = 0;

	*out = NULL;
	*len = 0;
	if (n > TALLY_PG_JOURNAL_PIECE)
		return TALLY_EINVAL;
	if (n > 0 && (cidx = malloc(n * sizeof(*cidx))) == NULL)
		return TALLY_ENOMEM;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = cand_index(&cm, &votes[i].candidate_id, &cidx[i]);
	if (rc == 0 &&
	    (buf = malloc(HEADER + (size_t)cm.n * 16 + n * (16 + 4 * VARINT_MAX))) == NULL)
		rc = TALLY_ENOMEM;
	if (rc == 0) {
		memcpy(buf, MAGIC, 4);
		put_u32le(buf + 4, (uint32_t)n);
		put_u32le(buf + 8, cm.n);
		p = buf + HEADER;
		for (uint32_t k = 0; k < cm.n; k++, p += 16)
			put_uuid(p, &cm.ids[k]);
		for (size_t i = 0; i < n; i++) {
			const tally_pg_vote_row_t *v = &votes[i];

			put_uuid(p, &v->voter_id);
			p = put_varint(p + 16, cidx[i]);
			p = put_varint(p, zigzag((int64_t)v->partition - part));
			p = put_varint(p, zigzag(v->offset - off));
			p = put_varint(p, zigzag(v->voting_time - t));
			part = v->partition;
			off = v->offset;
			t = v->voting_time;
		}
		*out = buf;
		*len = (size_t)(p - buf);
	}
	free(cidx);
	free(cm.ids);
	free(cm.slots);
	return rc;
}

/* ---- decoding -------------------------------------------------------------------------- */

typedef struct reader {
	const uint8_t *p, *end;
	bool bad;
} reader_t;

static uint64_t
get_varint(reader_t *r)
{
	uint64_t v = 0;

	for (int shift = 0; shift < 64; shift += 7) {
		uint8_t b;

		if (r->p == r->end) {
			r->bad = true;
			return 0;
		}
		b = *r->p++;
		v |= (uint64_t)(b & 0x7f) << shift;
		if ((b & 0x80) == 0)
			return v;
	}
	r->bad = true;
	return 0;
}

static void
get_uuid(reader_t *r, tally_uuid_t *id)
{
	uint64_t be[2];

	if ((size_t)(r->end - r->p) < 16) {
		r->bad = true;
		return;
	}
	memcpy(be, r->p, 16);
	r->p += 16;
	id->hi = be64toh(be[0]);
	id->lo = be64toh(be[1]);
}

static uint32_t
get_u32le(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

int
tally_pg_journal_decode(const void *data, size_t len, tally_pg_vote_row_t **votes, size_t *n,
                        char *errstr, size_t errstr_size)
{
	reader_t r = {data, (const uint8_t *)data + len, false};
	tally_uuid_t *cands = NULL;
	tally_pg_vote_row_t *v = NULL;
	uint32_t nv, nc;
	int64_t part = 0, off = 0, t = 0;

	*votes = NULL;
	*n = 0;
	if (len < HEADER || memcmp(data, MAGIC, 4) != 0) {
		snprintf(errstr, errstr_size, "journal piece: not a version 1 piece (%zu bytes)", len);
		return TALLY_ECORRUPT;
	}
	nv = get_u32le(r.p + 4);
	nc = get_u32le(r.p + 8);
	r.p += HEADER;
	if (nv > TALLY_PG_JOURNAL_PIECE || (size_t)(r.end - r.p) / 16 < nc ||
	    (size_t)(r.end - r.p) - (size_t)nc * 16 < (size_t)nv * 20) {
		snprintf(errstr, errstr_size, "journal piece: %u votes and %u candidates do not fit in "
		         "%zu bytes", nv, nc, len);
		return TALLY_ECORRUPT;
	}
	if ((nc > 0 && (cands = malloc(nc * sizeof(*cands))) == NULL) ||
	    (nv > 0 && (v = malloc(nv * sizeof(*v))) == NULL)) {
		free(cands);
		snprintf(errstr, errstr_size, "journal piece: out of memory");
		return TALLY_ENOMEM;
	}
	for (uint32_t k = 0; k < nc; k++)
		get_uuid(&r, &cands[k]);
	for (uint32_t i = 0; i < nv && !r.bad; i++) {
		uint64_t c;

		get_uuid(&r, &v[i].voter_id);
		c = get_varint(&r);
		part += unzigzag(get_varint(&r));
		off += unzigzag(get_varint(&r));
		t += unzigzag(get_varint(&r));
		if (r.bad || c >= nc || part < 0 || part > INT32_MAX || off < 0) {
			snprintf(errstr, errstr_size, "journal piece: vote %u of %u is malformed", i + 1,
			         nv);
			r.bad = true;
			break;
		}
		v[i].candidate_id = cands[c];
		v[i].partition = (int32_t)part;
		v[i].offset = off;
		v[i].voting_time = t;
		v[i]._pad = 0;
	}
	if (!r.bad && r.p != r.end) {
		snprintf(errstr, errstr_size, "journal piece: %zu bytes after the last vote",
		         (size_t)(r.end - r.p));
		r.bad = true;
	}
	free(cands);
	if (r.bad) {
		free(v);
		return TALLY_ECORRUPT;
	}
	*votes = v;
	*n = nv;
	return 0;
}

/* ---- in PostgreSQL ---------------------------------------------------------------------- */

int
tally_pg_journal_append(PGconn *conn, const char *election_id, const tally_pg_vote_row_t *votes,
                        size_t n, char *errstr, size_t errstr_size)
{
	for (size_t at = 0; at < n;) {
		size_t k = n - at < TALLY_PG_JOURNAL_PIECE ? n - at : TALLY_PG_JOURNAL_PIECE;
		void *piece;
		size_t len;
		char count[16];
		int rc;

		if ((rc = tally_pg_journal_encode(votes + at, k, &piece, &len)) != 0) {
			snprintf(errstr, errstr_size, "could not journal votes: %s", tally_err2str(rc));
			return rc;
		}
		snprintf(count, sizeof(count), "%zu", k);
		{
			const char *v[3] = {election_id, count, piece};
			int l[3] = {0, 0, (int)len};
			int f[3] = {0, 0, 1};

			rc = tally__pg_exec(conn,
			                 "INSERT INTO vote_journal (election_id, votes, piece)"
			                 " VALUES ($1, $2, $3)",
			                 3, v, l, f, "could not journal votes", errstr, errstr_size);
		}
		free(piece);
		if (rc != 0)
			return rc;
		at += k;
	}
	return 0;
}

int
tally_pg_journal_move_one(PGconn *conn, size_t *moved, char *errstr, size_t errstr_size)
{
	PGresult *res = NULL;
	tally_pg_vote_row_t *votes = NULL;
	size_t n = 0;
	int rc;

	*moved = 0;
	if ((rc = tally__pg_exec(conn, "BEGIN", 0, NULL, NULL, NULL, "could not begin moving votes",
	                      errstr, errstr_size)) != 0)
		return rc;
	/* The oldest piece; SKIP LOCKED lets another mover take the next one meanwhile. */
	res = PQexecParams(conn,
	                   "SELECT journal_id, election_id, piece FROM vote_journal"
	                   " ORDER BY journal_id LIMIT 1 FOR UPDATE SKIP LOCKED",
	                   0, NULL, NULL, NULL, NULL, 1);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		rc = tally_pg_err(conn, res);
		tally__pg_set_error(conn, res, "could not read the vote journal", errstr, errstr_size);
		goto out;
	}
	if (PQntuples(res) == 1) {
		char id[24], election[TALLY_ELECTION_ID_MAX + 1];
		uint64_t be;
		size_t elen = (size_t)PQgetlength(res, 0, 1);

		memcpy(&be, PQgetvalue(res, 0, 0), 8);
		snprintf(id, sizeof(id), "%lld", (long long)(int64_t)be64toh(be));
		if (elen > TALLY_ELECTION_ID_MAX)
			elen = TALLY_ELECTION_ID_MAX;
		memcpy(election, PQgetvalue(res, 0, 1), elen);
		election[elen] = '\0';
		if ((rc = tally_pg_journal_decode(PQgetvalue(res, 0, 2),
		                                  (size_t)PQgetlength(res, 0, 2), &votes, &n, errstr,
		                                  errstr_size)) != 0)
			goto out;
		PQclear(res);
		res = NULL;
		if ((rc = tally__pg_copy_votes(conn, election, votes, n, errstr, errstr_size)) != 0)
			goto out;
		{
			const char *v[1] = {id};

			if ((rc = tally__pg_exec(conn, "DELETE FROM vote_journal WHERE journal_id = $1", 1, v,
			                      NULL, NULL, "could not delete a moved journal piece",
			                      errstr, errstr_size)) != 0)
				goto out;
		}
	}
	if ((rc = tally__pg_exec(conn, "COMMIT", 0, NULL, NULL, NULL, "could not commit moved votes",
	                      errstr, errstr_size)) != 0)
		goto out;
	*moved = n;
out:
	PQclear(res);
	free(votes);
	if (rc != 0)
		tally__pg_rollback(conn);
	return rc;
}

int64_t
tally_pg_journal_votes(PGconn *conn, char *errstr, size_t errstr_size)
{
	PGresult *res = PQexec(conn, "SELECT coalesce(sum(votes), 0) FROM vote_journal");
	int64_t n;

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		int rc = tally_pg_err(conn, res);

		tally__pg_set_error(conn, res, "could not count the journalled votes", errstr,
		                    errstr_size);
		PQclear(res);
		return rc;
	}
	n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return n;
}

int
tally_pg_journal_walk(PGconn *conn, tally_pg_journal_fn fn, void *arg, char *errstr,
                      size_t errstr_size)
{
	PGresult *res;
	int rc = 0;

	/* One piece per result row: the pieces are megabytes each. */
	if (!PQsendQueryParams(conn,
	                       "SELECT election_id, piece FROM vote_journal ORDER BY journal_id",
	                       0, NULL, NULL, NULL, NULL, 1) ||
	    !PQsetSingleRowMode(conn)) {
		tally__pg_set_error(conn, NULL, "could not read the vote journal", errstr, errstr_size);
		return TALLY_EIO;
	}
	while ((res = PQgetResult(conn)) != NULL) {
		ExecStatusType st = PQresultStatus(res);

		if (st == PGRES_SINGLE_TUPLE && rc == 0) {
			tally_pg_vote_row_t *votes;
			size_t n;

			/* Binary results: the text is its bytes (libpq adds the NUL), the piece raw. */
			rc = tally_pg_journal_decode(PQgetvalue(res, 0, 1), (size_t)PQgetlength(res, 0, 1),
			                             &votes, &n, errstr, errstr_size);
			if (rc == 0) {
				rc = fn(PQgetvalue(res, 0, 0), votes, n, arg);
				free(votes);
			}
		} else if (st != PGRES_SINGLE_TUPLE && st != PGRES_TUPLES_OK && rc == 0) {
			rc = tally_pg_err(conn, res);
			tally__pg_set_error(conn, res, "could not read the vote journal", errstr,
			                    errstr_size);
		}
		PQclear(res);
	}
	return rc;
}

typedef struct voters_acc {
	tally_uuid_t **ids;
	size_t *n, *cap;
} voters_acc_t;

static int
add_voters(const char *election_id, const tally_pg_vote_row_t *votes, size_t n, void *arg)
{
	voters_acc_t *a = arg;

	(void)election_id;
	if (*a->n + n > *a->cap) {
		size_t cap = *a->cap ? *a->cap : 65536;
		tally_uuid_t *ids;

		while (cap < *a->n + n)
			cap *= 2;
		if ((ids = realloc(*a->ids, cap * sizeof(*ids))) == NULL)
			return TALLY_ENOMEM;
		*a->ids = ids;
		*a->cap = cap;
	}
	for (size_t i = 0; i < n; i++)
		(*a->ids)[(*a->n)++] = votes[i].voter_id;
	return 0;
}

int
tally_pg_journal_voters(PGconn *conn, tally_uuid_t **ids, size_t *n, size_t *cap, char *errstr,
                        size_t errstr_size)
{
	voters_acc_t a = {ids, n, cap};
	int rc = tally_pg_journal_walk(conn, add_voters, &a, errstr, errstr_size);

	if (rc == TALLY_ENOMEM)
		snprintf(errstr, errstr_size, "could not read the vote journal: out of memory");
	return rc;
}

/* ---- the stored votes as one relation ------------------------------------------------ */

int
tally_pg_stored_votes_open(PGconn *conn, char *errstr, size_t errstr_size)
{
	int rc;

	if ((rc = tally__pg_exec(conn, "CREATE TEMPORARY TABLE journal_votes (voter_id uuid,"
	                         " candidate_id uuid, election_id text, source_partition integer,"
	                         " source_offset bigint)", 0, NULL, NULL, NULL,
	                         "could not create a table for the journalled votes", errstr,
	                         errstr_size)) != 0)
		return rc;
	return tally__pg_exec(conn, "CREATE TEMPORARY VIEW stored_votes AS"
	                      " SELECT voter_id, candidate_id, election_id, source_partition,"
	                      " source_offset FROM votes UNION ALL"
	                      " SELECT voter_id, candidate_id, election_id, source_partition,"
	                      " source_offset FROM pg_temp.journal_votes",
	                      0, NULL, NULL, NULL, "could not create the stored votes' view", errstr,
	                      errstr_size);
}

/* One decoded piece into pg_temp.journal_votes, by text COPY (uuids and the election id). */
static int
copy_piece(PGconn *conn, const char *election_id, const tally_pg_vote_row_t *votes, size_t n,
           char *errstr, size_t errstr_size)
{
	size_t elen = strlen(election_id);
	char *buf, *p;
	PGresult *res;
	int rc = 0;

	/* COPY text would need a tab, newline or backslash escaped: none is in an election id
	 * tally writes, so refuse one rather than guess. */
	if (strpbrk(election_id, "\t\n\r\\") != NULL) {
		snprintf(errstr, errstr_size, "an election id with a tab, newline or backslash");
		return TALLY_EINVAL;
	}
	if ((buf = malloc(n * (2 * TALLY_UUID_STRLEN + 3 + elen + 2 + 11 + 20) + 1)) == NULL) {
		snprintf(errstr, errstr_size, "out of memory");
		return TALLY_ENOMEM;
	}
	p = buf;
	for (size_t i = 0; i < n; i++) {
		tally_uuid_format(&votes[i].voter_id, p);
		p[TALLY_UUID_STRLEN] = '\t';
		p += TALLY_UUID_STRLEN + 1;
		tally_uuid_format(&votes[i].candidate_id, p);
		p[TALLY_UUID_STRLEN] = '\t';
		p += TALLY_UUID_STRLEN + 1;
		memcpy(p, election_id, elen);
		p += elen;
		p += sprintf(p, "\t%d\t%lld\n", (int)votes[i].partition, (long long)votes[i].offset);
	}
	res = PQexec(conn, "COPY pg_temp.journal_votes FROM STDIN");
	if (PQresultStatus(res) != PGRES_COPY_IN)
		rc = tally__pg_failed(conn, res, "could not unpack it", errstr, errstr_size);
	PQclear(res);
	if (rc == 0 && (PQputCopyData(conn, buf, (int)(p - buf)) != 1 ||
	                PQputCopyEnd(conn, NULL) != 1)) {
		tally__pg_set_error(conn, NULL, "could not unpack it", errstr, errstr_size);
		rc = TALLY_EIO;
	}
	while (rc == 0 && (res = PQgetResult(conn)) != NULL) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			rc = tally__pg_failed(conn, res, "could not unpack it", errstr, errstr_size);
		PQclear(res);
	}
	free(buf);
	return rc;
}

int
tally_pg_stored_votes_fill(PGconn *conn, tally_pg_stored_votes_info_t *info, char *errstr,
                           size_t errstr_size)
{
	PGresult *list = PQexec(conn, "SELECT journal_id, election_id FROM vote_journal"
	                              " ORDER BY journal_id");
	char err[400];
	int rc = 0;

	memset(info, 0, sizeof(*info));
	if (PQresultStatus(list) != PGRES_TUPLES_OK) {
		rc = tally__pg_failed(conn, list, "could not list the vote journal", errstr,
		                      errstr_size);
		PQclear(list);
		return rc;
	}
	/* One piece at a time: the pieces are megabytes each. */
	for (int i = 0; i < PQntuples(list) && rc == 0; i++) {
		const char *id = PQgetvalue(list, i, 0);
		PGresult *res = PQexecParams(conn, "SELECT piece FROM vote_journal WHERE journal_id = $1",
		                             1, NULL, &id, NULL, NULL, 1);
		tally_pg_vote_row_t *v = NULL;
		size_t n = 0;

		err[0] = '\0';
		if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
			rc = PQresultStatus(res) != PGRES_TUPLES_OK ? tally_pg_err(conn, res) : TALLY_ENOENT;
			tally__pg_set_error(conn, res, "could not read it", err, sizeof(err));
		} else if ((rc = tally_pg_journal_decode(PQgetvalue(res, 0, 0),
		                                         (size_t)PQgetlength(res, 0, 0), &v, &n, err,
		                                         sizeof(err))) != 0) {
			info->bad_piece = strtoll(id, NULL, 10);
		} else if ((rc = copy_piece(conn, PQgetvalue(list, i, 1), v, n, err,
		                            sizeof(err))) == 0) {
			info->journal_votes += (int64_t)n;
			info->journal_pieces++;
		}
		if (rc != 0)
			snprintf(errstr, errstr_size, "piece %s: %s", id, err);
		free(v);
		PQclear(res);
	}
	PQclear(list);
	return rc;
}
