/*
 * The HTTP adapter's bodies (render.c): growable buffers, the Prometheus and OpenMetrics
 * text of a snapshot and of the app's metrics builder, the /api/results JSON and CSV.
 * Private to adapters/http/. Everything here runs on one thread at a time (the render
 * thread), except the small escaping helpers, which are pure.
 */
#ifndef TALLY_HTTP_RENDER_H
#define TALLY_HTTP_RENDER_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tally/http.h>
#include <tally/registry.h>
#include <tally/snapshot.h>

/* A growable byte buffer; oom is sticky (appends become no-ops once it is set). */
typedef struct hbuf {
	char *p;
	size_t len, cap;
	bool oom;
} hbuf_t;

void hbuf_reset(hbuf_t *b);
void hbuf_free(hbuf_t *b);
void hbuf_put(hbuf_t *b, const void *s, size_t n);
void hbuf_puts(hbuf_t *b, const char *s);
void hbuf_putc(hbuf_t *b, char c);
void hbuf_u64(hbuf_t *b, uint64_t v);
void hbuf_double(hbuf_t *b, double v);        /* a Prometheus/JSON number: 0.123456789 */
void hbuf_fixed(hbuf_t *b, double v, int decimals);
void hbuf_printf(hbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void hbuf_json_str(hbuf_t *b, const char *s); /* "..." with JSON escapes */
/* RFC 4180: quoted when needed; a field starting with =, +, -, @, tab or CR is quoted with a
 * ' in front (so a spreadsheet shows it as text, never as a formula). */
void hbuf_csv_field(hbuf_t *b, const char *s);
void hbuf_label_value(hbuf_t *b, const char *s); /* Prometheus label value escapes */
void hbuf_iso_ms(hbuf_t *b, int64_t us);      /* "2026-05-07T10:00:00.123Z" */

/* The app's metrics, rendered in both formats as they are appended. */
struct tally_metrics_builder {
	hbuf_t text, om;
	char family[160];                   /* the family appended last */
	hbuf_t seen;                        /* every family so far, "\n"-separated */
	int errors;
};

void tally__metrics_builder_reset(tally_metrics_builder_t *b);
void tally__metrics_builder_free(tally_metrics_builder_t *b);

/* Scratch kept between renders (the region order for the bounded region series). */
typedef struct render_scratch {
	uint32_t *order;
	uint32_t cap;
	uint32_t nregions;
	uint64_t registered;
	uint64_t generation;
	bool valid;
} render_scratch_t;

void tally__render_scratch_free(render_scratch_t *rs);

/*
 * The core's families in Prometheus text 0.0.4 (text) and OpenMetrics 1.0 (om, without
 * the closing "# EOF"). reg must hold every name snap counts.
 */
void tally__render_metrics(const tally_snapshot_t *snap, const tally_registry_t *reg,
                           unsigned max_region_series, const char *build_version,
                           render_scratch_t *rs, hbuf_t *text, hbuf_t *om);

/* The election object {"id", "status", "opens_at", "closes_at"}. */
void tally__render_election(const tally_election_t *e, hbuf_t *out);

/* The /api/results JSON document. */
void tally__render_json(const tally_snapshot_t *snap, const tally_registry_t *reg, hbuf_t *out);

/* The /api/results.csv table (kind column: candidate, party, region). */
void tally__render_csv(const tally_snapshot_t *snap, const tally_registry_t *reg, hbuf_t *out);

#endif /* TALLY_HTTP_RENDER_H */
