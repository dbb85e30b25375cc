/*
 * tally-gen (apps/tally-gen) against the real Kafka and PostgreSQL scripts/services started:
 * 20,000 generated voters land exactly in PostgreSQL (row counts, per-region counts equal
 * to the generator's, the election row) and in Kafka (voters_topic holds exactly 20,000
 * messages, one per voter, each keyed by its voter_id and equal byte for byte to the
 * generator's JSON; candidates_topic exactly the candidates; every topic with the
 * partitions asked for). A second run with the same arguments is refused and changes
 * nothing; so is a Kafka-only run into the filled topics. Bad options exit 2 with the
 * message.
 *
 * --randomuser against the fake Random User API (tests/support/randomuser_server.c):
 * 1,234 fetched voters land in PostgreSQL with exactly the served ids and in voters_topic
 * keyed by voter_id, 3 candidates were asked for with gender alternating; a server
 * answering 404 ends the run with exit 1, the client's message and no voters stored.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include <tally/gen.h>
#include <tally/kafka.h>
#include <tally/pg_registry.h>
#include <tally/registry.h>

#include "kafkatest.h"
#include "pgtest.h"
#include "randomuser_server.h"
#include "services.h"
#include "testutil.h"

#define N_VOTERS 20000
#define N_CANDIDATES 5
#define N_PARTIES 3
#define N_REGIONS 20
#define N_PARTITIONS 4
#define SEED 7
#define TIMEOUT_MS 30000



/* Run tally-gen with args (NULL-terminated); its stdout and stderr go into out. */
static int
run_gen(const char *const *args, char *out, size_t out_size)
{
	int rc = test_run("tally-gen", args, out, out_size);

	cr_assert(rc >= 0 && rc < 128, "tally-gen did not exit normally (%d): %s", rc, out);
	return rc;
}

/* Read every message of topic from the beginning; expect exactly `expect` of them. */
static void
consume_all(const char *topic, long expect, kt_msg_fn fn, void *arg)
{
	long got = kt_consume_all(topic, fn, arg, 120);

	cr_assert_eq(got, expect, "\"%s\": %ld of %ld messages", topic, got, expect);
}

static void
delete_topics(const tally_kafka_topics_t *t)
{
	const char *names[TALLY_KAFKA_N_TOPICS];

	for (int i = 0; i < TALLY_KAFKA_N_TOPICS; i++)
		names[i] = t->topic[i].name;
	kt_delete_topics(names, TALLY_KAFKA_N_TOPICS);
}

/* ---- the expected registry ---- */

typedef struct voter_key {
	char id[TALLY_UUID_STRLEN + 1];
	uint32_t idx;
} voter_key_t;

typedef struct voters_check {
	const tally_gen_t *gen;
	voter_key_t *keys;             /* sorted by id */
	unsigned char *seen;
	long distinct;
} voters_check_t;

static int
cmp_key(const void *a, const void *b)
{
	return strcmp(((const voter_key_t *)a)->id, ((const voter_key_t *)b)->id);
}

static void
check_voter_msg(const rd_kafka_message_t *m, void *arg)
{
	voters_check_t *vc = arg;
	voter_key_t want;
	const voter_key_t *k;
	char buf[TALLY_GEN_MSG_MAX], vid[64];
	size_t len;
	const char *p;

	cr_assert_eq(m->key_len, TALLY_UUID_STRLEN, "key of %zu bytes", m->key_len);
	memcpy(want.id, m->key, TALLY_UUID_STRLEN);
	want.id[TALLY_UUID_STRLEN] = '\0';
	k = bsearch(&want, vc->keys, N_VOTERS, sizeof(*vc->keys), cmp_key);
	cr_assert_not_null(k, "key \"%s\" is no generated voter", want.id);
	cr_assert_eq(vc->seen[k->idx], 0, "voter %u produced twice", k->idx);
	vc->seen[k->idx] = 1;
	vc->distinct++;
	/* The value is the generator's voters_topic JSON, whose voter_id is the key. */
	len = tally_gen_voter_json(vc->gen, k->idx, buf, sizeof(buf));
	cr_assert_eq(m->len, len, "voter %u: %zu bytes, not %zu", k->idx, m->len, len);
	cr_assert(memcmp(m->payload, buf, len) == 0, "voter %u: value differs", k->idx);
	p = strstr(buf, "\"voter_id\"");
	cr_assert_not_null(p);
	p = strchr(p + 10, '"');
	cr_assert_not_null(p, "voter_id in %s", buf);
	memcpy(vid, p + 1, TALLY_UUID_STRLEN);
	vid[TALLY_UUID_STRLEN] = '\0';
	cr_assert_eq(p[1 + TALLY_UUID_STRLEN], '"', "voter_id in %s", buf);
	cr_assert_str_eq(vid, want.id, "key and value's voter_id differ");
}

