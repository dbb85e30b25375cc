/*
 * tally-sim's registry sources: PostgreSQL (one read-only snapshot: the small tables, the
 * region counts and a COPY stream of the voters) and Kafka (candidates_topic read whole,
 * voters_topic streamed to the end it had at the start). Every SQL statement is fixed or
 * parameterised. Errors never quote a voter's data.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include <tally/error.h>
#include <tally/kafka.h>
#include <tally/pg.h>
#include <tally/pg_checkpoint.h>
#include <tally/pg_registry.h>
#include <tally/registry.h>
#include <tally/regmsg.h>
#include <tally/time.h>

#include "simreg.h"

#define KAFKA_TIMEOUT_MS 30000
#define KAFKA_IDLE_S 60.0       /* no message for this long while some are due: give up */

struct simreg_source {
	/* PostgreSQL */
	PGconn *pg;
	tally_pg_voter_reader_t *reader;

	/* Kafka */
	rd_kafka_t *rk;
	char *voters_topic;
	int nparts;
	int64_t *hi;                /* [nparts] end offsets when opened */
	int left;                   /* partitions not read to their end */
	rd_kafka_message_t *msg;    /* the current voter's message */
	json_t *json;               /* the current voter's value */
	tally_uuid_t *seen;         /* ids seen, open addressing (nil = empty) */
	uint64_t seen_mask, seen_n;

	uint64_t read;
	bool kafka;                 /* which of the two the source is */
	bool ended;
};

static char *
dup_or_null(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

static double
mono_s(void)
{
	return (double)tally_mono_ns() / 1e9;
}

/* ---- names ------------------------------------------------------------------------- */

static uint64_t
name_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h ^ (h >> 29);
}

int32_t
simreg_region_find(const simreg_t *reg, const char *name)
{
	uint64_t i;

	if (reg->region_index == NULL)
		return -1;
	for (i = name_hash(name) & reg->region_index_mask; reg->region_index[i] != 0;
	     i = (i + 1) & reg->region_index_mask) {
		uint32_t r = reg->region_index[i] - 1;

		if (strcmp(reg->regions[r].name, name) == 0)
			return (int32_t)r;
	}
	return -1;
}

/* The index of a region, added if new; -1 when out of memory. */
static int32_t
region_add(simreg_t *reg, const char *name)
{
	int32_t found = simreg_region_find(reg, name);
	uint64_t i;

	if (found >= 0)
		return found;
	if (reg->nregions == reg->cap_regions) {
		uint32_t ncap = reg->cap_regions ? reg->cap_regions * 2 : 64;
		simreg_region_t *nr = realloc(reg->regions, ncap * sizeof(*nr));
		uint32_t *ni = calloc((size_t)ncap * 2, sizeof(*ni));

		if (nr == NULL || ni == NULL) {
			free(ni);
			if (nr != NULL)
				reg->regions = nr;
			return -1;
		}
		reg->regions = nr;
		reg->cap_regions = ncap;
		free(reg->region_index);
		reg->region_index = ni;
		reg->region_index_mask = ncap * 2 - 1;
		for (uint32_t r = 0; r < reg->nregions; r++) {
			for (i = name_hash(reg->regions[r].name) & reg->region_index_mask;
			     ni[i] != 0; i = (i + 1) & reg->region_index_mask)
				;
			ni[i] = r + 1;
		}
	}
	memset(&reg->regions[reg->nregions], 0, sizeof(reg->regions[0]));
	reg->regions[reg->nregions].contest = -1;
	if ((reg->regions[reg->nregions].name = strdup(name)) == NULL)
		return -1;
	for (i = name_hash(name) & reg->region_index_mask; reg->region_index[i] != 0;
	     i = (i + 1) & reg->region_index_mask)
		;
	reg->region_index[i] = reg->nregions + 1;
	return (int32_t)reg->nregions++;
}

