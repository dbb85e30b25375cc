/*
 * tally-sim (apps/tally-sim) against the real Kafka and PostgreSQL scripts/services started.
 *
 * tally-gen loads 20,000 voters into a private schema and topic prefix; tally-sim produces
 * votes with every fault kind; the test reads votes_topic back, decodes every message with
 * the project's decoder and runs it through a real core (registry loaded from PostgreSQL
 * with tally_pg_registry_load, election open), partition by partition in order, and
 * requires the core's snapshot to equal the ground truth file exactly: messages (= the
 * topic's size), accepted per candidate, party and region, registered per region, rejected
 * per reason. The same from --source kafka with --compact. The full shape is checked field
 * by field against the PostgreSQL rows. SIGINT with --rate stops early, exits 130 and leaves
 * a truth that still equals the core's count of what was produced. --rekey-rate: the share
 * of messages keyed by another key than their voter_id is the one asked and the one
 * tally-sim reports, and no repeat vote changes its mind (without it, half do). Bad options
 * exit 2; an unknown election or an empty registry exits 1 with the reason.
 */
#include <signal.h>
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

#include <tally/core.h>
#include <tally/decode.h>
#include <tally/gen.h>
#include <tally/kafka.h>
#include <tally/pg_registry.h>
#include <tally/registry.h>
#include <tally/snapshot.h>
#include <tally/vote.h>

#include "kafkatest.h"
#include "pgtest.h"
#include "testutil.h"

#define N_VOTERS 20000
#define N_CANDIDATES 5
#define N_PARTIES 4
#define N_PARTITIONS 4
#define FULL_SHAPE_CHECKS 300

/* Every fault kind, at shares large enough to give hundreds of each. */
#define FAULTS "--dup-rate", "0.04", "--invalid-rate", "0.03", "--unknown-rate", "0.02", \
	"--unknown-candidate-rate", "0.02", "--late-rate", "0.02", "--early-rate", "0.02"

typedef struct world {
	char prefix[128];
	char pgopt[160];
	char truth[256];
	tally_kafka_topics_t t;
} world_t;

/* ---- setting up --------------------------------------------------------------------- */

/*
 * The test's world lives here (each test runs in a process of its own), so the suite's fini
 * can still delete its topics after a failed assert has left the test function.
 */
static world_t the_world;
static world_t *current_world;

static void
world_init(world_t *w, const char *tag)
{
	char err[256];

	current_world = w;
	snprintf(w->prefix, sizeof(w->prefix), "tally_test_sim_%ld_%d_%s_", (long)time(NULL),
	         (int)getpid(), tag);
	snprintf(w->pgopt, sizeof(w->pgopt), "--pg.options=%s", pgtest_options());
	snprintf(w->truth, sizeof(w->truth), "/tmp/tally_test_sim_%d_%s.json", (int)getpid(), tag);
	cr_assert_eq(tally_kafka_topics_init(&w->t, w->prefix, N_PARTITIONS, err, sizeof(err)), 0);
}

static void
world_fini(world_t *w)
{
	const char *names[TALLY_KAFKA_N_TOPICS];

	for (int i = 0; i < TALLY_KAFKA_N_TOPICS; i++)
		names[i] = w->t.topic[i].name;
	kt_delete_topics(names, TALLY_KAFKA_N_TOPICS);
	unlink(w->truth);
	current_world = NULL;
}

static int
run_prog(const char *name, const char *const *args, char *out, size_t out_size)
{
	int rc = test_run(name, args, out, out_size);

	cr_assert(rc >= 0 && rc < 128, "%s did not exit normally (%d): %s", name, rc, out);
	return rc;
}

/* The registry: tally-gen into the test's schema and the world's topics. */
static void
make_registry(const world_t *w)
{
	const char *args[] = {"--seed", "11", "--voters", "20000", "--candidates", "5",
	                      "--parties", "4", "--regions", "20", "--partitions", "4",
	                      "--topic-prefix", w->prefix, w->pgopt, "--quiet", NULL};
	char out[4096];

	cr_assert_eq(run_prog("tally-gen", args, out, sizeof(out)), 0, "tally-gen: %s", out);
}

/* ---- votes_topic, read back -------------------------------------------------------- */

typedef struct pmsg {
	char *key, *val;
	size_t klen, vlen;
} pmsg_t;

typedef struct topic_copy {
	pmsg_t *m[N_PARTITIONS];
	size_t n[N_PARTITIONS], cap[N_PARTITIONS];
	long total;
} topic_copy_t;

static void
collect(const rd_kafka_message_t *m, void *arg)
{
	topic_copy_t *tc = arg;
	int p = m->partition;
	pmsg_t *x;

	cr_assert(p >= 0 && p < N_PARTITIONS, "partition %d", p);
	if (tc->n[p] == tc->cap[p]) {
		tc->cap[p] = tc->cap[p] ? tc->cap[p] * 2 : 1024;
		tc->m[p] = realloc(tc->m[p], tc->cap[p] * sizeof(pmsg_t));
		cr_assert_not_null(tc->m[p]);
	}
	x = &tc->m[p][tc->n[p]++];
	x->klen = m->key_len;
	x->vlen = m->len;
	x->key = malloc(m->key_len + 1);
	x->val = malloc(m->len + 1);
	cr_assert(x->key != NULL && x->val != NULL);
	memcpy(x->key, m->key, m->key_len);
	x->key[m->key_len] = '\0';
	if (m->len > 0)
		memcpy(x->val, m->payload, m->len);
	x->val[m->len] = '\0';
	tc->total++;
}

