/*
 * The results publisher (include/tally/results.h): remembers what it last produced for
 * each candidate, region and party and produces only what changed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <tally/contest.h>
#include <tally/error.h>
#include <tally/results.h>
#include <tally/time.h>
#include <tally/uuid.h>

/* The last figures produced; UINT64_MAX means never. Grown as the registry grows. */
typedef struct last {
	uint64_t *v;
	uint32_t n;
} last_t;

struct tally_results {
	tally_kafka_producer_t *producer;
	const tally_kafka_topics_t *topics;
	last_t candidates, regions, region_registered, parties;
	/* Contests: each one's last (votes, leader + 2, status) and each (level, party)'s
	 * last (won, led, votes, declared): a message when any changed. */
	tally_contests_t res;
	last_t contest_votes, contest_leader, contest_status;
	last_t seat_won, seat_led, seat_votes, seat_declared;
};

tally_results_t *
tally_results_new(tally_kafka_producer_t *p, const tally_kafka_topics_t *topics)
{
	tally_results_t *r = calloc(1, sizeof(*r));

	if (r != NULL) {
		r->producer = p;
		r->topics = topics;
	}
	return r;
}

static int
last_fit(last_t *l, uint32_t n)
{
	uint64_t *v;

	if (n <= l->n)
		return 0;
	if ((v = realloc(l->v, n * sizeof(*v))) == NULL)
		return TALLY_ENOMEM;
	for (uint32_t i = l->n; i < n; i++)
		v[i] = UINT64_MAX;
	l->v = v;
	l->n = n;
	return 0;
}

/* Produce obj (taken over) keyed by key to one of the results topics. */
static int
produce(tally_results_t *r, tally_kafka_topic_id_t topic, const char *key, json_t *obj,
        const tally_snapshot_t *snap, size_t *produced)
{
	char ts[40], iso[24];
	int64_t us = snap->taken_at_us;
	char *text;
	int rc;

	tally_time_format_iso(us / 1000000, iso);
	/* "YYYY-MM-DDTHH:MM:SSZ" → "YYYY-MM-DDTHH:MM:SS.mmmZ" */
	snprintf(ts, sizeof(ts), "%.19s.%03dZ", iso, (int)((us / 1000) % 1000));
	json_object_set_new(obj, "version", json_integer((json_int_t)snap->version));
	json_object_set_new(obj, "election_id", json_string(snap->election.id));
	json_object_set_new(obj, "timestamp", json_string(ts));
	text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(obj);
	if (text == NULL)
		return TALLY_ENOMEM;
	rc = tally_kafka_produce(r->producer, r->topics->topic[topic].name, key, strlen(key), text,
	                         strlen(text));
	free(text);
	if (rc == 0)
		(*produced)++;
	return rc;
}

/* Each contest whose votes, leader or status changed, then each (level, party) whose seats,
 * votes or declared contests changed. */