static int32_t
party_add(simreg_t *reg, const char *name)
{
	char **np;

	for (uint32_t p = 0; p < reg->nparties; p++)
		if (strcmp(reg->parties[p], name) == 0)
			return (int32_t)p;
	if ((np = realloc(reg->parties, (reg->nparties + 1) * sizeof(*np))) == NULL)
		return -1;
	reg->parties = np;
	if ((np[reg->nparties] = strdup(name)) == NULL)
		return -1;
	return (int32_t)reg->nparties++;
}

/* A contest's index by id, or -1. */
static int32_t
contest_find(const simreg_t *reg, const char *id)
{
	for (uint32_t k = 0; k < reg->ncontests; k++)
		if (strcmp(reg->contests[k], id) == 0)
			return (int32_t)k;
	return -1;
}

/* Add a contest (ids are unique in the table); -1 when out of memory. */
static int32_t
contest_add(simreg_t *reg, const char *id, const char *name)
{
	char **ni = realloc(reg->contests, (reg->ncontests + 1) * sizeof(char *)), **nn;

	if (ni == NULL)
		return -1;
	reg->contests = ni;
	if ((nn = realloc(reg->contest_names, (reg->ncontests + 1) * sizeof(char *))) == NULL)
		return -1;
	reg->contest_names = nn;
	ni[reg->ncontests] = strdup(id);
	nn[reg->ncontests] = strdup(name);
	if (ni[reg->ncontests] == NULL || nn[reg->ncontests] == NULL) {
		free(ni[reg->ncontests]);
		free(nn[reg->ncontests]);
		return -1;
	}
	return (int32_t)reg->ncontests++;
}

/* Add a candidate row; 1 when added, 0 when its id is already there, -1 out of memory. */
static int
candidate_add(simreg_t *reg, const tally_uuid_t *id, const char *name, const char *party,
              const char *biography, const char *platform, const char *photo_url,
              int32_t contest)
{
	simreg_candidate_t *nc, *c;
	int32_t p;

	for (uint32_t i = 0; i < reg->ncands; i++)
		if (tally_uuid_equal(&reg->cands[i].id, id))
			return 0;
	if ((p = party_add(reg, party)) < 0)
		return -1;
	if ((nc = realloc(reg->cands, (reg->ncands + 1) * sizeof(*nc))) == NULL)
		return -1;
	reg->cands = nc;
	c = &nc[reg->ncands];
	memset(c, 0, sizeof(*c));
	c->id = *id;
	c->party = (uint32_t)p;
	c->contest = contest;
	c->row.contest = contest;
	c->row.contest_id = contest >= 0 ? reg->contests[contest] : NULL;
	c->row.id = *id;
	c->row.party = (uint32_t)p;
	c->row.candidate_id = malloc(TALLY_UUID_STRLEN + 1);
	if (c->row.candidate_id != NULL)
		tally_uuid_format(id, (char *)c->row.candidate_id);
	c->row.candidate_name = dup_or_null(name);
	c->row.party_affiliation = reg->parties[p];
	c->row.biography = dup_or_null(biography);
	c->row.campaign_platform = dup_or_null(platform);
	c->row.photo_url = dup_or_null(photo_url);
	reg->ncands++;
	if (c->row.candidate_id == NULL || c->row.candidate_name == NULL ||
	    (biography != NULL && c->row.biography == NULL) ||
	    (platform != NULL && c->row.campaign_platform == NULL) ||
	    (photo_url != NULL && c->row.photo_url == NULL))
		return -1;
	return 1;
}

/* ---- PostgreSQL -------------------------------------------------------------------- */

static int
pg_fail(PGconn *pg, PGresult *res, const char *what, char *errstr, size_t errstr_size)
{
	const char *m = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	int rc = tally_pg_err(pg, res);

	snprintf(errstr, errstr_size, "could not %s: %s", what,
	         m != NULL ? m : PQerrorMessage(pg));
	errstr[strcspn(errstr, "\n")] = '\0';
	PQclear(res);
	return rc != 0 ? rc : TALLY_EIO;
}

