/*
 * tally-gen: the original main.py, done right. Generates a seeded registry (parties,
 * candidates, voters) with the offline generator, loads it into PostgreSQL with COPY and
 * streams every registration to Kafka keyed by its id.
 *
 * Steps: connect to PostgreSQL (with retry) and apply the migrations; create tally's topics
 * through the admin API; refuse unless both the registry tables and the registration topics
 * are empty; then, in one PostgreSQL transaction, insert the election row (if absent), COPY
 * parties and candidates, and COPY the voters in batches while a second thread produces
 * them to voters_topic. Voters are computed from their index on each thread, so nothing is
 * held in memory whatever the count. The transaction commits only once every Kafka message
 * was delivered; any failure rolls PostgreSQL back (so a failed run can simply be repeated)
 * and exits 1.
 *
 * Re-running with the same seed would duplicate nothing in PostgreSQL (the keys would clash)
 * but would duplicate Kafka messages, so tally-gen refuses, before writing anything, when
 * parties, candidates or voters hold rows or when voters_topic or candidates_topic has ever
 * held a message. A run that fails after producing leaves its messages in Kafka (Kafka has
 * no rollback); delete the topics or use another --topic-prefix before trying again. An
 * interrupted run (Ctrl-C, a kill) is the same: the server rolls the open transaction back.
 *
 * With --randomuser URL the voters and candidates come from a Random-User-API-compatible
 * service instead (the client in include/tally/randomuser.h: batched voters, nat=gb,
 * candidates one request each with gender alternating, retries, a rate limit). Parties and
 * the election window are still the generator's; candidates take the parties round-robin,
 * as generated ones do. The candidates are fetched before the transaction begins; the voters
 * are fetched, copied and produced by one thread, batch after batch. A client error ends the
 * run like any other failure: its message, exit 1, PostgreSQL rolled back.
 *
 * Measured (2-core VM, services from scripts/services on the same machine, 2026-11-24):
 * 10,000,000 voters in 129 s end to end; the PostgreSQL stage 128.6 s (the bound, about
 * 78,000 rows/s), the Kafka stage 61.4 s alongside it, the generator alone 23.7 s.
 *
 * DESIGN (threads): the main thread does the setup, then starts a "tally:gen-pg" thread
 * (owns the PGconn while it runs) and a "tally:gen-kafka" thread (the only producer user
 * then), and draws progress from their relaxed counters until both have finished; it joins
 * them before touching the connection again. A failing thread sets the shared stop flag,
 * which the other checks once per voter. With --randomuser one "tally:gen-ru" thread does
 * both stages (it owns the PGconn, the Random User client and produces) and publishes both
 * counters; the main thread only draws progress.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include <tally/atomic.h>
#include <tally/error.h>
#include <tally/gen.h>
#include <tally/kafka.h>
#include <tally/pg.h>
#include <tally/pg_checkpoint.h>
#include <tally/pg_registry.h>
#include <tally/randomuser.h>

#include "conf.h"
#include "opt.h"

#define PG_CONNECT_TIMEOUT_MS 30000
#define KAFKA_TOPIC_TIMEOUT_MS 60000
#define KAFKA_FLUSH_TIMEOUT_MS 600000
#define PROGRESS_TTY_MS 200
#define PROGRESS_PLAIN_S 5.0

/* A candidate fetched from the Random User API, copied out of the client's callback. */
typedef struct ru_cand {
	char *candidate_id, *candidate_name, *biography, *campaign_platform, *photo_url;
	const char *party_affiliation;   /* the generator's party name */
} ru_cand_t;

typedef struct run {
	const tallygen_conf_t *conf;
	tally_gen_t *gen;
	tally_randomuser_t *ru;          /* --randomuser: the client; NULL when generating */
	ru_cand_t *ru_cands;             /* --randomuser: [conf->candidates] */
	size_t ru_ncands;
	tally_pg_copy_t *ru_copy;        /* --randomuser: the voters batch being copied */
	PGconn *pg;
	tally_kafka_producer_t *prod;
	tally_kafka_topics_t topics;

	/* Written by the worker threads, read by the main thread for progress. */
	uint64_t pg_done;
	uint64_t kafka_done;
	int stop;
	int pg_finished, kafka_finished;

	/* Each owned by its thread until joined. */
	int pg_rc, kafka_rc;
	char pg_err[512], kafka_err[512];
	double pg_s, kafka_s;            /* time inside each thread */
	uint64_t kafka_messages;
} run_t;

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Errors are "tally-gen: message" on stderr. */
#define die_msg(...) tally_app_error("tally-gen", __VA_ARGS__)

static void
usage(FILE *f)
{
	fprintf(f,
	        "usage: tally-gen [options]\n"
	        "\n"
	        "Generates a seeded registry (parties, candidates, voters), creates tally's schema\n"
	        "and Kafka topics, loads the registry into PostgreSQL with COPY (one transaction)\n"
	        "and produces each registration to its topic keyed by its id. PostgreSQL and Kafka\n"
	        "come from TALLY_PG_DSN and TALLY_KAFKA_BROKERS; pg.KEY and kafka.KEY settings (in\n"
	        "the config file, or as --pg.KEY=VALUE / --kafka.KEY=VALUE) go to libpq and\n"
	        "librdkafka. Refuses, changing nothing, when the registry tables or the registration\n"
	        "topics are not empty. With --randomuser URL the voters and candidates are fetched\n"
	        "from a Random-User-API-compatible service instead of generated. Exit status: 0\n"
	        "done, 1 failed, 2 bad option.\n"
	        "\n"
	        "options:\n");
	tally_opt_help(f, tallygen_opts, tallygen_nopts);
}

