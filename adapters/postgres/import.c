/*
 * Loading the original system's own tables (FORMATS.md) into tally's schema: text ids
 * become uuids, text dates become dates, and the parties table is derived from the
 * candidates' party_affiliation. The source schema's name is the one identifier in the
 * statements; it is quoted by libpq (PQescapeIdentifier), never spliced raw, and nothing
 * else varies.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tally/error.h>
#include <tally/pg.h>
#include <tally/pg_registry.h>

static int
run(PGconn *conn, const char *fmt, const char *schema_ident, const char *what,
    uint64_t *rows, char *errstr, size_t errstr_size)
{
	size_t n = strlen(fmt) + strlen(schema_ident) + 1;
	char *sql = malloc(n);
	PGresult *res;
	int rc = 0;

	if (sql == NULL) {
		snprintf(errstr, errstr_size, "could not import %s: out of memory", what);
		return TALLY_ENOMEM;
	}
	snprintf(sql, n, fmt, schema_ident);
	res = PQexecParams(conn, sql, 0, NULL, NULL, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		const char *m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		char line[256];

		snprintf(line, sizeof(line), "%s", m != NULL ? m : PQerrorMessage(conn));
		line[strcspn(line, "\r\n")] = '\0';
		snprintf(errstr, errstr_size, "could not import %s: %s", what, line);
		rc = tally_pg_err(conn, res);
	} else if (rows != NULL) {
		*rows = strtoull(PQcmdTuples(res), NULL, 10);
	}
	PQclear(res);
	free(sql);
	return rc;
}

int
tally_pg_import_original(PGconn *conn, const char *schema, uint64_t *parties,
                         uint64_t *candidates, uint64_t *voters, char *errstr,
                         size_t errstr_size)
{
	char *ident = PQescapeIdentifier(conn, schema, strlen(schema));
	int rc;

	if (ident == NULL) {
		snprintf(errstr, errstr_size, "could not import: bad schema name");
		return TALLY_EINVAL;
	}
	rc = run(conn,
	         "INSERT INTO parties (party_affiliation) SELECT DISTINCT party_affiliation"
	         " FROM %s.candidates WHERE party_affiliation IS NOT NULL"
	         " ORDER BY party_affiliation",
	         ident, "parties", parties, errstr, errstr_size);
	if (rc == 0)
		rc = run(conn,
		         "INSERT INTO candidates (candidate_id, candidate_name, party_affiliation,"
		         " biography, campaign_platform, photo_url) SELECT candidate_id::uuid,"
		         " candidate_name, party_affiliation, biography, campaign_platform, photo_url"
		         " FROM %s.candidates ORDER BY candidate_id",
		         ident, "candidates", candidates, errstr, errstr_size);
	if (rc == 0)
		rc = run(conn,
		         "INSERT INTO voters (voter_id, voter_name, date_of_birth, gender, nationality,"
		         " registration_number, address_street, address_city, address_state,"
		         " address_country, address_postcode, email, phone_number, cell_number,"
		         " picture, registered_age) SELECT voter_id::uuid, voter_name,"
		         " left(date_of_birth, 10)::date, gender, nationality, registration_number,"
		         " address_street, address_city, address_state, address_country,"
		         " address_postcode, email, phone_number, cell_number, picture, registered_age"
		         " FROM %s.voters",
		         ident, "voters", voters, errstr, errstr_size);
	PQfreemem(ident);
	return rc;
}