/* A fixed or parameterised query that must return rows. */
static PGresult *
pg_query(PGconn *pg, const char *sql, int nparams, const char *const *params, const char *what,
         int *rc, char *errstr, size_t errstr_size)
{
	PGresult *res = PQexecParams(pg, sql, nparams, NULL, params, NULL, NULL, 0);

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		*rc = pg_fail(pg, res, what, errstr, errstr_size);
		return NULL;
	}
	*rc = 0;
	return res;
}

int
simreg_election_pg(PGconn *pg, const char *election_id, int64_t *opens_at, int64_t *closes_at,
                   char *errstr, size_t errstr_size)
{
	tally_election_t e;
	int rc = tally_pg_election_get(pg, election_id, &e, errstr, errstr_size);

	if (rc == TALLY_ENOENT)
		snprintf(errstr, errstr_size,
		         "election \"%s\" is not in PostgreSQL (table \"elections\"): load the "
		         "registry with tally-gen, or give --opens-at and --closes-at",
		         election_id);
	if (rc != 0)
		return rc;
	*opens_at = e.opens_at;
	*closes_at = e.closes_at;
	return 0;
}

static const char *
value_or_null(PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

int
simreg_open_pg(simreg_t *reg, PGconn *pg, char *errstr, size_t errstr_size)
{
	PGresult *res;
	int rc;

	if ((reg->src = calloc(1, sizeof(*reg->src))) == NULL)
		goto nomem;
	reg->src->pg = pg;
	if (PQsetClientEncoding(pg, "UTF8") != 0)
		return pg_fail(pg, NULL, "set client_encoding to \"UTF8\"", errstr, errstr_size);
	res = PQexec(pg, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		return pg_fail(pg, res, "begin reading the registry", errstr, errstr_size);
	PQclear(res);

	/* The orders tally_pg_registry_load() registers them in. */
	if ((res = pg_query(pg,
	                    "SELECT party_affiliation FROM parties"
	                    " ORDER BY registered_at, party_affiliation",
	                    0, NULL, "read table \"parties\"", &rc, errstr, errstr_size)) == NULL)
		return rc;
	for (int i = 0; i < PQntuples(res); i++) {
		if (party_add(reg, PQgetvalue(res, i, 0)) < 0) {
			PQclear(res);
			goto nomem;
		}
	}
	PQclear(res);
	/* Contests (one level of them: the voter votes once, in their region's). */
	if ((res = pg_query(pg,
	                    "SELECT contest_id, contest_name, level FROM contests"
	                    " ORDER BY registered_at, contest_id",
	                    0, NULL, "read table \"contests\"", &rc, errstr, errstr_size)) == NULL)
		return rc;
	for (int i = 0; i < PQntuples(res); i++) {
		if (strcmp(PQgetvalue(res, i, 2), PQgetvalue(res, 0, 2)) != 0) {
			snprintf(errstr, errstr_size, "contests at more than one level (\"%s\" and "
			         "\"%s\") are not simulated", PQgetvalue(res, 0, 2),
			         PQgetvalue(res, i, 2));
			PQclear(res);
			return TALLY_EINVAL;
		}
		if (contest_add(reg, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1)) < 0) {
			PQclear(res);
			goto nomem;
		}
	}
	PQclear(res);
	if ((res = pg_query(pg,
	                    "SELECT candidate_id::text, candidate_name, party_affiliation,"
	                    " biography, campaign_platform, photo_url, contest_id FROM candidates"
	                    " ORDER BY registered_at, candidate_id",
	                    0, NULL, "read table \"candidates\"", &rc, errstr, errstr_size)) == NULL)
		return rc;
	for (int i = 0; i < PQntuples(res); i++) {
		tally_uuid_t id;
		const char *text = PQgetvalue(res, i, 0);

		if (!tally_uuid_parse(text, strlen(text), &id)) {
			PQclear(res);
			snprintf(errstr, errstr_size, "could not read candidates row %d: "
			         "candidate_id is not a uuid", i + 1);
			return TALLY_EFORMAT;
		}
		if (reg->ncontests > 0 && PQgetisnull(res, i, 6)) {
			snprintf(errstr, errstr_size, "candidates row %d stands in the national race "
			         "beside constituencies: a second level is not simulated", i + 1);
			PQclear(res);
			return TALLY_EINVAL;
		}
		if (candidate_add(reg, &id, PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
		                  value_or_null(res, i, 3), value_or_null(res, i, 4),
		                  value_or_null(res, i, 5),
		                  PQgetisnull(res, i, 6) ? -1
		                                         : contest_find(reg, PQgetvalue(res, i, 6))) < 0) {
			PQclear(res);
			goto nomem;
		}
	}
	PQclear(res);
	if ((res = pg_query(pg, "SELECT region, count(*) FROM voters GROUP BY region ORDER BY region",
	                    0, NULL, "count the voters per region", &rc, errstr,
	                    errstr_size)) == NULL)
		return rc;
	for (int i = 0; i < PQntuples(res); i++) {
		int32_t r = region_add(reg, PQgetvalue(res, i, 0));

		if (r < 0) {
			PQclear(res);
			goto nomem;
		}
		reg->regions[r].registered = strtoull(PQgetvalue(res, i, 1), NULL, 10);
		reg->registered += reg->regions[r].registered;
	}
	PQclear(res);
	/* Each region's constituency (a region with no voters is not needed). */
	for (uint32_t r = 0; r < reg->nregions; r++)
		reg->regions[r].contest = -1;
	if (reg->ncontests > 0) {
		if ((res = pg_query(pg, "SELECT contest_id, region FROM contest_regions", 0, NULL,
		                    "read table \"contest_regions\"", &rc, errstr,
		                    errstr_size)) == NULL)
			return rc;
		for (int i = 0; i < PQntuples(res); i++) {
			int32_t r = simreg_region_find(reg, PQgetvalue(res, i, 1));

			if (r >= 0)
				reg->regions[r].contest = contest_find(reg, PQgetvalue(res, i, 0));
		}
		PQclear(res);
	}
	reg->expected_voters = reg->registered;
	if ((reg->src->reader = tally_pg_voter_reader_open(pg, errstr, errstr_size)) == NULL)
		return TALLY_EIO;
	return 0;
nomem:
	snprintf(errstr, errstr_size, "could not read the registry: out of memory");
	return TALLY_ENOMEM;
}

static int
next_pg(simreg_t *reg, simreg_voter_t *v, char *errstr, size_t errstr_size)
{
	struct simreg_source *src = reg->src;
	tally_pg_voter_row_t row;
	int32_t r;
	int rc;

	if ((rc = tally_pg_voter_reader_next(src->reader, &row, &v->dob_days, errstr,
	                                     errstr_size)) != 1)
		return rc;
	if (!tally_uuid_parse(row.voter_id, strlen(row.voter_id), &v->id)) {
		snprintf(errstr, errstr_size, "could not read voters row %" PRIu64 ": voter_id is "
		         "not a uuid", src->read + 1);
		return TALLY_EFORMAT;
	}
	/* The region column is address_state (a generated column), counted when opened. */
	if (row.address_state == NULL || (r = simreg_region_find(reg, row.address_state)) < 0) {
		snprintf(errstr, errstr_size, "could not read voters row %" PRIu64 ": its region "
		         "was not counted (the table changed within the snapshot?)", src->read + 1);
		return TALLY_ESTATE;
	}
	v->region = (uint32_t)r;
	v->f = (tally_gen_voter_fields_t){
		row.voter_id, row.voter_name, row.date_of_birth, row.gender, row.nationality,
		row.registration_number, row.address_street, row.address_city, row.address_state,
		row.address_country, row.address_postcode, row.email, row.phone_number,
		row.cell_number, row.picture,
		row.registered_age == TALLY_PG_NULL_INT ? TALLY_GEN_NULL_INT : row.registered_age,
	};
	return 1;
}

/* ---- Kafka ------------------------------------------------------------------------- */

static int
kafka_fail(rd_kafka_resp_err_t e, const char *what, const char *topic, char *errstr,
           size_t errstr_size)
{
	snprintf(errstr, errstr_size, "could not %s \"%s\": %s", what, topic, rd_kafka_err2str(e));
	return tally_kafka_err(e);
}

int
simreg_topic_ends(rd_kafka_t *rk, const char *topic, int *nparts, int64_t **hi, char *errstr,
                  size_t errstr_size)
{
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
	const struct rd_kafka_metadata *md;
	rd_kafka_resp_err_t e;
	int n;

	if (rkt == NULL)
		return kafka_fail(rd_kafka_last_error(), "read topic", topic, errstr, errstr_size);
	e = rd_kafka_metadata(rk, 0, rkt, &md, KAFKA_TIMEOUT_MS);
	rd_kafka_topic_destroy(rkt);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
		return kafka_fail(e, "read the metadata of topic", topic, errstr, errstr_size);
	e = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
	n = md->topic_cnt == 1 ? md->topics[0].partition_cnt : 0;
	rd_kafka_metadata_destroy(md);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
		return kafka_fail(e, "read topic", topic, errstr, errstr_size);
	if ((*hi = calloc((size_t)n + 1, sizeof(**hi))) == NULL) {
		snprintf(errstr, errstr_size, "could not read topic \"%s\": out of memory", topic);
		return TALLY_ENOMEM;
	}
	for (int p = 0; p < n; p++) {
		double deadline = mono_s() + KAFKA_TIMEOUT_MS / 1000.0;
		int64_t lo;

		/* A new topic's leaders may take a moment to be known to every broker. */
		while ((e = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &(*hi)[p],
		                                             KAFKA_TIMEOUT_MS)) != 0 &&
		       (e == RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION ||
		        e == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE ||
		        e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) &&
		       mono_s() < deadline) {
			struct timespec ts = {0, 100 * 1000 * 1000};

			nanosleep(&ts, NULL);
		}
		if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
			free(*hi);
			*hi = NULL;
			return kafka_fail(e, "read the offsets of topic", topic, errstr, errstr_size);
		}
	}
	*nparts = n;
	return 0;
}