/* ---- PostgreSQL -------------------------------------------------------------------- */

/* Run a fixed statement that returns no rows. */
static int
pg_exec(PGconn *pg, const char *sql, const char *what, char *err, size_t errsz)
{
	PGresult *res = PQexec(pg, sql);
	int rc = 0;

	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
		rc = tally_pg_err(pg, res);
		snprintf(err, errsz, "could not %s: %s", what, PQerrorMessage(pg));
		err[strcspn(err, "\n")] = '\0';
	}
	PQclear(res);
	return rc;
}

/* Refuse a registry that is not empty, naming the first table that holds rows. */
static int
pg_check_empty(PGconn *pg, char *err, size_t errsz)
{
	static const char *const tables[] = {"parties", "candidates", "voters"};
	PGresult *res = PQexec(pg, "SELECT EXISTS (SELECT 1 FROM parties),"
	                           " EXISTS (SELECT 1 FROM candidates),"
	                           " EXISTS (SELECT 1 FROM voters)");
	int rc = 0;

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		rc = tally_pg_err(pg, res);
		snprintf(err, errsz, "could not read the registry tables: %s", PQerrorMessage(pg));
		err[strcspn(err, "\n")] = '\0';
		PQclear(res);
		return rc;
	}
	for (int i = 0; i < 3; i++) {
		if (strcmp(PQgetvalue(res, 0, i), "t") == 0) {
			snprintf(err, errsz,
			         "the registry in PostgreSQL is not empty (table \"%s\" holds rows): "
			         "tally-gen loads only into an empty registry, and changed nothing "
			         "(use another database or schema, or empty the tables)",
			         tables[i]);
			rc = TALLY_EEXISTS;
			break;
		}
	}
	PQclear(res);
	return rc;
}

/* The election row, through the store's adapter: inserted unless there, same window. */
static int
pg_election(run_t *r, char *err, size_t errsz)
{
	const tally_gen_opts_t *o = tally_gen_get_opts(r->gen);
	int rc = tally_pg_election_ensure(r->pg, r->conf->election_id, o->opens_at, o->closes_at,
	                                  err, errsz);

	if (rc == TALLY_EEXISTS)
		snprintf(err + strlen(err), errsz - strlen(err), ": use another --election-id");
	return rc;
}

/* COPY the constituencies and their regions (before the candidates who stand in them). */
static int
pg_contests(run_t *r, char *err, size_t errsz)
{
	uint32_t nk = tally_gen_contest_count(r->gen), nr = tally_gen_region_count(r->gen);
	tally_pg_copy_t *copy;
	int rc = 0;

	if ((copy = tally_pg_copy_begin(r->pg, TALLY_PG_CONTESTS, err, errsz)) == NULL)
		return TALLY_EIO;
	for (uint32_t k = 0; k < nk && rc == 0; k++) {
		tally_gen_contest_t gk;
		tally_pg_contest_row_t row;

		tally_gen_contest(r->gen, k, &gk);
		row = (tally_pg_contest_row_t){gk.contest_id, gk.contest_name,
		                               TALLY_GEN_CONTEST_LEVEL};
		rc = tally_pg_copy_contest(copy, &row);
	}
	if ((rc = tally_pg_copy_end(copy, NULL, err, errsz)) != 0)
		return rc;
	if ((copy = tally_pg_copy_begin(r->pg, TALLY_PG_CONTEST_REGIONS, err, errsz)) == NULL)
		return TALLY_EIO;
	for (uint32_t reg = 0; reg < nr && rc == 0; reg++) {
		tally_gen_contest_t gk;
		tally_pg_contest_region_row_t row;
		uint32_t k = (uint32_t)tally_gen_region_contest(r->gen, reg);

		tally_gen_contest(r->gen, k, &gk);
		row = (tally_pg_contest_region_row_t){gk.contest_id, TALLY_GEN_CONTEST_LEVEL,
		                                      (int)(reg / nk), tally_gen_region_name(r->gen, reg)};
		rc = tally_pg_copy_contest_region(copy, &row);
	}
	return tally_pg_copy_end(copy, NULL, err, errsz);
}

/* COPY the parties and the candidates (a few rows each). */
static int
pg_parties_candidates(run_t *r, char *err, size_t errsz)
{
	tally_pg_copy_t *copy;
	int rc = 0;

	if ((copy = tally_pg_copy_begin(r->pg, TALLY_PG_PARTIES, err, errsz)) == NULL)
		return TALLY_EIO;
	for (uint32_t i = 0; i < tally_gen_party_count(r->gen) && rc == 0; i++) {
		tally_pg_party_row_t row = {tally_gen_party_name(r->gen, i)};

		rc = tally_pg_copy_party(copy, &row);
	}
	if ((rc = tally_pg_copy_end(copy, NULL, err, errsz)) != 0)
		return rc;
	if (r->ru == NULL && tally_gen_contest_count(r->gen) > 0 &&
	    (rc = pg_contests(r, err, errsz)) != 0)
		return rc;
	if ((copy = tally_pg_copy_begin(r->pg, TALLY_PG_CANDIDATES, err, errsz)) == NULL)
		return TALLY_EIO;
	for (uint32_t i = 0; r->ru == NULL && i < tally_gen_candidate_count(r->gen) && rc == 0;
	     i++) {
		tally_gen_candidate_t c;
		tally_pg_candidate_row_t row;

		tally_gen_candidate(r->gen, i, &c);
		tally_pg_candidate_row_from_gen(&c, &row);
		rc = tally_pg_copy_candidate(copy, &row);
	}
	for (size_t i = 0; r->ru != NULL && i < r->ru_ncands && rc == 0; i++) {
		const ru_cand_t *c = &r->ru_cands[i];
		tally_pg_candidate_row_t row = {c->candidate_id, c->candidate_name,
		                                c->party_affiliation, c->biography,
		                                c->campaign_platform, c->photo_url, NULL};

		rc = tally_pg_copy_candidate(copy, &row);
	}
	return tally_pg_copy_end(copy, NULL, err, errsz);
}