typedef struct cands_check {
	const tally_gen_t *gen;
	int seen[N_CANDIDATES];
} cands_check_t;

static void
check_candidate_msg(const rd_kafka_message_t *m, void *arg)
{
	cands_check_t *cc = arg;
	char buf[TALLY_GEN_MSG_MAX];

	for (uint32_t i = 0; i < N_CANDIDATES; i++) {
		tally_gen_candidate_t c;
		size_t len;

		tally_gen_candidate(cc->gen, i, &c);
		if (m->key_len != strlen(c.candidate_id) ||
		    memcmp(m->key, c.candidate_id, m->key_len) != 0)
			continue;
		cr_assert_eq(cc->seen[i], 0, "candidate %u produced twice", i);
		cc->seen[i] = 1;
		len = tally_gen_candidate_json(cc->gen, i, buf, sizeof(buf));
		cr_assert_eq(m->len, len);
		cr_assert(memcmp(m->payload, buf, len) == 0, "candidate %u: value differs", i);
		return;
	}
	cr_assert_fail("candidates_topic key \"%.*s\" is no generated candidate", (int)m->key_len,
	               (const char *)m->key);
}

static tally_gen_t *
expected_gen(void)
{
	tally_gen_opts_t o;
	char err[256];
	tally_gen_t *gen;

	tally_gen_opts_init(&o);
	o.seed = SEED;
	o.voters = N_VOTERS;
	o.candidates = N_CANDIDATES;
	o.parties = N_PARTIES;
	o.regions = N_REGIONS;
	gen = tally_gen_new(&o, err, sizeof(err));
	cr_assert_not_null(gen, "%s", err);
	return gen;
}

/* ---- PostgreSQL checks ---- */

static void
check_postgres(PGconn *c, const tally_gen_t *gen)
{
	const tally_gen_opts_t *o = tally_gen_get_opts(gen);
	PGresult *res;
	uint64_t total = 0;
	int nonempty = 0;

	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM parties"), N_PARTIES);
	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM candidates"), N_CANDIDATES);
	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM voters"), N_VOTERS);
	for (uint32_t i = 0; i < N_CANDIDATES; i++) {
		tally_gen_candidate_t cand;
		const char *params[2];

		tally_gen_candidate(gen, i, &cand);
		params[0] = cand.candidate_id;
		params[1] = cand.party_affiliation;
		res = PQexecParams(c,
		                   "SELECT count(*) FROM candidates WHERE candidate_id = $1::uuid"
		                   " AND party_affiliation = $2",
		                   2, NULL, params, NULL, NULL, 0);
		cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
		cr_assert_str_eq(PQgetvalue(res, 0, 0), "1", "candidate %u", i);
		PQclear(res);
	}

	/* Per region, exactly the generator's registered counts. */
	res = PQexec(c, "SELECT region, count(*) FROM voters GROUP BY region");
	cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
	for (uint32_t i = 0; i < N_REGIONS; i++) {
		const char *name = tally_gen_region_name(gen, i);
		uint64_t want = tally_gen_region_registered(gen, i), got = 0;

		for (int row = 0; row < PQntuples(res); row++)
			if (strcmp(PQgetvalue(res, row, 0), name) == 0)
				got = strtoull(PQgetvalue(res, row, 1), NULL, 10);
		cr_assert_eq(got, want, "region \"%s\": %llu voters, the generator has %llu", name,
		             (unsigned long long)got, (unsigned long long)want);
		total += want;
		nonempty += want > 0;
	}
	cr_assert_eq(total, N_VOTERS);
	cr_assert_eq(PQntuples(res), nonempty, "regions the generator does not have");
	PQclear(res);

	res = PQexec(c, "SELECT election_id, extract(epoch FROM opens_at)::bigint,"
	                " extract(epoch FROM closes_at)::bigint, status FROM elections");
	cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
	cr_assert_eq(PQntuples(res), 1);
	cr_assert_str_eq(PQgetvalue(res, 0, 0), "test-gen");
	cr_assert_eq(strtoll(PQgetvalue(res, 0, 1), NULL, 10), o->opens_at);
	cr_assert_eq(strtoll(PQgetvalue(res, 0, 2), NULL, 10), o->closes_at);
	cr_assert_str_eq(PQgetvalue(res, 0, 3), "scheduled");
	PQclear(res);
}

