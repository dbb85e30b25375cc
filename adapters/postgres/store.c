/*
 * The durable store (include/tally/store.h): restore, the writer of cuts, the mover of the
 * vote journal, the registry image writer and live registrations, on connections and
 * threads of its own, with one retry policy.
 *
 * DESIGN: who writes, who reads, what is published when.
 * - st->job: one cut, set by the caller's thread (tally_store_commit(), release store)
 *   only while it is NULL, cleared by the writer (release store) once the cut is written
 *   (or given up) and the committed hook has run. So the caller sees "idle" only after
 *   what it handed over is committed and published.
 * - st->quit (writer), st->mover_quit, st->imager_quit: atomic flags the caller's thread
 *   sets; each thread polls its own. The writer is woken by st->go.
 * - st->caught_up: set by the caller (relaxed), read by the mover and the image writer.
 * - Figures: relaxed atomics, each written by one of the store's threads (the writer:
 *   checkpoints, failures, postgres up; the mover: moved votes; journal_votes by both),
 *   read by anyone through tally_store_stats().
 * - Connections: main (restore, offsets and status; the caller's thread), the writer's,
 *   the mover's, the image writer's, the registrations' (the registrar's thread), and the
 *   voted-set reader's during restore. None is shared between threads.
 * - Retries: every thread goes through retry_t: reconnect with a 2 s timeout, back off
 *   100 ms doubling to 2 s, log the first failure of a run, and "postgres is back" when
 *   it works again.
 *
 * Several instances in one consumer group (store.h DESIGN has the contract):
 * - Claims run on the caller's thread and the main connection (tally_store_claim()).
 * - Fenced cuts are the writer's, as any cut: the SQL is tally_pg_checkpoint_write()'s
 *   (checkpoint.c); here a TALLY_EFENCED answer is a refusal, not a failure: PostgreSQL
 *   answered, so it is not counted down and not retried.
 * - The watcher (thread tally:watch, own connection): st->watch is written by the caller
 *   before the thread starts and only read after. st->watch_quit (atomic) is set by the
 *   caller, who then writes a byte to st->watch_wake; the watcher sleeps in poll() on its
 *   connection's socket (notifications) and that pipe, so it stops at once, even in a
 *   backoff. Its seen set (the last parts read) is its own; w->parts gets a view of it.
 *   Leadership is owning the election's lowest-numbered partition (partition_owners, read
 *   each round; claims notify): it calls w->leader(true) after a round that found this
 *   store's owner there (and read the parts), w->leader(false) after a round that did not,
 *   before it stops, and as soon as it finds its connection lost.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include <tally/atomic.h>
#include <tally/error.h>
#include <tally/pg.h>
#include <tally/pg_checkpoint.h>
#include <tally/pg_journal.h>
#include <tally/pg_registry.h>
#include <tally/pg_registry_image.h>
#include <tally/store.h>
#include <tally/thread.h>
#include <tally/time.h>

#include "pg_int.h"

#define CONNECT_TIMEOUT_MS 2000u
#define BACKOFF_MIN_MS 100u
#define BACKOFF_MAX_MS 2000u
#define SLOW_CHECKPOINT_NS 1000000000ull   /* a checkpoint slower than this is logged */
#define MOVER_IDLE_MS 50u
#define IMAGE_PART_BYTES (16u << 20)
#define IMAGE_PAUSE_MS 100u                /* between parts: about 16 MB per 0.2 s at most */
#define REGISTRAR_OWNER "tallyd-registrar"

/* What a thread's quit flag asks of it. */
enum {
	QUIT_NO = 0,
	QUIT_WHEN_IDLE,          /* finish the job in hand, then end */
	QUIT_ABANDON,            /* give up the job in hand (postgres is away), then end */
};

struct tally_store {
	tally_store_opts_t o;
	PGconn *main;                    /* the caller's thread */
	PGconn *reg_conn;                /* the registrations' caller */

	/* The writer. */
	tally_store_hooks_t hooks;
	pthread_t writer;
	bool writer_started;
	sem_t go;
	tally_store_cut_t *job;          /* atomic */
	int quit;                        /* atomic */
	PGconn *wconn;
	tally_election_status_t status_stored;

	/* The mover. */
	pthread_t mover;
	bool mover_started;
	int mover_quit;                  /* atomic */
	int caught_up;                   /* atomic */

	/* The image writer. */
	pthread_t imager;
	bool imager_started;
	int imager_quit;                 /* atomic */
	const tally_registry_t *reg;
	int64_t image_generation;        /* > 0: to be written (the restore read every row) */

	/* The watcher. */
	tally_store_watch_t watch;
	pthread_t watcher;
	bool watcher_started;
	int watch_quit;                  /* atomic */
	uint64_t watch_rounds;           /* atomic: the watcher's rounds done */
	int watch_wake[2];               /* a pipe: the caller writes, the watcher polls */

	/* Figures (relaxed atomics). */
	uint64_t checkpoints, checkpoint_failures, checkpointed_votes;
	uint64_t last_checkpoint_ns, last_checkpoint_ms;
	int pg_down;
	uint64_t pg_down_since;
	int64_t journal_votes;
	uint64_t moved_votes;
	uint64_t fenced;
};

/* ---- logging and the one retry policy --------------------------------------------------- */