/* The voters, in COPY statements of conf->batch rows, inside the caller's transaction. */
static void *
pg_voters_thread(void *arg)
{
	run_t *r = arg;
	uint64_t n = r->conf->voters, batch = r->conf->batch;
	tally_pg_copy_t *copy = NULL;
	double t0 = now_s();
	int rc = 0;

	pthread_setname_np(pthread_self(), "tally:gen-pg");
	for (uint64_t i = 0; i < n && rc == 0; i++) {
		tally_gen_voter_t v;
		tally_pg_voter_row_t row;

		if (tally_load_relaxed(&r->stop))
			break;
		if (copy == NULL &&
		    (copy = tally_pg_copy_begin(r->pg, TALLY_PG_VOTERS, r->pg_err,
		                                sizeof(r->pg_err))) == NULL) {
			rc = TALLY_EIO;
			break;
		}
		tally_gen_voter(r->gen, i, &v);
		tally_pg_voter_row_from_gen(&v, &row);
		rc = tally_pg_copy_voter(copy, &row);
		if (rc == 0 && ((i + 1) % batch == 0 || i + 1 == n)) {
			rc = tally_pg_copy_end(copy, NULL, r->pg_err, sizeof(r->pg_err));
			copy = NULL;
		}
		if ((i & 1023) == 1023 || i + 1 == n)
			tally_store_relaxed(&r->pg_done, i + 1);
	}
	if (copy != NULL) {
		/* A failed row: end reports the first error; a stop: abandon the batch. */
		if (rc != 0)
			tally_pg_copy_end(copy, NULL, r->pg_err, sizeof(r->pg_err));
		else
			tally_pg_copy_abort(copy);
	}
	if (rc != 0 && r->pg_err[0] == '\0')
		snprintf(r->pg_err, sizeof(r->pg_err), "could not copy into \"voters\": %s",
		         tally_err2str(rc));
	if (rc != 0)
		tally_store_relaxed(&r->stop, 1);
	r->pg_rc = rc;
	r->pg_s = now_s() - t0;
	tally_store_release(&r->pg_finished, 1);
	return NULL;
}

/* ---- Kafka ------------------------------------------------------------------------- */

/* Refuse registration topics that have ever held a message (they would get duplicates). */
static int
kafka_check_empty(run_t *r, char *err, size_t errsz)
{
	rd_kafka_t *rk = tally_kafka_producer_handle(r->prod);
	const tally_kafka_topic_id_t ids[] = {TALLY_KAFKA_VOTERS, TALLY_KAFKA_CANDIDATES};

	for (size_t t = 0; t < sizeof(ids) / sizeof(ids[0]); t++) {
		const tally_kafka_topic_t *topic = &r->topics.topic[ids[t]];

		for (int p = 0; p < topic->partitions; p++) {
			int64_t lo = 0, hi = 0;
			double deadline = now_s() + 30;
			rd_kafka_resp_err_t e;

			/* A new topic's leaders may take a moment to be known to every broker. */
			while ((e = rd_kafka_query_watermark_offsets(rk, topic->name, p, &lo, &hi,
			                                             30000)) != RD_KAFKA_RESP_ERR_NO_ERROR &&
			       (e == RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION ||
			        e == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE ||
			        e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) &&
			       now_s() < deadline)
				usleep(100 * 1000);

			if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
				snprintf(err, errsz, "could not read the offsets of topic \"%s\": %s",
				         topic->name, rd_kafka_err2str(e));
				return tally_kafka_err(e);
			}
			if (hi > 0) {
				snprintf(err, errsz,
				         "topic \"%s\" is not empty (partition %d holds messages): "
				         "tally-gen produces only into empty registration topics, and "
				         "changed nothing (use another --topic-prefix or delete the topics)",
				         topic->name, p);
				return TALLY_EEXISTS;
			}
		}
	}
	return 0;
}

/*
 * A fetched candidate as a candidates_topic value, in the generator's shape (the candidates
 * table's columns, candidate_id first). The caller frees the string.
 */
static char *
ru_candidate_json(const ru_cand_t *c)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "candidate_id", c->candidate_id,
	                      "candidate_name", c->candidate_name, "party_affiliation",
	                      c->party_affiliation, "biography", c->biography,
	                      "campaign_platform", c->campaign_platform, "photo_url", c->photo_url);
	char *s = o != NULL ? json_dumps(o, JSON_PRESERVE_ORDER) : NULL;

	json_decref(o);
	return s;
}

