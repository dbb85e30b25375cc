/*
 * Registry images in PostgreSQL (migration 5, "registry image"): write the in-memory
 * registry's voters as packed parts, and restore a registry from them. See
 * include/tally/pg_registry_image.h.
 *
 * DESIGN (threads): the restore runs on its caller's thread, which registers voters, and
 * one fetcher thread it starts and joins, which owns the connection while the parts'
 * single query runs (single-row mode: one part = one row = one PGresult) and hands each
 * part over through a queue of at most FETCH_AHEAD results (a mutex and two condition
 * variables: this is start-up, not the vote path). The caller's thread touches the
 * connection again only after joining the fetcher. The writer runs on its caller's thread
 * and only reads the registry (lock-free), so it can run beside the registration writer
 * and the vote path.
 */
#include <endian.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tally/error.h>
#include <tally/pg.h>
#include <tally/pg_registry.h>
#include <tally/pg_registry_image.h>
#include <tally/thread.h>
#include <tally/time.h>

#include "pg_int.h"

#define DEFAULT_PART_BYTES (16u << 20)
#define FETCH_AHEAD 2             /* parts fetched and waiting, at most */
#define MAX_REGIONS 16384u        /* the registry's limit (14 bits per voter) */

/* ---- small helpers ----------------------------------------------------------------- */

static int64_t
get_be64(const char *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return (int64_t)be64toh(v);
}

static int32_t
get_be32(const char *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return (int32_t)be32toh(v);
}

/* A binary-format integer column of row 0 (int4 or int8), or -1 when NULL or odd. */
static int64_t
int_col(const PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return -1;
	if (PQgetlength(res, row, col) == 8)
		return get_be64(PQgetvalue(res, row, col));
	if (PQgetlength(res, row, col) == 4)
		return get_be32(PQgetvalue(res, row, col));
	return -1;
}

static double
secs_since(uint64_t t0)
{
	return (double)(tally_mono_ns() - t0) / 1e9;
}

int64_t
tally_pg_registry_generation(PGconn *conn)
{
	PGresult *res = PQexecParams(conn, "SELECT generation FROM registry_generation", 0, NULL,
	                             NULL, NULL, NULL, 0);
	int64_t g;

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		g = PQresultStatus(res) == PGRES_TUPLES_OK ? TALLY_ECORRUPT : tally_pg_err(conn, res);
		PQclear(res);
		return g;
	}
	g = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return g;
}

/* ---- restore: the fetcher ----------------------------------------------------------- */

struct fetch {
	PGconn *conn;
	char image_id[24];
	pthread_mutex_t mu;
	pthread_cond_t more, room;
	PGresult *q[FETCH_AHEAD];
	unsigned head, n;
	bool done;                    /* no more parts will come */
	bool quit;                    /* the consumer gave up: drop the rest */
	int rc;                       /* the query's failure, 0 if none */
	char err[256];
};

static void *
fetch_main(void *arg)
{
	static const char sql[] = "SELECT part, voters, data FROM registry_image_parts"
	                          " WHERE image_id = $1 ORDER BY part";
	struct fetch *f = arg;
	const char *values[1] = {f->image_id};
	PGresult *res;
	int rc = 0;
	char err[256] = "";

	/* Binary results: the data arrives as its bytes, with no hex to decode. */
	if (PQsendQueryParams(f->conn, sql, 1, NULL, values, NULL, NULL, 1) != 1) {
		rc = tally__pg_failed(f->conn, NULL, "could not read the registry image's parts", err,
		            sizeof(err));
	} else {
		if (PQsetSingleRowMode(f->conn) != 1)
			rc = tally__pg_failed(f->conn, NULL, "could not read the registry image's parts", err,
			            sizeof(err));
		while ((res = PQgetResult(f->conn)) != NULL) {
			ExecStatusType st = PQresultStatus(res);

			if (st == PGRES_SINGLE_TUPLE && rc == 0) {
				pthread_mutex_lock(&f->mu);
				while (f->n == FETCH_AHEAD && !f->quit)
					pthread_cond_wait(&f->room, &f->mu);
				if (!f->quit) {
					f->q[(f->head + f->n) % FETCH_AHEAD] = res;
					f->n++;
					res = NULL;
					pthread_cond_signal(&f->more);
				}
				pthread_mutex_unlock(&f->mu);
			} else if (st != PGRES_SINGLE_TUPLE && st != PGRES_TUPLES_OK && rc == 0) {
				rc = tally__pg_failed(f->conn, res, "could not read the registry image's parts", err,
				            sizeof(err));
			}
			PQclear(res);
		}
	}
	pthread_mutex_lock(&f->mu);
	f->rc = rc;
	snprintf(f->err, sizeof(f->err), "%s", err);
	f->done = true;
	pthread_cond_signal(&f->more);
	pthread_mutex_unlock(&f->mu);
	return NULL;
}