static void
setup(void)
{
	pgtest_schema_create();
}

TestSuite(tally_gen, .init = setup, .fini = pgtest_schema_drop, .timeout = 900);

Test(tally_gen, loads_postgres_and_kafka_exactly)
{
	char prefix[128], pgopt[160], out[16384];
	const char *args[] = {"--seed", "7", "--voters", "20000", "--candidates", "5",
	                      "--parties", "3", "--regions", "20", "--partitions", "4",
	                      "--election-id", "test-gen", "--topic-prefix", prefix,
	                      "--batch", "3000", pgopt, "--quiet", NULL};
	tally_gen_t *gen = expected_gen();
	tally_kafka_topics_t t;
	voters_check_t vc = {.gen = gen};
	cands_check_t cc = {.gen = gen};
	rd_kafka_t *rk;
	PGconn *c;
	char err[256];

	snprintf(prefix, sizeof(prefix), "tally_test_gen_%ld_%d_", (long)time(NULL), (int)getpid());
	snprintf(pgopt, sizeof(pgopt), "--pg.options=%s", pgtest_options());
	cr_assert_eq(tally_kafka_topics_init(&t, prefix, N_PARTITIONS, err, sizeof(err)), 0);

	cr_assert_eq(run_gen(args, out, sizeof(out)), 0, "first run: %s", out);
	cr_assert_not_null(strstr(out, "3 parties, 5 candidates, 20000 voters"), "%s", out);

	c = pgtest_connect();
	check_postgres(c, gen);

	/* Kafka: the topics with their partitions, then every message. */
	rk = kt_client(RD_KAFKA_PRODUCER, NULL);
	for (int i = 0; i < TALLY_KAFKA_N_TOPICS; i++) {
		int results = tally_kafka_topic_is_results(i);

		cr_assert_eq(kt_partitions(rk, t.topic[i].name), results ? 1 : N_PARTITIONS, "\"%s\"",
		             t.topic[i].name);
	}
	cr_assert_eq(kt_messages(rk, t.topic[TALLY_KAFKA_VOTERS].name), N_VOTERS);
	cr_assert_eq(kt_messages(rk, t.topic[TALLY_KAFKA_CANDIDATES].name),
	             N_CANDIDATES);

	vc.keys = malloc(N_VOTERS * sizeof(*vc.keys));
	vc.seen = calloc(N_VOTERS, 1);
	cr_assert(vc.keys != NULL && vc.seen != NULL);
	for (uint32_t i = 0; i < N_VOTERS; i++) {
		tally_gen_voter_brief_t b;

		tally_gen_voter_brief(gen, i, &b);
		tally_uuid_format(&b.id, vc.keys[i].id);
		vc.keys[i].id[TALLY_UUID_STRLEN] = '\0';
		vc.keys[i].idx = i;
	}
	qsort(vc.keys, N_VOTERS, sizeof(*vc.keys), cmp_key);
	consume_all(t.topic[TALLY_KAFKA_VOTERS].name, N_VOTERS, check_voter_msg, &vc);
	cr_assert_eq(vc.distinct, N_VOTERS);
	consume_all(t.topic[TALLY_KAFKA_CANDIDATES].name, N_CANDIDATES,
	            check_candidate_msg, &cc);
	for (int i = 0; i < N_CANDIDATES; i++)
		cr_assert_eq(cc.seen[i], 1, "candidate %d missing", i);

	/* The same arguments again: refused, nothing changes anywhere. */
	cr_assert_eq(run_gen(args, out, sizeof(out)), 1, "second run: %s", out);
	cr_assert_str_eq(out, "tally-gen: the registry in PostgreSQL is not empty (table "
	                      "\"parties\" holds rows): tally-gen loads only into an empty "
	                      "registry, and changed nothing (use another database or schema, or "
	                      "empty the tables)\n");
	check_postgres(c, gen);
	cr_assert_eq(kt_messages(rk, t.topic[TALLY_KAFKA_VOTERS].name), N_VOTERS);
	cr_assert_eq(kt_messages(rk, t.topic[TALLY_KAFKA_CANDIDATES].name),
	             N_CANDIDATES);

	/* Kafka alone into the filled topics: refused too, before producing anything. */
	{
		const char *kargs[] = {"--seed", "7", "--voters", "20000", "--candidates", "5",
		                       "--partitions", "4", "--topic-prefix", prefix, "--no-postgres",
		                       "--quiet", NULL};
		char want[1024];

		cr_assert_eq(run_gen(kargs, out, sizeof(out)), 1, "kafka-only run: %s", out);
		snprintf(want, sizeof(want),
		         "tally-gen: topic \"%s\" is not empty (partition ", t.topic[TALLY_KAFKA_VOTERS].name);
		cr_assert(strncmp(out, want, strlen(want)) == 0, "%s", out);
		cr_assert_eq(kt_messages(rk, t.topic[TALLY_KAFKA_VOTERS].name), N_VOTERS);
	}

	rd_kafka_destroy(rk);
	PQfinish(c);
	delete_topics(&t);
	free(vc.keys);
	free(vc.seen);
	tally_gen_destroy(gen);
}