/* A fetched voter as a voters_topic value, in the generator's shape. Caller frees. */
static char *
ru_voter_json(const tally_randomuser_voter_t *v)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s, s:s},"
	                      " s:s, s:s, s:s, s:s, s:i}",
	                      "voter_id", v->voter_id, "voter_name", v->voter_name,
	                      "date_of_birth", v->date_of_birth, "gender", v->gender,
	                      "nationality", v->nationality,
	                      "registration_number", v->registration_number,
	                      "address", "street", v->address_street, "city", v->address_city,
	                      "state", v->address_state, "country", v->address_country,
	                      "postcode", v->address_postcode,
	                      "email", v->email, "phone_number", v->phone_number,
	                      "cell_number", v->cell_number, "picture", v->picture,
	                      "registered_age", v->registered_age);
	char *s = o != NULL ? json_dumps(o, JSON_PRESERVE_ORDER) : NULL;

	json_decref(o);
	return s;
}

static int
kafka_candidates(run_t *r, char *err, size_t errsz)
{
	const char *topic = r->topics.topic[TALLY_KAFKA_CANDIDATES].name;
	char buf[TALLY_GEN_MSG_MAX];

	for (size_t i = 0; r->ru != NULL && i < r->ru_ncands; i++) {
		const ru_cand_t *c = &r->ru_cands[i];
		char *json = ru_candidate_json(c);
		int rc;

		if (json == NULL) {
			snprintf(err, errsz, "candidate %zu: could not write its JSON: out of memory", i);
			return TALLY_ENOMEM;
		}
		rc = tally_kafka_produce(r->prod, topic, c->candidate_id, strlen(c->candidate_id),
		                         json, strlen(json));
		free(json);
		if (rc != 0) {
			snprintf(err, errsz, "could not produce to \"%s\": %s", topic, tally_err2str(rc));
			return rc;
		}
		r->kafka_messages++;
	}
	for (uint32_t i = 0; r->ru == NULL && i < tally_gen_candidate_count(r->gen); i++) {
		tally_gen_candidate_t c;
		size_t len = tally_gen_candidate_json(r->gen, i, buf, sizeof(buf));
		int rc;

		tally_gen_candidate(r->gen, i, &c);
		rc = tally_kafka_produce(r->prod, topic, c.candidate_id, strlen(c.candidate_id), buf,
		                         len);
		if (rc != 0) {
			snprintf(err, errsz, "could not produce to \"%s\": %s", topic, tally_err2str(rc));
			return rc;
		}
		r->kafka_messages++;
	}
	return 0;
}

/* The key of a voters_topic message: the value's voter_id, which the generator writes. */
static const char *
json_voter_id(const char *buf, size_t len)
{
	const char *p = memmem(buf, len, "\"voter_id\"", 10);

	if (p == NULL || (p = memchr(p + 10, '"', len - (size_t)(p + 10 - buf))) == NULL)
		return NULL;
	p++;
	if ((size_t)(p - buf) + TALLY_UUID_STRLEN >= len || p[TALLY_UUID_STRLEN] != '"')
		return NULL;
	return p;
}

static void *
kafka_voters_thread(void *arg)
{
	run_t *r = arg;
	uint64_t n = r->conf->voters;
	const char *topic = r->topics.topic[TALLY_KAFKA_VOTERS].name;
	char buf[TALLY_GEN_MSG_MAX];
	double t0 = now_s();
	int rc = 0;

	pthread_setname_np(pthread_self(), "tally:gen-kafka");
	for (uint64_t i = 0; i < n && rc == 0; i++) {
		size_t len;
		const char *key;

		if (tally_load_relaxed(&r->stop))
			break;
		len = tally_gen_voter_json(r->gen, i, buf, sizeof(buf));
		if (len >= sizeof(buf) || (key = json_voter_id(buf, len)) == NULL) {
			snprintf(r->kafka_err, sizeof(r->kafka_err),
			         "voter %" PRIu64 ": the generator's message has no voter_id", i);
			rc = TALLY_EFORMAT;
			break;
		}
		if ((rc = tally_kafka_produce(r->prod, topic, key, TALLY_UUID_STRLEN, buf, len)) != 0) {
			snprintf(r->kafka_err, sizeof(r->kafka_err), "could not produce to \"%s\": %s",
			         topic, tally_err2str(rc));
			break;
		}
		if ((i & 1023) == 1023 || i + 1 == n)
			tally_store_relaxed(&r->kafka_done, i + 1);
	}
	if (rc == 0 && !tally_load_relaxed(&r->stop)) {
		r->kafka_messages += n;
		rc = tally_kafka_producer_flush(r->prod, KAFKA_FLUSH_TIMEOUT_MS, r->kafka_err,
		                                sizeof(r->kafka_err));
	}
	if (rc != 0)
		tally_store_relaxed(&r->stop, 1);
	r->kafka_rc = rc;
	r->kafka_s = now_s() - t0;
	tally_store_release(&r->kafka_finished, 1);
	return NULL;
}

static volatile uint64_t generate_sink;

/* Without PostgreSQL and Kafka: only generate, to measure the generator's share. */
static void *
generate_only_thread(void *arg)
{
	run_t *r = arg;
	char buf[TALLY_GEN_MSG_MAX];
	uint64_t sink = 0;
	double t0 = now_s();

	for (uint64_t i = 0; i < r->conf->voters; i++) {
		tally_gen_voter_t v;

		tally_gen_voter(r->gen, i, &v);
		sink += tally_gen_voter_json(r->gen, i, buf, sizeof(buf)) + (uint64_t)v.region;
		if ((i & 1023) == 1023 || i + 1 == r->conf->voters)
			tally_store_relaxed(&r->pg_done, i + 1);
	}
	generate_sink = sink; /* keeps the work from being optimised away */
	r->pg_s = now_s() - t0;
	tally_store_release(&r->pg_finished, 1);
	return NULL;
}