/* Assign every non-empty partition of topic from its beginning; returns how many. */
static int
kafka_assign(rd_kafka_t *rk, const char *topic, int nparts, const int64_t *hi, int *left,
             char *errstr, size_t errstr_size)
{
	rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(nparts);
	rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;

	*left = 0;
	for (int p = 0; p < nparts; p++) {
		if (hi[p] > 0) {
			rd_kafka_topic_partition_list_add(parts, topic, p)->offset =
			    RD_KAFKA_OFFSET_BEGINNING;
			(*left)++;
		}
	}
	e = rd_kafka_assign(rk, parts);
	rd_kafka_topic_partition_list_destroy(parts);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
		return kafka_fail(e, "read topic", topic, errstr, errstr_size);
	return 0;
}

/*
 * The next message of the assigned partitions below their end offsets hi[], or NULL at the
 * end (*rc 0) or on an error (*rc set). The caller destroys the message.
 */
static rd_kafka_message_t *
kafka_next(rd_kafka_t *rk, const char *topic, const int64_t *hi, int *left, int *rc,
           char *errstr, size_t errstr_size)
{
	double idle_since = mono_s();

	*rc = 0;
	while (*left > 0) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);

		if (m == NULL) {
			if (mono_s() - idle_since > KAFKA_IDLE_S) {
				snprintf(errstr, errstr_size, "could not read topic \"%s\": no message "
				         "for %.0f s with %d partitions not read to their end", topic,
				         KAFKA_IDLE_S, *left);
				*rc = TALLY_ETIMEDOUT;
				return NULL;
			}
			continue;
		}
		idle_since = mono_s();
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			rd_kafka_message_destroy(m);
			continue;
		}
		if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
			*rc = kafka_fail(m->err, "read topic", topic, errstr, errstr_size);
			rd_kafka_message_destroy(m);
			return NULL;
		}
		if (m->offset >= hi[m->partition]) {
			rd_kafka_message_destroy(m);
			continue;
		}
		if (m->offset == hi[m->partition] - 1)
			(*left)--;
		return m;
	}
	return NULL;
}