static int
publish_contests(tally_results_t *r, const tally_registry_t *reg, const tally_snapshot_t *snap,
                 bool all, size_t *n)
{
	tally_contests_t *res = &r->res;
	uint32_t nlp;
	int rc;

	if ((rc = tally_contests_compute(reg, snap, snap->election.status >= TALLY_ELECTION_CLOSED,
	                                 res)) != 0)
		return rc;
	nlp = res->nlevels * res->nparties;
	if ((rc = last_fit(&r->contest_votes, res->ncontests)) != 0 ||
	    (rc = last_fit(&r->contest_leader, res->ncontests)) != 0 ||
	    (rc = last_fit(&r->contest_status, res->ncontests)) != 0 ||
	    (rc = last_fit(&r->seat_won, nlp)) != 0 || (rc = last_fit(&r->seat_led, nlp)) != 0 ||
	    (rc = last_fit(&r->seat_votes, nlp)) != 0 ||
	    (rc = last_fit(&r->seat_declared, nlp)) != 0)
		return rc;
	for (uint32_t k = 0; k < res->ncontests; k++) {
		const tally_contest_result_t *c = &res->contests[k];
		tally_contest_info_t info;
		tally_candidate_info_t lead;
		json_t *o, *cands;
		char id[TALLY_UUID_STRLEN + 1];

		if (c->ncandidates == 0 || !tally_registry_contest_get(reg, k, &info))
			continue;
		if (!all && r->contest_votes.v[k] == c->votes &&
		    r->contest_leader.v[k] == (uint64_t)(c->leader + 2) &&
		    r->contest_status.v[k] == (uint64_t)c->status)
			continue;
		o = json_object();
		json_object_set_new(o, "contest_id", json_string(info.id));
		json_object_set_new(o, "contest_name", json_string(info.name));
		json_object_set_new(o, "level", json_string(tally_registry_level_name(reg, info.level)));
		json_object_set_new(o, "total_votes", json_integer((json_int_t)c->votes));
		json_object_set_new(o, "registered", json_integer((json_int_t)c->registered));
		json_object_set_new(o, "turnout", json_real(c->registered > 0 ? (double)c->votes /
		                                                                 (double)c->registered
		                                                           : 0.0));
		json_object_set_new(o, "status", json_string(tally_contest_status_name(c->status)));
		if (c->leader >= 0 && tally_registry_candidate_get(reg, (uint32_t)c->leader, &lead)) {
			tally_uuid_format(&lead.id, id);
			json_object_set_new(o, "leader", json_string(id));
			json_object_set_new(o, "leader_name", json_string(lead.name));
			json_object_set_new(o, "party_affiliation",
			                    json_string(tally_registry_party_name(reg, lead.party)));
		} else {
			json_object_set_new(o, "leader", json_null());
			json_object_set_new(o, "leader_name", json_null());
			json_object_set_new(o, "party_affiliation", json_null());
		}
		json_object_set_new(o, "majority", json_integer((json_int_t)c->majority));
		json_object_set_new(o, "tie", json_boolean(c->tie));
		cands = json_array();
		for (uint32_t i = 0; i < c->ncandidates; i++) {
			uint32_t ci = res->cands[c->first + i];
			tally_candidate_info_t ca;

			if (!tally_registry_candidate_get(reg, ci, &ca))
				continue;
			tally_uuid_format(&ca.id, id);
			json_array_append_new(cands,
			    json_pack("{s:s, s:s, s:I}", "candidate_id", id, "party_affiliation",
			              tally_registry_party_name(reg, ca.party), "total_votes",
			              (json_int_t)snap->candidates[ci]));
		}
		json_object_set_new(o, "candidates", cands);
		if ((rc = produce(r, TALLY_KAFKA_RESULTS_CONTEST, info.id, o, snap, n)) != 0)
			return rc;
		r->contest_votes.v[k] = c->votes;
		r->contest_leader.v[k] = (uint64_t)(c->leader + 2);
		r->contest_status.v[k] = (uint64_t)c->status;
	}
	for (uint32_t l = 0; l < res->nlevels; l++) {
		if (res->level_contests[l] == 0)
			continue;
		for (uint32_t p = 0; p < res->nparties; p++) {
			size_t i = (size_t)l * res->nparties + p;
			const char *level = tally_registry_level_name(reg, l);
			const char *party = tally_registry_party_name(reg, p);
			char key[TALLY_NAME_MAX * 2 + 2];
			json_t *o;

			if (!all && r->seat_won.v[i] == res->seats_won[i] &&
			    r->seat_led.v[i] == res->seats_led[i] &&
			    r->seat_votes.v[i] == res->party_votes[i] &&
			    r->seat_declared.v[i] == res->level_declared[l])
				continue;
			snprintf(key, sizeof(key), "%s/%s", level, party);
			o = json_object();
			json_object_set_new(o, "level", json_string(level));
			json_object_set_new(o, "party_affiliation", json_string(party));
			json_object_set_new(o, "seats_won", json_integer(res->seats_won[i]));
			json_object_set_new(o, "seats_led", json_integer(res->seats_led[i]));
			json_object_set_new(o, "total_votes", json_integer((json_int_t)res->party_votes[i]));
			json_object_set_new(o, "contests", json_integer(res->level_contests[l]));
			json_object_set_new(o, "declared", json_integer(res->level_declared[l]));
			json_object_set_new(o, "report", json_string(tally_report_status_name(res->report)));
			if ((rc = produce(r, TALLY_KAFKA_RESULTS_SEATS, key, o, snap, n)) != 0)
				return rc;
			r->seat_won.v[i] = res->seats_won[i];
			r->seat_led.v[i] = res->seats_led[i];
			r->seat_votes.v[i] = res->party_votes[i];
			r->seat_declared.v[i] = res->level_declared[l];
		}
	}
	return 0;
}