/* ---- Random User API ---------------------------------------------------------------- */

static int
ru_on_candidate(const tally_randomuser_candidate_t *cand, void *arg)
{
	run_t *r = arg;
	ru_cand_t *c = &r->ru_cands[r->ru_ncands];

	c->candidate_id = strdup(cand->candidate_id);
	c->candidate_name = strdup(cand->candidate_name);
	c->biography = strdup(cand->biography);
	c->campaign_platform = strdup(cand->campaign_platform);
	c->photo_url = strdup(cand->photo_url);
	/* Parties round-robin, as the generator assigns its own candidates. */
	c->party_affiliation =
	    tally_gen_party_name(r->gen, (uint32_t)(cand->index % tally_gen_party_count(r->gen)));
	r->ru_ncands++;
	if (c->candidate_id == NULL || c->candidate_name == NULL || c->biography == NULL ||
	    c->campaign_platform == NULL || c->photo_url == NULL)
		return TALLY_ENOMEM;
	return 0;
}

/* Fetch every candidate before anything is written (one request each). */
static int
ru_fetch_candidates(run_t *r, char *err, size_t errsz)
{
	int rc;

	r->ru_cands = calloc(r->conf->candidates, sizeof(*r->ru_cands));
	if (r->ru_cands == NULL) {
		snprintf(err, errsz, "out of memory");
		return TALLY_ENOMEM;
	}
	rc = tally_randomuser_fetch_candidates(r->ru, r->conf->candidates, ru_on_candidate, r, err,
	                                       errsz);
	if (rc == TALLY_ENOMEM && err[0] == '\0')
		snprintf(err, errsz, "could not keep the fetched candidates: out of memory");
	return rc;
}

static void
ru_cands_free(run_t *r)
{
	for (size_t i = 0; i < r->ru_ncands; i++) {
		free(r->ru_cands[i].candidate_id);
		free(r->ru_cands[i].candidate_name);
		free(r->ru_cands[i].biography);
		free(r->ru_cands[i].campaign_platform);
		free(r->ru_cands[i].photo_url);
	}
	free(r->ru_cands);
}

/* One fetched voter: a row into the open COPY batch, a message to voters_topic. */
static int
ru_on_voter(const tally_randomuser_voter_t *v, void *arg)
{
	run_t *r = arg;
	uint64_t done = tally_load_relaxed(&r->pg_done);
	int rc;

	if (!r->conf->no_postgres) {
		tally_pg_voter_row_t row = {
			v->voter_id, v->voter_name, v->date_of_birth, v->gender, v->nationality,
			v->registration_number, v->address_street, v->address_city, v->address_state,
			v->address_country, v->address_postcode, v->email, v->phone_number,
			v->cell_number, v->picture, v->registered_age,
		};

		if (r->ru_copy == NULL &&
		    (r->ru_copy = tally_pg_copy_begin(r->pg, TALLY_PG_VOTERS, r->pg_err,
		                                      sizeof(r->pg_err))) == NULL)
			return TALLY_EIO;
		if ((rc = tally_pg_copy_voter(r->ru_copy, &row)) != 0) {
			/* end reports the first error of the failed copy. */
			tally_pg_copy_end(r->ru_copy, NULL, r->pg_err, sizeof(r->pg_err));
			r->ru_copy = NULL;
			return rc;
		}
		if ((done + 1) % r->conf->batch == 0) {
			rc = tally_pg_copy_end(r->ru_copy, NULL, r->pg_err, sizeof(r->pg_err));
			r->ru_copy = NULL;
			if (rc != 0)
				return rc;
		}
	}
	if (!r->conf->no_kafka) {
		const char *topic = r->topics.topic[TALLY_KAFKA_VOTERS].name;
		char *json = ru_voter_json(v);

		if (json == NULL) {
			snprintf(r->pg_err, sizeof(r->pg_err),
			         "voter \"%s\": could not write its JSON: out of memory", v->voter_id);
			return TALLY_ENOMEM;
		}
		rc = tally_kafka_produce(r->prod, topic, v->voter_id, strlen(v->voter_id), json,
		                         strlen(json));
		free(json);
		if (rc != 0) {
			snprintf(r->pg_err, sizeof(r->pg_err), "could not produce to \"%s\": %s", topic,
			         tally_err2str(rc));
			return rc;
		}
	}
	tally_store_relaxed(&r->pg_done, done + 1);
	tally_store_relaxed(&r->kafka_done, done + 1);
	return 0;
}

/*
 * --randomuser: fetch the voters batch by batch, copying and producing each as it comes.
 * Both stages' results go to pg_rc/pg_err, the one error of this one thread.
 */
static void *
ru_voters_thread(void *arg)
{
	run_t *r = arg;
	double t0 = now_s();
	int rc;

	pthread_setname_np(pthread_self(), "tally:gen-ru");
	rc = tally_randomuser_fetch_voters(r->ru, r->conf->voters, ru_on_voter, r, r->pg_err,
	                                   sizeof(r->pg_err));
	if (r->ru_copy != NULL) {
		if (rc == 0) {
			rc = tally_pg_copy_end(r->ru_copy, NULL, r->pg_err, sizeof(r->pg_err));
		} else {
			tally_pg_copy_abort(r->ru_copy);
		}
		r->ru_copy = NULL;
	}
	if (rc == 0 && !r->conf->no_kafka) {
		r->kafka_messages += r->conf->voters;
		rc = tally_kafka_producer_flush(r->prod, KAFKA_FLUSH_TIMEOUT_MS, r->pg_err,
		                                sizeof(r->pg_err));
	}
	if (rc != 0 && r->pg_err[0] == '\0')
		snprintf(r->pg_err, sizeof(r->pg_err), "could not load the fetched voters: %s",
		         tally_err2str(rc));
	if (rc != 0)
		tally_store_relaxed(&r->stop, 1);
	r->pg_rc = rc;
	r->pg_s = now_s() - t0;
	r->kafka_s = r->pg_s;
	tally_store_release(&r->pg_finished, 1);
	return NULL;
}