static void
slog(const tally_store_t *st, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (st->o.log == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	st->o.log(st->o.log_arg, line);
}

static void
nap_ms(unsigned ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static PGconn *
connect_ms(const tally_store_t *st, unsigned timeout_ms, char *err, size_t errsz)
{
	return tally_pg_connect(st->o.dsn, st->o.params, st->o.nparams, timeout_ms, err, errsz);
}

/*
 * The store's retry policy, one per thread and job: connect when needed, back off 100 ms
 * doubling to 2 s between attempts, log the first failure of a run (what failed and why)
 * and, when an attempt works again, that postgres is back.
 */
typedef struct retry {
	const tally_store_t *st;
	const char *what;        /* "checkpoint", ... */
	const char *going_on;    /* said with the first failure: what goes on meanwhile */
	const char *back;        /* said when it works again */
	unsigned backoff_ms;
	bool failing;
} retry_t;

static void
retry_init(retry_t *r, const tally_store_t *st, const char *what, const char *going_on,
           const char *back)
{
	*r = (retry_t){.st = st, .what = what, .going_on = going_on, .back = back,
	               .backoff_ms = BACKOFF_MIN_MS};
}

/* A working connection in *conn (reconnecting a broken one), or NULL with err set. */
static PGconn *
retry_conn(retry_t *r, PGconn **conn, char *err, size_t errsz)
{
	if (*conn != NULL && PQstatus(*conn) == CONNECTION_OK)
		return *conn;
	if (*conn != NULL)
		PQfinish(*conn);
	*conn = connect_ms(r->st, CONNECT_TIMEOUT_MS, err, errsz);
	return *conn;
}

/* An attempt failed: logged if it is the first of a run. */
static void
retry_failed(retry_t *r, const char *err)
{
	if (!r->failing)
		slog(r->st, "%s failed, retrying%s: %s", r->what, r->going_on, err);
	r->failing = true;
}

/* The next wait: doubled, up to BACKOFF_MAX_MS. */
static void
retry_grow(retry_t *r)
{
	r->backoff_ms = r->backoff_ms * 2 < BACKOFF_MAX_MS ? r->backoff_ms * 2 : BACKOFF_MAX_MS;
}

/* Wait before the next attempt. */
static void
retry_backoff(retry_t *r)
{
	nap_ms(r->backoff_ms);
	retry_grow(r);
}

/* An attempt worked. */
static void
retry_ok(retry_t *r)
{
	if (r->failing)
		slog(r->st, "postgres is back: %s", r->back);
	r->failing = false;
	r->backoff_ms = BACKOFF_MIN_MS;
}

/* ---- the store ----------------------------------------------------------------------- */

int
tally_store_check_params(const tally_pg_param_t *params, size_t nparams, char *errstr,
                         size_t errstr_size)
{
	return tally_pg_check_params(params, nparams, errstr, errstr_size);
}

tally_store_t *
tally_store_new(const tally_store_opts_t *opts, char *errstr, size_t errstr_size)
{
	tally_store_t *st;

	if (tally_pg_check_params(opts->params, opts->nparams, errstr, errstr_size) != 0)
		return NULL;
	if ((st = calloc(1, sizeof(*st))) == NULL) {
		snprintf(errstr, errstr_size, "could not create the store: out of memory");
		return NULL;
	}
	st->o = *opts;
	if (st->o.dsn == NULL)
		st->o.dsn = "";
	if (sem_init(&st->go, 0, 0) != 0) {
		snprintf(errstr, errstr_size, "could not create the store: %s", strerror(errno));
		free(st);
		return NULL;
	}
	return st;
}

void
tally_store_stats(const tally_store_t *st, tally_store_stats_t *out)
{
	out->checkpoints = tally_load_relaxed(&st->checkpoints);
	out->checkpoint_failures = tally_load_relaxed(&st->checkpoint_failures);
	out->checkpointed_votes = tally_load_relaxed(&st->checkpointed_votes);
	out->last_checkpoint_ns = tally_load_relaxed(&st->last_checkpoint_ns);
	out->last_checkpoint_ms = tally_load_relaxed(&st->last_checkpoint_ms);
	out->postgres_up = !tally_load_relaxed(&st->pg_down);
	out->postgres_down_since = tally_load_relaxed(&st->pg_down_since);
	out->journal_votes = tally_load_relaxed(&st->journal_votes);
	out->moved_votes = tally_load_relaxed(&st->moved_votes);
	out->fenced = tally_load_relaxed(&st->fenced);
}

void
tally_store_set_caught_up(tally_store_t *st, bool caught_up)
{
	tally_store_relaxed(&st->caught_up, caught_up ? 1 : 0);
}

/* ---- restore ------------------------------------------------------------------------- */

/* Reads the stored votes' voters on its own connection (restore's second stream). */
typedef struct voted_reader {
	tally_store_t *st;
	pthread_t thread;
	bool started;
	tally_uuid_t *ids;
	size_t n;
	uint64_t ns;
	int rc;
	char err[512];
} voted_reader_t;

static void *
voted_reader_main(void *arg)
{
	voted_reader_t *vr = arg;
	uint64_t t0 = tally_mono_ns();
	PGconn *c = connect_ms(vr->st, 10000, vr->err, sizeof(vr->err));

	if (c == NULL) {
		vr->rc = TALLY_EIO;
		return NULL;
	}
	vr->rc = tally_pg_votes_voters(c, &vr->ids, &vr->n, vr->err, sizeof(vr->err));
	vr->ns = tally_mono_ns() - t0;
	PQfinish(c);
	return NULL;
}

/*
 * The registry: from a registry image when one is complete for the stored generation, else
 * every voters row. A damaged image is logged and read past: a fresh registry and the full
 * load, in one snapshot with the generation it saw (so a new image replaces the bad one).
 */
static int
load_registry(tally_store_t *st, tally_registry_t **reg, const tally_registry_opts_t *ro,
              tally_pg_restore_info_t *ri, char *err, size_t errsz)
{
	PGconn *conn = st->main;
	PGresult *res;
	int rc = tally_pg_registry_restore(conn, *reg, ri, err, errsz);

	if (rc != TALLY_ECORRUPT)
		return rc;
	slog(st, "%s; reading every voters row instead", err);
	if (ri->image_id > 0) {
		/* Not to be tried again: the image written after this load replaces it anyway. */
		char id[24], why[256];
		const char *values[1] = {id};

		snprintf(id, sizeof(id), "%" PRId64, ri->image_id);
		if (tally__pg_exec(conn, "DELETE FROM registry_images WHERE image_id = $1::bigint", 1,
		                   values, NULL, NULL, "delete", why, sizeof(why)) != 0)
			slog(st, "could not delete registry image %s: %s", id, why);
	}
	tally_registry_destroy(*reg);
	memset(ri, 0, sizeof(*ri));
	if ((*reg = tally_registry_new(ro, err, errsz)) == NULL)
		return TALLY_ENOMEM;
	if ((rc = tally__pg_exec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL,
	                         NULL, NULL, "could not begin reading the registry", err,
	                         errsz)) != 0)
		return rc;
	if ((ri->generation = tally_pg_registry_generation(conn)) < 0) {
		rc = (int)ri->generation;
		snprintf(err, errsz, "could not read the registry generation: %s", tally_err2str(rc));
	} else {
		rc = tally_pg_registry_load(conn, *reg, &ri->parties, &ri->candidates, &ri->voters,
		                            err, errsz);
	}
	res = PQexec(conn, rc == 0 ? "COMMIT" : "ROLLBACK");
	if (rc == 0 && PQresultStatus(res) != PGRES_COMMAND_OK)
		rc = tally__pg_failed(conn, res, "could not end reading the registry", err, errsz);
	PQclear(res);
	return rc;
}

/*
 * Wait for a cut still committing: a killed predecessor's last COMMIT may be on its way in
 * its backend after the process is gone. The restore reads the checkpoint, the offsets and
 * the stored votes' voters in several statements and on two connections; a commit landing
 * between them would give a state of one cut with the offsets or voters of another (votes
 * read again and counted twice, or a voter's second vote accepted). Every cut writes
 * checkpoint_offsets, so a SHARE lock on it waits for any cut in flight; once granted, no
 * earlier writer commits anything more.
 */
static int
restore_quiesce(PGconn *conn, char *err, size_t errsz)
{
	int rc = tally__pg_exec(conn, "BEGIN", 0, NULL, NULL, NULL, "could not begin the restore",
	                        err, errsz);

	if (rc == 0)
		rc = tally__pg_exec(conn, "LOCK TABLE checkpoint_offsets IN SHARE MODE", 0, NULL, NULL,
		                    NULL, "could not wait for a checkpoint in flight", err, errsz);
	if (rc != 0) {
		tally__pg_rollback(conn);
		return rc;
	}
	return tally__pg_exec(conn, "COMMIT", 0, NULL, NULL, NULL, "could not begin the restore",
	                      err, errsz);
}

/*
 * Capacities the caller left at 0, from what is registered: room for the rows stored and
 * as many again registered live (the registry's defaults at least), so 650 constituencies'
 * 3,500 candidates fit where the defaults (256) would refuse the 257th.
 */
static int
registry_size(PGconn *conn, tally_registry_opts_t *ro, char *err, size_t errsz)
{
	PGresult *res = PQexecParams(conn, "SELECT (SELECT count(*) FROM parties),"
	                             " (SELECT count(*) FROM candidates),"
	                             " (SELECT count(*) FROM contests)",
	                             0, NULL, NULL, NULL, NULL, 0);
	long n[3];

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		int rc = tally__pg_failed(conn, res, "could not count the registry", err, errsz);

		PQclear(res);
		return rc != 0 ? rc : TALLY_EIO;
	}
	for (int i = 0; i < 3; i++)
		n[i] = strtol(PQgetvalue(res, 0, i), NULL, 10);
	PQclear(res);
	if (ro->max_parties == 0 && n[0] * 2 > 64)
		ro->max_parties = (uint32_t)(n[0] * 2);
	if (ro->max_candidates == 0 && n[1] * 2 > 256)
		ro->max_candidates = (uint32_t)(n[1] * 2);
	if (ro->max_contests == 0 && n[2] * 2 + 1 > 1024)
		ro->max_contests = (uint32_t)(n[2] * 2 + 1 > 65535 ? 65535 : n[2] * 2 + 1);
	return 0;
}

