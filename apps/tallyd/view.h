/*
 * The terminal views tallyd shares between --simulate and the server's --live-view: a live
 * block redrawn in place on a terminal (a progress line every 2 s otherwise), and the
 * results tables printed at the end. Counts, names of candidates, parties and regions
 * only: no voter data.
 */
#ifndef TALLYD_VIEW_H
#define TALLYD_VIEW_H

#include <stdbool.h>
#include <stdint.h>

#include <tally/registry.h>
#include <tally/snapshot.h>

typedef struct tallyd_view {
	bool tty;
	int lines;                 /* lines drawn last time, to move back over */
	uint64_t last_read;
	uint64_t last_ns;
	uint64_t start_ns;
	uint64_t last_line_ns;     /* off a terminal: when the last line was printed */
} tallyd_view_t;

/** @brief Start a view on stdout (a terminal or not) now. */
void tallyd_view_init(tallyd_view_t *v);

/**
 * @brief Draw snap: header is the first line, note goes after the rate ("generated N").
 * Off a terminal, prints one progress line at most every 2 s (always when final).
 */
void tallyd_view_draw(tallyd_view_t *v, const tally_registry_t *reg, const tally_snapshot_t *snap,
                      const char *header, const char *note, bool final);

/** @brief The results tables: candidates, parties, regions, rejections, totals. */
void tallyd_print_results(const tally_registry_t *reg, const tally_snapshot_t *snap,
                          double seconds);

/** @brief 1234567 as "1,234,567" into buf (at least 27 bytes). @returns buf. */
const char *tallyd_fmt_count(uint64_t v, char *buf);

#endif /* TALLYD_VIEW_H */