/* The next part, or NULL at the end (f->rc then tells whether the query ended well). */
static PGresult *
fetch_next(struct fetch *f, uint64_t *wait_ns)
{
	PGresult *res = NULL;
	uint64_t t0 = tally_mono_ns();

	pthread_mutex_lock(&f->mu);
	while (f->n == 0 && !f->done)
		pthread_cond_wait(&f->more, &f->mu);
	if (f->n > 0) {
		res = f->q[f->head];
		f->head = (f->head + 1) % FETCH_AHEAD;
		f->n--;
		pthread_cond_signal(&f->room);
	}
	pthread_mutex_unlock(&f->mu);
	*wait_ns += tally_mono_ns() - t0;
	return res;
}

/* ---- restore -------------------------------------------------------------------------- */

struct image_head {
	int64_t image_id, voters, bytes;
	int32_t parts, regions;
	const char *names;
	int names_len;
};

/* Register the image's regions in reg; map[i] is the registry's index of image region i. */
static int
image_regions(tally_registry_t *reg, const struct image_head *h, uint32_t **map, char *errstr,
              size_t errstr_size)
{
	const char *p = h->names, *end = h->names + h->names_len;
	int32_t i = 0;

	if (h->regions < 0 || (uint32_t)h->regions > MAX_REGIONS ||
	    (*map = calloc((size_t)h->regions + 1, sizeof(**map))) == NULL) {
		snprintf(errstr, errstr_size, "could not restore registry image %" PRId64 ": %d "
		         "regions", h->image_id, h->regions);
		return TALLY_ECORRUPT;
	}
	for (; p < end && i < h->regions; i++) {
		const char *nul = memchr(p, '\0', (size_t)(end - p));
		tally_refusal_t r;

		if (nul == NULL)
			break;
		if ((r = tally_registry_add_region(reg, p, &(*map)[i])) != TALLY_REFUSAL_NONE) {
			snprintf(errstr, errstr_size, "could not restore registry image %" PRId64
			         ": region %d: %s", h->image_id, i, tally_refusal_name(r));
			return r == TALLY_REFUSAL_FULL ? TALLY_EFULL : TALLY_ECORRUPT;
		}
		p = nul + 1;
	}
	if (i != h->regions || p != end) {
		snprintf(errstr, errstr_size, "could not restore registry image %" PRId64 ": the "
		         "region table does not hold %d names", h->image_id, h->regions);
		return TALLY_ECORRUPT;
	}
	return 0;
}