int
tally_store_restore(tally_store_t *st, const tally_registry_opts_t *ro_in,
                    tally_store_restored_t *out, char *err, size_t errsz)
{
	tally_registry_opts_t ro = *ro_in;
	tally_registry_t *reg = NULL;
	voted_reader_t vr = {.st = st};
	tally_pg_restore_info_t ri = {0};
	uint64_t t_reg;
	int64_t voters;
	int rc;

	memset(out, 0, sizeof(*out));
	/* PostgreSQL may be starting: wait for it rather than give up. */
	while ((st->main = connect_ms(st, 5000, err, errsz)) == NULL) {
		if (st->o.cancel != NULL && st->o.cancel(st->o.cancel_arg))
			return TALLY_EIO;
		slog(st, "waiting for postgres: %s", err);
	}
	if ((rc = tally_pg_migrate(st->main, NULL, err, errsz)) != 0 ||
	    (rc = restore_quiesce(st->main, err, errsz)) != 0 ||
	    (rc = tally_pg_election_get(st->main, st->o.election_id, &out->election, err,
	                                errsz)) != 0)
		return rc;
	st->status_stored = out->election.status;
	if (ro.expected_voters == 0) {
		voters = tally_pg_voter_estimate(st->main);
		ro.expected_voters = voters > 0 ? (size_t)voters + (size_t)voters / 4 + 1024 : 0;
	}
	if ((rc = registry_size(st->main, &ro, err, errsz)) != 0)
		return rc;
	if ((reg = tally_registry_new(&ro, err, errsz)) == NULL)
		return TALLY_ENOMEM;
	/* The stored votes' voters are read on a second connection while the registry loads
	 * (on this thread afterwards if no thread can be had). */
	if (tally_thread_start(&vr.thread, "tally:voted", voted_reader_main, &vr, err,
	                       errsz) == 0)
		vr.started = true;
	else
		slog(st, "%s: reading the stored votes after the registry", err);
	t_reg = tally_mono_ns();
	rc = load_registry(st, &reg, &ro, &ri, err, errsz);
	out->registry_s = (double)(tally_mono_ns() - t_reg) / 1e9;
	if (vr.started)
		pthread_join(vr.thread, NULL);
	else if (rc == 0)
		voted_reader_main(&vr);
	if (rc == 0 && vr.rc != 0) {
		rc = vr.rc;
		snprintf(err, errsz, "%s", vr.err);
	}
	if (rc == 0)
		rc = tally_pg_checkpoint_latest(st->main, st->o.election_id, &out->state,
		                                &out->state_len, &out->version, err, errsz);
	if (rc == 0) {
		int64_t j = tally_pg_journal_votes(st->main, err, errsz);

		if (j < 0)
			rc = (int)j;
		else
			tally_store_relaxed(&st->journal_votes, j);
	}
	if (rc != 0) {
		free(vr.ids);
		free(out->state);
		tally_registry_destroy(reg);
		memset(out, 0, sizeof(*out));
		return rc;
	}
	out->reg = reg;
	out->voted = vr.ids;
	out->nvoted = vr.n;
	out->voted_s = (double)vr.ns / 1e9;
	out->parties = ri.parties;
	out->candidates = ri.candidates;
	out->voters = ri.voters;
	if (ri.from_image)
		snprintf(out->how, sizeof(out->how), "registry image %" PRId64 ": %u parts, %.1f MB, "
		         "waited %.3f s for parts", ri.image_id, ri.parts, (double)ri.bytes / 1e6,
		         ri.fetch_wait_s);
	else
		snprintf(out->how, sizeof(out->how), "every voters row, no registry image of "
		         "generation %" PRId64 " to read", ri.generation);
	st->image_generation = ri.from_image ? 0 : ri.generation;
	if (tally_load_relaxed(&st->journal_votes) > 0)
		slog(st, "%" PRId64 " of the stored votes are in the journal; they move into the "
		     "votes table once reading has caught up", tally_load_relaxed(&st->journal_votes));
	return 0;
}

