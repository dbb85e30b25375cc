/*
 * The contests table behind /api/contests (contests.c). Private to adapters/http/.
 */
#ifndef TALLY_HTTP_CONTESTS_H
#define TALLY_HTTP_CONTESTS_H

#include <tally/contest.h>
#include <tally/registry.h>
#include <tally/snapshot.h>

#include "render.h"

/* Render thread: every contest's result from snap into out (a binary table; res is the
 * caller's scratch, kept between renders). out->oom when out of memory. */
void tally__contest_table_build(const tally_snapshot_t *snap, const tally_registry_t *reg,
                                tally_contests_t *res, hbuf_t *out);

/* A request's parameters (any may be NULL): sort = name|id|votes|majority|turnout|status,
 * order = asc|desc (default: names and ids ascending, figures descending), q = text in the
 * name, id or leading party (any case), party = the leading party, status =
 * counting|declared, offset (0), limit (50, at most 1000). */
typedef struct tally__contests_params {
	const char *sort, *order, *q, *party, *status, *offset, *limit;
	bool csv;                        /* the page as CSV rows, not JSON */
} tally__contests_params_t;

/* Any thread: the page of the table asked for, as JSON into out. @returns the HTTP status
 * (200; 400 with *why for a bad parameter; 503 out of memory). */
int tally__contests_query(const hbuf_t *table, const tally_registry_t *reg,
                          const tally__contests_params_t *p, hbuf_t *out, const char **why);

/* Any thread: one contest with its candidates as JSON. @returns 200, 404 or 503. */
int tally__contest_one(const hbuf_t *table, const tally_registry_t *reg, const char *id,
                       hbuf_t *out);

#endif /* TALLY_HTTP_CONTESTS_H */