/* A string member of obj, or NULL when absent, null or not a string. */
static const char *
json_str(json_t *obj, const char *key)
{
	json_t *v = obj != NULL ? json_object_get(obj, key) : NULL;

	return json_is_string(v) ? json_string_value(v) : NULL;
}

static int
kafka_candidates(simreg_t *reg, rd_kafka_t *rk, const char *topic, char *errstr,
                 size_t errstr_size)
{
	int64_t *hi = NULL;
	int nparts = 0, left = 0, rc;
	rd_kafka_message_t *m;

	if ((rc = simreg_topic_ends(rk, topic, &nparts, &hi, errstr, errstr_size)) != 0)
		return rc;
	if ((rc = kafka_assign(rk, topic, nparts, hi, &left, errstr, errstr_size)) != 0)
		goto out;
	while ((m = kafka_next(rk, topic, hi, &left, &rc, errstr, errstr_size)) != NULL) {
		tally_regmsg_candidate_t c;
		char why[256];
		json_t *root;

		/* A message the registry would refuse is not a candidate: skipped. */
		if (tally_regmsg_decode_candidate(m->payload, m->len, &c, why, sizeof(why)) == 0 &&
		    (root = json_loadb(m->payload, m->len, 0, NULL)) != NULL) {
			int added = c.contest[0] != '\0' ? -2
			            : candidate_add(reg, &c.reg.id, c.name, c.party,
			                            json_str(root, "biography"),
			                            json_str(root, "campaign_platform"),
			                            json_str(root, "photo_url"), -1);

			json_decref(root);
			if (added == -2) {
				rd_kafka_message_destroy(m);
				snprintf(errstr, errstr_size, "topic \"%s\" has candidates of contests "
				         "(contest_id): a registry of contests is read from postgres "
				         "(--source postgres)", topic);
				rc = TALLY_EINVAL;
				goto out;
			}
			if (added < 0) {
				rd_kafka_message_destroy(m);
				snprintf(errstr, errstr_size, "could not read topic \"%s\": out of memory",
				         topic);
				rc = TALLY_ENOMEM;
				goto out;
			}
		}
		rd_kafka_message_destroy(m);
	}
out:
	rd_kafka_assign(rk, NULL);
	free(hi);
	return rc;
}