int
tally_store_offsets(tally_store_t *st, const char *topic, int64_t *offsets, int n, char *err,
                    size_t errsz)
{
	if (st->main == NULL || PQstatus(st->main) != CONNECTION_OK) {
		if (st->main != NULL)
			PQfinish(st->main);
		if ((st->main = connect_ms(st, 10000, err, errsz)) == NULL)
			return TALLY_EIO;
	}
	return tally_pg_offsets_load(st->main, st->o.election_id, topic, offsets, n, err, errsz);
}

int
tally_store_election_set_status(tally_store_t *st, tally_election_status_t status, char *err,
                                size_t errsz)
{
	int rc;

	if (st->main == NULL || PQstatus(st->main) != CONNECTION_OK) {
		if (st->main != NULL)
			PQfinish(st->main);
		if ((st->main = connect_ms(st, 10000, err, errsz)) == NULL)
			return TALLY_EIO;
	}
	rc = tally_pg_election_set_status(st->main, st->o.election_id, status, err, errsz);
	if (rc == 0)
		st->status_stored = status;
	return rc;
}

/* ---- the writer ---------------------------------------------------------------------- */

static void
cut_free(tally_store_t *st, tally_store_cut_t *cut)
{
	if (cut == NULL)
		return;
	free(cut->votes);
	free(cut->state);
	free(cut->offsets);
	for (size_t i = 0; i < cut->nparts; i++) {
		free(cut->parts[i].state);
		free(cut->parts[i].forward);
	}
	free(cut->parts);
	if (st->hooks.release != NULL)
		st->hooks.release(st->hooks.arg, cut->app);
	free(cut);
}

bool
tally_store_abandoning(const tally_store_t *st)
{
	return tally_load_relaxed(&st->quit) == QUIT_ABANDON;
}

/* Write one cut, retrying until it commits (or we are told to give up). r lives as long
 * as the writer, so an outage is logged once and its end once, across cuts. */
static int
write_cut(tally_store_t *st, retry_t *r, tally_store_cut_t *cut)
{
	int64_t xact = 0;   /* a fenced cut's transaction id, for an uncertain COMMIT */
	tally_pg_checkpoint_t c = {
	    .election_id = st->o.election_id,
	    .topic = st->o.topic,
	    .owner = st->o.owner,
	    .generation = cut->generation,
	    .version = cut->version,
	    .votes = cut->votes,
	    .nvotes = cut->nvotes,
	    .journal = cut->nvotes > st->o.journal_above,
	    .state = cut->state,
	    .state_len = cut->state_len,
	    .offsets = cut->offsets,
	    .noffsets = cut->noffsets,
	    .parts = cut->parts,
	    .nparts = cut->nparts,
	    .xact = &xact,
	};
	bool uncertain = false;
	tally_pg_offset_t *extra = NULL;
	char err[512];
	int rc;
	uint64_t t0 = tally_mono_ns(), t1;

	/* The caller's part first (e.g. the dead letters of the votes this cut moves past). */
	if (st->hooks.prepare != NULL &&
	    (rc = st->hooks.prepare(st->hooks.arg, cut, &extra, &c.ndl_offsets)) != 0) {
		free(extra);
		return rc;
	}
	t1 = tally_mono_ns();
	c.dl_topic = c.ndl_offsets > 0 ? st->o.extra_topic : NULL;
	c.dl_offsets = extra;
	/* The elections row follows the state's status (e.g. opened or closed over HTTP). */
	c.status = cut->status;
	c.set_status = c.status != st->status_stored;
	for (;;) {
		if (retry_conn(r, &st->wconn, err, sizeof(err)) != NULL) {
			rc = uncertain ? tally_pg_checkpoint_committed(st->wconn, &c, err, sizeof(err)) : 0;
			if (rc == 1)
				break;         /* the commit we lost sight of had gone through */
			if (rc == 0 &&
			    (rc = tally_pg_checkpoint_write(st->wconn, &c, err, sizeof(err))) == 0)
				break;
			if (PQstatus(st->wconn) != CONNECTION_OK)
				uncertain = true;
		} else {
			rc = TALLY_EIO;
		}
		if (rc == TALLY_EFENCED) {
			/* PostgreSQL answered: not a failure to retry, and not an outage. */
			tally_add_relaxed(&st->fenced, 1);
			if (tally_load_relaxed(&st->pg_down)) {
				tally_store_relaxed(&st->pg_down_since, 0);
				tally_store_relaxed(&st->pg_down, 0);
				retry_ok(r);
			}
			slog(st, "checkpoint refused: %s", err);
			free(extra);
			return rc;
		}
		tally_add_relaxed(&st->checkpoint_failures, 1);
		if (!tally_load_relaxed(&st->pg_down)) {
			tally_store_relaxed(&st->pg_down_since, tally_mono_ns());
			tally_store_relaxed(&st->pg_down, 1);
		}
		retry_failed(r, err);
		if (rc != TALLY_EIO && rc != TALLY_EAGAIN) {
			slog(st, "checkpoint refused: %s", err);
			free(extra);
			return rc;
		}
		if (tally_store_abandoning(st)) {
			free(extra);
			return rc;
		}
		retry_backoff(r);
	}
	r->backoff_ms = BACKOFF_MIN_MS;
	if (tally_load_relaxed(&st->pg_down)) {
		tally_store_relaxed(&st->pg_down_since, 0);
		tally_store_relaxed(&st->pg_down, 0);
		retry_ok(r);
	}
	st->status_stored = c.status;
	free(extra);
	if (tally_mono_ns() - t0 > SLOW_CHECKPOINT_NS)
		slog(st, "slow checkpoint: %zu votes%s: %.3f s before writing (the prepare hook: "
		     "e.g. waiting for kafka to take the dead letters), %.3f s writing to postgres",
		     cut->nvotes, c.journal ? " (journalled)" : "", (double)(t1 - t0) / 1e9,
		     (double)(tally_mono_ns() - t1) / 1e9);
	return 0;
}