static void
read_votes(const world_t *w, topic_copy_t *tc)
{
	rd_kafka_t *rk = kt_client(RD_KAFKA_PRODUCER, NULL);
	int64_t size = kt_messages(rk, w->t.topic[TALLY_KAFKA_VOTES].name);
	long got;

	rd_kafka_destroy(rk);
	memset(tc, 0, sizeof(*tc));
	got = kt_consume_all(w->t.topic[TALLY_KAFKA_VOTES].name, collect, tc, 120);
	cr_assert_eq(got, size, "read %ld of the topic's %lld messages", got, (long long)size);
}

static void
topic_copy_free(topic_copy_t *tc)
{
	for (int p = 0; p < N_PARTITIONS; p++) {
		for (size_t i = 0; i < tc->n[p]; i++) {
			free(tc->m[p][i].key);
			free(tc->m[p][i].val);
		}
		free(tc->m[p]);
	}
}

/* ---- the core's count against the truth -------------------------------------------- */

static json_t *
load_truth(const char *path)
{
	json_error_t jerr;
	json_t *t = json_load_file(path, 0, &jerr);

	cr_assert_not_null(t, "truth \"%s\": %s", path, jerr.text);
	return t;
}

static uint64_t
jint(const json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	cr_assert(json_is_integer(v), "truth: \"%s\" is not an integer", key);
	return (uint64_t)json_integer_value(v);
}

static const char *
jstr(const json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	cr_assert(json_is_string(v), "truth: \"%s\" is not a string", key);
	return json_string_value(v);
}

/*
 * Count tc with a real core (the registry from the test's PostgreSQL schema, the election
 * open) and require its snapshot to equal the truth file exactly. Returns the truth.
 */
static json_t *
check_core_equals_truth(const world_t *w, const topic_copy_t *tc, bool all_reasons,
                        uint64_t registered, uint32_t nparties)
{
	tally_registry_opts_t ro = {.expected_voters = N_VOTERS};
	tally_core_opts_t co = {.workers = N_PARTITIONS};
	tally_registry_t *reg;
	tally_core_t *core;
	tally_snapshot_t *snap;
	json_t *truth = load_truth(w->truth), *rej, *arr, *e;
	PGconn *c = pgtest_connect();
	PGresult *res;
	char err[512];
	size_t i;

	reg = tally_registry_new(&ro, err, sizeof(err));
	cr_assert_not_null(reg, "%s", err);
	cr_assert_eq(tally_pg_registry_load(c, reg, NULL, NULL, NULL, err, sizeof(err)), 0, "%s",
	             err);
	res = PQexec(c, "SELECT extract(epoch FROM opens_at)::bigint,"
	                " extract(epoch FROM closes_at)::bigint FROM elections"
	                " WHERE election_id = 'general'");
	cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
	cr_assert_eq(PQntuples(res), 1);
	snprintf(co.election.id, sizeof(co.election.id), "general");
	co.election.opens_at = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	co.election.closes_at = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	co.election.status = TALLY_ELECTION_OPEN;
	PQclear(res);
	PQfinish(c);
	core = tally_core_new(reg, &co, err, sizeof(err));
	cr_assert_not_null(core, "%s", err);

	/* One lane per partition, in the partition's order: as tallyd's ingest does. */
	for (int p = 0; p < N_PARTITIONS; p++) {
		tally_vote_t *votes = calloc(tc->n[p] + 1, sizeof(*votes));
		tally_batch_t batch;

		cr_assert_not_null(votes);
		for (i = 0; i < tc->n[p]; i++)
			tally_decode_vote(NULL, tc->m[p][i].val, tc->m[p][i].vlen, &votes[i], NULL);
		tally_batch_init(&batch, votes, (uint32_t)tc->n[p], (uint32_t)p);
		tally_core_process(core, (unsigned)p, &batch);
		cr_assert(tally_batch_done(&batch));
		free(votes);
	}
	snap = tally_snapshot_take(core);
	cr_assert_not_null(snap);
	cr_assert_eq(tally_snapshot_check(snap, err, sizeof(err)), 0, "%s", err);

	cr_assert_str_eq(jstr(truth, "election_id"), "general");
	cr_assert_eq(jint(truth, "messages"), (uint64_t)tc->total, "truth: %llu messages, topic %ld",
	             (unsigned long long)jint(truth, "messages"), tc->total);
	cr_assert_eq(snap->read, (uint64_t)tc->total);
	cr_assert_eq(jint(truth, "accepted"), snap->accepted, "accepted: truth %llu, core %llu",
	             (unsigned long long)jint(truth, "accepted"), (unsigned long long)snap->accepted);
	cr_assert_eq(jint(truth, "rejected_total"), snap->rejected_total);
	cr_assert_eq(jint(truth, "registered"), snap->registered);
	cr_assert_eq(snap->registered, registered);
	rej = json_object_get(truth, "rejected");
	cr_assert(json_is_object(rej));
	cr_assert_eq(json_object_size(rej), TALLY_REASON__COUNT - 1);
	for (int r = 1; r < TALLY_REASON__COUNT; r++) {
		uint64_t want = jint(rej, tally_reason_name(r));

		cr_assert_eq(want, snap->rejected[r], "%s: truth %llu, core %llu",
		             tally_reason_name(r), (unsigned long long)want,
		             (unsigned long long)snap->rejected[r]);
		/* (no wrong_contest: one contest here) */
		if (all_reasons && r != TALLY_REASON_POLLS_CLOSED && r != TALLY_REASON_WRONG_CONTEST)
			cr_assert_gt(want, 0, "no %s message at all", tally_reason_name(r));
	}
	cr_assert_gt(snap->accepted, 0);

	arr = json_object_get(truth, "candidates");
	cr_assert_eq(json_array_size(arr), snap->ncandidates);
	json_array_foreach(arr, i, e) {
		tally_uuid_t id;
		const char *text = jstr(e, "candidate_id");
		int32_t idx;
		tally_candidate_info_t info;

		cr_assert(tally_uuid_parse(text, strlen(text), &id));
		idx = tally_registry_candidate_find(reg, &id);
		cr_assert_geq(idx, 0, "candidate %s is not registered", text);
		cr_assert(tally_registry_candidate_get(reg, (uint32_t)idx, &info));
		cr_assert_str_eq(jstr(e, "candidate_name"), info.name);
		cr_assert_str_eq(jstr(e, "party_affiliation"),
		                 tally_registry_party_name(reg, info.party));
		cr_assert_eq(jint(e, "total_votes"), snap->candidates[idx], "candidate %s", text);
	}
	arr = json_object_get(truth, "parties");
	cr_assert_eq(json_array_size(arr), snap->nparties);
	cr_assert_eq(snap->nparties, nparties);
	json_array_foreach(arr, i, e) {
		int32_t idx = tally_registry_party_find(reg, jstr(e, "party_affiliation"));

		cr_assert_geq(idx, 0);
		cr_assert_eq(jint(e, "total_votes"), snap->parties[idx], "party %s",
		             jstr(e, "party_affiliation"));
	}
	arr = json_object_get(truth, "regions");
	cr_assert_eq(json_array_size(arr), snap->nregions);
	json_array_foreach(arr, i, e) {
		int32_t idx = tally_registry_region_find(reg, jstr(e, "region"));

		cr_assert_geq(idx, 0);
		cr_assert_eq(jint(e, "count"), snap->regions[idx], "region %s", jstr(e, "region"));
		cr_assert_eq(jint(e, "registered"), snap->region_registered[idx], "region %s",
		             jstr(e, "region"));
	}

	tally_snapshot_destroy(snap);
	tally_core_destroy(core);
	tally_registry_destroy(reg);
	return truth;
}