/* The voters of image h, part by part, fetched on a second thread. */
static int
image_voters(PGconn *conn, tally_registry_t *reg, const struct image_head *h,
             tally_pg_restore_info_t *info, char *errstr, size_t errstr_size)
{
	struct fetch f = {.conn = conn};
	uint32_t *map = NULL;
	uint64_t wait_ns = 0, voters = 0, bytes = 0;
	int32_t parts = 0;
	pthread_t thread;
	PGresult *res;
	char msg[256];
	int rc;

	if ((rc = image_regions(reg, h, &map, errstr, errstr_size)) != 0)
		return rc;
	snprintf(f.image_id, sizeof(f.image_id), "%" PRId64, h->image_id);
	pthread_mutex_init(&f.mu, NULL);
	pthread_cond_init(&f.more, NULL);
	pthread_cond_init(&f.room, NULL);
	if ((rc = tally_thread_start(&thread, "tally:imgfetch", fetch_main, &f, msg,
	                             sizeof(msg))) != 0) {
		snprintf(errstr, errstr_size, "could not restore registry image %" PRId64 ": %s",
		         h->image_id, msg);
		goto out;
	}
	while ((res = fetch_next(&f, &wait_ns)) != NULL) {
		int64_t part = int_col(res, 0, 0), n = int_col(res, 0, 1);
		int len = PQgetlength(res, 0, 2);
		uint64_t added = 0;
		char why[200];

		if (rc == 0 && (PQnfields(res) != 3 || part != parts || n < 0)) {
			snprintf(errstr, errstr_size, "could not restore registry image %" PRId64 ": part "
			         "%d is missing or malformed", h->image_id, parts);
			rc = TALLY_ECORRUPT;
		}
		if (rc == 0 &&
		    tally_registry_add_voters_packed(reg, PQgetvalue(res, 0, 2), (size_t)len, map,
		                                     (uint32_t)h->regions, &added, why,
		                                     sizeof(why)) != 0) {
			snprintf(errstr, errstr_size, "could not restore registry image %" PRId64
			         ": part %d: %s", h->image_id, parts, why);
			rc = TALLY_ECORRUPT;
		}
		if (rc == 0 && added != (uint64_t)n) {
			snprintf(errstr, errstr_size, "could not restore registry image %" PRId64 ": part "
			         "%d holds %" PRIu64 " voters, not %" PRId64, h->image_id, parts, added, n);
			rc = TALLY_ECORRUPT;
		}
		voters += added;
		bytes += (uint64_t)len;
		parts++;
		PQclear(res);
		if (rc != 0) {
			/* Let the fetcher drop what is left rather than wait for room. */
			pthread_mutex_lock(&f.mu);
			f.quit = true;
			pthread_cond_signal(&f.room);
			pthread_mutex_unlock(&f.mu);
		}
	}
	pthread_join(thread, NULL);
	for (unsigned k = 0; k < f.n; k++)
		PQclear(f.q[(f.head + k) % FETCH_AHEAD]);
	if (rc == 0 && f.rc != 0) {
		snprintf(errstr, errstr_size, "%s", f.err);
		rc = f.rc;
	}
	if (rc == 0 && (parts != h->parts || voters != (uint64_t)h->voters ||
	                bytes != (uint64_t)h->bytes)) {
		snprintf(errstr, errstr_size, "could not restore registry image %" PRId64 ": %d parts, "
		         "%" PRIu64 " voters, %" PRIu64 " bytes read; the image says %d, %" PRId64
		         ", %" PRId64, h->image_id, parts, voters, bytes, h->parts, h->voters, h->bytes);
		rc = TALLY_ECORRUPT;
	}
	info->voters = voters;
	info->parts = (uint32_t)parts;
	info->bytes = bytes;
	info->fetch_wait_s = (double)wait_ns / 1e9;
out:
	pthread_mutex_destroy(&f.mu);
	pthread_cond_destroy(&f.more);
	pthread_cond_destroy(&f.room);
	free(map);
	return rc;
}

int
tally_pg_registry_restore(PGconn *conn, tally_registry_t *reg, tally_pg_restore_info_t *info,
                          char *errstr, size_t errstr_size)
{
	/* The newest complete image of the snapshot's generation, if any, in the format read
	 * here; one row either way. */
	static const char head_sql[] =
	    "SELECT g.generation, c.image_id, c.voters, c.parts, c.bytes, c.regions, c.region_names"
	    " FROM registry_generation g LEFT JOIN LATERAL ("
	    "   SELECT i.image_id, k.voters, k.parts, k.bytes, k.regions, k.region_names"
	    "   FROM registry_images i JOIN registry_image_complete k USING (image_id)"
	    "   WHERE i.generation = g.generation AND i.format = $1::integer"
	    "   ORDER BY i.image_id DESC LIMIT 1) c ON true";
	char format[16];
	const char *values[1] = {format};
	PGresult *res = NULL;
	struct image_head h = {0};
	int rc;

	memset(info, 0, sizeof(*info));
	if (conn == NULL || reg == NULL) {
		snprintf(errstr, errstr_size, "could not load the registry: no connection or registry");
		return TALLY_EINVAL;
	}
	if (PQtransactionStatus(conn) != PQTRANS_IDLE) {
		snprintf(errstr, errstr_size, "could not load the registry: a transaction is open");
		return TALLY_EINVAL;
	}
	if ((rc = tally__pg_exec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL,
	                         NULL, NULL, "could not begin reading the registry", errstr,
	                         errstr_size)) != 0)
		return rc;
	snprintf(format, sizeof(format), "%d", TALLY_PG_IMAGE_FORMAT);
	res = PQexecParams(conn, head_sql, 1, NULL, values, NULL, NULL, 1);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		rc = tally__pg_failed(conn, res, "could not read the registry generation", errstr, errstr_size);
		goto out;
	}
	if (PQntuples(res) != 1 || (info->generation = int_col(res, 0, 0)) < 0) {
		snprintf(errstr, errstr_size, "could not read the registry generation: "
		         "registry_generation does not hold one row");
		rc = TALLY_ECORRUPT;
		goto out;
	}
	if (PQgetisnull(res, 0, 1)) {
		/* No image of this generation: every voters row, in this same snapshot. */
		PQclear(res);
		res = NULL;
		rc = tally_pg_registry_load(conn, reg, &info->parties, &info->candidates,
		                            &info->voters, errstr, errstr_size);
		goto out;
	}
	h.image_id = int_col(res, 0, 1);
	h.voters = int_col(res, 0, 2);
	h.parts = (int32_t)int_col(res, 0, 3);
	h.bytes = int_col(res, 0, 4);
	h.regions = (int32_t)int_col(res, 0, 5);
	h.names = PQgetvalue(res, 0, 6);
	h.names_len = PQgetlength(res, 0, 6);
	info->from_image = true;
	info->image_id = h.image_id;
	if ((rc = tally__pg_load_parties_candidates(conn, reg, &info->parties, &info->candidates,
	                                            errstr, errstr_size)) != 0 ||
	    (rc = image_voters(conn, reg, &h, info, errstr, errstr_size)) != 0)
		goto out;