static void *
writer_main(void *arg)
{
	tally_store_t *st = arg;
	uint64_t due = 0;
	retry_t r;

	retry_init(&r, st, "checkpoint", " while counting goes on", "checkpoint written");
	for (;;) {
		tally_store_cut_t *cut;
		uint64_t now;
		int rc;

		/* The committed hook asked to be called back at `due`, unless a cut comes first. */
		if (due != 0) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			now = tally_mono_ns();
			if (due > now) {
				uint64_t ns = (uint64_t)ts.tv_nsec + (due - now);

				ts.tv_sec += (time_t)(ns / 1000000000ull);
				ts.tv_nsec = (long)(ns % 1000000000ull);
				if (sem_timedwait(&st->go, &ts) != 0 && errno != ETIMEDOUT)
					continue;
			}
			if (tally_mono_ns() >= due)
				due = st->hooks.timer != NULL ? st->hooks.timer(st->hooks.arg) : 0;
		} else {
			sem_wait(&st->go);
		}
		if ((cut = tally_load_acquire(&st->job)) == NULL) {
			if (tally_load_relaxed(&st->quit) != QUIT_NO)
				break;
			continue;
		}
		if ((rc = write_cut(st, &r, cut)) == 0) {
			now = tally_mono_ns();
			tally_add_relaxed(&st->checkpoints, 1);
			tally_add_relaxed(&st->checkpointed_votes, cut->nvotes);
			if (cut->nvotes > st->o.journal_above)
				tally_add_relaxed(&st->journal_votes, (int64_t)cut->nvotes);
			tally_store_relaxed(&st->last_checkpoint_ns, now);
			tally_store_relaxed(&st->last_checkpoint_ms, (now - cut->cut_ns) / 1000000);
			if (st->hooks.committed != NULL)
				due = st->hooks.committed(st->hooks.arg, cut);
		} else if (!tally_store_abandoning(st) && st->hooks.refused != NULL) {
			/* Refused, not unreachable: a fault to stop on, not to retry. */
			st->hooks.refused(st->hooks.arg, rc);
		}
		cut_free(st, cut);
		tally_store_release(&st->job, NULL);
	}
	if (due != 0 && st->hooks.timer != NULL)
		st->hooks.timer(st->hooks.arg);
	return NULL;
}

int
tally_store_commit(tally_store_t *st, const tally_store_cut_t *cut)
{
	tally_store_cut_t *c;

	if (!tally_store_idle(st))
		return TALLY_EAGAIN;
	if ((c = malloc(sizeof(*c))) == NULL)
		return TALLY_ENOMEM;
	*c = *cut;
	tally_store_release(&st->job, c);
	sem_post(&st->go);
	return 0;
}

bool
tally_store_idle(const tally_store_t *st)
{
	return tally_load_acquire(&st->job) == NULL;
}

void
tally_store_abandon(tally_store_t *st)
{
	tally_store_relaxed(&st->quit, QUIT_ABANDON);
	sem_post(&st->go);
}

/* ---- claims ----------------------------------------------------------------------------- */

int
tally_store_claim(tally_store_t *st, const int32_t *partitions, size_t n,
                  tally_store_claimed_t *out, char *err, size_t errsz)
{
	char list[256];
	size_t len = 0;
	retry_t r;
	int rc;

	if (n == 0)
		return 0;
	retry_init(&r, st, "claiming partitions", "", "partitions claimed");
	for (;;) {
		if (retry_conn(&r, &st->main, err, errsz) == NULL)
			rc = TALLY_EIO;
		else if ((rc = tally_pg_partitions_claim(st->main, st->o.election_id, st->o.topic,
		                                         st->o.owner, partitions, n, out, err,
		                                         errsz)) == 0)
			break;
		if (rc != TALLY_EIO && rc != TALLY_EAGAIN)
			return rc;
		retry_failed(&r, err);
		if (st->o.cancel != NULL && st->o.cancel(st->o.cancel_arg))
			return TALLY_EIO;      /* errstr says what failed last */
		retry_backoff(&r);
	}
	retry_ok(&r);
	list[0] = '\0';
	for (size_t i = 0; i < n && len < sizeof(list) - 32; i++)
		len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%d@%" PRId64,
		                        i ? ", " : "", (int)out[i].partition, out[i].epoch);
	slog(st, "claimed %zu partitions of \"%s\" for \"%s\" (partition@epoch): %s%s", n,
	     st->o.topic, st->o.owner, list, len >= sizeof(list) - 32 ? ", ..." : "");
	return 0;
}

/* ---- the watcher ----------------------------------------------------------------------- */

static bool
watch_quitting(const tally_store_t *st)
{
	return tally_load_relaxed(&st->watch_quit) != QUIT_NO;
}

/* Sleep up to ms, or until the caller wakes the watcher to stop. */
static void
watch_nap(tally_store_t *st, unsigned ms)
{
	struct pollfd fd = {.fd = st->watch_wake[0], .events = POLLIN};

	if (!watch_quitting(st))
		(void)poll(&fd, 1, (int)ms);
}

/* A new connection: LISTEN first (no commit after the first read goes unnoticed). */
static int
watch_listen(PGconn *conn, char *err, size_t errsz)
{
	return tally__pg_exec(conn, "LISTEN " TALLY_PG_PARTS_CHANNEL, 0, NULL, NULL, NULL,
	                      "could not listen for partition states", err, errsz);
}

/* Take in what arrived; true if a notification for this election came. */
static bool
watch_drain(const tally_store_t *st, PGconn *conn)
{
	PGnotify *nf;
	bool ours = false;

	while ((nf = PQnotifies(conn)) != NULL) {
		if (strcmp(nf->relname, TALLY_PG_PARTS_CHANNEL) == 0 &&
		    strcmp(nf->extra, st->o.election_id) == 0)
			ours = true;
		PQfreemem(nf);
	}
	return ours;
}

static void
watch_set_leader(tally_store_t *st, bool *leader, bool now, const char *why)
{
	if (*leader == now)
		return;
	*leader = now;
	if (now)
		slog(st, "results leader of election \"%s\"", st->o.election_id);
	else
		slog(st, "no longer the results leader of election \"%s\": %s", st->o.election_id,
		     why);
	if (st->watch.leader != NULL)
		st->watch.leader(st->watch.arg, now);
}

/* The connection is gone, and with it the lock (PostgreSQL releases a session's locks). */
static void
watch_lost(tally_store_t *st, PGconn **conn, bool *leader)
{
	if (*conn != NULL)
		PQfinish(*conn);
	*conn = NULL;
	watch_set_leader(st, leader, false, "the connection to postgres was lost");
}