/* Add id to the set of ids seen: 1 when new, 0 when it was there already, -1 no memory. */
static int
seen_add(struct simreg_source *src, const tally_uuid_t *id)
{
	uint64_t i;

	if ((src->seen_n + 1) * 4 > (src->seen_mask + 1) * 3) {
		uint64_t ncap = (src->seen_mask + 1) * 2;
		tally_uuid_t *ns = calloc(ncap, sizeof(*ns));

		if (ns == NULL)
			return -1;
		for (uint64_t k = 0; k <= src->seen_mask; k++) {
			if (tally_uuid_is_nil(&src->seen[k]))
				continue;
			for (i = tally_uuid_hash(&src->seen[k]) & (ncap - 1); !tally_uuid_is_nil(&ns[i]);
			     i = (i + 1) & (ncap - 1))
				;
			ns[i] = src->seen[k];
		}
		free(src->seen);
		src->seen = ns;
		src->seen_mask = ncap - 1;
	}
	for (i = tally_uuid_hash(id) & src->seen_mask; !tally_uuid_is_nil(&src->seen[i]);
	     i = (i + 1) & src->seen_mask)
		if (tally_uuid_equal(&src->seen[i], id))
			return 0;
	src->seen[i] = *id;
	src->seen_n++;
	return 1;
}