/* ---- keys and repeat votes --------------------------------------------------------- */

typedef struct voter_slot {
	tally_uuid_t voter, cand;
	uint32_t votes;              /* countable-shaped messages of this voter */
	bool changed;                /* one of them names another candidate */
	bool split;                  /* they travelled under different keys */
	char key[TALLY_UUID_STRLEN + 1];
} voter_slot_t;

typedef struct repeats {
	long decoded;                /* messages that decode */
	long rekeyed;                /* of those, keyed by something else than their voter_id */
	long repeats;                /* countable-shaped messages after a voter's first */
	long voters_repeating, changed, split;
} repeats_t;

/*
 * Every message that decodes: is its key its voter_id? And per voter, the messages shaped
 * to count (voting_time in the window, a registered candidate): the ones after the first
 * are its duplicates (an unregistered voter has one, an ineligible one too), so their
 * number equals the truth's duplicates; do they name the same candidate, under one key?
 */
static void
count_repeats(const topic_copy_t *tc, repeats_t *out)
{
	const size_t cap = 1u << 16;
	voter_slot_t *slots = calloc(cap, sizeof(*slots));
	tally_uuid_t *cands = NULL;
	int ncands = 0;
	int64_t opens, closes;
	PGconn *c = pgtest_connect();
	PGresult *res;

	cr_assert_not_null(slots);
	memset(out, 0, sizeof(*out));
	res = PQexec(c, "SELECT extract(epoch FROM opens_at)::bigint,"
	                " extract(epoch FROM closes_at)::bigint FROM elections"
	                " WHERE election_id = 'general'");
	cr_assert(PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1, "%s",
	          PQerrorMessage(c));
	opens = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	closes = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	PQclear(res);
	res = PQexec(c, "SELECT candidate_id::text FROM candidates");
	cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
	ncands = PQntuples(res);
	cands = calloc((size_t)ncands + 1, sizeof(*cands));
	cr_assert_not_null(cands);
	for (int i = 0; i < ncands; i++)
		cr_assert(tally_uuid_parse(PQgetvalue(res, i, 0), strlen(PQgetvalue(res, i, 0)),
		                           &cands[i]));
	PQclear(res);
	PQfinish(c);

	for (int p = 0; p < N_PARTITIONS; p++)
		for (size_t i = 0; i < tc->n[p]; i++) {
			const pmsg_t *m = &tc->m[p][i];
			tally_vote_t vote;
			tally_uuid_t kid;
			bool registered = false;
			size_t h;

			if (tally_decode_vote(NULL, m->val, m->vlen, &vote, NULL) != 0)
				continue;
			out->decoded++;
			if (!tally_uuid_parse(m->key, m->klen, &kid) ||
			    !tally_uuid_equal(&kid, &vote.voter_id))
				out->rekeyed++;
			for (int k = 0; k < ncands && !registered; k++)
				registered = tally_uuid_equal(&cands[k], &vote.candidate_id);
			if (!registered || vote.voting_time < opens || vote.voting_time >= closes)
				continue;
			h = (size_t)(vote.voter_id.hi ^ vote.voter_id.lo * 0x9E3779B97F4A7C15ull);
			for (h &= cap - 1;; h = (h + 1) & (cap - 1)) {
				voter_slot_t *v = &slots[h];

				if (v->votes == 0) {
					v->voter = vote.voter_id;
					v->cand = vote.candidate_id;
					v->votes = 1;
					snprintf(v->key, sizeof(v->key), "%s", m->key);
					break;
				}
				if (tally_uuid_equal(&v->voter, &vote.voter_id)) {
					v->votes++;
					out->repeats++;
					v->changed |= !tally_uuid_equal(&v->cand, &vote.candidate_id);
					v->split |= strcmp(v->key, m->key) != 0;
					break;
				}
			}
		}
	for (size_t h = 0; h < cap; h++)
		if (slots[h].votes > 1) {
			out->voters_repeating++;
			out->changed += slots[h].changed;
			out->split += slots[h].split;
		}
	free(cands);
	free(slots);
}