Test(tally_gen, bad_options_exit_2)
{
	char out[4096], path[128], line[256];
	FILE *f;

	{
		const char *a[] = {"--voters", "abc", NULL};

		cr_assert_eq(run_gen(a, out, sizeof(out)), 2);
		cr_assert_str_eq(out, "tally-gen: --voters: \"abc\" is not a whole number\n");
	}
	{
		const char *a[] = {"--voters", "0", NULL};

		cr_assert_eq(run_gen(a, out, sizeof(out)), 2);
		cr_assert_str_eq(out, "tally-gen: --voters: 0 is out of range (1 to 1000000000)\n");
	}
	{
		const char *a[] = {"--votrs", "10", NULL};

		cr_assert_eq(run_gen(a, out, sizeof(out)), 2);
		cr_assert_str_eq(out, "tally-gen: unknown option \"--votrs\" (see --help)\n");
	}
	{
		const char *a[] = {"--no-postgres", "--kafka.socket.timout.ms=5", NULL};

		cr_assert_eq(run_gen(a, out, sizeof(out)), 2);
		cr_assert_str_eq(out, "tally-gen: command line: kafka.socket.timout.ms: No such "
		                      "configuration property: \"socket.timout.ms\"\n");
	}
	{
		const char *a[] = {"--no-kafka", "--pg.nosuchkeyword=1", NULL};

		cr_assert_eq(run_gen(a, out, sizeof(out)), 2);
		cr_assert_str_eq(out, "tally-gen: command line: pg.nosuchkeyword: \"nosuchkeyword\" "
		                      "is not a libpq connection keyword tally accepts\n");
	}

	/* A config file's bad line names file:line. */
	snprintf(path, sizeof(path), "/tmp/tally_test_gen_%d.conf", (int)getpid());
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f, "# tally-gen\nvoters = 10\nvotrs = 10\n");
	fclose(f);
	{
		const char *a[] = {"--config", path, NULL};

		cr_assert_eq(run_gen(a, out, sizeof(out)), 2);
		snprintf(line, sizeof(line), "tally-gen: %s:3: unknown key \"votrs\"\n", path);
		cr_assert_str_eq(out, line);
	}
	unlink(path);
}

Test(tally_gen, config_file_no_kafka_and_rollback)
{
	char path[128], out[4096];
	PGconn *c = pgtest_connect_migrated();
	FILE *f;

	/* An election of the same id but another window: refused, and the whole load rolls back. */
	pgtest_exec_ok(c, "INSERT INTO elections (election_id, opens_at, closes_at) VALUES"
	                  " ('taken', '2030-01-01 08:00:00Z', '2030-01-01 20:00:00Z')");
	snprintf(path, sizeof(path), "/tmp/tally_test_gen_ok_%d.conf", (int)getpid());
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f, "# a partial run: PostgreSQL only\npg.options = \"%s\"\nvoters = 1000\n"
	           "no-kafka = true\nelection-id = taken\nquiet = true\n",
	        pgtest_options());
	fclose(f);
	{
		const char *a[] = {"--config", path, NULL};

		cr_assert_eq(run_gen(a, out, sizeof(out)), 1, "%s", out);
		{
			const char *want = "tally-gen: election \"taken\" exists with another window "
			                   "(opens 1893484800, closes 1893528000, not ";
			const char *tail = ": use another --election-id\n";
			size_t n = strlen(out);

			cr_assert(strncmp(out, want, strlen(want)) == 0, "%s", out);
			cr_assert(n > strlen(tail) && strcmp(out + n - strlen(tail), tail) == 0, "%s", out);
		}
		cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM parties"), 0);
		cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM voters"), 0);
	}
	/* The command line wins over the file. */
	{
		const char *a[] = {"--config", path, "--election-id", "fresh", "--voters", "1500", NULL};

		cr_assert_eq(run_gen(a, out, sizeof(out)), 0, "%s", out);
		cr_assert_not_null(strstr(out, "1500 voters: postgres committed, kafka skipped"), "%s",
		                   out);
		cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM voters"), 1500);
		cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM parties"), 3);
		cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM elections"), 2);
	}
	unlink(path);
	PQfinish(c);
}