int
simreg_open_kafka(simreg_t *reg, rd_kafka_conf_t *conf, const char *voters_topic,
                  const char *candidates_topic, char *errstr, size_t errstr_size)
{
	struct simreg_source *src;
	char err[512];
	uint64_t total = 0, cap = 1024;
	int rc;

	if ((src = reg->src = calloc(1, sizeof(*reg->src))) == NULL) {
		rd_kafka_conf_destroy(conf);
		snprintf(errstr, errstr_size, "could not read the registry: out of memory");
		return TALLY_ENOMEM;
	}
	src->kafka = true;
	if ((src->voters_topic = strdup(voters_topic)) == NULL) {
		rd_kafka_conf_destroy(conf);
		snprintf(errstr, errstr_size, "could not read the registry: out of memory");
		return TALLY_ENOMEM;
	}
	if (rd_kafka_conf_set(conf, "group.id", "tally-sim", err, sizeof(err)) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err)) !=
	        RD_KAFKA_CONF_OK ||
	    (src->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err))) == NULL) {
		if (src->rk == NULL)
			rd_kafka_conf_destroy(conf);
		snprintf(errstr, errstr_size, "could not create Kafka consumer: %s", err);
		return TALLY_ECONFIG;
	}
	if ((rc = kafka_candidates(reg, src->rk, candidates_topic, errstr, errstr_size)) != 0)
		return rc;
	if ((rc = simreg_topic_ends(src->rk, voters_topic, &src->nparts, &src->hi, errstr,
	                     errstr_size)) != 0)
		return rc;
	for (int p = 0; p < src->nparts; p++)
		total += (uint64_t)src->hi[p];
	reg->expected_voters = total;
	while (cap * 3 < total * 4 + 4)
		cap *= 2;
	if ((src->seen = calloc(cap, sizeof(*src->seen))) == NULL) {
		snprintf(errstr, errstr_size, "could not hold the ids of %" PRIu64 " voters: out of "
		         "memory", total);
		return TALLY_ENOMEM;
	}
	src->seen_mask = cap - 1;
	return kafka_assign(src->rk, voters_topic, src->nparts, src->hi, &src->left, errstr,
	                    errstr_size);
}

static int
next_kafka(simreg_t *reg, simreg_voter_t *v, char *errstr, size_t errstr_size)
{
	struct simreg_source *src = reg->src;
	rd_kafka_message_t *m;
	int rc;

	for (;;) {
		tally_regmsg_voter_t rv;
		json_t *addr, *age;
		char why[256];
		int32_t r;

		if (src->msg != NULL) {
			rd_kafka_message_destroy(src->msg);
			src->msg = NULL;
		}
		json_decref(src->json);
		src->json = NULL;
		if ((m = kafka_next(src->rk, src->voters_topic, src->hi, &src->left, &rc, errstr,
		                    errstr_size)) == NULL)
			return rc;
		src->msg = m;
		/*
		 * What the registry would refuse is not a voter: a message that does not decode,
		 * a date of birth out of its range, a repeated id (the first registration stays).
		 */
		if (tally_regmsg_decode_voter(m->payload, m->len, &rv, why, sizeof(why)) != 0 ||
		    rv.reg.date_of_birth < tally_days_from_civil(1900, 1, 1) ||
		    rv.reg.date_of_birth > tally_days_from_civil(2079, 6, 5) ||
		    (src->json = json_loadb(m->payload, m->len, 0, NULL)) == NULL) {
			reg->skipped++;
			continue;
		}
		if ((rc = seen_add(src, &rv.reg.id)) < 0) {
			snprintf(errstr, errstr_size, "could not hold the ids of %" PRIu64 " voters: "
			         "out of memory", src->seen_n + 1);
			return TALLY_ENOMEM;
		}
		if (rc == 0) {
			reg->repeated++;
			continue;
		}
		if ((r = region_add(reg, rv.region)) < 0) {
			snprintf(errstr, errstr_size, "could not count the regions: out of memory");
			return TALLY_ENOMEM;
		}
		reg->regions[r].registered++;
		reg->registered++;
		v->id = rv.reg.id;
		v->dob_days = rv.reg.date_of_birth;
		v->region = (uint32_t)r;
		addr = json_object_get(src->json, "address");
		age = json_object_get(src->json, "registered_age");
		v->f = (tally_gen_voter_fields_t){
			json_str(src->json, "voter_id"), json_str(src->json, "voter_name"),
			json_str(src->json, "date_of_birth"), json_str(src->json, "gender"),
			json_str(src->json, "nationality"), json_str(src->json, "registration_number"),
			json_str(addr, "street"), json_str(addr, "city"), reg->regions[r].name,
			json_str(addr, "country"), json_str(addr, "postcode"), json_str(src->json, "email"),
			json_str(src->json, "phone_number"), json_str(src->json, "cell_number"),
			json_str(src->json, "picture"),
			json_is_integer(age) ? (int)json_integer_value(age) : TALLY_GEN_NULL_INT,
		};
		return 1;
	}
}

