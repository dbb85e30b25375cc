/**
 * @file pg_registry_image.h
 * @brief Registry images: the voters stored as packed records in a few large bytea parts,
 *        so a restart reads ~0.3 GB of bytes instead of 10 M voters rows.
 *
 * An image is taken from an in-memory registry that was loaded in full at a known
 * generation (the registry_generation row, bumped in the same transaction by every
 * statement that changes parties, candidates or voters; migration 5). It is marked
 * complete only if the generation is still the same when its last part is stored, and it
 * is read only in a snapshot whose generation equals the image's: so an image never stands
 * for a registry other than the one its reader's snapshot holds. Parties and candidates
 * (small) are always read from their tables.
 *
 * Layout: registry_images (one row per image: id, generation, format), its parts
 * (registry_image_parts: part number, voter count, data = packed records, see
 * TALLY_VOTER_PACKED_MIN in registry.h; stored EXTERNAL, uncompressed), and the complete
 * marker (registry_image_complete: voters, parts, bytes, and the region table: names by
 * the records' region index, each followed by a NUL byte). An image without its marker (a
 * write interrupted by a crash, a stop, or a registration) is never read, and the next
 * write deletes it.
 *
 * Every statement is fixed text with parameters; nothing logged or returned holds voter
 * data. DESIGN (threads): a PGconn belongs to one thread at a time. The restore uses a
 * second thread internally (the parts are fetched on it while this thread registers the
 * voters of the previous part); the writer runs on its caller's thread.
 */
#ifndef TALLY_PG_REGISTRY_IMAGE_H
#define TALLY_PG_REGISTRY_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include <tally/registry.h>

/** The packed-record format images are written in (registry_images.format). */
#define TALLY_PG_IMAGE_FORMAT 1

/** What tally_pg_registry_restore() did. */
typedef struct tally_pg_restore_info {
	uint64_t parties, candidates, voters;  /**< registered */
	int64_t generation;          /**< registry_generation in the snapshot read */
	bool from_image;             /**< voters came from an image (else the full load) */
	int64_t image_id;            /**< the image read, or 0 */
	uint32_t parts;              /**< image parts read */
	uint64_t bytes;              /**< image bytes read */
	double fetch_wait_s;         /**< time the registering thread waited for parts */
} tally_pg_restore_info_t;

/**
 * @brief Load the registry stored in conn's database into reg, from a registry image when
 * one is complete for the generation of the snapshot read, else as
 * tally_pg_registry_load() does.
 *
 * One REPEATABLE READ READ ONLY transaction (conn must be idle: no transaction open),
 * committed before return: the generation, the image (or the voters rows), parties and
 * candidates are all from one snapshot. A damaged image (a part missing, a count that
 * disagrees, a record that cannot be read) fails with TALLY_ECORRUPT; reg then holds part
 * of the registry, so the caller starts again with a fresh registry and
 * tally_pg_registry_load().
 *
 * @param info receives what was done (counts, generation, which path); never NULL.
 * @returns 0; TALLY_ECORRUPT as above; or the errors of tally_pg_registry_load(), with
 *          errstr set (no personal data).
 * @note reg's writer side (as tally_registry_add_*()); readers of reg may run
 *       concurrently. Not thread-safe for one conn.
 */
int tally_pg_registry_restore(PGconn *conn, tally_registry_t *reg,
                              tally_pg_restore_info_t *info, char *errstr, size_t errstr_size);

/** How tally_pg_registry_image_write() goes about it. 0 fields take the defaults. */
typedef struct tally_pg_image_write_opts {
	size_t part_bytes;           /**< bytes of records per part (default 16 MiB) */
	unsigned pause_ms;           /**< sleep between parts, to stay in the background */
	/** Polled between parts (and during pauses); true stops the write, which then
	 *  deletes what it stored and returns TALLY_EAGAIN. May be NULL. */
	bool (*stop)(void *arg);
	void *stop_arg;
} tally_pg_image_write_opts_t;

/** What tally_pg_registry_image_write() stored. */
typedef struct tally_pg_image_write_info {
	int64_t image_id;
	uint64_t voters, bytes;
	uint32_t parts;
	double seconds;
} tally_pg_image_write_info_t;

/**
 * @brief Store reg's voters as the image of generation, mark it complete if the registry
 * in PostgreSQL is still at that generation, and delete older images.
 *
 * reg must hold exactly the registry stored at generation (loaded in full in a snapshot
 * that saw it, as tally_pg_registry_restore() reports), plus at most registrations
 * committed to PostgreSQL later (which move the generation on, so the image is then
 * refused). conn is used in autocommit mode: each part commits on its own, and nothing is
 * visible as an image before the complete marker commits.
 *
 * @param opts may be NULL (defaults).
 * @param info if not NULL, receives what was stored.
 * @returns 0 when the image is complete; TALLY_ESTATE when the generation moved on (a
 *          registration committed; nothing is left stored); TALLY_EAGAIN when opts->stop
 *          asked to stop; a server error (tally_pg_err()); each with errstr set.
 * @note Reads reg lock-free (any thread, concurrently with its writer). Not thread-safe
 *       for one conn.
 */
int tally_pg_registry_image_write(PGconn *conn, const tally_registry_t *reg, int64_t generation,
                                  const tally_pg_image_write_opts_t *opts,
                                  tally_pg_image_write_info_t *info, char *errstr,
                                  size_t errstr_size);

/**
 * @brief The registry generation stored (registry_generation), in conn's current
 * transaction or a statement of its own.
 * @returns it (>= 1), or a negative tally error.
 */
int64_t tally_pg_registry_generation(PGconn *conn);

#endif /* TALLY_PG_REGISTRY_IMAGE_H */