static bool
parts_equal(const tally_pg_part_t *a, size_t na, const tally_pg_part_t *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (a[i].partition != b[i].partition || a[i].epoch != b[i].epoch ||
		    a[i].version != b[i].version || a[i].state_len != b[i].state_len ||
		    (a[i].state_len > 0 && memcmp(a[i].state, b[i].state, a[i].state_len) != 0))
			return false;
	return true;
}

/* What the watcher read last. */
typedef struct watch_seen {
	tally_pg_part_t *parts;
	size_t n;
	bool read;                       /* a first read happened */
} watch_seen_t;

/* One round: who owns the lowest partition, then the parts; tell the caller what changed,
 * the parts first: a new leader publishes from states read after it owned the partition. */
static int
watch_round(tally_store_t *st, PGconn *conn, bool *leader, watch_seen_t *seen, char *err,
            size_t errsz)
{
	const char *v[2] = {st->o.election_id, st->o.topic};
	tally_pg_part_t *parts;
	PGresult *res;
	char first[32] = "";
	size_t n;
	bool owns;
	int rc;

	res = PQexecParams(conn, "SELECT owner, partition FROM partition_owners WHERE"
	                   " election_id = $1 AND topic = $2 ORDER BY partition LIMIT 1", 2, NULL, v,
	                   NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		rc = tally__pg_failed(conn, res, "could not read the partitions' owners", err, errsz);
		PQclear(res);
		return rc;
	}
	owns = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), st->o.owner) == 0;
	if (PQntuples(res) == 1)
		snprintf(first, sizeof(first), "%s", PQgetvalue(res, 0, 1));
	PQclear(res);
	if ((rc = tally_pg_parts_read(conn, st->o.election_id, st->o.topic, &parts, &n, err,
	                              errsz)) != 0)
		return rc;
	if (seen->read && parts_equal(parts, n, seen->parts, seen->n)) {
		tally_pg_parts_free(parts, n);
		if (st->watch.every_round && st->watch.parts != NULL)
			st->watch.parts(st->watch.arg, seen->parts, seen->n);
	} else {
		tally_pg_parts_free(seen->parts, seen->n);
		seen->parts = parts;
		seen->n = n;
		seen->read = true;
		if (st->watch.parts != NULL)
			st->watch.parts(st->watch.arg, parts, n);
	}
	if (owns != *leader) {
		char why[96];

		snprintf(why, sizeof(why), "partition %s is another instance's", first);
		watch_set_leader(st, leader, owns, owns ? NULL : why);
	}
	tally_store_release(&st->watch_rounds, tally_load_relaxed(&st->watch_rounds) + 1);
	return 0;
}

static void *
watcher_main(void *arg)
{
	tally_store_t *st = arg;
	uint64_t interval_ns = (uint64_t)(st->watch.interval_ms ? st->watch.interval_ms : 1000u) *
	                       1000000ull;
	uint64_t last = 0;
	watch_seen_t seen = {0};
	PGconn *conn = NULL;
	bool leader = false, pending = true;
	retry_t r;
	char err[512];

	retry_init(&r, st, "watching partition states", "", "watching partition states");
	while (!watch_quitting(st)) {
		struct pollfd fds[2];
		uint64_t now;

		if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
			watch_lost(st, &conn, &leader);
			if ((conn = connect_ms(st, CONNECT_TIMEOUT_MS, err, sizeof(err))) == NULL ||
			    watch_listen(conn, err, sizeof(err)) != 0) {
				watch_lost(st, &conn, &leader);
				retry_failed(&r, err);
				watch_nap(st, r.backoff_ms);
				retry_grow(&r);
				continue;
			}
			pending = true;
		}
		now = tally_mono_ns();
		if (pending || now - last >= interval_ns) {
			pending = false;
			last = now;
			if (watch_round(st, conn, &leader, &seen, err, sizeof(err)) != 0) {
				if (PQstatus(conn) != CONNECTION_OK)
					watch_lost(st, &conn, &leader);
				retry_failed(&r, err);
				watch_nap(st, r.backoff_ms);
				retry_grow(&r);
				pending = true;
				continue;
			}
			retry_ok(&r);
		}
		/* Notifications that came in with the round's answers: another round at once. */
		if (watch_drain(st, conn)) {
			pending = true;
			continue;
		}
		now = tally_mono_ns();
		fds[0] = (struct pollfd){.fd = PQsocket(conn), .events = POLLIN};
		fds[1] = (struct pollfd){.fd = st->watch_wake[0], .events = POLLIN};
		if (poll(fds, 2, now - last >= interval_ns ? 0
		                 : (int)((interval_ns - (now - last) + 999999) / 1000000)) > 0 &&
		    fds[0].revents != 0) {
			if (!PQconsumeInput(conn)) {
				tally__pg_set_error(conn, NULL, "could not wait for notifications", err,
				                    sizeof(err));
				watch_lost(st, &conn, &leader);
				retry_failed(&r, err);
				continue;
			}
			pending = watch_drain(st, conn);
		}
	}
	/* Resign before stopping. */
	watch_set_leader(st, &leader, false, "stopping");
	if (conn != NULL)
		PQfinish(conn);
	tally_pg_parts_free(seen.parts, seen.n);
	return NULL;
}

uint64_t
tally_store_watch_rounds(const tally_store_t *st)
{
	return tally_load_acquire(&st->watch_rounds);
}

int
tally_store_watch_start(tally_store_t *st, const tally_store_watch_t *w, char *err,
                        size_t errsz)
{
	int rc;

	if (st->watcher_started) {
		tally_errstr_set(err, errsz, "the watcher of election \"%s\" is running already",
		                 st->o.election_id);
		return TALLY_ESTATE;
	}
	if (pipe2(st->watch_wake, O_CLOEXEC | O_NONBLOCK) != 0) {
		tally_errstr_set(err, errsz, "could not start the watcher: %s", strerror(errno));
		return TALLY_EIO;
	}
	st->watch = *w;
	tally_store_relaxed(&st->watch_quit, QUIT_NO);
	if ((rc = tally_thread_start(&st->watcher, "tally:watch", watcher_main, st, err,
	                             errsz)) != 0) {
		close(st->watch_wake[0]);
		close(st->watch_wake[1]);
		return rc;
	}
	st->watcher_started = true;
	return 0;
}

void
tally_store_watch_stop(tally_store_t *st)
{
	if (!st->watcher_started)
		return;
	tally_store_relaxed(&st->watch_quit, QUIT_WHEN_IDLE);
	(void)!write(st->watch_wake[1], "", 1);
	pthread_join(st->watcher, NULL);
	close(st->watch_wake[0]);
	close(st->watch_wake[1]);
	st->watcher_started = false;
	slog(st, "watcher stopped");
}

