/*
 * tally's schema, as an ordered list of migrations.
 *
 * The tables keep the original system's column names (../shared/seed/FORMATS.md) so its
 * data loads as it is, and add what the original lacked: a parties table, real foreign
 * keys, uuid and date types, a region per voter, the election, the source position of every
 * vote, and checkpoints. A migration, once released, is never edited: changes are new
 * migrations appended at the end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tally/error.h>
#include <tally/pg.h>

struct migration {
	const char *name;
	const char *sql;
};

static const struct migration migrations[] = {
	{"registry",
	 "CREATE TABLE parties ("
	 "  party_affiliation text PRIMARY KEY CHECK (length(party_affiliation) BETWEEN 1 AND 255),"
	 "  registered_at timestamptz NOT NULL DEFAULT now());"
	 "CREATE TABLE candidates ("
	 "  candidate_id uuid PRIMARY KEY,"
	 "  candidate_name text NOT NULL CHECK (length(candidate_name) BETWEEN 1 AND 255),"
	 "  party_affiliation text NOT NULL REFERENCES parties ON UPDATE CASCADE,"
	 "  biography text,"
	 "  campaign_platform text,"
	 "  photo_url text CHECK (length(photo_url) <= 2047),"
	 "  registered_at timestamptz NOT NULL DEFAULT now());"
	 "CREATE TABLE voters ("
	 "  voter_id uuid PRIMARY KEY,"
	 "  voter_name text,"
	 "  date_of_birth date NOT NULL CHECK (date_of_birth BETWEEN '1900-01-01' AND '2079-06-05'),"
	 "  gender text,"
	 "  nationality text,"
	 "  registration_number text CHECK (length(registration_number) <= 63),"
	 "  address_street text,"
	 "  address_city text,"
	 "  address_state text NOT NULL,"
	 "  address_country text,"
	 "  address_postcode text,"
	 "  email text,"
	 "  phone_number text,"
	 "  cell_number text,"
	 "  picture text,"
	 "  registered_age integer CHECK (registered_age >= 0),"
	 "  region text GENERATED ALWAYS AS (address_state) STORED"
	 "    CHECK (length(region) BETWEEN 1 AND 255),"
	 "  registered_at timestamptz NOT NULL DEFAULT now());"
	 "CREATE INDEX voters_region ON voters (region);"},
	{"elections and votes",
	 "CREATE TABLE elections ("
	 "  election_id text PRIMARY KEY CHECK (length(election_id) BETWEEN 1 AND 63),"
	 "  opens_at timestamptz NOT NULL,"
	 "  closes_at timestamptz NOT NULL,"
	 "  status text NOT NULL DEFAULT 'scheduled'"
	 "    CHECK (status IN ('scheduled', 'open', 'closed', 'final')),"
	 "  CHECK (closes_at > opens_at));"
	 "CREATE TABLE votes ("
	 "  voter_id uuid PRIMARY KEY REFERENCES voters,"
	 "  candidate_id uuid NOT NULL REFERENCES candidates,"
	 "  voting_time timestamptz NOT NULL,"
	 "  vote integer NOT NULL DEFAULT 1 CHECK (vote = 1),"
	 "  election_id text NOT NULL REFERENCES elections,"
	 "  source_partition integer NOT NULL CHECK (source_partition >= 0),"
	 "  source_offset bigint NOT NULL CHECK (source_offset >= 0),"
	 "  UNIQUE (election_id, source_partition, source_offset));"
	 "CREATE INDEX votes_candidate ON votes (candidate_id);"},
	{"checkpoints",
	 "CREATE TABLE checkpoint_offsets ("
	 "  election_id text NOT NULL REFERENCES elections,"
	 "  topic text NOT NULL,"
	 "  partition integer NOT NULL CHECK (partition >= 0),"
	 "  next_offset bigint NOT NULL CHECK (next_offset >= 0),"
	 "  owner text NOT NULL,"
	 "  generation bigint NOT NULL,"
	 "  updated_at timestamptz NOT NULL DEFAULT now(),"
	 "  PRIMARY KEY (election_id, topic, partition));"
	 "CREATE TABLE checkpoints ("
	 "  checkpoint_id bigserial PRIMARY KEY,"
	 "  election_id text NOT NULL REFERENCES elections,"
	 "  taken_at timestamptz NOT NULL DEFAULT now(),"
	 "  version bigint NOT NULL,"
	 "  is_delta boolean NOT NULL,"
	 "  state bytea NOT NULL);"
	 "CREATE INDEX checkpoints_latest ON checkpoints (election_id, checkpoint_id DESC);"},
	/* Votes a checkpoint could not write row by row at its pace (pg_journal.h): packed,
	 * never compressed (random voter ids do not compress), moved into votes later. */
	{"vote journal",
	 "CREATE TABLE vote_journal ("
	 "  journal_id bigserial PRIMARY KEY,"
	 "  election_id text NOT NULL REFERENCES elections,"
	 "  votes integer NOT NULL CHECK (votes > 0),"
	 "  journalled_at timestamptz NOT NULL DEFAULT now(),"
	 "  piece bytea NOT NULL);"
	 "ALTER TABLE vote_journal ALTER COLUMN piece SET STORAGE EXTERNAL;"},
	/*
	 * Registry images (registry_image.c; migration 5): the voters as tally's packed records, read at
	 * restart instead of 10 M voters rows. An image is used only if it was taken at the
	 * registry_generation the reader's snapshot sees.
	 *
	 * The generation is a row, not a sequence: nextval() is not transactional, so a
	 * sequence's value says nothing about which registrations a snapshot sees (a
	 * registration may have taken its number and not committed, or committed after a
	 * later one took its own). The row is updated in the registering transaction itself,
	 * so any snapshot sees exactly the generation of the rows it sees. The triggers are
	 * per statement: a 10 M-row COPY bumps it once. Its price: registering transactions
	 * queue on that one row from the end of their first statement to their commit.
	 * SET search_path FROM CURRENT: the triggers find the table whatever the session's path.
	 */
	{"registry image",
	 "CREATE TABLE registry_generation ("
	 "  one_row boolean PRIMARY KEY DEFAULT true CHECK (one_row),"
	 "  generation bigint NOT NULL);"
	 "INSERT INTO registry_generation (generation) VALUES (1);"
	 "CREATE FUNCTION registry_generation_bump() RETURNS trigger LANGUAGE plpgsql"
	 "  SET search_path FROM CURRENT AS"
	 "  $$BEGIN UPDATE registry_generation SET generation = generation + 1; RETURN NULL; END$$;"
	 "CREATE TRIGGER parties_generation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE"
	 "  ON parties FOR EACH STATEMENT EXECUTE FUNCTION registry_generation_bump();"
	 "CREATE TRIGGER candidates_generation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE"
	 "  ON candidates FOR EACH STATEMENT EXECUTE FUNCTION registry_generation_bump();"
	 "CREATE TRIGGER voters_generation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE"
	 "  ON voters FOR EACH STATEMENT EXECUTE FUNCTION registry_generation_bump();"
	 "CREATE TABLE registry_images ("
	 "  image_id bigserial PRIMARY KEY,"
	 "  generation bigint NOT NULL,"
	 "  format integer NOT NULL,"
	 "  created_at timestamptz NOT NULL DEFAULT now());"
	 "CREATE TABLE registry_image_parts ("
	 "  image_id bigint NOT NULL REFERENCES registry_images ON DELETE CASCADE,"
	 "  part integer NOT NULL CHECK (part >= 0),"
	 "  voters integer NOT NULL CHECK (voters >= 0),"
	 "  data bytea NOT NULL,"
	 "  PRIMARY KEY (image_id, part));"
	 /* Already packed: pglz would only cost time on both sides. */
	 "ALTER TABLE registry_image_parts ALTER COLUMN data SET STORAGE EXTERNAL;"
	 /* The complete marker, written last, only while the generation is still the image's. */
	 "CREATE TABLE registry_image_complete ("
	 "  image_id bigint PRIMARY KEY REFERENCES registry_images ON DELETE CASCADE,"
	 "  voters bigint NOT NULL CHECK (voters >= 0),"
	 "  parts integer NOT NULL CHECK (parts >= 0),"
	 "  bytes bigint NOT NULL CHECK (bytes >= 0),"
	 "  regions integer NOT NULL CHECK (regions >= 0),"
	 "  region_names bytea NOT NULL,"
	 "  completed_at timestamptz NOT NULL DEFAULT now());"},
	/* Every checkpoint is a whole state; the flag saying so was written and never read. */
	{"checkpoints without is_delta",
	 "ALTER TABLE checkpoints DROP COLUMN is_delta;"},
	/*
	 * Several tallyd instances in one consumer group (migration 7): each home partition of the
	 * source topic has an owner and a state of its own. Claiming a partition bumps its epoch;
	 * a cut stores a partition's state only while its owner row still names the cutting
	 * instance at the epoch it claimed (store.h), so an instance that lost a partition can
	 * never again commit it. A state exists only for a claimed partition (the foreign key).
	 */
	{"partition owners and states",
	 "CREATE TABLE partition_owners ("
	 "  election_id text NOT NULL REFERENCES elections,"
	 "  topic text NOT NULL,"
	 "  partition integer NOT NULL CHECK (partition >= 0),"
	 "  owner text NOT NULL,"
	 "  epoch bigint NOT NULL CHECK (epoch > 0),"
	 "  claimed_at timestamptz NOT NULL DEFAULT now(),"
	 "  PRIMARY KEY (election_id, topic, partition));"
	 "CREATE TABLE partition_states ("
	 "  election_id text NOT NULL,"
	 "  topic text NOT NULL,"
	 "  partition integer NOT NULL,"
	 "  owner text NOT NULL,"
	 "  epoch bigint NOT NULL CHECK (epoch > 0),"
	 "  version bigint NOT NULL CHECK (version >= 0),"
	 "  state bytea NOT NULL,"
	 "  committed_at timestamptz NOT NULL DEFAULT now(),"
	 "  PRIMARY KEY (election_id, topic, partition),"
	 "  FOREIGN KEY (election_id, topic, partition) REFERENCES partition_owners);"},
	/*
	 * Votes forwarded to their voter's home partition (migration 8): a home partition's
	 * position in the forward topic and, per source partition, the last source offset it
	 * let in (the app's bytes, stored with the part's state in the same row, so they are
	 * fenced and committed with it). NULL: nothing forwarded yet.
	 */
	{"partition states with their forwarding position",
	 "ALTER TABLE partition_states ADD COLUMN forward bytea;"},
	/*
	 * Elections of many contests (migration 9; include/tally/registry.h): a contest is at a
	 * level, and within a level the contests partition the regions they name (UNIQUE
	 * (level, region)); a candidate stands in one (NULL: the national race, contest 0, as
	 * in the original's data), and a party fields one candidate per contest. "national"
	 * is contest 0's id and level 0's name: not a contest row. position orders a contest's
	 * regions as registered.
	 */
	{"contests",
	 "CREATE TABLE contests ("
	 "  contest_id text PRIMARY KEY"
	 "    CHECK (length(contest_id) BETWEEN 1 AND 63 AND contest_id <> 'national'),"
	 "  contest_name text NOT NULL CHECK (length(contest_name) BETWEEN 1 AND 255),"
	 "  level text NOT NULL CHECK (length(level) BETWEEN 1 AND 63 AND level <> 'national'),"
	 "  registered_at timestamptz NOT NULL DEFAULT now(),"
	 "  UNIQUE (contest_id, level));"
	 "CREATE TABLE contest_regions ("
	 "  contest_id text NOT NULL,"
	 "  level text NOT NULL,"
	 "  position integer NOT NULL CHECK (position >= 0),"
	 "  region text NOT NULL CHECK (length(region) BETWEEN 1 AND 255),"
	 "  PRIMARY KEY (contest_id, position),"
	 "  UNIQUE (contest_id, region),"
	 "  UNIQUE (level, region),"
	 "  FOREIGN KEY (contest_id, level) REFERENCES contests (contest_id, level)"
	 "    ON UPDATE CASCADE);"
	 "ALTER TABLE candidates ADD COLUMN contest_id text REFERENCES contests;"
	 "ALTER TABLE candidates ADD CONSTRAINT candidates_one_per_party_and_contest"
	 "  UNIQUE (contest_id, party_affiliation);"
	 "CREATE TRIGGER contests_generation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE"
	 "  ON contests FOR EACH STATEMENT EXECUTE FUNCTION registry_generation_bump();"
	 "CREATE TRIGGER contest_regions_generation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE"
	 "  ON contest_regions FOR EACH STATEMENT EXECUTE FUNCTION registry_generation_bump();"},
};

