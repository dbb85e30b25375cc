/*
 * tally-dq's shared model: the figures each source gives per candidate, region, party and
 * rejection reason (a "dimension" of rows), and the list of named checks with their outcome.
 *
 * Sources: PostgreSQL (votes and registry tables), the last checkpointed core state, the
 * Kafka topics (results topics; dead letters for the reasons), and the ground-truth file.
 * A row's figure is DQ_ABSENT when its source had nothing for it: absent counts as 0 in a
 * comparison (a results topic only carries what changed; a truth file may leave out zeros),
 * but is shown as "-".
 *
 * DESIGN (threads): single-threaded; everything is owned by the one dq_run_t.
 */
#ifndef TALLY_DQ_H
#define TALLY_DQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include <tally/kafka.h>
#include <tally/pg.h>

#include "conf.h"

#define DQ_ABSENT INT64_MIN

typedef enum dq_src {
	DQ_PG = 0,      /* PostgreSQL */
	DQ_CKPT,        /* the last checkpoint */
	DQ_TOPIC,       /* results topics; for reasons: the dead letters */
	DQ_TRUTH,       /* the ground-truth file */
	DQ_NSRC
} dq_src_t;

typedef struct dq_row {
	char *key;                   /* candidate_id, region, party or reason name */
	char *label;                 /* shown: candidate name, region, party, reason */
	char *party;                 /* candidates: the party, else NULL */
	int64_t v[DQ_NSRC];          /* votes (or rejections) per source, or DQ_ABSENT */
	int64_t reg[DQ_NSRC];        /* regions: registered voters per source, or DQ_ABSENT */
} dq_row_t;

typedef struct dq_dim {
	const char *name;            /* "candidates" */
	const char *what;            /* "votes per candidate" */
	bool have[DQ_NSRC];          /* the source was read for this dimension */
	dq_row_t *rows;
	size_t n, cap;
	uint32_t *index;             /* open addressing over rows, index + 1; 0 is empty */
	size_t index_cap;
} dq_dim_t;

typedef enum dq_status { DQ_PASS = 0, DQ_FAIL, DQ_SKIP } dq_status_t;

typedef struct dq_check {
	char name[64];               /* "integrity.votes_voters" */
	dq_status_t status;
	char detail[512];            /* one line: the figures, or why it failed or was skipped */
	json_t *figures;             /* object of named numbers for --json; owned */
} dq_check_t;

enum { DQ_DIM_CANDIDATES, DQ_DIM_REGIONS, DQ_DIM_PARTIES, DQ_DIM_CELLS, DQ_DIM_REASONS,
       DQ_NDIM };

typedef struct dq_run {
	const tallydq_conf_t *conf;
	tally_pg_param_t *pg;        /* pg.* settings, "pg." stripped */
	size_t npg;
	tally_kafka_setting_t *kafka; /* kafka.* settings */
	size_t nkafka;
	dq_dim_t dim[DQ_NDIM];
	const char *missing[DQ_NSRC]; /* why a source was not read, for skipped checks */
	dq_check_t *checks;
	size_t nchecks, cap_checks;

	/* Totals for the row checks and the report's header; -1 when not known. */
	int64_t pg_voters, pg_candidates, pg_parties;
	int64_t pg_votes;            /* votes of the election in PostgreSQL */
	int64_t pg_votes_all;        /* every row of votes */
	int64_t truth_registered, truth_candidates, truth_parties;
	bool have_ckpt;              /* the checkpoint was read: the ckpt_* figures are set */
	int64_t ckpt_rejected;
	int64_t ckpt_read, ckpt_accepted, ckpt_id, ckpt_version;
	int64_t dead_letters, dead_letter_dups;
	/* Each dead-lettered source position once (of the votes topic), with its reason. */
	struct dq_dl { int32_t partition, reason; int64_t offset; } *dl;
	size_t ndl;
	int64_t dl_superseded;       /* of them, positions whose vote is stored: counted */
	int64_t truth_messages, truth_accepted;
	char ckpt_taken_at[40];
} dq_run_t;

/* Dead letters superseded by a stored vote (pg.c), after dq_kafka(): 0 or -1 (errstr). */
int dq_pg_superseded(dq_run_t *run, char *errstr, size_t errstr_size);

/* ---- dimensions (dq.c) ---- */

/* The row for key, added (with label, party and every figure absent) if new. NULL: no memory. */
dq_row_t *dq_dim_row(dq_dim_t *dim, const char *key, const char *label, const char *party);

/* The row for key, or NULL. */
dq_row_t *dq_dim_find(dq_dim_t *dim, const char *key);

/* Add n to a figure, treating absent as 0. */
void dq_add(int64_t *fig, int64_t n);

void dq_dim_free(dq_dim_t *dim);

/* ---- checks (dq.c) ---- */

/* Record a check; figures (may be NULL) is taken over. fmt formats the detail. */
dq_check_t *dq_check(dq_run_t *run, const char *name, dq_status_t status, json_t *figures,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/*
 * Compare source b with source a over a dimension, row by row, absent as 0; with
 * registered, the regions' registered figures instead (rows where b is absent are not
 * compared: a region without a turnout message says nothing about its registered count).
 * Records check `name`: pass when every row agrees; skipped (with run->missing[] as the
 * reason) when a or b was not read.
 */
void dq_compare(dq_run_t *run, const char *name, int dim, dq_src_t a, dq_src_t b,
                bool registered);

const char *dq_src_name(dq_src_t src);

/* ---- sources ---- */

/* PostgreSQL and the checkpoint (pg.c): the integrity and row checks, the PG and CKPT
 * columns. Returns 0, or -1 with errstr set when PostgreSQL cannot be used at all. */
int dq_pg(dq_run_t *run, char *errstr, size_t errstr_size);

/* The results and dead-letter topics (kafka.c): the TOPIC columns and their checks. */
void dq_kafka(dq_run_t *run);

/* The ground-truth file (truth.c): the TRUTH columns. Returns 0, or -1 with errstr set
 * (the file cannot be read or is not a truth file: a usage error). */
int dq_truth(dq_run_t *run, const char *path, char *errstr, size_t errstr_size);

/* ---- the report (report.c) ---- */

void dq_report_text(dq_run_t *run, FILE *f);
void dq_report_json(dq_run_t *run, FILE *f);

/* Number of checks with that status. */
size_t dq_count(const dq_run_t *run, dq_status_t status);

/* true when the row's figures from the sources read disagree (absent as 0). */
bool dq_row_mismatch(const dq_dim_t *dim, const dq_row_t *row);

#endif /* TALLY_DQ_H */