/* ---- the mover ----------------------------------------------------------------------- */

/*
 * The votes a cut stored in the vote journal are moved into the votes table, one piece
 * per transaction. Counting comes first: only while the caller has caught up with its
 * source, so a backlog is counted at full speed and the votes table fills in behind it.
 * Every vote is in exactly one of the two at every commit.
 */
static void *
mover_main(void *arg)
{
	tally_store_t *st = arg;
	PGconn *conn = NULL;
	retry_t r;
	uint64_t started = 0, moved = 0;
	char err[512];

	retry_init(&r, st, "moving journalled votes", " (the piece stays in the journal)",
	           "journalled votes move again");
	while (tally_load_relaxed(&st->mover_quit) == QUIT_NO) {
		size_t n = 0;

		if (tally_load_relaxed(&st->journal_votes) <= 0 ||
		    !tally_load_relaxed(&st->caught_up)) {
			nap_ms(MOVER_IDLE_MS);
			continue;
		}
		if (retry_conn(&r, &conn, err, sizeof(err)) == NULL) {
			retry_failed(&r, err);
			retry_backoff(&r);
			continue;
		}
		if (started == 0) {
			started = tally_mono_ns();
			moved = 0;
		}
		if (tally_pg_journal_move_one(conn, &n, err, sizeof(err)) != 0) {
			/* Rolled back: the piece stays in the journal and is tried again; a piece
			 * PostgreSQL refuses (e.g. a voter deleted since the vote was counted) holds
			 * the journal up until someone looks, which the log says once. */
			retry_failed(&r, err);
			retry_backoff(&r);
			continue;
		}
		retry_ok(&r);
		if (n == 0) {
			/* Every piece left is locked, e.g. by the backend of a killed writer that
			 * PostgreSQL has not noticed yet: its move will roll back. */
			nap_ms(1000);
			continue;
		}
		moved += n;
		tally_add_relaxed(&st->moved_votes, n);
		if (tally_add_relaxed(&st->journal_votes, -(int64_t)n) <= 0) {
			slog(st, "journal moved into votes: %" PRIu64 " votes in %.3f s", moved,
			     (double)(tally_mono_ns() - started) / 1e9);
			started = 0;
		}
	}
	if (conn != NULL)
		PQfinish(conn);
	return NULL;
}

/* ---- the registry image writer -------------------------------------------------------- */

static bool
imager_quitting(const tally_store_t *st)
{
	return tally_load_relaxed(&st->imager_quit) != QUIT_NO;
}

/* Polled between parts: waits while reading is behind; true when asked to stop. */
static bool
imager_stopping(void *arg)
{
	tally_store_t *st = arg;

	while (!imager_quitting(st) && !tally_load_relaxed(&st->caught_up))
		nap_ms(20);
	return imager_quitting(st);
}

/*
 * Reads the registry lock-free while its writer (the caller's registrar) and the vote
 * path go on, and writes through its own connection, so it shares nothing with them but
 * the CPU: only while caught up, a delay after that first, at nice 10, pausing between
 * parts.
 */
static void *
imager_main(void *arg)
{
	tally_store_t *st = arg;
	tally_pg_image_write_opts_t o = {.part_bytes = IMAGE_PART_BYTES,
	                                 .pause_ms = IMAGE_PAUSE_MS,
	                                 .stop = imager_stopping, .stop_arg = st};
	tally_pg_image_write_info_t info;
	PGconn *conn = NULL;
	retry_t r;
	char err[512];
	int rc;

	/* Linux applies a nice value to the calling thread alone. */
	(void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10);
	if (imager_stopping(st))
		return NULL;
	for (unsigned waited = 0; waited < st->o.image_delay_ms; waited += 20) {
		if (imager_quitting(st))
			return NULL;
		nap_ms(20);
	}
	retry_init(&r, st, "registry image", "", "writing the registry image");
	while (retry_conn(&r, &conn, err, sizeof(err)) == NULL) {
		if (imager_quitting(st))
			return NULL;
		retry_failed(&r, err);
		retry_backoff(&r);
	}
	retry_ok(&r);
	rc = tally_pg_registry_image_write(conn, st->reg, st->image_generation, &o, &info, err,
	                                   sizeof(err));
	if (rc == 0)
		slog(st, "registry image %" PRId64 " written: %" PRIu64 " voters, %u parts, %.1f MB "
		     "in %.3f s (generation %" PRId64 ")", info.image_id, info.voters, info.parts,
		     (double)info.bytes / 1e6, info.seconds, st->image_generation);
	else
		slog(st, "registry image not written (%s): %s", tally_err2str(rc), err);
	PQfinish(conn);
	return NULL;
}

/* ---- starting and stopping ------------------------------------------------------------- */

int
tally_store_start(tally_store_t *st, const tally_store_hooks_t *hooks,
                  const tally_registry_t *reg, char *err, size_t errsz)
{
	char why[256];

	st->hooks = *hooks;
	st->reg = reg;
	if (tally_thread_start(&st->writer, "tally:ckpt", writer_main, st, err, errsz) != 0)
		return TALLY_EAGAIN;
	st->writer_started = true;
	if (tally_thread_start(&st->mover, "tally:mover", mover_main, st, why, sizeof(why)) == 0)
		st->mover_started = true;
	else
		slog(st, "%s: journalled votes stay in the journal until the next start", why);
	/* After a full load, the image for the next start, in the background. */
	if (st->image_generation > 0 && reg != NULL) {
		if (tally_thread_start(&st->imager, "tally:imager", imager_main, st, why,
		                       sizeof(why)) == 0)
			st->imager_started = true;
		else
			slog(st, "%s", why);
	}
	return 0;
}

void
tally_store_stop_background(tally_store_t *st)
{
	if (st->mover_started) {
		tally_store_relaxed(&st->mover_quit, QUIT_WHEN_IDLE);
		pthread_join(st->mover, NULL);
		st->mover_started = false;
		slog(st, "mover stopped");
	}
	if (st->imager_started) {
		tally_store_relaxed(&st->imager_quit, QUIT_WHEN_IDLE);
		pthread_join(st->imager, NULL);
		st->imager_started = false;
		slog(st, "registry image writer stopped");
	}
}