int
tally_results_publish(tally_results_t *r, const tally_registry_t *reg,
                      const tally_snapshot_t *snap, bool all, size_t *produced)
{
	size_t n = 0;
	int rc;

	if ((rc = last_fit(&r->candidates, snap->ncandidates)) != 0 ||
	    (rc = last_fit(&r->regions, snap->nregions)) != 0 ||
	    (rc = last_fit(&r->region_registered, snap->nregions)) != 0 ||
	    (rc = last_fit(&r->parties, snap->nparties)) != 0)
		goto out;
	for (uint32_t i = 0; i < snap->ncandidates; i++) {
		tally_candidate_info_t c;
		char id[TALLY_UUID_STRLEN + 1];
		json_t *o;

		if (!all && r->candidates.v[i] == snap->candidates[i])
			continue;
		if (!tally_registry_candidate_get(reg, i, &c))
			continue;
		tally_uuid_format(&c.id, id);
		o = json_object();
		json_object_set_new(o, "candidate_id", json_string(id));
		json_object_set_new(o, "candidate_name", json_string(c.name));
		json_object_set_new(o, "party_affiliation",
		                    json_string(tally_registry_party_name(reg, c.party)));
		json_object_set_new(o, "photo_url", json_string(c.photo_url));
		json_object_set_new(o, "total_votes", json_integer((json_int_t)snap->candidates[i]));
		if ((rc = produce(r, TALLY_KAFKA_RESULTS_CANDIDATE, id, o, snap, &n)) != 0)
			goto out;
		r->candidates.v[i] = snap->candidates[i];
	}
	for (uint32_t i = 0; i < snap->nregions; i++) {
		const char *name = tally_registry_region_name(reg, i);
		uint64_t count = snap->regions[i], registered = snap->region_registered[i];
		json_t *o;

		if (name == NULL || (!all && r->regions.v[i] == count &&
		                     r->region_registered.v[i] == registered))
			continue;
		o = json_object();
		json_object_set_new(o, "state", json_string(name));
		json_object_set_new(o, "count", json_integer((json_int_t)count));
		json_object_set_new(o, "registered", json_integer((json_int_t)registered));
		json_object_set_new(o, "turnout",
		                    json_real(registered > 0 ? (double)count / (double)registered : 0.0));
		if ((rc = produce(r, TALLY_KAFKA_RESULTS_LOCATION, name, o, snap, &n)) != 0)
			goto out;
		r->regions.v[i] = count;
		r->region_registered.v[i] = registered;
	}
	for (uint32_t i = 0; i < snap->nparties; i++) {
		const char *name = tally_registry_party_name(reg, i);
		json_t *o;

		if (name == NULL || (!all && r->parties.v[i] == snap->parties[i]))
			continue;
		o = json_object();
		json_object_set_new(o, "party_affiliation", json_string(name));
		json_object_set_new(o, "total_votes", json_integer((json_int_t)snap->parties[i]));
		if ((rc = produce(r, TALLY_KAFKA_RESULTS_PARTY, name, o, snap, &n)) != 0)
			goto out;
		r->parties.v[i] = snap->parties[i];
	}
	if (rc == 0 && snap->ncontests > 1)
		rc = publish_contests(r, reg, snap, all, &n);
out:
	if (produced != NULL)
		*produced = n;
	return rc;
}

void
tally_results_destroy(tally_results_t *r)
{
	if (r == NULL)
		return;
	free(r->candidates.v);
	free(r->regions.v);
	free(r->region_registered.v);
	free(r->parties.v);
	free(r->contest_votes.v);
	free(r->contest_leader.v);
	free(r->contest_status.v);
	free(r->seat_won.v);
	free(r->seat_led.v);
	free(r->seat_votes.v);
	free(r->seat_declared.v);
	tally_contests_free(&r->res);
	free(r);
}