out:
	PQclear(res);
	if (rc == 0)
		rc = tally__pg_exec(conn, "COMMIT", 0, NULL, NULL, NULL,
		                    "could not end reading the registry", errstr, errstr_size);
	if (rc != 0)
		tally__pg_rollback(conn);
	return rc;
}

/* ---- write ---------------------------------------------------------------------------- */

static bool
should_stop(const tally_pg_image_write_opts_t *o)
{
	return o->stop != NULL && o->stop(o->stop_arg);
}

/* Sleep ms in slices of 20 ms, returning early (true) when asked to stop. */
static bool
pause_or_stop(const tally_pg_image_write_opts_t *o, unsigned ms)
{
	while (ms > 0) {
		unsigned slice = ms < 20 ? ms : 20;
		struct timespec ts = {0, (long)slice * 1000000L};

		if (should_stop(o))
			return true;
		nanosleep(&ts, NULL);
		ms -= slice;
	}
	return should_stop(o);
}

/* Run a parameterised statement whose success is one affected row; 0 rows is ESTATE. */
static int
exec_one(PGconn *conn, const char *sql, int n, const char *const *values, const int *lengths,
         const int *formats, const char *what, char *errstr, size_t errstr_size)
{
	PGresult *res = PQexecParams(conn, sql, n, NULL, values, lengths, formats, 0);
	int rc = 0;

	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
		rc = tally__pg_failed(conn, res, what, errstr, errstr_size);
	else if (strcmp(PQcmdTuples(res), "1") != 0)
		rc = TALLY_ESTATE;
	PQclear(res);
	return rc;
}