Test(tally_gen, help)
{
	const char *a[] = {"--voters", "abc", "--help", NULL};
	char out[8192];

	cr_assert_eq(run_gen(a, out, sizeof(out)), 0);
	cr_assert(strncmp(out, "usage: tally-gen [options]\n", 27) == 0, "%s", out);
	cr_assert_not_null(strstr(out, "--topic-prefix PREFIX"), "%s", out);
	cr_assert_not_null(strstr(out, "--partitions N"), "%s", out);
}

/* ---- --randomuser ---- */

#define RU_VOTERS 1234
#define RU_CANDIDATES 3

typedef struct ru_check {
	unsigned char *voter;          /* [users served]: 1 when the user is a voter in PostgreSQL */
	unsigned char *seen;           /* [users served]: produced to voters_topic */
	uint64_t served;
	long distinct;
} ru_check_t;

static void
check_ru_voter_msg(const rd_kafka_message_t *m, void *arg)
{
	ru_check_t *rc = arg;
	char key[TALLY_UUID_STRLEN + 1];
	json_error_t jerr;
	json_t *v;
	int64_t k;

	cr_assert_eq(m->key_len, TALLY_UUID_STRLEN, "key of %zu bytes", m->key_len);
	memcpy(key, m->key, TALLY_UUID_STRLEN);
	key[TALLY_UUID_STRLEN] = '\0';
	k = rusrv_user_of_id(key);
	cr_assert(k >= 0 && (uint64_t)k < rc->served, "key \"%s\" is no served user", key);
	cr_assert_eq(rc->voter[k], 1, "key \"%s\" is no voter in postgres", key);
	cr_assert_eq(rc->seen[k], 0, "voter \"%s\" produced twice", key);
	rc->seen[k] = 1;
	rc->distinct++;

	/* The value is the voters_topic shape, its voter_id the key. */
	v = json_loadb(m->payload, m->len, 0, &jerr);
	cr_assert_not_null(v, "voter \"%s\": %s", key, jerr.text);
	cr_assert_str_eq(json_string_value(json_object_get(v, "voter_id")), key);
	cr_assert_not_null(json_string_value(json_object_get(v, "voter_name")));
	cr_assert_not_null(json_string_value(json_object_get(v, "date_of_birth")));
	cr_assert_not_null(json_string_value(json_object_get(v, "registration_number")));
	cr_assert_not_null(json_string_value(json_object_get(json_object_get(v, "address"),
	                                                     "state")));
	cr_assert(json_is_integer(json_object_get(v, "registered_age")));
	json_decref(v);
}

typedef struct ru_cands_check {
	char ids[RU_CANDIDATES][TALLY_UUID_STRLEN + 1];
	int seen[RU_CANDIDATES];
} ru_cands_check_t;

static void
check_ru_candidate_msg(const rd_kafka_message_t *m, void *arg)
{
	ru_cands_check_t *cc = arg;

	for (int i = 0; i < RU_CANDIDATES; i++) {
		json_t *v;

		if (m->key_len != TALLY_UUID_STRLEN || memcmp(m->key, cc->ids[i], m->key_len) != 0)
			continue;
		cr_assert_eq(cc->seen[i], 0, "candidate %d produced twice", i);
		cc->seen[i] = 1;
		v = json_loadb(m->payload, m->len, 0, NULL);
		cr_assert_not_null(v);
		cr_assert_str_eq(json_string_value(json_object_get(v, "candidate_id")), cc->ids[i]);
		cr_assert_not_null(json_string_value(json_object_get(v, "party_affiliation")));
		json_decref(v);
		return;
	}
	cr_assert_fail("candidates_topic key \"%.*s\" is no stored candidate", (int)m->key_len,
	               (const char *)m->key);
}

