/*
 * tally-dq's PostgreSQL side: integrity and uniqueness checks by query, the figures per
 * candidate, region and party from the votes table, and the last checkpoint read back
 * into a core (registry loaded from PostgreSQL, state imported, snapshot taken).
 *
 * Every statement is fixed or parameterised (the election id is $1), and all of them run
 * in one REPEATABLE READ READ ONLY transaction, so every figure comes from one snapshot of
 * the database. The stored votes are one relation the adapter makes for the session
 * (TALLY_PG_STORED_VOTES, include/tally/pg_journal.h: the votes table and the vote
 * journal's pieces, unpacked); the election row is read by the adapter too
 * (tally_pg_election_get()). Nothing here prints or stores a voter's id or personal data: queries
 * return counts, and candidate ids, region and party names only.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include <tally/core.h>
#include <tally/error.h>
#include <tally/pg.h>
#include <tally/pg_checkpoint.h>
#include <tally/pg_journal.h>
#include <tally/pg_registry.h>
#include <tally/registry.h>
#include <tally/snapshot.h>
#include <tally/state.h>

#include "dq.h"

#define PG_CONNECT_TIMEOUT_MS 10000

/* The stored votes: the votes table and the vote journal's, as the adapter shows them. */
#define STORED_VOTES TALLY_PG_STORED_VOTES

/* Labels of rows whose key is not in the registry. */
#define NO_VOTER_REGION "(vote without a registered voter)"
#define NO_CANDIDATE_PARTY "(vote without a registered candidate)"

typedef struct pgctx {
	dq_run_t *run;
	PGconn *conn;
	const char *election;
	char err[512];
} pgctx_t;

/*
 * Run a fixed or parameterised query ($1 = the election id when nparams is 1).
 * Returns the result, or NULL with ctx->err set to "WHAT: server message".
 */
static PGresult *
query(pgctx_t *ctx, const char *what, const char *sql, int nparams)
{
	const char *params[1] = {ctx->election};
	PGresult *res = PQexecParams(ctx->conn, sql, nparams, NULL, params, NULL, NULL, 0);

	if (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK) {
		snprintf(ctx->err, sizeof(ctx->err), "could not %s: %s", what,
		         PQresultErrorMessage(res));
		ctx->err[strcspn(ctx->err, "\n")] = '\0';
		PQclear(res);
		return NULL;
	}
	return res;
}