int
tally_pg_registry_image_write(PGconn *conn, const tally_registry_t *reg, int64_t generation,
                              const tally_pg_image_write_opts_t *opts,
                              tally_pg_image_write_info_t *info, char *errstr,
                              size_t errstr_size)
{
	static const char head_sql[] =
	    "INSERT INTO registry_images (generation, format) SELECT $1::bigint, $2::integer"
	    " WHERE (SELECT generation FROM registry_generation) = $1::bigint RETURNING image_id";
	/* Each part checks the generation too: a registration stops a useless write early. */
	static const char part_sql[] =
	    "INSERT INTO registry_image_parts (image_id, part, voters, data)"
	    " SELECT $1::bigint, $2::integer, $3::integer, $4::bytea"
	    " WHERE (SELECT generation FROM registry_generation) = $5::bigint";
	static const char complete_sql[] =
	    "INSERT INTO registry_image_complete (image_id, voters, parts, bytes, regions,"
	    " region_names) SELECT $1::bigint, $2::bigint, $3::integer, $4::bigint, $5::integer,"
	    " $6::bytea WHERE (SELECT generation FROM registry_generation) = $7::bigint";
	tally_pg_image_write_opts_t o = {0};
	tally_pg_image_write_info_t in = {0};
	tally_registry_cursor_t cur = {0, 0};
	uint64_t t0 = tally_mono_ns();
	char gen[24], id[24], num[3][24], fmt[16], *buf = NULL, *names = NULL;
	size_t names_len = 0, names_cap = 0;
	uint32_t nregions;
	PGresult *res;
	int rc = 0;

	if (opts != NULL)
		o = *opts;
	if (o.part_bytes == 0)
		o.part_bytes = DEFAULT_PART_BYTES;
	if (o.part_bytes < TALLY_VOTER_PACKED_MAX || o.part_bytes > (1u << 30)) {
		snprintf(errstr, errstr_size, "could not write a registry image: a part of %zu bytes "
		         "is outside %d .. %u", o.part_bytes, TALLY_VOTER_PACKED_MAX, 1u << 30);
		return TALLY_EINVAL;
	}
	if (conn == NULL || reg == NULL || PQtransactionStatus(conn) != PQTRANS_IDLE) {
		snprintf(errstr, errstr_size, "could not write a registry image: no connection or "
		         "registry, or a transaction is open");
		return TALLY_EINVAL;
	}
	if ((buf = malloc(o.part_bytes)) == NULL) {
		snprintf(errstr, errstr_size, "could not write a registry image: out of memory");
		return TALLY_ENOMEM;
	}
	snprintf(gen, sizeof(gen), "%" PRId64, generation);
	snprintf(fmt, sizeof(fmt), "%d", TALLY_PG_IMAGE_FORMAT);
	{
		const char *values[2] = {gen, fmt};

		res = PQexecParams(conn, head_sql, 2, NULL, values, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			rc = tally__pg_failed(conn, res, "could not write a registry image", errstr, errstr_size);
			PQclear(res);
			goto out;
		}
		if (PQntuples(res) != 1) {
			PQclear(res);
			rc = TALLY_ESTATE;
			goto out;
		}
		in.image_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		PQclear(res);
	}
	snprintf(id, sizeof(id), "%" PRId64, in.image_id);
	for (;;) {
		uint64_t k;
		size_t n = tally_registry_voters_pack(reg, &cur, buf, o.part_bytes, &k);
		const char *values[5] = {id, num[0], num[1], buf, gen};
		int lengths[5] = {0, 0, 0, (int)n, 0}, formats[5] = {0, 0, 0, 1, 0};

		if (n == 0)
			break;
		snprintf(num[0], sizeof(num[0]), "%u", in.parts);
		snprintf(num[1], sizeof(num[1]), "%" PRIu64, k);
		if ((rc = exec_one(conn, part_sql, 5, values, lengths, formats,
		                   "could not store a registry image part", errstr,
		                   errstr_size)) != 0)
			goto out;
		in.parts++;
		in.voters += k;
		in.bytes += n;
		if (pause_or_stop(&o, o.pause_ms)) {
			rc = TALLY_EAGAIN;
			goto out;
		}
	}
	/* The region table, after the last part: it covers every index packed. */
	nregions = tally_registry_region_count(reg);
	for (uint32_t r = 0; r < nregions; r++) {
		const char *name = tally_registry_region_name(reg, r);
		size_t len = strlen(name) + 1;

		if (names_len + len > names_cap) {
			char *nn;

			names_cap = names_cap ? names_cap * 2 : 4096;
			while (names_cap < names_len + len)
				names_cap *= 2;
			if ((nn = realloc(names, names_cap)) == NULL) {
				snprintf(errstr, errstr_size, "could not write a registry image: out of "
				         "memory");
				rc = TALLY_ENOMEM;
				goto out;
			}
			names = nn;
		}
		memcpy(names + names_len, name, len);
		names_len += len;
	}
	{
		char voters[24], parts[24], bytes[24], regions[24];
		const char *values[7] = {id, voters, parts, bytes, regions, names ? names : "", gen};
		int lengths[7] = {0, 0, 0, 0, 0, (int)names_len, 0};
		int formats[7] = {0, 0, 0, 0, 0, 1, 0};

		snprintf(voters, sizeof(voters), "%" PRIu64, in.voters);
		snprintf(parts, sizeof(parts), "%u", in.parts);
		snprintf(bytes, sizeof(bytes), "%" PRIu64, in.bytes);
		snprintf(regions, sizeof(regions), "%u", nregions);
		if ((rc = exec_one(conn, complete_sql, 7, values, lengths, formats,
		                   "could not mark the registry image complete", errstr,
		                   errstr_size)) != 0)
			goto out;
	}
	/* Older images, complete or not (a write that crashed), go. */
	{
		const char *values[1] = {id};

		res = PQexecParams(conn, "DELETE FROM registry_images WHERE image_id < $1::bigint", 1, NULL,
		                   values, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			rc = tally__pg_failed(conn, res, "could not delete older registry images", errstr,
			            errstr_size);
		PQclear(res);
	}
out:
	if (rc == TALLY_ESTATE)
		snprintf(errstr, errstr_size, "could not write a registry image: the registry changed "
		         "after generation %" PRId64 " was loaded", generation);
	else if (rc == TALLY_EAGAIN)
		snprintf(errstr, errstr_size, "could not write a registry image: stopped after %u "
		         "parts", in.parts);
	if (rc != 0 && rc != TALLY_EINVAL && in.image_id > 0 &&
	    PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) == PQTRANS_IDLE) {
		/* Whatever of it was stored goes; an image without its marker is never read. */
		const char *values[1] = {id};

		res = PQexecParams(conn, "DELETE FROM registry_images WHERE image_id = $1::bigint", 1, NULL,
		                   values, NULL, NULL, 0);
		PQclear(res);
	}
	in.seconds = secs_since(t0);
	if (info != NULL)
		*info = in;
	free(names);
	free(buf);
	return rc;
}
