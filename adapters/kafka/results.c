/*
 * The results publisher (include/tally/results.h): remembers what it last produced for
 * each candidate, region and party and produces only what changed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

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
	free(r);
}