/* ---- progress ---------------------------------------------------------------------- */

static void
fmt_eta(char *buf, size_t size, double s)
{
	if (s < 0 || s > 359999)
		snprintf(buf, size, "--:--");
	else if (s >= 3600)
		snprintf(buf, size, "%d:%02d:%02d", (int)s / 3600, (int)s / 60 % 60, (int)s % 60);
	else
		snprintf(buf, size, "%d:%02d", (int)s / 60, (int)s % 60);
}

/* One progress report: the voters both sides have done (the slower one), rate and ETA. */
static void
progress(const run_t *r, double t0, bool tty, bool final)
{
	uint64_t n = r->conf->voters;
	bool gen_only = r->conf->no_postgres && r->conf->no_kafka;
	uint64_t pg = r->conf->no_postgres && !gen_only ? n : tally_load_relaxed(&r->pg_done);
	uint64_t kf = r->conf->no_kafka ? pg : tally_load_relaxed(&r->kafka_done);
	uint64_t done = pg < kf ? pg : kf;
	double el = now_s() - t0, rate = el > 0 ? (double)done / el : 0;
	char eta[32], bar[31];
	int fill = (int)(30.0 * (double)done / (double)n);

	fmt_eta(eta, sizeof(eta), rate > 0 ? (double)(n - done) / rate : -1);
	if (tty) {
		for (int i = 0; i < 30; i++)
			bar[i] = i < fill ? '#' : '.';
		bar[30] = '\0';
		fprintf(stderr, "\r\033[Kvoters [%s] %" PRIu64 "/%" PRIu64 " %5.1f%%  %.0f/s  ETA %s",
		        bar, done, n, 100.0 * (double)done / (double)n, rate, eta);
		if (final)
			fputc('\n', stderr);
	} else {
		fprintf(stderr,
		        "tally-gen: voters %" PRIu64 "/%" PRIu64 " (%.1f%%), postgres %" PRIu64
		        ", kafka %" PRIu64 ", %.0f/s, ETA %s\n",
		        done, n, 100.0 * (double)done / (double)n, pg, kf, rate, eta);
	}
	fflush(stderr);
}

/* ---- the run ----------------------------------------------------------------------- */

typedef struct passthrough {
	tally_pg_param_t *pg;
	const char **pg_where;           /* where each pg setting was written, for messages */
	size_t npg;
	tally_kafka_setting_t *kafka;
	size_t nkafka;
} passthrough_t;

static int
split_passthrough(const tally_opt_kvlist_t *list, passthrough_t *pt)
{
	/* Throughput defaults for a bulk load, before the user's settings so those win. */
	static const tally_kafka_setting_t defaults[] = {
		{"kafka.linger.ms", "20", "tally-gen default"},
		{"kafka.batch.size", "1000000", "tally-gen default"},
	};
	size_t nd = sizeof(defaults) / sizeof(defaults[0]);

	memset(pt, 0, sizeof(*pt));
	pt->pg = calloc(list->n + 1, sizeof(*pt->pg));
	pt->pg_where = calloc(list->n + 1, sizeof(*pt->pg_where));
	pt->kafka = calloc(list->n + nd, sizeof(*pt->kafka));
	if (pt->pg == NULL || pt->pg_where == NULL || pt->kafka == NULL)
		return -1;
	for (size_t i = 0; i < nd; i++)
		pt->kafka[pt->nkafka++] = defaults[i];
	for (size_t i = 0; i < list->n; i++) {
		const tally_opt_kv_t *kv = &list->items[i];

		if (strncmp(kv->key, "pg.", 3) == 0) {
			pt->pg_where[pt->npg] = kv->where;
			pt->pg[pt->npg++] = (tally_pg_param_t){kv->key + 3, kv->value};
		}
		else
			pt->kafka[pt->nkafka++] = (tally_kafka_setting_t){kv->key, kv->value, kv->where};
	}
	return 0;
}