static int64_t
num(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? 0 : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* One row of counts; NULL on failure (ctx->err set). */
static PGresult *
counts(pgctx_t *ctx, const char *what, const char *sql, int nparams)
{
	PGresult *res = query(ctx, what, sql, nparams);

	if (res != NULL && PQntuples(res) != 1) {
		snprintf(ctx->err, sizeof(ctx->err), "could not %s: %d rows, not 1", what,
		         PQntuples(res));
		PQclear(res);
		return NULL;
	}
	return res;
}

/* ---- the election ------------------------------------------------------------------ */

static int
check_election(pgctx_t *ctx, tally_election_t *el)
{
	char err[512];
	const char *status;
	int rc = tally_pg_election_get(ctx->conn, ctx->election, el, err, sizeof(err));

	if (rc == TALLY_ENOENT) {
		dq_check(ctx->run, "election.exists", DQ_FAIL, NULL,
		         "no election \"%s\" in the elections table", ctx->election);
		return -1;
	}
	if (rc != 0) {
		dq_check(ctx->run, "election.exists", DQ_FAIL, NULL, "%s", err);
		return -1;
	}
	status = tally_election_status_name(el->status);
	dq_check(ctx->run, "election.exists", DQ_PASS,
	         json_pack("{s:I, s:I, s:s}", "opens_at", (json_int_t)el->opens_at, "closes_at",
	                   (json_int_t)el->closes_at, "status", status),
	         "election \"%s\" is registered, status %s", ctx->election, status);
	/* The checkpoint's state carries the status it had: the core starts scheduled. */
	el->status = TALLY_ELECTION_SCHEDULED;
	return 0;
}

/* ---- integrity and uniqueness ------------------------------------------------------ */

/* A check whose figure is one count of offending rows: pass when 0. */
static void
check_zero(pgctx_t *ctx, const char *name, const char *what, const char *sql, int nparams,
           const char *noun)
{
	PGresult *res = counts(ctx, what, sql, nparams);
	int64_t n;

	if (res == NULL) {
		dq_check(ctx->run, name, DQ_FAIL, NULL, "%s", ctx->err);
		return;
	}
	n = num(res, 0, 0);
	dq_check(ctx->run, name, n == 0 ? DQ_PASS : DQ_FAIL,
	         json_pack("{s:I}", "orphans", (json_int_t)n), "%" PRId64 " %s", n, noun);
	PQclear(res);
}

static void
check_integrity(pgctx_t *ctx)
{
	PGresult *res;

	check_zero(ctx, "integrity.votes_voters", "count votes without a voter",
	           "SELECT count(*) FROM " STORED_VOTES " v"
	           " WHERE NOT EXISTS (SELECT 1 FROM voters w WHERE w.voter_id = v.voter_id)",
	           0, "vote(s) whose voter_id is not in voters");
	check_zero(ctx, "integrity.votes_candidates", "count votes without a candidate",
	           "SELECT count(*) FROM " STORED_VOTES " v"
	           " WHERE NOT EXISTS (SELECT 1 FROM candidates c"
	           "                   WHERE c.candidate_id = v.candidate_id)",
	           0, "vote(s) whose candidate_id is not in candidates");
	check_zero(ctx, "integrity.candidates_parties", "count candidates without a party",
	           "SELECT count(*) FROM candidates c"
	           " WHERE NOT EXISTS (SELECT 1 FROM parties p"
	           "                   WHERE p.party_affiliation = c.party_affiliation)",
	           0, "candidate(s) whose party_affiliation is not in parties");

	/* One vote per voter: extra rows, and how many voters have them. */
	res = counts(ctx, "count votes per voter",
	             "SELECT count(*) - count(DISTINCT voter_id),"
	             " (SELECT count(*) FROM (SELECT 1 FROM " STORED_VOTES " s GROUP BY voter_id"
	             "                        HAVING count(*) > 1) d)"
	             " FROM " STORED_VOTES " s",
	             0);
	if (res == NULL) {
		dq_check(ctx->run, "votes.one_per_voter", DQ_FAIL, NULL, "%s", ctx->err);
	} else {
		int64_t extra = num(res, 0, 0), voters = num(res, 0, 1);

		dq_check(ctx->run, "votes.one_per_voter", extra == 0 ? DQ_PASS : DQ_FAIL,
		         json_pack("{s:I, s:I}", "extra_votes", (json_int_t)extra, "voters",
		                   (json_int_t)voters),
		         "%" PRId64 " extra vote(s) by %" PRId64 " voter(s) who voted more than once", extra,
		         voters);
		PQclear(res);
	}

	res = counts(ctx, "count votes of other elections",
	             "SELECT count(*) FILTER (WHERE election_id IS DISTINCT FROM $1),"
	             " count(*) FILTER (WHERE election_id = $1), count(*) FROM " STORED_VOTES " s",
	             1);
	if (res == NULL) {
		dq_check(ctx->run, "votes.election_id", DQ_FAIL, NULL, "%s", ctx->err);
	} else {
		int64_t other = num(res, 0, 0);

		ctx->run->pg_votes = num(res, 0, 1);
		ctx->run->pg_votes_all = num(res, 0, 2);
		dq_check(ctx->run, "votes.election_id", other == 0 ? DQ_PASS : DQ_FAIL,
		         json_pack("{s:I, s:I}", "other_election", (json_int_t)other, "votes",
		                   (json_int_t)ctx->run->pg_votes),
		         "%" PRId64 " vote(s) of another election than \"%s\" (%" PRId64 " of it)", other,
		         ctx->election, ctx->run->pg_votes);
		PQclear(res);
	}
}

/* ---- the figures per candidate, region and party ----------------------------------- */

static int
registry_rows(pgctx_t *ctx)
{
	dq_run_t *run = ctx->run;
	PGresult *res;

	res = counts(ctx, "count the registry",
	             "SELECT (SELECT count(*) FROM voters), (SELECT count(*) FROM candidates),"
	             " (SELECT count(*) FROM parties)",
	             0);
	if (res == NULL)
		return -1;
	run->pg_voters = num(res, 0, 0);
	run->pg_candidates = num(res, 0, 1);
	run->pg_parties = num(res, 0, 2);
	PQclear(res);

	if ((res = query(ctx, "read the parties",
	                 "SELECT party_affiliation FROM parties ORDER BY registered_at,"
	                 " party_affiliation",
	                 0)) == NULL)
		return -1;
	for (int i = 0; i < PQntuples(res); i++) {
		dq_row_t *row = dq_dim_row(&run->dim[DQ_DIM_PARTIES], PQgetvalue(res, i, 0), NULL, NULL);

		if (row == NULL)
			goto nomem;
		row->v[DQ_PG] = 0;
	}
	PQclear(res);

	if ((res = query(ctx, "read the candidates",
	                 "SELECT candidate_id::text, candidate_name, party_affiliation"
	                 " FROM candidates ORDER BY registered_at, candidate_name, candidate_id",
	                 0)) == NULL)
		return -1;
	for (int i = 0; i < PQntuples(res); i++) {
		dq_row_t *row = dq_dim_row(&run->dim[DQ_DIM_CANDIDATES], PQgetvalue(res, i, 0),
		                           PQgetvalue(res, i, 1), PQgetvalue(res, i, 2));

		if (row == NULL)
			goto nomem;
		row->v[DQ_PG] = 0;
	}
	PQclear(res);

	if ((res = query(ctx, "count the voters per region",
	                 "SELECT region, count(*) FROM voters GROUP BY region ORDER BY region", 0)) ==
	    NULL)
		return -1;
	for (int i = 0; i < PQntuples(res); i++) {
		dq_row_t *row = dq_dim_row(&run->dim[DQ_DIM_REGIONS], PQgetvalue(res, i, 0), NULL, NULL);

		if (row == NULL)
			goto nomem;
		row->v[DQ_PG] = 0;
		row->reg[DQ_PG] = num(res, i, 1);
	}
	PQclear(res);
	return 0;
nomem:
	PQclear(res);
	snprintf(ctx->err, sizeof(ctx->err), "out of memory");
	return -1;
}

static int
vote_rows(pgctx_t *ctx)
{
	dq_run_t *run = ctx->run;
	PGresult *res;

	/* A vote whose voter is missing has no region: it is counted under its own label. */
	if ((res = query(ctx, "count the votes per candidate and region",
	                 "SELECT v.candidate_id::text, w.region, count(*)"
	                 " FROM " STORED_VOTES " v LEFT JOIN voters w ON w.voter_id = v.voter_id"
	                 " WHERE v.election_id = $1 GROUP BY 1, 2",
	                 1)) == NULL)
		return -1;
	for (int i = 0; i < PQntuples(res); i++) {
		const char *cid = PQgetvalue(res, i, 0);
		const char *region = PQgetisnull(res, i, 1) ? NO_VOTER_REGION : PQgetvalue(res, i, 1);
		int64_t n = num(res, i, 2);
		dq_row_t *cand = dq_dim_find(&run->dim[DQ_DIM_CANDIDATES], cid);
		dq_row_t *reg, *cell;
		char key[512], label[768];

		if (cand == NULL) {
			char l[128];

			snprintf(l, sizeof(l), "(unregistered candidate %s)", cid);
			cand = dq_dim_row(&run->dim[DQ_DIM_CANDIDATES], cid, l, NULL);
		}
		reg = dq_dim_row(&run->dim[DQ_DIM_REGIONS], region, NULL, NULL);
		snprintf(key, sizeof(key), "%s/%s", cid, region);
		snprintf(label, sizeof(label), "%s / %s", cand != NULL ? cand->label : cid, region);
		cell = dq_dim_row(&run->dim[DQ_DIM_CELLS], key, label, NULL);
		if (cand == NULL || reg == NULL || cell == NULL)
			goto nomem;
		dq_add(&cand->v[DQ_PG], n);
		dq_add(&reg->v[DQ_PG], n);
		dq_add(&cell->v[DQ_PG], n);
	}
	PQclear(res);

	if ((res = query(ctx, "count the votes per party",
	                 "SELECT c.party_affiliation, count(*)"
	                 " FROM " STORED_VOTES " v"
	                 " LEFT JOIN candidates c ON c.candidate_id = v.candidate_id"
	                 " WHERE v.election_id = $1 GROUP BY 1",
	                 1)) == NULL)
		return -1;
	for (int i = 0; i < PQntuples(res); i++) {
		const char *party = PQgetisnull(res, i, 0) ? NO_CANDIDATE_PARTY : PQgetvalue(res, i, 0);
		dq_row_t *row = dq_dim_row(&run->dim[DQ_DIM_PARTIES], party, NULL, NULL);

		if (row == NULL)
			goto nomem;
		dq_add(&row->v[DQ_PG], num(res, i, 1));
	}
	PQclear(res);
	for (int d = 0; d < DQ_NDIM; d++)
		run->dim[d].have[DQ_PG] = d != DQ_DIM_REASONS;
	return 0;
nomem:
	PQclear(res);
	snprintf(ctx->err, sizeof(ctx->err), "out of memory");
	return -1;
}

/* ---- checkpoints ------------------------------------------------------------------- */

static void
check_offsets(pgctx_t *ctx)
{
	PGresult *res = counts(ctx, "read the checkpoint offsets",
	                       "SELECT count(*), count(DISTINCT topic), coalesce(sum(next_offset), 0)"
	                       " FROM checkpoint_offsets WHERE election_id = $1",
	                       1);
	int64_t n;

	if (res == NULL) {
		dq_check(ctx->run, "checkpoint.offsets", DQ_FAIL, NULL, "%s", ctx->err);
		return;
	}
	n = num(res, 0, 0);
	if (n > 0)
		dq_check(ctx->run, "checkpoint.offsets", DQ_PASS,
		         json_pack("{s:I, s:I, s:I}", "partitions", (json_int_t)n, "topics",
		                   (json_int_t)num(res, 0, 1), "next_offsets",
		                   (json_int_t)num(res, 0, 2)),
		         "next offsets of %" PRId64 " partition(s) in %" PRId64
		         " topic(s), summing to %" PRId64, n,
		         num(res, 0, 1), num(res, 0, 2));
	else
		dq_check(ctx->run, "checkpoint.offsets", DQ_FAIL,
		         json_pack("{s:I}", "partitions", (json_int_t)0),
		         "no checkpoint offsets of election \"%s\"", ctx->election);
	PQclear(res);
}

/* Put a snapshot's figures into the CKPT columns. */
static int
ckpt_rows(dq_run_t *run, tally_registry_t *reg, const tally_snapshot_t *snap)
{
	for (uint32_t c = 0; c < snap->ncandidates; c++) {
		tally_candidate_info_t info;
		char id[TALLY_UUID_STRLEN + 1];
		dq_row_t *row;

		tally_registry_candidate_get(reg, c, &info);
		tally_uuid_format(&info.id, id);
		id[TALLY_UUID_STRLEN] = '\0';
		if ((row = dq_dim_row(&run->dim[DQ_DIM_CANDIDATES], id, info.name,
		                      tally_registry_party_name(reg, info.party))) == NULL)
			return -1;
		row->v[DQ_CKPT] = (int64_t)snap->candidates[c];
		for (uint64_t i = snap->cell_first[c]; i < snap->cell_first[c + 1]; i++) {
			uint64_t v = snap->cells[i];
			const char *region = tally_registry_region_name(reg, snap->cell_region[i]);
			char key[512], label[768];
			dq_row_t *cell;

			if (v == 0)
				continue;
			snprintf(key, sizeof(key), "%s/%s", id, region);
			snprintf(label, sizeof(label), "%s / %s", row->label, region);
			if ((cell = dq_dim_row(&run->dim[DQ_DIM_CELLS], key, label, NULL)) == NULL)
				return -1;
			cell->v[DQ_CKPT] = (int64_t)v;
		}
	}
	for (uint32_t r = 0; r < snap->nregions; r++) {
		dq_row_t *row = dq_dim_row(&run->dim[DQ_DIM_REGIONS],
		                           tally_registry_region_name(reg, r), NULL, NULL);

		if (row == NULL)
			return -1;
		row->v[DQ_CKPT] = (int64_t)snap->regions[r];
		row->reg[DQ_CKPT] = (int64_t)snap->region_registered[r];
	}
	for (uint32_t p = 0; p < snap->nparties; p++) {
		dq_row_t *row = dq_dim_row(&run->dim[DQ_DIM_PARTIES], tally_registry_party_name(reg, p),
		                           NULL, NULL);

		if (row == NULL)
			return -1;
		row->v[DQ_CKPT] = (int64_t)snap->parties[p];
	}
	for (int k = 1; k < TALLY_REASON__COUNT; k++) {
		dq_row_t *row = dq_dim_row(&run->dim[DQ_DIM_REASONS], tally_reason_name(k), NULL, NULL);

		if (row == NULL)
			return -1;
		row->v[DQ_CKPT] = (int64_t)snap->rejected[k];
	}
	for (int d = 0; d < DQ_NDIM; d++)
		run->dim[d].have[DQ_CKPT] = true;
	run->have_ckpt = true;
	run->ckpt_read = (int64_t)snap->read;
	run->ckpt_accepted = (int64_t)snap->accepted;
	run->ckpt_rejected = (int64_t)snap->rejected_total;
	return 0;
}

/* The capacities a registry needs to hold what PostgreSQL has (the defaults at least). */
static int
registry_opts(pgctx_t *ctx, tally_registry_opts_t *o)
{
	PGresult *res = counts(ctx, "size the registry",
	                       "SELECT (SELECT count(*) FROM voters), (SELECT count(*) FROM parties),"
	                       " (SELECT count(*) FROM candidates),"
	                       " (SELECT count(DISTINCT region) FROM voters)",
	                       0);
	int64_t nv, np, nc, nr;

	if (res == NULL)
		return -1;
	nv = num(res, 0, 0);
	np = num(res, 0, 1);
	nc = num(res, 0, 2);
	nr = num(res, 0, 3);
	PQclear(res);
	memset(o, 0, sizeof(*o));
	o->expected_voters = nv > 0 ? (size_t)nv : 1;
	o->max_parties = np > 64 ? (uint32_t)np : 64;
	o->max_candidates = nc > 256 ? (uint32_t)nc : 256;
	o->max_regions = nr > 1024 ? (uint32_t)nr : 1024;
	if (nr > 16384) {
		snprintf(ctx->err, sizeof(ctx->err),
		         "%" PRId64 " regions, more than a registry holds (16384)", nr);
		return -1;
	}
	return 0;
}

static void
check_checkpoint(pgctx_t *ctx, const tally_election_t *el)
{
	dq_run_t *run = ctx->run;
	PGresult *res;
	unsigned char *state = NULL;
	size_t state_len = 0;
	tally_registry_opts_t ro;
	tally_registry_t *reg = NULL;
	tally_core_t *core = NULL;
	tally_snapshot_t *snap = NULL;
	tally_core_opts_t co;
	PGresult *parts = NULL;   /* tallyd --cluster: the partitions' states */
	unsigned nparts = 1;
	char err[512];
	int rc;

	if (el == NULL) {
		dq_check(run, "checkpoint.latest", DQ_FAIL, NULL,
		         "no checkpoint can be read without the election");
		return;
	}
	if ((res = query(ctx, "read the last checkpoint",
	                 "SELECT checkpoint_id, version, taken_at, state"
	                 " FROM checkpoints WHERE election_id = $1"
	                 " ORDER BY checkpoint_id DESC LIMIT 1",
	                 1)) == NULL) {
		dq_check(run, "checkpoint.latest", DQ_FAIL, NULL, "%s", ctx->err);
		return;
	}
	if (PQntuples(res) == 0) {
		/* tallyd --cluster stores no checkpoints row: one state per partition instead. */
		PQclear(res);
		if ((parts = query(ctx, "read the partitions' states",
		                   "SELECT partition, version, committed_at, state,"
		                   " (SELECT count(DISTINCT topic) FROM partition_states"
		                   "  WHERE election_id = $1) FROM partition_states"
		                   " WHERE election_id = $1 ORDER BY partition", 1)) == NULL) {
			dq_check(run, "checkpoint.latest", DQ_FAIL, NULL, "%s", ctx->err);
			return;
		}
		if (PQntuples(parts) == 0) {
			dq_check(run, "checkpoint.latest", DQ_FAIL, NULL, "no checkpoint of election "
			         "\"%s\" (nor partition states of tallyd --cluster)", ctx->election);
			PQclear(parts);
			return;
		}
		if (num(parts, 0, 4) != 1) {
			dq_check(run, "checkpoint.latest", DQ_FAIL, NULL, "partition states of election "
			         "\"%s\" for %" PRId64 " topics: not read yet", ctx->election,
			         num(parts, 0, 4));
			PQclear(parts);
			return;
		}
		run->ckpt_id = 0;
		run->ckpt_version = 0;
		nparts = (unsigned)num(parts, PQntuples(parts) - 1, 0) + 1;
		for (int i = 0; i < PQntuples(parts); i++) {
			run->ckpt_version += num(parts, i, 1);
			/* The same time zone in every row: the text sorts as the time. */
			if (strcmp(PQgetvalue(parts, i, 2), run->ckpt_taken_at) > 0)
				snprintf(run->ckpt_taken_at, sizeof(run->ckpt_taken_at), "%s",
				         PQgetvalue(parts, i, 2));
		}
	} else {
		run->ckpt_id = num(res, 0, 0);
		run->ckpt_version = num(res, 0, 1);
		snprintf(run->ckpt_taken_at, sizeof(run->ckpt_taken_at), "%s", PQgetvalue(res, 0, 2));
		state = PQunescapeBytea((const unsigned char *)PQgetvalue(res, 0, 3), &state_len);
		PQclear(res);
		if (state == NULL) {
			snprintf(err, sizeof(err), "out of memory");
			goto fail;
		}
	}

	/* The registry the state names its candidates and regions against. */
	if (registry_opts(ctx, &ro) != 0) {
		snprintf(err, sizeof(err), "%s", ctx->err);
		goto fail;
	}
	if ((reg = tally_registry_new(&ro, err, sizeof(err))) == NULL)
		goto fail;
	if ((rc = tally_pg_registry_load(ctx->conn, reg, NULL, NULL, NULL, err, sizeof(err))) != 0) {
		char why[400];

		snprintf(why, sizeof(why), "%.390s", err);
		snprintf(err, sizeof(err), "could not load the registry from PostgreSQL: %s", why);
		goto fail;
	}
	memset(&co, 0, sizeof(co));
	co.workers = 1;
	co.election = *el;
	co.parts = nparts;
	if ((core = tally_core_new(reg, &co, err, sizeof(err))) == NULL)
		goto fail;
	for (int i = 0; parts != NULL && i < PQntuples(parts); i++) {
		unsigned char *ps = PQunescapeBytea((const unsigned char *)PQgetvalue(parts, i, 3),
		                                    &state_len);
		char why[400];

		if (ps == NULL) {
			snprintf(err, sizeof(err), "out of memory");
			goto fail;
		}
		rc = tally_state_import_part(core, (unsigned)num(parts, i, 0), ps, state_len, NULL, err,
		                             sizeof(err));
		PQfreemem(ps);
		if (rc != 0) {
			snprintf(why, sizeof(why), "%.390s", err[0] != '\0' ? err : tally_err2str(rc));
			snprintf(err, sizeof(err), "partition %s's state cannot be read: %s",
			         PQgetvalue(parts, i, 0), why);
			goto fail;
		}
	}
	if (parts == NULL &&
	    (rc = tally_state_import(core, state, state_len, NULL, NULL, err, sizeof(err))) != 0) {
		char why[400];

		snprintf(why, sizeof(why), "%.390s", err[0] != '\0' ? err : tally_err2str(rc));
		snprintf(err, sizeof(err), "checkpoint %" PRId64 " cannot be read: %s", run->ckpt_id,
		         why);
		goto fail;
	}
	if ((snap = tally_snapshot_take(core)) == NULL) {
		snprintf(err, sizeof(err), "out of memory");
		goto fail;
	}
	if (tally_snapshot_check(snap, err, sizeof(err)) != 0) {
		char why[400];

		snprintf(why, sizeof(why), "%.390s", err);
		snprintf(err, sizeof(err), "checkpoint %" PRId64 " does not add up: %s", run->ckpt_id,
		         why);
		goto fail;
	}
	if (ckpt_rows(run, reg, snap) != 0) {
		snprintf(err, sizeof(err), "out of memory");
		goto fail;
	}
	dq_check(run, "checkpoint.latest", DQ_PASS,
	         json_pack("{s:I, s:I, s:I, s:I, s:I, s:s}", "checkpoint_id",
	                   (json_int_t)run->ckpt_id, "version", (json_int_t)run->ckpt_version, "read",
	                   (json_int_t)snap->read, "accepted", (json_int_t)snap->accepted,
	                   "rejected", (json_int_t)snap->rejected_total, "status",
	                   tally_election_status_name(snap->election.status)),
	         "checkpoint %" PRId64 " (version %" PRId64 ", %s): %" PRIu64 " read, %" PRIu64
	         " accepted, %" PRIu64 " rejected, election %s",
	         run->ckpt_id, run->ckpt_version, run->ckpt_taken_at, snap->read, snap->accepted,
	         snap->rejected_total, tally_election_status_name(snap->election.status));
	goto out;
fail:
	dq_check(run, "checkpoint.latest", DQ_FAIL, NULL, "%s", err);
out:
	tally_snapshot_destroy(snap);
	tally_core_destroy(core);
	tally_registry_destroy(reg);
	PQclear(parts);
	PQfreemem(state);
}

/* ---- the vote journal ---------------------------------------------------------------- */

/*
 * The adapter unpacks the journal into the stored votes (the temporary table was made
 * before the transaction began: a read-only transaction may not create tables but may
 * fill temporary ones) and checks that every piece decodes.
 */
static void
unpack_journal(pgctx_t *ctx)
{
	tally_pg_stored_votes_info_t info;
	char err[512];

	if (tally_pg_stored_votes_fill(ctx->conn, &info, err, sizeof(err)) == 0)
		dq_check(ctx->run, "votes.journal", DQ_PASS,
		         json_pack("{s:I, s:I}", "votes", (json_int_t)info.journal_votes, "pieces",
		                   (json_int_t)info.journal_pieces),
		         "%" PRId64 " vote(s) in %" PRId64 " journal piece(s) not yet moved into votes, "
		         "counted with them", info.journal_votes, info.journal_pieces);
	else
		dq_check(ctx->run, "votes.journal", DQ_FAIL, NULL, "the vote journal: %s", err);
}

/* ---- dead letters superseded ----------------------------------------------------------- */

/*
 * Dead letters whose source position holds a stored vote: the vote was rejected once and
 * counted in the end. With several instances (--cluster) a voter's two votes, one read on
 * their home partition and one forwarded to it, may be judged in the other order after a
 * restart: the dead letter written before the crash (at least once, not with the cut)
 * then names the vote that counts. They are left out of the dead letters' reason counts
 * (so those compare with the checkpoint's) and reported in topics.dead_letters' detail.
 * README, "tallyd --cluster", known gaps.
 */
int
dq_pg_superseded(dq_run_t *run, char *errstr, size_t errstr_size)
{
	const char *dsn = getenv("TALLY_PG_DSN");
	char *parts = malloc(run->ndl * 12 + 3), *offs = malloc(run->ndl * 21 + 3);
	const char *params[3] = {run->conf->election_id, parts, offs};
	tally_pg_stored_votes_info_t info;
	PGconn *conn = NULL;
	PGresult *res = NULL;
	size_t pl = 0, ol = 0;
	int rc = -1;

	if (parts == NULL || offs == NULL) {
		snprintf(errstr, errstr_size, "out of memory");
		goto out;
	}
	parts[pl++] = '{';
	offs[ol++] = '{';
	for (size_t i = 0; i < run->ndl; i++) {
		pl += (size_t)sprintf(parts + pl, "%s%d", i ? "," : "", (int)run->dl[i].partition);
		ol += (size_t)sprintf(offs + ol, "%s%lld", i ? "," : "", (long long)run->dl[i].offset);
	}
	parts[pl++] = '}';
	parts[pl] = '\0';
	offs[ol++] = '}';
	offs[ol] = '\0';
	if ((conn = tally_pg_connect(dsn != NULL ? dsn : "", run->pg, run->npg,
	                             PG_CONNECT_TIMEOUT_MS, errstr, errstr_size)) == NULL ||
	    tally_pg_stored_votes_open(conn, errstr, errstr_size) != 0 ||
	    tally_pg_stored_votes_fill(conn, &info, errstr, errstr_size) != 0)
		goto out;
	res = PQexecParams(conn,
	                   "SELECT t.i FROM unnest($2::integer[], $3::bigint[]) WITH ORDINALITY"
	                   " AS t(p, o, i) WHERE EXISTS (SELECT 1 FROM " TALLY_PG_STORED_VOTES
	                   " v WHERE v.election_id = $1 AND v.source_partition = t.p"
	                   " AND v.source_offset = t.o)",
	                   3, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		snprintf(errstr, errstr_size, "could not look the dead letters up: %s",
		         PQresultErrorMessage(res));
		errstr[strcspn(errstr, "\n")] = '\0';
		goto out;
	}
	for (int r = 0; r < PQntuples(res); r++) {
		size_t i = (size_t)strtoull(PQgetvalue(res, r, 0), NULL, 10) - 1;
		dq_row_t *row;

		if (i >= run->ndl)
			continue;
		row = dq_dim_find(&run->dim[DQ_DIM_REASONS], tally_reason_name(run->dl[i].reason));
		if (row != NULL)
			dq_add(&row->v[DQ_TOPIC], -1);
		run->dl_superseded++;
	}
	for (size_t c = 0; c < run->nchecks && run->dl_superseded > 0; c++) {
		dq_check_t *ck = &run->checks[c];
		size_t n = strlen(ck->detail);

		if (strcmp(ck->name, "topics.dead_letters") != 0)
			continue;
		snprintf(ck->detail + n, sizeof(ck->detail) - n,
		         "; %" PRId64 " of them name a vote counted in the end (a duplicate pair "
		         "judged the other way after a restart), left out of the reasons",
		         run->dl_superseded);
		if (ck->figures != NULL)
			json_object_set_new(ck->figures, "superseded",
			                    json_integer((json_int_t)run->dl_superseded));
	}
	rc = 0;
out:
	PQclear(res);
	if (conn != NULL)
		PQfinish(conn);
	free(parts);
	free(offs);
	return rc;
}

/* ---- the whole PostgreSQL side ----------------------------------------------------- */

int
dq_pg(dq_run_t *run, char *errstr, size_t errstr_size)
{
	const char *dsn = getenv("TALLY_PG_DSN");
	pgctx_t ctx = {.run = run, .election = run->conf->election_id};
	tally_election_t el;
	PGresult *res;
	int have_el;

	ctx.conn = tally_pg_connect(dsn != NULL ? dsn : "", run->pg, run->npg,
	                            PG_CONNECT_TIMEOUT_MS, errstr, errstr_size);
	if (ctx.conn == NULL)
		return -1;
	/* One snapshot of the database for every figure; never a write (but to a temporary
	 * table of this session, for the journalled votes). */
	if (tally_pg_stored_votes_open(ctx.conn, errstr, errstr_size) != 0) {
		PQfinish(ctx.conn);
		return -1;
	}
	if ((res = query(&ctx, "begin a read-only transaction",
	                 "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0)) == NULL) {
		snprintf(errstr, errstr_size, "%s", ctx.err);
		PQfinish(ctx.conn);
		return -1;
	}
	PQclear(res);

	have_el = check_election(&ctx, &el) == 0;
	unpack_journal(&ctx);
	check_integrity(&ctx);
	if (registry_rows(&ctx) != 0 || vote_rows(&ctx) != 0) {
		snprintf(errstr, errstr_size, "%s", ctx.err);
		PQfinish(ctx.conn);
		return -1;
	}
	check_offsets(&ctx);
	check_checkpoint(&ctx, have_el ? &el : NULL);
	PQclear(PQexec(ctx.conn, "COMMIT"));
	PQfinish(ctx.conn);
	return 0;
}