Test(tally_gen, randomuser_loads_the_served_users)
{
	rusrv_t *srv = rusrv_start();
	char prefix[128], pgopt[160], out[16384], url[128];
	const char *args[] = {"--randomuser", url, "--voters", "1234", "--candidates", "3",
	                      "--randomuser-rate", "0", "--partitions", "2",
	                      "--election-id", "test-ru", "--topic-prefix", prefix,
	                      "--batch", "500", pgopt, "--quiet", NULL};
	ru_check_t rc = {0};
	ru_cands_check_t cc = {0};
	tally_kafka_topics_t t;
	rd_kafka_t *rk;
	PGresult *res;
	PGconn *c;
	char err[256];

	snprintf(url, sizeof(url), "%s", rusrv_url(srv));
	snprintf(prefix, sizeof(prefix), "tally_test_genru_%ld_%d_", (long)time(NULL),
	         (int)getpid());
	snprintf(pgopt, sizeof(pgopt), "--pg.options=%s", pgtest_options());
	cr_assert_eq(tally_kafka_topics_init(&t, prefix, 2, err, sizeof(err)), 0);

	cr_assert_eq(run_gen(args, out, sizeof(out)), 0, "%s", out);
	cr_assert_not_null(strstr(out, "3 candidates and 1234 voters fetched from the Random User "
	                               "API in 16 requests"), "%s", out);
	cr_assert_not_null(strstr(out, "3 parties, 3 candidates, 1234 voters: postgres committed, "
	                               "kafka all messages delivered"), "%s", out);

	/* The requests: 3 candidates, one each with gender alternating, then 13 voter batches. */
	cr_assert_eq(rusrv_requests(srv), 16);
	cr_assert_eq(rusrv_requests_with(srv, "gender", "male"), 2);
	cr_assert_eq(rusrv_requests_with(srv, "gender", "female"), 1);
	cr_assert_eq(rusrv_requests_with(srv, "nat", "gb"), 16);
	cr_assert_eq(rusrv_requests_with(srv, "results", "100"), 12);
	cr_assert_eq(rusrv_requests_with(srv, "results", "34"), 1);
	rc.served = rusrv_users_served(srv);
	cr_assert_eq(rc.served, RU_VOTERS + RU_CANDIDATES);

	/* PostgreSQL: exactly the served users, each once, voters or candidates. */
	c = pgtest_connect();
	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM voters"), RU_VOTERS);
	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM candidates"), RU_CANDIDATES);
	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM parties"), 3);
	cr_assert_eq(pgtest_count(c, "SELECT count(DISTINCT party_affiliation) FROM candidates"), 3);
	rc.voter = calloc(rc.served, 1);
	rc.seen = calloc(rc.served, 1);
	cr_assert(rc.voter != NULL && rc.seen != NULL);
	res = PQexec(c, "SELECT voter_id::text FROM voters");
	cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
	for (int i = 0; i < PQntuples(res); i++) {
		int64_t k = rusrv_user_of_id(PQgetvalue(res, i, 0));

		cr_assert(k >= 0 && (uint64_t)k < rc.served, "voter \"%s\" is no served user",
		          PQgetvalue(res, i, 0));
		cr_assert_eq(rc.voter[k], 0, "voter \"%s\" twice", PQgetvalue(res, i, 0));
		rc.voter[k] = 1;
	}
	PQclear(res);
	res = PQexec(c, "SELECT candidate_id::text FROM candidates ORDER BY candidate_id");
	cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
	cr_assert_eq(PQntuples(res), RU_CANDIDATES);
	for (int i = 0; i < RU_CANDIDATES; i++) {
		int64_t k = rusrv_user_of_id(PQgetvalue(res, i, 0));

		cr_assert(k >= 0 && (uint64_t)k < rc.served, "candidate \"%s\" is no served user",
		          PQgetvalue(res, i, 0));
		cr_assert_eq(rc.voter[k], 0, "candidate \"%s\" is also a voter", PQgetvalue(res, i, 0));
		snprintf(cc.ids[i], sizeof(cc.ids[i]), "%s", PQgetvalue(res, i, 0));
	}
	PQclear(res);

	/* Kafka: voters_topic exactly the 1,234 voters keyed by voter_id; the 3 candidates. */
	rk = kt_client(RD_KAFKA_PRODUCER, NULL);
	cr_assert_eq(kt_messages(rk, t.topic[TALLY_KAFKA_VOTERS].name), RU_VOTERS);
	cr_assert_eq(kt_messages(rk, t.topic[TALLY_KAFKA_CANDIDATES].name), RU_CANDIDATES);
	consume_all(t.topic[TALLY_KAFKA_VOTERS].name, RU_VOTERS, check_ru_voter_msg, &rc);
	cr_assert_eq(rc.distinct, RU_VOTERS);
	consume_all(t.topic[TALLY_KAFKA_CANDIDATES].name, RU_CANDIDATES, check_ru_candidate_msg,
	            &cc);
	for (int i = 0; i < RU_CANDIDATES; i++)
		cr_assert_eq(cc.seen[i], 1, "candidate %d missing", i);

	rd_kafka_destroy(rk);
	PQfinish(c);
	delete_topics(&t);
	free(rc.voter);
	free(rc.seen);
	rusrv_stop(srv);
}