/* ---- the full shape ---------------------------------------------------------------- */

static void
expect_field(json_t *obj, const char *key, PGresult *res, int col, const char *what)
{
	json_t *v = json_object_get(obj, key);

	cr_assert_not_null(v, "%s: no \"%s\"", what, key);
	if (PQgetisnull(res, 0, col)) {
		cr_assert(json_is_null(v), "%s: \"%s\" should be null", what, key);
		return;
	}
	cr_assert(json_is_string(v), "%s: \"%s\" is not a string", what, key);
	cr_assert_str_eq(json_string_value(v), PQgetvalue(res, 0, col), "%s: \"%s\" differs", what,
	                 key);
}

/*
 * For the first FULL_SHAPE_CHECKS messages that decode and name a registered voter and
 * candidate: every voter field equals the voters row, every candidate field the candidates
 * row, voting_time is "YYYY-MM-DD HH:MM:SS", vote is 1, and the key is the voter_id.
 */
static void
check_full_shape(const topic_copy_t *tc)
{
	static const char *const voter_cols[] = {
		"voter_name", "date_of_birth", "gender", "nationality", "registration_number",
		"email", "phone_number", "cell_number", "picture",
	};
	static const char *const address_cols[] = {"street", "city", "state", "country", "postcode"};
	static const char *const cand_cols[] = {
		"candidate_name", "party_affiliation", "biography", "campaign_platform", "photo_url",
	};
	PGconn *c = pgtest_connect();
	int checked = 0;

	for (int p = 0; p < N_PARTITIONS && checked < FULL_SHAPE_CHECKS; p++) {
		for (size_t i = 0; i < tc->n[p] && checked < FULL_SHAPE_CHECKS; i++) {
			const pmsg_t *m = &tc->m[p][i];
			tally_vote_t vote;
			json_t *obj, *addr, *v;
			const char *params[1];
			PGresult *vres, *cres;
			char what[64];

			if (tally_decode_vote(NULL, m->val, m->vlen, &vote, NULL) != 0)
				continue;
			obj = json_loads(m->val, 0, NULL);
			cr_assert_not_null(obj, "a decodable message jansson cannot read");
			params[0] = json_string_value(json_object_get(obj, "voter_id"));
			cr_assert_not_null(params[0]);
			cr_assert_str_eq(m->key, params[0], "key and voter_id differ");
			vres = PQexecParams(c,
			                    "SELECT voter_name, to_char(date_of_birth, 'YYYY-MM-DD'),"
			                    " gender, nationality, registration_number, email,"
			                    " phone_number, cell_number, picture, address_street,"
			                    " address_city, address_state, address_country,"
			                    " address_postcode, registered_age FROM voters"
			                    " WHERE voter_id = $1::uuid",
			                    1, NULL, params, NULL, NULL, 0);
			cr_assert_eq(PQresultStatus(vres), PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
			params[0] = json_string_value(json_object_get(obj, "candidate_id"));
			cr_assert_not_null(params[0]);
			cres = PQexecParams(c,
			                    "SELECT candidate_name, party_affiliation, biography,"
			                    " campaign_platform, photo_url FROM candidates"
			                    " WHERE candidate_id = $1::uuid",
			                    1, NULL, params, NULL, NULL, 0);
			cr_assert_eq(PQresultStatus(cres), PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
			if (PQntuples(vres) == 1 && PQntuples(cres) == 1) {
				snprintf(what, sizeof(what), "partition %d message %zu", p, i);
				for (int k = 0; k < 9; k++)
					expect_field(obj, voter_cols[k], vres, k, what);
				addr = json_object_get(obj, "address");
				cr_assert(json_is_object(addr), "%s: no address", what);
				for (int k = 0; k < 5; k++)
					expect_field(addr, address_cols[k], vres, 9 + k, what);
				v = json_object_get(obj, "registered_age");
				cr_assert(json_is_integer(v), "%s: registered_age", what);
				cr_assert_eq(json_integer_value(v), strtoll(PQgetvalue(vres, 0, 14), NULL, 10));
				for (int k = 0; k < 5; k++)
					expect_field(obj, cand_cols[k], cres, k, what);
				v = json_object_get(obj, "voting_time");
				cr_assert(json_is_string(v) && strlen(json_string_value(v)) == 19 &&
				          json_string_value(v)[10] == ' ', "%s: voting_time", what);
				v = json_object_get(obj, "vote");
				cr_assert(json_is_integer(v) && json_integer_value(v) == 1, "%s: vote", what);
				/* 12 voter members (address is one), 6 candidate members, voting_time
				 * and vote. */
				cr_assert_eq(json_object_size(obj), 20, "%s: %zu members", what,
				             json_object_size(obj));
				checked++;
			}
			PQclear(vres);
			PQclear(cres);
			json_decref(obj);
		}
	}
	PQfinish(c);
	cr_assert_eq(checked, FULL_SHAPE_CHECKS, "only %d messages checked", checked);
}

/*
 * voters_topic gets what the registry would not take: voter 0 registered again (the same
 * message) and a message that is no voter. tally-sim must skip both, as the registry would.
 */
static void
add_bad_registrations(const world_t *w)
{
	tally_gen_opts_t o;
	tally_gen_t *gen;
	tally_gen_voter_t v;
	rd_kafka_t *rk = kt_client(RD_KAFKA_PRODUCER, NULL);
	const char *topic = w->t.topic[TALLY_KAFKA_VOTERS].name;
	char buf[TALLY_GEN_MSG_MAX], err[256];
	size_t len;

	tally_gen_opts_init(&o);
	o.seed = 11;
	o.voters = N_VOTERS;
	o.candidates = N_CANDIDATES;
	o.parties = N_PARTIES;
	o.regions = 20;
	gen = tally_gen_new(&o, err, sizeof(err));
	cr_assert_not_null(gen, "%s", err);
	tally_gen_voter(gen, 0, &v);
	len = tally_gen_voter_json(gen, 0, buf, sizeof(buf));
	cr_assert_eq(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic),
	                               RD_KAFKA_V_KEY(v.voter_id, strlen(v.voter_id)),
	                               RD_KAFKA_V_VALUE(buf, len),
	                               RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
	             RD_KAFKA_RESP_ERR_NO_ERROR);
	cr_assert_eq(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY("x", 1),
	                               RD_KAFKA_V_VALUE("{\"voter_id\": 12}", 15),
	                               RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
	             RD_KAFKA_RESP_ERR_NO_ERROR);
	cr_assert_eq(rd_kafka_flush(rk, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
	cr_assert_eq(kt_messages(rk, topic), N_VOTERS + 2);
	rd_kafka_destroy(rk);
	tally_gen_destroy(gen);
}

/* ---- tests ------------------------------------------------------------------------- */

static void
suite_fini(void)
{
	if (current_world != NULL)
		world_fini(current_world);
	pgtest_schema_drop();
}

TestSuite(tally_sim, .init = pgtest_schema_create, .fini = suite_fini, .timeout = 900);

Test(tally_sim, postgres_source_truth_equals_core)
{
	world_t *w = &the_world;
	topic_copy_t tc;
	char out[8192], want[512];
	json_t *truth;

	world_init(w, "pg");
	make_registry(w);
	{
		const char *args[] = {"--topic-prefix", w->prefix, w->pgopt, "--seed", "5", "--truth",
		                      w->truth, FAULTS, "--quiet", NULL};

		cr_assert_eq(run_prog("tally-sim", args, out, sizeof(out)), 0, "%s", out);
	}
	snprintf(want, sizeof(want), " votes to \"%s\" in ", w->t.topic[TALLY_KAFKA_VOTES].name);
	cr_assert_not_null(strstr(out, want), "%s", out);
	read_votes(w, &tc);
	/* Every partition has votes: the key spreads them. */
	for (int p = 0; p < N_PARTITIONS; p++)
		cr_assert_gt(tc.n[p], 0, "partition %d is empty", p);
	truth = check_core_equals_truth(w, &tc, true, N_VOTERS, N_PARTIES);
	/* About 65 % turnout of 20,000, plus about 15 % faults. */
	cr_assert(jint(truth, "messages") > 13000 && jint(truth, "messages") < 17000, "%llu",
	          (unsigned long long)jint(truth, "messages"));
	check_full_shape(&tc);
	/* Without --rekey-rate every key is the voter_id, and half the repeat votes change
	 * their mind (so the check that they do not, with --rekey-rate, can fail). */
	{
		repeats_t rp;

		count_repeats(&tc, &rp);
		cr_assert_eq(rp.rekeyed, 0, "%ld messages keyed by another key", rp.rekeyed);
		cr_assert_eq(rp.repeats, (long)jint(json_object_get(truth, "rejected"), "duplicate"));
		cr_assert_gt(rp.changed, 0, "no repeat vote changed its mind (of %ld voters)",
		             rp.voters_repeating);
		cr_assert_eq(rp.split, 0);
	}
	json_decref(truth);
	topic_copy_free(&tc);
	world_fini(w);
}

/*
 * --rekey-rate 0.2 (no malformed messages, so every message decodes and names its
 * voter_id): the messages keyed by another key than their voter_id are as many as
 * tally-sim reports, about 20 % of all; every partition still gets votes; no repeat vote
 * changes its mind, and some travel under another key than the vote before them; the truth
 * still equals a real core's count (which reads partition after partition, so it often
 * meets a rekeyed duplicate before the vote it repeats).
 */
Test(tally_sim, rekey_rate_keys_a_share_and_duplicates_keep_their_candidate)
{
	world_t *w = &the_world;
	topic_copy_t tc;
	char out[8192];
	json_t *truth;
	repeats_t rp;
	const char *line;
	unsigned long long said, of;
	double share;

	world_init(w, "rekey");
	make_registry(w);
	{
		const char *args[] = {"--topic-prefix", w->prefix, w->pgopt, "--seed", "6", "--truth",
		                      w->truth, "--dup-rate", "0.1", "--invalid-rate", "0",
		                      "--unknown-rate", "0.02", "--unknown-candidate-rate", "0.02",
		                      "--late-rate", "0.02", "--early-rate", "0.02", "--rekey-rate",
		                      "0.2", "--quiet", NULL};

		cr_assert_eq(run_prog("tally-sim", args, out, sizeof(out)), 0, "%s", out);
	}
	for (line = strstr(out, "tally-sim: "); line != NULL; line = strstr(line + 1, "tally-sim: "))
		if (sscanf(line, "tally-sim: %llu of the %llu messages keyed by another key than "
		           "their voter_id", &said, &of) == 2)
			break;
	cr_assert_not_null(line, "no rekey line in: %s", out);
	read_votes(w, &tc);
	for (int p = 0; p < N_PARTITIONS; p++)
		cr_assert_gt(tc.n[p], 0, "partition %d is empty", p);
	truth = check_core_equals_truth(w, &tc, false, N_VOTERS, N_PARTIES);
	count_repeats(&tc, &rp);
	cr_assert_eq(of, jint(truth, "messages"));
	cr_assert_eq(rp.decoded, tc.total, "%ld of %ld messages decode", rp.decoded, tc.total);
	cr_assert_eq((unsigned long long)rp.rekeyed, said, "%ld messages keyed by another key, "
	             "tally-sim said %llu", rp.rekeyed, said);
	share = (double)rp.rekeyed / (double)tc.total;
	cr_assert(share > 0.18 && share < 0.22, "rekeyed share %.4f (%ld of %ld)", share,
	          rp.rekeyed, tc.total);
	cr_assert_eq(rp.repeats, (long)jint(json_object_get(truth, "rejected"), "duplicate"));
	cr_assert_gt(rp.voters_repeating, 500, "%ld voters voted again", rp.voters_repeating);
	cr_assert_eq(rp.changed, 0, "%ld of %ld repeat voters changed their candidate",
	             rp.changed, rp.voters_repeating);
	cr_assert_gt(rp.split, 100, "only %ld repeat voters' votes travelled under two keys",
	             rp.split);
	fprintf(stderr, "rekey: %ld of %ld messages rekeyed (%.1f %%); %ld voters voted again, "
	        "%ld of them under two keys\n", rp.rekeyed, tc.total, 100 * share,
	        rp.voters_repeating, rp.split);
	json_decref(truth);
	topic_copy_free(&tc);
	world_fini(w);
}

Test(tally_sim, kafka_source_compact_truth_equals_core)
{
	world_t *w = &the_world;
	topic_copy_t tc;
	char out[8192];
	json_t *truth;

	world_init(w, "kafka");
	make_registry(w);
	add_bad_registrations(w);
	{
		const char *args[] = {"--source", "kafka", "--topic-prefix", w->prefix, w->pgopt,
		                      "--compact", "--seed", "9", "--truth", w->truth, FAULTS,
		                      "--quiet", NULL};

		cr_assert_eq(run_prog("tally-sim", args, out, sizeof(out)), 0, "%s", out);
	}
	cr_assert_not_null(strstr(out, "tally-sim: voters_topic: 1 messages the registry would "
	                               "refuse and 1 repeated registrations were not voters\n"),
	                   "%s", out);
	read_votes(w, &tc);
	truth = check_core_equals_truth(w, &tc, true, N_VOTERS, N_PARTIES);
	/* Compact: a good message has exactly voter_id, candidate_id and voting_time. */
	for (size_t i = 0; i < tc.n[0]; i++) {
		tally_vote_t vote;
		json_t *obj;

		if (tally_decode_vote(NULL, tc.m[0][i].val, tc.m[0][i].vlen, &vote, NULL) != 0)
			continue;
		obj = json_loads(tc.m[0][i].val, 0, NULL);
		cr_assert_not_null(obj);
		cr_assert_eq(json_object_size(obj), 3, "%s", tc.m[0][i].val);
		json_decref(obj);
	}
	json_decref(truth);
	topic_copy_free(&tc);
	world_fini(w);
}

/*
 * tally-sim from source at --rate 400, interrupted after 2.5 s: exit 130, fewer messages than
 * a whole run and never faster than the rate, and a truth that equals the core's count of
 * exactly what was produced, with the whole registry counted (Kafka reads the rest of
 * voters_topic after the interrupt to count it).
 */
static void
interrupted_run(const char *tag, const char *source)
{
	world_t *w = &the_world;
	topic_copy_t tc;
	char log[256], logtext[8192] = "";
	double t0, elapsed;
	json_t *truth;
	int pid, status;
	uint64_t n;
	FILE *f;

	world_init(w, tag);
	make_registry(w);
	snprintf(log, sizeof(log), "/tmp/tally_test_sim_%d_%s.log", (int)getpid(), tag);
	unlink(log);
	{
		const char *args[] = {"--source", source, "--topic-prefix", w->prefix, w->pgopt,
		                      "--rate", "400", "--truth", w->truth, FAULTS, "--quiet", NULL};

		t0 = test_now_s();
		pid = test_spawn("tally-sim", args, log);
		cr_assert_gt(pid, 0);
	}
	usleep(2500 * 1000);
	cr_assert_eq(kill(pid, SIGINT), 0);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	elapsed = test_now_s() - t0;
	if ((f = fopen(log, "r")) != NULL) {
		logtext[fread(logtext, 1, sizeof(logtext) - 1, f)] = '\0';
		fclose(f);
	}
	cr_assert(WIFEXITED(status), "tally-sim did not exit (status %d)", status);
	cr_assert_eq(WEXITSTATUS(status), 130, "exit %d: %s", WEXITSTATUS(status), logtext);
	cr_assert_not_null(strstr(logtext, "tally-sim: interrupted: stopped producing after "),
	                   "%s", logtext);
	read_votes(w, &tc);
	truth = check_core_equals_truth(w, &tc, false, N_VOTERS, N_PARTIES);
	n = jint(truth, "messages");
	cr_assert(n > 100 && n <= (uint64_t)(400 * elapsed) + 1, "%llu messages in %.1f s",
	          (unsigned long long)n, elapsed);
	json_decref(truth);
	topic_copy_free(&tc);
	world_fini(w);
	unlink(log);
}

Test(tally_sim, sigint_stops_and_truth_matches_what_was_produced)
{
	interrupted_run("int", "postgres");
}

Test(tally_sim, sigint_with_kafka_source_still_counts_the_whole_registry)
{
	interrupted_run("intk", "kafka");
}

Test(tally_sim, bad_options_exit_2)
{
	static const struct {
		const char *args[8];
		const char *want;
	} cases[] = {
		{{"--rate", "-1", NULL}, "tally-sim: --rate: -1 is out of range (0 to 1000000000)\n"},
		{{"--source", "mysql", NULL}, "tally-sim: --source: \"mysql\" is not postgres or kafka\n"},
		{{"--dup-rate", "0.5", "--invalid-rate", "0.5", NULL},
		 "tally-sim: fault rates add up to 1.011; they must add up to less than 0.9\n"},
		{{"--opens-at", "2026-05-07 07:00:00", NULL},
		 "tally-sim: --opens-at and --closes-at go together: give both or neither\n"},
		{{"--opens-at", "2026-05-07 07:00:00", "--closes-at", "2026-05-07 06:00:00", NULL},
		 "tally-sim: --closes-at must be after --opens-at\n"},
		{{"--turnout", "1.5", NULL}, "tally-sim: --turnout: 1.5 is out of range (0 to 1)\n"},
		{{"--votes", "10", NULL}, "tally-sim: unknown option \"--votes\" (see --help)\n"},
		{{"--pg.nosuchkeyword=1", NULL},
		 "tally-sim: command line: pg.nosuchkeyword: \"nosuchkeyword\" is not a libpq "
		 "connection keyword tally accepts\n"},
	};
	char out[4096];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cr_assert_eq(run_prog("tally-sim", cases[i].args, out, sizeof(out)), 2, "case %zu: %s",
		             i, out);
		cr_assert_str_eq(out, cases[i].want, "case %zu", i);
	}
	{
		const char *a[] = {"--help", "--rate", "-1", NULL};

		cr_assert_eq(run_prog("tally-sim", a, out, sizeof(out)), 0);
		cr_assert_not_null(strstr(out, "--dup-rate"), "%s", out);
	}
}

Test(tally_sim, unknown_election_and_empty_registry_exit_1)
{
	char out[4096], pgopt[160], truth[128];
	PGconn *c = pgtest_connect_migrated();

	PQfinish(c);
	snprintf(pgopt, sizeof(pgopt), "--pg.options=%s", pgtest_options());
	snprintf(truth, sizeof(truth), "/tmp/tally_test_sim_%d_none.json", (int)getpid());
	{
		const char *a[] = {pgopt, "--election-id", "nosuch", "--truth", truth, "--quiet", NULL};

		cr_assert_eq(run_prog("tally-sim", a, out, sizeof(out)), 1, "%s", out);
		cr_assert_str_eq(out, "tally-sim: election \"nosuch\" is not in PostgreSQL (table "
		                      "\"elections\"): load the registry with tally-gen, or give "
		                      "--opens-at and --closes-at\n");
	}
	{
		const char *a[] = {pgopt, "--opens-at", "2026-05-07 07:00:00", "--closes-at",
		                   "2026-05-07 22:00:00", "--truth", truth, "--quiet", NULL};

		cr_assert_eq(run_prog("tally-sim", a, out, sizeof(out)), 1, "%s", out);
		cr_assert_str_eq(out, "tally-sim: the registry (table \"candidates\") has no "
		                      "candidates: load it with tally-gen first\n");
	}
	cr_assert_neq(access(truth, F_OK), 0, "a failed run wrote a truth file");
}

Test(tally_sim, null_columns_are_null_and_votes_topic_is_created)
{
	world_t *w = &the_world;
	topic_copy_t tc;
	char out[8192];
	json_t *truth;
	PGconn *c = pgtest_connect_migrated();
	rd_kafka_t *rk;
	long seen = 0;

	/* A registry of the columns tally requires only: every other one NULL. */
	pgtest_exec_ok(c, "INSERT INTO elections (election_id, opens_at, closes_at) VALUES"
	                  " ('general', '2026-05-07 07:00:00Z', '2026-05-07 22:00:00Z')");
	pgtest_exec_ok(c, "INSERT INTO parties (party_affiliation) VALUES ('Only Party')");
	pgtest_exec_ok(c, "INSERT INTO candidates (candidate_id, candidate_name, party_affiliation)"
	                  " VALUES ('11111111-2222-4333-8444-555555555555', 'Ann Example',"
	                  " 'Only Party')");
	pgtest_exec_ok(c, "INSERT INTO voters (voter_id, date_of_birth, address_state) VALUES"
	                  " ('aaaaaaaa-0000-4000-8000-000000000001', '1980-01-02', 'Kent'),"
	                  " ('aaaaaaaa-0000-4000-8000-000000000002', '1990-03-04', 'Kent'),"
	                  " ('aaaaaaaa-0000-4000-8000-000000000003', '2010-05-06', 'Devon'),"
	                  /* 18 on election day (2026-05-07): eligible; 18 the day after: not. */
	                  " ('aaaaaaaa-0000-4000-8000-000000000004', '2008-05-07', 'Devon'),"
	                  " ('aaaaaaaa-0000-4000-8000-000000000005', '2008-05-08', 'Devon')");
	/* Text COPY and JSON both escape: tabs, newlines, backslashes, quotes, non-ASCII. */
	pgtest_exec_ok(c, "INSERT INTO voters (voter_id, voter_name, date_of_birth, address_state,"
	                  " address_street) VALUES ('aaaaaaaa-0000-4000-8000-000000000006',"
	                  " E'Zo\u00eb \"Q\" O''Brien\\t\\\\x\\n\\r', '1970-01-01',"
	                  " 'Kent', E'1 Caf\u00e9 Row\\u0001')");
	PQfinish(c);
	world_init(w, "null");
	{
		const char *args[] = {"--topic-prefix", w->prefix, w->pgopt, "--turnout", "1",
		                      "--dup-rate", "0", "--invalid-rate", "0", "--unknown-rate", "0",
		                      "--unknown-candidate-rate", "0", "--late-rate", "0",
		                      "--early-rate", "0", "--partitions", "4", "--truth", w->truth,
		                      "--quiet", NULL};

		cr_assert_eq(run_prog("tally-sim", args, out, sizeof(out)), 0, "%s", out);
	}
	rk = kt_client(RD_KAFKA_PRODUCER, NULL);
	cr_assert_eq(kt_partitions(rk, w->t.topic[TALLY_KAFKA_VOTES].name), N_PARTITIONS);
	rd_kafka_destroy(rk);
	read_votes(w, &tc);
	cr_assert_eq(tc.total, 6);
	truth = check_core_equals_truth(w, &tc, false, 6, 1);
	/* Four adults accepted; the two under 18 on election day are not. */
	cr_assert_eq(jint(truth, "accepted"), 4);
	cr_assert_eq(jint(json_object_get(truth, "rejected"), "ineligible"), 2);
	for (int p = 0; p < N_PARTITIONS; p++) {
		for (size_t i = 0; i < tc.n[p]; i++) {
			json_t *obj = json_loads(tc.m[p][i].val, 0, NULL);

			cr_assert_not_null(obj, "%s", tc.m[p][i].val);
			if (strcmp(tc.m[p][i].key, "aaaaaaaa-0000-4000-8000-000000000006") == 0) {
				cr_assert_str_eq(json_string_value(json_object_get(obj, "voter_name")),
				                 "Zo\xc3\xab \"Q\" O'Brien\t\\x\n\r");
				cr_assert_str_eq(json_string_value(json_object_get(
				                     json_object_get(obj, "address"), "street")),
				                 "1 Caf\xc3\xa9 Row\x01");
				json_decref(obj);
				seen++;
				continue;
			}
			cr_assert(json_is_null(json_object_get(obj, "voter_name")));
			cr_assert(json_is_null(json_object_get(obj, "email")));
			cr_assert(json_is_null(json_object_get(obj, "registered_age")));
			cr_assert(json_is_null(json_object_get(obj, "biography")));
			cr_assert(json_is_null(json_object_get(json_object_get(obj, "address"), "city")));
			cr_assert(json_is_string(json_object_get(json_object_get(obj, "address"), "state")));
			cr_assert_str_eq(json_string_value(json_object_get(obj, "candidate_name")),
			                 "Ann Example");
			json_decref(obj);
			seen++;
		}
	}
	cr_assert_eq(seen, 6);
	json_decref(truth);

	/* Again into the filled topic: refused, unless --append (the truth is this run's). */
	{
		const char *args[] = {"--topic-prefix", w->prefix, w->pgopt, "--truth", w->truth,
		                      "--quiet", NULL};
		const char *append[] = {"--topic-prefix", w->prefix, w->pgopt, "--truth", w->truth,
		                        "--turnout", "1", "--append", "--quiet", NULL};
		char want[512];

		cr_assert_eq(run_prog("tally-sim", args, out, sizeof(out)), 1, "%s", out);
		snprintf(want, sizeof(want),
		         "tally-sim: topic \"%s\" already holds 6 messages, which the ground truth "
		         "would not describe: use another --topic-prefix, delete the topic, or "
		         "--append to add to it anyway\n",
		         w->t.topic[TALLY_KAFKA_VOTES].name);
		cr_assert_str_eq(out, want);
		cr_assert_eq(run_prog("tally-sim", append, out, sizeof(out)), 0, "%s", out);
		truth = load_truth(w->truth);
		rk = kt_client(RD_KAFKA_PRODUCER, NULL);
		cr_assert_eq(kt_messages(rk, w->t.topic[TALLY_KAFKA_VOTES].name),
		             6 + (int64_t)jint(truth, "messages"));
		rd_kafka_destroy(rk);
		json_decref(truth);
	}
	topic_copy_free(&tc);
	world_fini(w);
}

Test(tally_sim, config_file_bad_line_exit_2)
{
	char path[128], want[256], out[4096];
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/tally_test_sim_%d.conf", (int)getpid());
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f, "# tally-sim\nturnout = 0.5\nrates = 10\n");
	fclose(f);
	{
		const char *a[] = {"--config", path, NULL};

		cr_assert_eq(run_prog("tally-sim", a, out, sizeof(out)), 2, "%s", out);
		snprintf(want, sizeof(want), "tally-sim: %s:3: unknown key \"rates\"\n", path);
		cr_assert_str_eq(out, want);
	}
	unlink(path);
}