#define NMIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))

/* An arbitrary constant: the advisory lock every tally process takes to migrate. */
#define MIGRATION_LOCK_KEY "7406571337"

int
tally_pg_schema_version(void)
{
	return NMIGRATIONS;
}

/* Run one fixed statement; on failure fill errstr with what, and return a tally error. */
static int
exec_fixed(PGconn *conn, const char *sql, const char *what, char *errstr, size_t errstr_size)
{
	PGresult *res = PQexec(conn, sql);
	int rc = 0;

	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
		snprintf(errstr, errstr_size, "%s: %s", what, PQresultErrorMessage(res));
		errstr[strcspn(errstr, "\n")] = '\0';
		rc = tally_pg_err(conn, res);
	}
	PQclear(res);
	return rc;
}

static int
current_version(PGconn *conn, int *version, char *errstr, size_t errstr_size)
{
	PGresult *res = PQexecParams(conn, "SELECT coalesce(max(version), 0) FROM tally_schema_version",
	                             0, NULL, NULL, NULL, NULL, 0);
	int rc = 0;

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		snprintf(errstr, errstr_size, "could not read the schema version: %s",
		         PQresultErrorMessage(res));
		errstr[strcspn(errstr, "\n")] = '\0';
		rc = tally_pg_err(conn, res);
	} else {
		*version = atoi(PQgetvalue(res, 0, 0));
	}
	PQclear(res);
	return rc;
}