static int
run(const tallygen_conf_t *conf)
{
	run_t *r = calloc(1, sizeof(*r));
	passthrough_t pt;
	tally_gen_opts_t gopts;
	rd_kafka_conf_t *kconf = NULL;
	pthread_t pg_thr, kafka_thr;
	bool pg_started = false, kafka_started = false, in_tx = false;
	bool tty = isatty(STDERR_FILENO) && !conf->quiet;
	char err[1024] = "";
	double t_start = now_s(), t_pg = 0, t_kafka = 0, t0, t_loop;
	int exit_rc = TALLYGEN_EXIT_FAIL;

	memset(&pt, 0, sizeof(pt));
	if (r == NULL || split_passthrough(&conf->passthrough, &pt) != 0) {
		die_msg("out of memory");
		free(pt.pg);
		free(pt.pg_where);
		free(pt.kafka);
		free(r);
		return TALLYGEN_EXIT_FAIL;
	}
	r->conf = conf;

	/* Everything that can be wrong with the options fails here, before any work (exit 2). */
	tally_gen_opts_init(&gopts);
	gopts.seed = conf->seed;
	/* Fetched voters are not the generator's: it then only needs to exist (one voter). */
	gopts.voters = conf->randomuser != NULL ? 1 : conf->voters;
	gopts.candidates = (uint32_t)conf->candidates;
	gopts.parties = (uint32_t)conf->parties;
	gopts.regions = (uint32_t)conf->regions;
	gopts.contests = (uint32_t)conf->contests;
	exit_rc = TALLYGEN_EXIT_USAGE;
	if (strlen(conf->election_id) < 1 || strlen(conf->election_id) > 63) {
		die_msg("--election-id: \"%s\" must be 1 to 63 bytes", conf->election_id);
		goto out;
	}
	if (conf->import_original != NULL && (conf->no_postgres || conf->randomuser != NULL)) {
		die_msg("--import-original loads into postgres from postgres: not with %s",
		        conf->no_postgres ? "--no-postgres" : "--randomuser");
		goto out;
	}
	if (tally_kafka_topics_init(&r->topics, conf->topic_prefix, (int)conf->partitions, err,
	                            sizeof(err)) != 0) {
		die_msg("--topic-prefix: %s", err);
		goto out;
	}
	for (size_t i = 0; !conf->no_postgres && i < pt.npg; i++) {
		if (tally_pg_check_params(&pt.pg[i], 1, err, sizeof(err)) != 0) {
			die_msg("%s: pg.%s: %s", pt.pg_where[i], pt.pg[i].key, err);
			goto out;
		}
	}
	if (!conf->no_kafka &&
	    (kconf = tally_kafka_conf_new(getenv("TALLY_KAFKA_BROKERS"), pt.kafka, pt.nkafka, err,
	                                  sizeof(err))) == NULL) {
		die_msg("%s", err);
		goto out;
	}
	if ((r->gen = tally_gen_new(&gopts, err, sizeof(err))) == NULL) {
		die_msg("%s", err);
		goto out;
	}
	if (conf->randomuser != NULL) {
		tally_randomuser_opts_t ro;

		tally_randomuser_opts_init(&ro);
		ro.batch_size = (size_t)conf->randomuser_batch;
		ro.requests_per_s = conf->randomuser_rate;
		ro.seed = conf->seed;
		if ((r->ru = tally_randomuser_new(conf->randomuser, &ro, err, sizeof(err))) == NULL) {
			die_msg("--randomuser: %s", err);
			goto out;
		}
	}
	exit_rc = TALLYGEN_EXIT_FAIL;

	/* Setup and checks: nothing is written anywhere until both sides agree. */
	if (!conf->no_postgres) {
		const char *dsn = getenv("TALLY_PG_DSN");

		t0 = now_s();
		r->pg = tally_pg_connect(dsn != NULL ? dsn : "", pt.pg, pt.npg, PG_CONNECT_TIMEOUT_MS,
		                         err, sizeof(err));
		if (r->pg == NULL || tally_pg_migrate(r->pg, NULL, err, sizeof(err)) != 0 ||
		    pg_check_empty(r->pg, err, sizeof(err)) != 0) {
			die_msg("%s", err);
			goto out;
		}
		t_pg += now_s() - t0;
	}
	if (!conf->no_kafka) {
		t0 = now_s();
		r->prod = tally_kafka_producer_new(kconf, err, sizeof(err));
		kconf = NULL;
		if (r->prod == NULL ||
		    tally_kafka_ensure_topics(tally_kafka_producer_handle(r->prod), r->topics.topic,
		                              TALLY_KAFKA_N_TOPICS, KAFKA_TOPIC_TIMEOUT_MS, err,
		                              sizeof(err)) != 0 ||
		    kafka_check_empty(r, err, sizeof(err)) != 0) {
			die_msg("%s", err);
			goto out;
		}
		t_kafka += now_s() - t0;
	}

	/* Fetched candidates are in hand before anything is written. */
	if (r->ru != NULL && ru_fetch_candidates(r, err, sizeof(err)) != 0) {
		die_msg("%s", err);
		goto out;
	}

	/* The small tables, then the voters on two threads (one when fetching). */
	if (!conf->no_postgres) {
		t0 = now_s();
		if (pg_exec(r->pg, "BEGIN", "begin a transaction", err, sizeof(err)) != 0) {
			die_msg("%s", err);
			goto out;
		}
		in_tx = true;
		if (pg_election(r, err, sizeof(err)) != 0 ||
		    (conf->import_original == NULL && pg_parties_candidates(r, err, sizeof(err)) != 0)) {
			die_msg("%s", err);
			goto out;
		}
		t_pg += now_s() - t0;
	}
	if (conf->import_original != NULL) {
		uint64_t np = 0, nc = 0, nv = 0;

		if (tally_pg_import_original(r->pg, conf->import_original, &np, &nc, &nv, err,
		                             sizeof(err)) != 0) {
			die_msg("%s", err);
			goto out;
		}
		in_tx = false;
		if (pg_exec(r->pg, "COMMIT", "commit the registry", err, sizeof(err)) != 0) {
			die_msg("%s", err);
			goto out;
		}
		printf("tally-gen: imported %" PRIu64 " parties, %" PRIu64 " candidates and %" PRIu64
		       " voters from the original tables in schema \"%s\" in %.2f s\n", np, nc, nv,
		       conf->import_original, now_s() - t_start);
		exit_rc = 0;
		goto out;
	}
	if (!conf->no_kafka) {
		t0 = now_s();
		if (kafka_candidates(r, err, sizeof(err)) != 0) {
			die_msg("%s", err);
			goto out;
		}
		t_kafka += now_s() - t0;
	}
	t_loop = now_s();
	if (r->ru != NULL) {
		if ((errno = pthread_create(&pg_thr, NULL, ru_voters_thread, r)) != 0)
			goto thread_failed;
		pg_started = true;
	}
	if (r->ru == NULL && conf->no_postgres && conf->no_kafka) {
		if ((errno = pthread_create(&pg_thr, NULL, generate_only_thread, r)) != 0)
			goto thread_failed;
		pg_started = true;
	}
	if (r->ru == NULL && !conf->no_postgres) {
		if ((errno = pthread_create(&pg_thr, NULL, pg_voters_thread, r)) != 0)
			goto thread_failed;
		pg_started = true;
	}
	if (r->ru == NULL && !conf->no_kafka) {
		if ((errno = pthread_create(&kafka_thr, NULL, kafka_voters_thread, r)) != 0)
			goto thread_failed;
		kafka_started = true;
	}
	{
		double next_plain = now_s() + PROGRESS_PLAIN_S;

		while ((pg_started && !tally_load_acquire(&r->pg_finished)) ||
		       (kafka_started && !tally_load_acquire(&r->kafka_finished))) {
			usleep(PROGRESS_TTY_MS * 1000);
			if (conf->quiet)
				continue;
			if (tty) {
				progress(r, t_loop, true, false);
			} else if (now_s() >= next_plain) {
				progress(r, t_loop, false, false);
				next_plain += PROGRESS_PLAIN_S;
			}
		}
		if (tty)
			progress(r, t_loop, true, true);
	}
	if (pg_started) {
		pthread_join(pg_thr, NULL);
		pg_started = false;
		if (!conf->no_postgres)
			t_pg += r->pg_s;
		if (r->ru != NULL && !conf->no_kafka)
			t_kafka += r->kafka_s;
	}
	if (kafka_started) {
		pthread_join(kafka_thr, NULL);
		kafka_started = false;
		t_kafka += r->kafka_s;
	}
	if (r->pg_rc != 0 || r->kafka_rc != 0) {
		/* Report the cause, not the other thread's stop. */
		if (r->pg_rc != 0)
			die_msg("%s", r->pg_err);
		if (r->kafka_rc != 0)
			die_msg("%s", r->kafka_err);
		goto out;
	}
	if (in_tx) {
		t0 = now_s();
		in_tx = false;
		if (pg_exec(r->pg, "COMMIT", "commit the registry", err, sizeof(err)) != 0) {
			die_msg("%s", err);
			goto out;
		}
		t_pg += now_s() - t0;
	}
	if (r->ru != NULL)
		printf("tally-gen: %" PRIu64 " candidates and %" PRIu64 " voters fetched from the "
		       "Random User API in %" PRIu64 " requests\n",
		       (uint64_t)r->ru_ncands, conf->voters, tally_randomuser_requests(r->ru));
	if (r->ru == NULL && conf->no_postgres && conf->no_kafka)
		printf("tally-gen: %" PRIu32 " parties, %" PRIu32 " candidates, %" PRIu64
		       " voters generated (rows and JSON, one thread), nothing stored; "
		       "generate %.2f s, total %.2f s\n",
		       tally_gen_party_count(r->gen), tally_gen_candidate_count(r->gen),
		       conf->voters, r->pg_s, now_s() - t_start);
	else if (!(conf->no_postgres && conf->no_kafka))
		printf("tally-gen: %" PRIu32 " parties, %" PRIu32 " candidates, %" PRIu64
		       " voters: postgres %s, kafka %s; stages (concurrent) postgres %.2f s, "
		       "kafka %.2f s, total %.2f s\n",
		       tally_gen_party_count(r->gen), tally_gen_candidate_count(r->gen),
		       conf->voters, conf->no_postgres ? "skipped" : "committed",
		       conf->no_kafka ? "skipped" : "all messages delivered", t_pg, t_kafka,
		       now_s() - t_start);
	fflush(stdout);
	exit_rc = 0;
	goto out;

thread_failed:
	die_msg("could not start a thread: %s", strerror(errno));
	tally_store_relaxed(&r->stop, 1);
	if (pg_started)
		pthread_join(pg_thr, NULL);
	if (kafka_started)
		pthread_join(kafka_thr, NULL);
out:
	if (in_tx && r->pg != NULL)
		PQclear(PQexec(r->pg, "ROLLBACK"));
	if (r->pg != NULL)
		PQfinish(r->pg);
	if (kconf != NULL)
		rd_kafka_conf_destroy(kconf);
	tally_kafka_producer_destroy(r->prod);
	tally_randomuser_destroy(r->ru);
	ru_cands_free(r);
	tally_gen_destroy(r->gen);
	free(pt.pg);
	free(pt.pg_where);
	free(pt.kafka);
	free(r);
	return exit_rc;
}

int
main(int argc, char **argv)
{
	tallygen_conf_t conf;
	char err[512];
	int rc;

	/* --help wins over anything else on the line, even a bad option. */
	if (tally_opt_wants_help(argc, argv)) {
		usage(stdout);
		return 0;
	}
	if (tallygen_conf_load(&conf, argc, argv, err, sizeof(err)) != 0) {
		die_msg("%s", err);
		tallygen_conf_free(&conf);
		return TALLYGEN_EXIT_USAGE;
	}
	rc = conf.help ? (usage(stdout), 0) : run(&conf);
	tallygen_conf_free(&conf);
	return rc;
}