/* ---- both -------------------------------------------------------------------------- */

int
simreg_next(simreg_t *reg, simreg_voter_t *v, char *errstr, size_t errstr_size)
{
	int rc;

	if (reg->src == NULL || reg->src->ended || (!reg->src->kafka && reg->src->reader == NULL))
		return 0;
	rc = reg->src->kafka ? next_kafka(reg, v, errstr, errstr_size)
	                     : next_pg(reg, v, errstr, errstr_size);
	if (rc == 1)
		reg->src->read++;
	else if (rc == 0)
		reg->src->ended = true;
	return rc;
}

uint64_t
simreg_read(const simreg_t *reg)
{
	return reg->src != NULL ? reg->src->read : 0;
}

int
simreg_finish_counts(simreg_t *reg, char *errstr, size_t errstr_size)
{
	simreg_voter_t v;
	int rc;

	/* PostgreSQL counted every region when opened. */
	if (reg->src == NULL || !reg->src->kafka)
		return 0;
	while ((rc = simreg_next(reg, &v, errstr, errstr_size)) == 1)
		;
	return rc;
}

void
simreg_fini(simreg_t *reg)
{
	struct simreg_source *src = reg->src;

	if (src != NULL) {
		tally_pg_voter_reader_close(src->reader);
		if (src->msg != NULL)
			rd_kafka_message_destroy(src->msg);
		json_decref(src->json);
		if (src->rk != NULL) {
			rd_kafka_consumer_close(src->rk);
			rd_kafka_destroy(src->rk);
		}
		free(src->voters_topic);
		free(src->hi);
		free(src->seen);
		free(src);
	}
	for (uint32_t i = 0; i < reg->ncands; i++) {
		free((char *)reg->cands[i].row.candidate_id);
		free((char *)reg->cands[i].row.candidate_name);
		free((char *)reg->cands[i].row.biography);
		free((char *)reg->cands[i].row.campaign_platform);
		free((char *)reg->cands[i].row.photo_url);
	}
	free(reg->cands);
	for (uint32_t i = 0; i < reg->nparties; i++)
		free(reg->parties[i]);
	free(reg->parties);
	for (uint32_t i = 0; i < reg->nregions; i++) {
		free(reg->regions[i].name);
		free(reg->regions[i].choice_cum);
		free(reg->regions[i].choices);
		free(reg->regions[i].accepted);
	}
	free(reg->regions);
	for (uint32_t i = 0; i < reg->ncontests; i++) {
		free(reg->contests[i]);
		free(reg->contest_names[i]);
	}
	free(reg->contests);
	free(reg->contest_names);
	free(reg->region_index);
	memset(reg, 0, sizeof(*reg));
}