Test(tally_gen, randomuser_404_fails_and_stores_nothing)
{
	rusrv_t *srv = rusrv_start();
	char prefix[128], pgopt[160], out[16384], url[128], want[512];
	const char *args[] = {"--randomuser", url, "--voters", "50", "--candidates", "3",
	                      "--randomuser-rate", "0", "--partitions", "1",
	                      "--topic-prefix", prefix, pgopt, "--quiet", NULL};
	tally_kafka_topics_t t;
	PGconn *c;
	char err[256];

	rusrv_set_mode(srv, RUSRV_404);
	snprintf(url, sizeof(url), "%s", rusrv_url(srv));
	snprintf(prefix, sizeof(prefix), "tally_test_genru404_%ld_%d_", (long)time(NULL),
	         (int)getpid());
	snprintf(pgopt, sizeof(pgopt), "--pg.options=%s", pgtest_options());
	cr_assert_eq(tally_kafka_topics_init(&t, prefix, 1, err, sizeof(err)), 0);

	cr_assert_eq(run_gen(args, out, sizeof(out)), 1, "%s", out);
	snprintf(want, sizeof(want),
	         "tally-gen: could not fetch \"http://127.0.0.1:%d/api/\": HTTP status 404\n",
	         rusrv_port(srv));
	/* The last line (librdkafka may log before it while a fresh broker settles). */
	cr_assert(strlen(out) >= strlen(want) &&
	          strcmp(out + strlen(out) - strlen(want), want) == 0 &&
	          (strlen(out) == strlen(want) || out[strlen(out) - strlen(want) - 1] == '\n'),
	          "%s", out);
	cr_assert_eq(rusrv_requests(srv), 1, "a 404 is not retried");

	c = pgtest_connect();
	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM voters"), 0);
	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM candidates"), 0);
	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM parties"), 0);
	PQfinish(c);
	delete_topics(&t);
	rusrv_stop(srv);
}

/*
 * The original system's own tables (FORMATS.md: text ids, text dates, no parties table, no
 * foreign keys) in a schema of their own load into tally's schema with --import-original:
 * every row, the parties derived, the regions from address_state; and tallyd's registry
 * load reads them back.
 */