void
tally_store_stop(tally_store_t *st)
{
	tally_store_stop_background(st);
	if (st->writer_started) {
		int expected = QUIT_NO;

		__atomic_compare_exchange_n(&st->quit, &expected, QUIT_WHEN_IDLE, false,
		                            __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
		sem_post(&st->go);
		pthread_join(st->writer, NULL);
		st->writer_started = false;
		slog(st, "checkpointer stopped");
	}
	tally_store_watch_stop(st);
}

void
tally_store_destroy(tally_store_t *st)
{
	if (st == NULL)
		return;
	tally_store_stop(st);
	cut_free(st, st->job);
	if (st->main != NULL)
		PQfinish(st->main);
	if (st->reg_conn != NULL)
		PQfinish(st->reg_conn);
	if (st->wconn != NULL)
		PQfinish(st->wconn);
	sem_destroy(&st->go);
	free(st);
}

/* ---- registrations ------------------------------------------------------------------- */

/* Fixed, parameterised statements: the message's JSON is the one parameter. */
static const char insert_voter_sql[] =
    "INSERT INTO voters (voter_id, voter_name, date_of_birth, gender, nationality,"
    " registration_number, address_street, address_city, address_state, address_country,"
    " address_postcode, email, phone_number, cell_number, picture, registered_age)"
    " SELECT (j->>'voter_id')::uuid, j->>'voter_name', (j->>'date_of_birth')::date,"
    " j->>'gender', j->>'nationality', j->>'registration_number', j->'address'->>'street',"
    " j->'address'->>'city', j->'address'->>'state', j->'address'->>'country',"
    " j->'address'->>'postcode', j->>'email', j->>'phone_number', j->>'cell_number',"
    " j->>'picture', (j->>'registered_age')::integer"
    " FROM (SELECT $1::jsonb AS j) AS m ON CONFLICT (voter_id) DO NOTHING";
static const char insert_party_sql[] =
    "INSERT INTO parties (party_affiliation) VALUES ($1) ON CONFLICT DO NOTHING";
static const char insert_candidate_sql[] =
    "INSERT INTO candidates (candidate_id, candidate_name, party_affiliation, biography,"
    " campaign_platform, photo_url)"
    " SELECT (j->>'candidate_id')::uuid, j->>'candidate_name', j->>'party_affiliation',"
    " j->>'biography', j->>'campaign_platform', j->>'photo_url'"
    " FROM (SELECT $1::jsonb AS j) AS m ON CONFLICT (candidate_id) DO NOTHING";
static const char upsert_offset_sql[] =
    "INSERT INTO checkpoint_offsets (election_id, topic, partition,"
    " next_offset, owner, generation) VALUES ($1, $2, $3, $4, $5, $6)"
    " ON CONFLICT (election_id, topic, partition) DO UPDATE SET"
    " next_offset = EXCLUDED.next_offset, updated_at = now()";

/* One transaction: the registrations and the topics' offsets. */
static int
registrations_tx(tally_store_t *st, PGconn *c, const tally_store_registration_t *regs,
                 size_t n, const tally_store_topic_offsets_t *topics, size_t ntopics,
                 char *err, size_t errsz)
{
	int rc;

	if ((rc = tally__pg_exec(c, "BEGIN", 0, NULL, NULL, NULL, "could not begin", err,
	                         errsz)) != 0)
		return rc;
	for (size_t i = 0; i < n && rc == 0; i++) {
		const char *v[1] = {regs[i].json};

		if (regs[i].voter) {
			rc = tally__pg_exec(c, insert_voter_sql, 1, v, NULL, NULL, "could not store a voter",
			                    err, errsz);
		} else {
			const char *party[1] = {regs[i].party};

			if ((rc = tally__pg_exec(c, insert_party_sql, 1, party, NULL, NULL,
			                         "could not store a party", err, errsz)) == 0)
				rc = tally__pg_exec(c, insert_candidate_sql, 1, v, NULL, NULL,
				                    "could not store a candidate", err, errsz);
		}
	}
	for (size_t t = 0; t < ntopics && rc == 0; t++) {
		const tally_store_topic_offsets_t *tp = &topics[t];

		for (int p = 0; p < tp->nparts && rc == 0; p++) {
			char part[16], off[24];
			const char *v[6] = {st->o.election_id, tp->topic, part, off, REGISTRAR_OWNER, "0"};

			if (tp->next[p] < 0)
				continue;
			snprintf(part, sizeof(part), "%d", p);
			snprintf(off, sizeof(off), "%" PRId64, tp->next[p]);
			rc = tally__pg_exec(c, upsert_offset_sql, 6, v, NULL, NULL,
			                    "could not store the offsets", err, errsz);
		}
	}
	if (rc == 0)
		rc = tally__pg_exec(c, "COMMIT", 0, NULL, NULL, NULL, "could not commit", err, errsz);
	if (rc != 0)
		tally__pg_rollback(c);
	return rc;
}

int
tally_store_registrations_write(tally_store_t *st, const tally_store_registration_t *regs,
                                size_t n, const tally_store_topic_offsets_t *topics,
                                size_t ntopics, bool (*cancel)(void *), void *cancel_arg,
                                char *err, size_t errsz)
{
	retry_t r;

	/* Retried until stored: a registration is never dropped. */
	retry_init(&r, st, "storing registrations", "", "registrations stored");
	for (;;) {
		if (retry_conn(&r, &st->reg_conn, err, errsz) != NULL &&
		    registrations_tx(st, st->reg_conn, regs, n, topics, ntopics, err, errsz) == 0)
			break;
		if (cancel != NULL && cancel(cancel_arg))
			return TALLY_EAGAIN;
		retry_failed(&r, err);
		retry_backoff(&r);
	}
	retry_ok(&r);
	return 0;
}

/* ---- the voted set, again ---------------------------------------------------------------- */

int
tally_store_voted(tally_store_t *st, tally_uuid_t **ids, size_t *n, char *err, size_t errsz)
{
	retry_t r;
	int rc;

	*ids = NULL;
	*n = 0;
	retry_init(&r, st, "reading the stored votes' voters", "", "stored votes' voters read");
	for (;;) {
		if (retry_conn(&r, &st->main, err, errsz) == NULL)
			rc = TALLY_EIO;
		else if ((rc = tally_pg_votes_voters(st->main, ids, n, err, errsz)) == 0)
			break;
		if (rc != TALLY_EIO && rc != TALLY_EAGAIN)
			return rc;
		retry_failed(&r, err);
		if (st->o.cancel != NULL && st->o.cancel(st->o.cancel_arg))
			return TALLY_EIO;
		retry_backoff(&r);
	}
	retry_ok(&r);
	return 0;
}
