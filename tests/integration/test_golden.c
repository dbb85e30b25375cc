/*
 * The golden run, the whole pipeline on the real services:
 * tally-gen (100,000 voters) → tally-sim (every fault kind, the original full message
 * shape) → tallyd → PostgreSQL, the results topics and the dead letters; then tally-dq
 * against tally-sim's ground truth. Every figure must be exact.
 *
 * The test reads the truth file itself and checks the votes table, the results topics
 * and the dead letters against it directly, so a fault in tally-dq cannot hide one in
 * tallyd; then tally-dq must agree (exit 0, every check passed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include <tally/kafka.h>
#include <tally/vote.h>

#include "kafkatest.h"
#include "pgtest.h"
#include "services.h"
#include "testutil.h"

#define VOTERS "100000"
#define PARTITIONS "6"

static char out[1 << 20];

/* The truth's total_votes (or count) for key in one of its arrays, -1 if absent. */
static long
truth_get(json_t *truth, const char *array, const char *keyname, const char *key,
          const char *field)
{
	size_t i;
	json_t *o;

	json_array_foreach(json_object_get(truth, array), i, o)
		if (strcmp(json_string_value(json_object_get(o, keyname)), key) == 0)
			return (long)json_integer_value(json_object_get(o, field));
	return -1;
}

typedef struct seen {
	json_t *truth;
	json_t *latest;            /* key -> latest value (results) */
	long by_reason[TALLY_REASON__COUNT];
	long letters;
} seen_t;

static void
on_result(const rd_kafka_message_t *m, void *arg)
{
	seen_t *s = arg;
	json_t *o = json_loadb(m->payload, m->len, 0, NULL);
	char key[512];

	cr_assert_not_null(o, "a results message is not JSON");
	snprintf(key, sizeof(key), "%.*s", (int)m->key_len, (const char *)m->key);
	json_object_set_new(s->latest, key, o);
}

static void
on_letter(const rd_kafka_message_t *m, void *arg)
{
	seen_t *s = arg;
	rd_kafka_headers_t *h = NULL;
	const void *v;
	size_t n;
	char reason[32];
	int k;

	cr_assert_eq(rd_kafka_message_headers(m, &h), RD_KAFKA_RESP_ERR_NO_ERROR);
	cr_assert_eq(rd_kafka_header_get_last(h, "reason", &v, &n), RD_KAFKA_RESP_ERR_NO_ERROR);
	snprintf(reason, sizeof(reason), "%.*s", (int)n, (const char *)v);
	k = tally_reason_from_name(reason);
	cr_assert(k > 0 && k < TALLY_REASON__COUNT, "reason \"%s\"", reason);
	s->by_reason[k]++;
	s->letters++;
}