Test(tally_gen, import_original_tables)
{
	static char out[1 << 16];
	char orig[64], sql[4096], err[256];
	const int nvoters = 500;
	tally_gen_opts_t o;
	tally_gen_t *gen;
	PGconn *c;
	tally_registry_t *reg;
	uint64_t np, nc, nv;

	c = pgtest_connect_migrated();
	snprintf(orig, sizeof(orig), "%s_orig", pgtest_schema());
	snprintf(sql, sizeof(sql),
	         "CREATE SCHEMA %s;"
	         "CREATE TABLE %s.candidates (candidate_id text PRIMARY KEY, candidate_name text,"
	         " party_affiliation text, biography text, campaign_platform text, photo_url text);"
	         "CREATE TABLE %s.voters (voter_id text PRIMARY KEY, voter_name text,"
	         " date_of_birth text, gender text, nationality text, registration_number text,"
	         " address_street text, address_city text, address_state text,"
	         " address_country text, address_postcode text, email text, phone_number text,"
	         " cell_number text, picture text, registered_age integer);"
	         "CREATE TABLE %s.votes (voter_id text UNIQUE, candidate_id text,"
	         " voting_time timestamp, vote int DEFAULT 1, PRIMARY KEY (voter_id, candidate_id));",
	         orig, orig, orig, orig);
	pgtest_exec_ok(c, sql);
	tally_gen_opts_init(&o);
	o.seed = 3;
	o.voters = (uint64_t)nvoters;
	gen = tally_gen_new(&o, err, sizeof(err));
	cr_assert_not_null(gen);
	/* Rows as the original wrote them: parameterised inserts into the original tables. */
	for (uint32_t i = 0; i < tally_gen_candidate_count(gen); i++) {
		tally_gen_candidate_t cd;
		PGresult *res;

		tally_gen_candidate(gen, i, &cd);
		{
			const char *v[6] = {cd.candidate_id, cd.candidate_name, cd.party_affiliation,
			                    cd.biography, cd.campaign_platform, cd.photo_url};

			snprintf(sql, sizeof(sql), "INSERT INTO %s.candidates VALUES ($1,$2,$3,$4,$5,$6)",
			         orig);
			res = PQexecParams(c, sql, 6, NULL, v, NULL, NULL, 0);
			cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
			PQclear(res);
		}
	}
	for (int i = 0; i < nvoters; i++) {
		tally_gen_voter_t v;
		char age[16], dob[40];
		PGresult *res;

		tally_gen_voter(gen, (uint64_t)i, &v);
		snprintf(age, sizeof(age), "%d", v.registered_age);
		/* The Random User API's form of a date of birth. */
		snprintf(dob, sizeof(dob), "%sT08:15:00.123Z", v.date_of_birth);
		{
			const char *p[16] = {v.voter_id, v.voter_name, dob, v.gender, v.nationality,
			                     v.registration_number, v.street, v.city, v.state, v.country,
			                     v.postcode, v.email, v.phone_number, v.cell_number,
			                     v.picture, age};

			snprintf(sql, sizeof(sql), "INSERT INTO %s.voters VALUES ($1,$2,$3,$4,$5,$6,$7,"
			         "$8,$9,$10,$11,$12,$13,$14,$15,$16)", orig);
			res = PQexecParams(c, sql, 16, NULL, p, NULL, NULL, 0);
			cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
			PQclear(res);
		}
	}
	{
		char pgopt[160];
		const char *a[] = {"--import-original", orig, "--no-kafka", pgopt, NULL};

		snprintf(pgopt, sizeof(pgopt), "--pg.options=%s", pgtest_options());
		cr_assert_eq(run_gen(a, out, sizeof(out)), 0, "%s", out);
		cr_assert_not_null(strstr(out, "imported 3 parties, 3 candidates and 500 voters"), "%s",
		                   out);
	}
	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM voters"), nvoters);
	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM candidates"), 3);
	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM parties"), 3);
	cr_assert_eq(pgtest_count(c, "SELECT count(DISTINCT region) FROM voters"),
	             (long)tally_gen_region_count(gen));
	reg = tally_registry_new(NULL, err, sizeof(err));
	cr_assert_eq(tally_pg_registry_load(c, reg, &np, &nc, &nv, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(nv, (uint64_t)nvoters);
	for (int i = 0; i < nvoters; i++) {
		tally_gen_voter_t v;
		tally_voter_info_t info;

		tally_gen_voter(gen, (uint64_t)i, &v);
		cr_assert(tally_registry_voter_get(reg, &v.id, &info));
		cr_assert_eq(info.date_of_birth, v.dob_days);
		cr_assert_str_eq(tally_registry_region_name(reg, info.region), v.state);
	}
	/* A second import into the filled tables is refused. */
	{
		char pgopt[160];
		const char *a[] = {"--import-original", orig, "--no-kafka", pgopt, NULL};

		snprintf(pgopt, sizeof(pgopt), "--pg.options=%s", pgtest_options());
		cr_assert_eq(run_gen(a, out, sizeof(out)), 1, "%s", out);
	}
	tally_registry_destroy(reg);
	snprintf(sql, sizeof(sql), "DROP SCHEMA %s CASCADE", orig);
	pgtest_exec_ok(c, sql);
	PQfinish(c);
	tally_gen_destroy(gen);
}