/* Created under the lock too: two first starts would otherwise race on CREATE TABLE. */
static const char version_table_sql[] =
    "CREATE TABLE IF NOT EXISTS tally_schema_version ("
    "  version integer PRIMARY KEY,"
    "  name text NOT NULL,"
    "  applied_at timestamptz NOT NULL DEFAULT now())";

int
tally_pg_migrate(PGconn *conn, int *applied, char *errstr, size_t errstr_size)
{
	int version = 0, done = 0, rc;

	if (applied != NULL)
		*applied = 0;
	for (;;) {
		char what[128], vtext[16];
		const char *values[2] = {vtext, NULL};
		PGresult *res;

		if ((rc = exec_fixed(conn, "BEGIN", "could not begin a migration", errstr,
		                     errstr_size)) != 0)
			return rc;
		/* Concurrent starts wait here; the second then sees the first's work. */
		if ((rc = exec_fixed(conn, "SELECT pg_advisory_xact_lock(" MIGRATION_LOCK_KEY ")",
		                     "could not take the migration lock", errstr, errstr_size)) != 0 ||
		    (rc = exec_fixed(conn, version_table_sql, "could not create tally_schema_version",
		                     errstr, errstr_size)) != 0 ||
		    (rc = current_version(conn, &version, errstr, errstr_size)) != 0)
			goto rollback;
		if (version > NMIGRATIONS) {
			snprintf(errstr, errstr_size,
			         "the database schema is version %d, newer than this tally's %d", version,
			         NMIGRATIONS);
			rc = TALLY_ESTATE;
			goto rollback;
		}
		if (version == NMIGRATIONS)
			break;
		snprintf(what, sizeof(what), "migration %d \"%s\"", version + 1,
		         migrations[version].name);
		if ((rc = exec_fixed(conn, migrations[version].sql, what, errstr, errstr_size)) != 0)
			goto rollback;
		snprintf(vtext, sizeof(vtext), "%d", version + 1);
		values[1] = migrations[version].name;
		res = PQexecParams(conn, "INSERT INTO tally_schema_version (version, name) VALUES ($1, $2)",
		                   2, NULL, values, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			snprintf(errstr, errstr_size, "%s: could not record it: %s", what,
			         PQresultErrorMessage(res));
			errstr[strcspn(errstr, "\n")] = '\0';
			rc = tally_pg_err(conn, res);
			PQclear(res);
			goto rollback;
		}
		PQclear(res);
		if ((rc = exec_fixed(conn, "COMMIT", what, errstr, errstr_size)) != 0)
			return rc;
		done++;
	}
	rc = exec_fixed(conn, "COMMIT", "could not end the migration check", errstr, errstr_size);
	if (applied != NULL)
		*applied = done;
	return rc;
rollback:
	{
		PGresult *res = PQexec(conn, "ROLLBACK");

		PQclear(res);
	}
	return rc;
}