Test(golden, whole_pipeline, .timeout = 900)
{
	char prefix[64], pgopt[160], truth_path[128], log[160], err[256];
	tally_kafka_topics_t topics;
	json_t *truth;
	seen_t seen;
	PGconn *c;
	int status, pid;

	pgtest_schema_create();
	snprintf(prefix, sizeof(prefix), "golden%d_%ld_", (int)getpid(), (long)time(NULL));
	snprintf(pgopt, sizeof(pgopt), "--pg.options=%s", pgtest_options());
	snprintf(truth_path, sizeof(truth_path), "/tmp/%struth.json", prefix);
	snprintf(log, sizeof(log), "/tmp/%stallyd.log", prefix);
	cr_assert_eq(tally_kafka_topics_init(&topics, prefix, 6, err, sizeof(err)), 0);

	{
		const char *a[] = {"--voters", VOTERS, "--candidates", "7", "--regions", "40",
		                   "--partitions", PARTITIONS, "--topic-prefix", prefix, pgopt,
		                   "--quiet", NULL};

		cr_assert_eq(test_run("tally-gen", a, out, sizeof(out)), 0, "%s", out);
	}
	{
		/* Every fault kind at a visible share; the original full shape. */
		const char *a[] = {"--topic-prefix", prefix, pgopt, "--truth", truth_path,
		                   "--dup-rate", "0.02", "--invalid-rate", "0.01", "--unknown-rate",
		                   "0.01", "--unknown-candidate-rate", "0.005", "--late-rate", "0.005",
		                   "--early-rate", "0.005", "--quiet", NULL};

		cr_assert_eq(test_run("tally-sim", a, out, sizeof(out)), 0, "%s", out);
	}
	truth = json_load_file(truth_path, 0, NULL);
	cr_assert_not_null(truth);
	/* Every fault but polls_closed, and wrong_contest: one contest here. */
	for (int k = 1; k < TALLY_REASON__COUNT; k++)
		if (k != TALLY_REASON_POLLS_CLOSED && k != TALLY_REASON_WRONG_CONTEST)
			cr_assert_gt(json_integer_value(json_object_get(json_object_get(truth, "rejected"),
			                                                tally_reason_name(k))),
			             0, "the stream has no %s fault", tally_reason_name(k));

	{
		const char *a[] = {"--topic-prefix", prefix, pgopt, "--group-id", prefix,
		                   "--exit-idle-ms", "2000", NULL};

		pid = test_spawn("tallyd", a, log);
		cr_assert(pid > 0);
		cr_assert_eq(waitpid(pid, &status, 0), pid);
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "tallyd: status %d", status);
	}

	/* PostgreSQL: the votes per candidate equal the truth. */
	c = pgtest_connect();
	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM votes"),
	             (long)json_integer_value(json_object_get(truth, "accepted")));
	{
		PGresult *r = PQexec(c, "SELECT candidate_id::text, count(*) FROM votes GROUP BY 1");

		cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK);
		for (int i = 0; i < PQntuples(r); i++)
			cr_assert_eq(strtol(PQgetvalue(r, i, 1), NULL, 10),
			             truth_get(truth, "candidates", "candidate_id", PQgetvalue(r, i, 0),
			                       "total_votes"),
			             "votes table: candidate %s", PQgetvalue(r, i, 0));
		PQclear(r);
		r = PQexec(c, "SELECT v.region, count(*) FROM votes JOIN voters v USING (voter_id)"
		              " GROUP BY 1");
		cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK);
		for (int i = 0; i < PQntuples(r); i++)
			cr_assert_eq(strtol(PQgetvalue(r, i, 1), NULL, 10),
			             truth_get(truth, "regions", "region", PQgetvalue(r, i, 0), "count"),
			             "votes table: region %s", PQgetvalue(r, i, 0));
		PQclear(r);
	}
	PQfinish(c);

	/* The results topics: the latest message per key equals the truth. */
	memset(&seen, 0, sizeof(seen));
	seen.truth = truth;
	seen.latest = json_object();
	kt_consume_all(topics.topic[TALLY_KAFKA_RESULTS_CANDIDATE].name, on_result, &seen, 60);
	{
		size_t i;
		json_t *o;

		json_array_foreach(json_object_get(truth, "candidates"), i, o) {
			const char *id = json_string_value(json_object_get(o, "candidate_id"));
			json_t *msg = json_object_get(seen.latest, id);

			cr_assert_not_null(msg, "no results message for candidate %s", id);
			cr_assert_eq(json_integer_value(json_object_get(msg, "total_votes")),
			             json_integer_value(json_object_get(o, "total_votes")));
			cr_assert_str_eq(json_string_value(json_object_get(msg, "candidate_name")),
			                 json_string_value(json_object_get(o, "candidate_name")));
		}
	}
	json_object_clear(seen.latest);
	kt_consume_all(topics.topic[TALLY_KAFKA_RESULTS_LOCATION].name, on_result, &seen, 60);
	{
		size_t i;
		json_t *o;

		json_array_foreach(json_object_get(truth, "regions"), i, o) {
			const char *name = json_string_value(json_object_get(o, "region"));
			json_t *msg = json_object_get(seen.latest, name);

			cr_assert_not_null(msg, "no turnout message for region %s", name);
			cr_assert_eq(json_integer_value(json_object_get(msg, "count")),
			             json_integer_value(json_object_get(o, "count")), "region %s", name);
			cr_assert_eq(json_integer_value(json_object_get(msg, "registered")),
			             json_integer_value(json_object_get(o, "registered")));
		}
	}
	json_object_clear(seen.latest);
	kt_consume_all(topics.topic[TALLY_KAFKA_RESULTS_PARTY].name, on_result, &seen, 60);
	{
		size_t i;
		json_t *o;

		json_array_foreach(json_object_get(truth, "parties"), i, o) {
			const char *name = json_string_value(json_object_get(o, "party_affiliation"));
			json_t *msg = json_object_get(seen.latest, name);
			long want = (long)json_integer_value(json_object_get(o, "total_votes"));

			/* Only what changed is published: a party nobody voted for may have none. */
			cr_assert(msg != NULL || want == 0, "no results message for party %s", name);
			if (msg != NULL)
				cr_assert_eq(json_integer_value(json_object_get(msg, "total_votes")), want);
		}
	}

	/* Dead letters: exactly the injected faults, per reason (no crash: exactly once). */
	kt_consume_all(topics.topic[TALLY_KAFKA_REJECTED].name, on_letter, &seen, 60);
	cr_assert_eq(seen.letters, (long)json_integer_value(json_object_get(truth, "rejected_total")));
	for (int k = 1; k < TALLY_REASON__COUNT; k++)
		cr_assert_eq(seen.by_reason[k],
		             (long)json_integer_value(json_object_get(json_object_get(truth, "rejected"),
		                                                      tally_reason_name(k))),
		             "dead letters: %s", tally_reason_name(k));

	/* tally-dq agrees: every check passes. */
	{
		const char *a[] = {"--topic-prefix", prefix, pgopt, "--truth", truth_path, "--json",
		                   NULL};
		json_t *report;

		cr_assert_eq(test_run("tally-dq", a, out, sizeof(out)), 0, "%s", out);
		report = json_loads(out, 0, NULL);
		cr_assert_not_null(report, "tally-dq --json: %s", out);
		cr_assert(json_is_true(json_object_get(report, "passed")));
		json_decref(report);
	}

	json_decref(seen.latest);
	json_decref(truth);
	{
		const char *names[TALLY_KAFKA_N_TOPICS];

		for (int i = 0; i < TALLY_KAFKA_N_TOPICS; i++)
			names[i] = topics.topic[i].name;
		kt_delete_topics(names, TALLY_KAFKA_N_TOPICS);
	}
	unlink(truth_path);
	unlink(log);
	pgtest_schema_drop();
}

/*
 * The golden run of an election of many contests: tally-gen registers 650 constituencies
 * (a region each) with candidates from 8 parties; tally-sim sends every fault kind, now
 * also votes for another constituency's candidate; tallyd counts. PostgreSQL's stored
 * votes equal the truth per candidate and per contest, each contest's winner (or tie) and
 * each party's seats follow, the dead letters are the faults per reason (wrong_contest
 * among them), and tally-dq agrees.
 */
Test(golden, contests_650_constituencies, .timeout = 900)
{
	char prefix[64], pgopt[160], truth_path[128], log[160], err[256];
	tally_kafka_topics_t topics;
	json_t *truth, *seats;
	seen_t seen;
	PGconn *c;
	int status, pid;
	size_t i;
	json_t *o;

	pgtest_schema_create();
	snprintf(prefix, sizeof(prefix), "goldk%d_%ld_", (int)getpid(), (long)time(NULL));
	snprintf(pgopt, sizeof(pgopt), "--pg.options=%s", pgtest_options());
	snprintf(truth_path, sizeof(truth_path), "/tmp/%struth.json", prefix);
	snprintf(log, sizeof(log), "/tmp/%stallyd.log", prefix);
	cr_assert_eq(tally_kafka_topics_init(&topics, prefix, 6, err, sizeof(err)), 0);
	{
		const char *a[] = {"--voters", VOTERS, "--regions", "650", "--contests", "650",
		                   "--parties", "8", "--partitions", PARTITIONS, "--topic-prefix",
		                   prefix, pgopt, "--quiet", NULL};

		cr_assert_eq(test_run("tally-gen", a, out, sizeof(out)), 0, "%s", out);
	}
	{
		const char *a[] = {"--topic-prefix", prefix, pgopt, "--truth", truth_path,
		                   "--dup-rate", "0.02", "--invalid-rate", "0.01", "--unknown-rate",
		                   "0.01", "--unknown-candidate-rate", "0.005", "--late-rate", "0.005",
		                   "--early-rate", "0.005", "--wrong-contest-rate", "0.01", "--quiet",
		                   NULL};

		cr_assert_eq(test_run("tally-sim", a, out, sizeof(out)), 0, "%s", out);
	}
	truth = json_load_file(truth_path, 0, NULL);
	cr_assert_not_null(truth);
	for (int k = 1; k < TALLY_REASON__COUNT; k++)
		if (k != TALLY_REASON_POLLS_CLOSED)
			cr_assert_gt(json_integer_value(json_object_get(json_object_get(truth, "rejected"),
			                                                tally_reason_name(k))),
			             0, "the stream has no %s fault", tally_reason_name(k));
	cr_assert_eq(json_array_size(json_object_get(truth, "contests")), 650);
	{
		const char *a[] = {"--topic-prefix", prefix, pgopt, "--group-id", prefix,
		                   "--exit-idle-ms", "2000", NULL};

		pid = test_spawn("tallyd", a, log);
		cr_assert(pid > 0);
		cr_assert_eq(waitpid(pid, &status, 0), pid);
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "tallyd: status %d", status);
	}

	c = pgtest_connect();
	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM votes"),
	             (long)json_integer_value(json_object_get(truth, "accepted")));
	{
		/* Per candidate, then per contest, and every vote from the voter's constituency. */
		PGresult *r = PQexec(c, "SELECT candidate_id::text, count(*) FROM votes GROUP BY 1");

		cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK);
		for (int k = 0; k < PQntuples(r); k++)
			cr_assert_eq(strtol(PQgetvalue(r, k, 1), NULL, 10),
			             truth_get(truth, "candidates", "candidate_id", PQgetvalue(r, k, 0),
			                       "total_votes"),
			             "votes table: candidate %s", PQgetvalue(r, k, 0));
		PQclear(r);
		r = PQexec(c, "SELECT k.contest_id, count(*) FROM votes JOIN candidates k"
		              " USING (candidate_id) GROUP BY 1");
		cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK);
		{
			int with_votes = 0;

			/* A contest nobody voted in has no row. */
			json_array_foreach(json_object_get(truth, "contests"), i, o)
				with_votes += json_integer_value(json_object_get(o, "votes")) > 0;
			cr_assert_eq(PQntuples(r), with_votes);
			cr_assert_gt(with_votes, 600);
		}
		for (int k = 0; k < PQntuples(r); k++)
			cr_assert_eq(strtol(PQgetvalue(r, k, 1), NULL, 10),
			             truth_get(truth, "contests", "contest_id", PQgetvalue(r, k, 0),
			                       "votes"),
			             "votes table: contest %s", PQgetvalue(r, k, 0));
		PQclear(r);
		cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM votes v JOIN voters p USING (voter_id)"
		                             " JOIN candidates k USING (candidate_id)"
		                             " JOIN contest_regions cr ON cr.contest_id = k.contest_id"
		                             " AND cr.region = p.region"),
		             (long)json_integer_value(json_object_get(truth, "accepted")),
		             "a stored vote from outside its candidate's constituency");
		/* Each contest's winner from the stored votes: the truth's (ties: none). */
		r = PQexec(c, "SELECT k.contest_id, (array_agg(candidate_id::text ORDER BY n DESC))[1],"
		              " (array_agg(n ORDER BY n DESC))[1], (array_agg(n ORDER BY n DESC))[2]"
		              " FROM (SELECT candidate_id, count(*) AS n FROM votes GROUP BY 1) t"
		              " JOIN candidates k USING (candidate_id) GROUP BY 1");
		cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK);
		for (int k = 0; k < PQntuples(r); k++) {
			const char *id = PQgetvalue(r, k, 0), *want = NULL;
			bool tie = !PQgetisnull(r, k, 3) &&
			           strcmp(PQgetvalue(r, k, 2), PQgetvalue(r, k, 3)) == 0;

			json_array_foreach(json_object_get(truth, "contests"), i, o)
				if (strcmp(json_string_value(json_object_get(o, "contest_id")), id) == 0)
					want = json_string_value(json_object_get(o, "winner"));
			if (tie)
				cr_assert_null(want, "contest %s is tied, the truth has a winner", id);
			else
				cr_assert_str_eq(PQgetvalue(r, k, 1), want != NULL ? want : "(none)",
				                 "contest %s's winner", id);
		}
		PQclear(r);
	}
	/* Seats: the truth's add up to the contests with a winner. */
	seats = json_object_get(truth, "seats");
	{
		long total = 0, won = 0;
		const char *party;
		json_t *v;

		json_object_foreach(seats, party, v)
			total += (long)json_integer_value(v);
		json_array_foreach(json_object_get(truth, "contests"), i, o)
			won += json_object_get(o, "winner") != NULL &&
			       !json_is_null(json_object_get(o, "winner"));
		cr_assert_eq(total, won);
		cr_assert_gt(total, 550);
	}
	PQfinish(c);

	/* The contests topic: each contest's newest message has its votes and winner (the
	 * polls are still open: counting, the leader leads); the seats topic: each party's
	 * seats won and led add up to the truth's. */
	memset(&seen, 0, sizeof(seen));
	seen.latest = json_object();
	kt_consume_all(topics.topic[TALLY_KAFKA_RESULTS_CONTEST].name, on_result, &seen, 60);
	json_array_foreach(json_object_get(truth, "contests"), i, o) {
		const char *id = json_string_value(json_object_get(o, "contest_id"));
		json_t *msg = json_object_get(seen.latest, id), *lead;
		long votes = (long)json_integer_value(json_object_get(o, "votes"));

		cr_assert(msg != NULL || votes == 0, "no message for contest %s", id);
		if (msg == NULL)
			continue;
		cr_assert_eq(json_integer_value(json_object_get(msg, "total_votes")), votes,
		             "contest %s", id);
		cr_assert_str_eq(json_string_value(json_object_get(msg, "status")), "counting");
		cr_assert_str_eq(json_string_value(json_object_get(msg, "contest_name")),
		                 json_string_value(json_object_get(o, "contest_name")));
		lead = json_object_get(msg, "leader");
		if (json_is_null(json_object_get(o, "winner")) || json_object_get(o, "winner") == NULL)
			cr_assert(json_is_null(lead), "contest %s: a leader the truth has not", id);
		else
			cr_assert_str_eq(json_string_value(lead),
			                 json_string_value(json_object_get(o, "winner")), "contest %s", id);
	}
	json_object_clear(seen.latest);
	kt_consume_all(topics.topic[TALLY_KAFKA_RESULTS_SEATS].name, on_result, &seen, 60);
	{
		const char *party;
		json_t *v;
		char key[300];

		json_object_foreach(seats, party, v) {
			json_t *msg;

			snprintf(key, sizeof(key), "constituency/%s", party);
			msg = json_object_get(seen.latest, key);
			cr_assert(msg != NULL, "no seats message for %s", key);
			cr_assert_eq(json_integer_value(json_object_get(msg, "seats_won")) +
			             json_integer_value(json_object_get(msg, "seats_led")),
			             json_integer_value(v), "seats of %s", party);
			cr_assert_eq(json_integer_value(json_object_get(msg, "contests")), 650);
			cr_assert_str_eq(json_string_value(json_object_get(msg, "report")),
			                 "unofficial-partial");
		}
	}
	json_decref(seen.latest);

	memset(&seen, 0, sizeof(seen));
	kt_consume_all(topics.topic[TALLY_KAFKA_REJECTED].name, on_letter, &seen, 60);
	cr_assert_eq(seen.letters, (long)json_integer_value(json_object_get(truth, "rejected_total")));
	for (int k = 1; k < TALLY_REASON__COUNT; k++)
		cr_assert_eq(seen.by_reason[k],
		             (long)json_integer_value(json_object_get(json_object_get(truth, "rejected"),
		                                                      tally_reason_name(k))),
		             "dead letters: %s", tally_reason_name(k));
	{
		const char *a[] = {"--topic-prefix", prefix, pgopt, "--truth", truth_path, NULL};

		cr_assert_eq(test_run("tally-dq", a, out, sizeof(out)), 0, "%s", out);
	}
	json_decref(truth);
	{
		const char *names[TALLY_KAFKA_N_TOPICS];

		for (int k = 0; k < TALLY_KAFKA_N_TOPICS; k++)
			names[k] = topics.topic[k].name;
		kt_delete_topics(names, TALLY_KAFKA_N_TOPICS);
	}
	unlink(truth_path);
	unlink(log);
	pgtest_schema_drop();
}
