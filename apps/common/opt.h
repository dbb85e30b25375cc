/*
 * One declarative table of options drives parsing (command line now, a config file later),
 * validation, defaults and --help. Each entry names a member of the caller's config struct
 * by offset; the table is the only place an option is described.
 *
 * Messages follow the house grammar and do not say where the value came from, so each
 * caller prefixes its own context: "--voters: " for argv, "tally.conf:12: voters: " for a
 * config file.
 */
#ifndef TALLY_APPS_OPT_H
#define TALLY_APPS_OPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum tally_opt_type {
	TALLY_OPT_FLAG,     /**< bool; on the command line, present means true */
	TALLY_OPT_UINT,     /**< uint64_t, a whole number */
	TALLY_OPT_DOUBLE,   /**< double */
	TALLY_OPT_STRING,   /**< char *, malloc'd copy; free with tally_opt_free() */
} tally_opt_type_t;

/** Marks a number as unbounded when given as min and max (any min > max works). */
#define TALLY_OPT_UNBOUNDED 1.0, 0.0

/** One option. */
typedef struct tally_opt {
	const char *name;       /**< "voters": --voters on the command line */
	tally_opt_type_t type;
	const char *def;        /**< default, as it would be written; NULL: false, 0 or "" */
	double min, max;        /**< inclusive range of numbers; min > max: unbounded */
	const char *doc;        /**< one line, lower-case, no trailing period */
	size_t offset;          /**< offsetof(config struct, member) */
	const char *metavar;    /**< "N", "F", "NAME"; NULL for flags */
} tally_opt_t;

/**
 * @brief Set every option of tab to its default in conf.
 * @returns 0, or -1 with errstr set (a default that fails its own validation).
 */
int tally_opt_defaults(const tally_opt_t *tab, size_t n, void *conf, char *errstr,
                       size_t errstr_size);

/** @brief The entry named name (without "--"), or NULL. */
const tally_opt_t *tally_opt_find(const tally_opt_t *tab, size_t n, const char *name);

/**
 * @brief Parse and validate value for opt and store it in conf. Flags take
 *        true/false/yes/no/on/off/1/0. An empty value of a string option without a
 *        default leaves it unset (NULL), as if it was not given, so `http =` in a file reads
 *        as the default does.
 * @returns 0, or -1 with errstr set, e.g. `"abc" is not a whole number` or
 *          `1.5 is out of range (0 to 1)`.
 */
int tally_opt_set(const tally_opt_t *opt, void *conf, const char *value, char *errstr,
                  size_t errstr_size);

/**
 * @brief Parse argv[1..argc) as --name VALUE, --name=VALUE, or --flag. Unknown options,
 *        missing values and positional arguments are errors.
 * @returns 0, or -1 with errstr set (prefixed with the option, e.g. `--voters: ...`).
 */
int tally_opt_parse_argv(const tally_opt_t *tab, size_t n, void *conf, int argc, char **argv,
                         char *errstr, size_t errstr_size);

/** A setting passed through untouched to a library (kafka.*, pg.*), with where it came from. */
typedef struct tally_opt_kv {
	char *key;              /**< Full key, e.g. "kafka.socket.timeout.ms". */
	char *value;
	char *where;            /**< "tally.conf:12" (or "--kafka.x" from the command line). */
} tally_opt_kv_t;

/** Pass-through settings in the order they were read; later ones win. */
typedef struct tally_opt_kvlist {
	tally_opt_kv_t *items;
	size_t n, cap;
} tally_opt_kvlist_t;

/**
 * @brief Read a config file of `key = value` lines into conf.
 *
 * Blank lines and lines starting with '#' are skipped. Keys are the option names (as on the
 * command line, without "--"). A value may be double-quoted to keep leading or trailing
 * spaces or a '#'; inside quotes, \" and \\ are the only escapes. Keys starting with one
 * of the prefixes (e.g. "kafka.", "pg.") are appended to extra instead (prefixes may be
 * NULL: then such keys are unknown). Every problem fails with `path:line: reason`: an
 * unknown key, a line without '=', a key set twice in the file, a bad value, a line longer
 * than 4095 bytes, an unterminated quote.
 *
 * @returns 0, or -1 with errstr set. On failure conf may be partly set.
 */
int tally_opt_parse_file(const tally_opt_t *tab, size_t n, void *conf, const char *path,
                         const char *const *prefixes, tally_opt_kvlist_t *extra, char *errstr,
                         size_t errstr_size);

/**
 * @brief Load a program's configuration, lowest precedence first: the table's defaults, the
 * file named by --config FILE (or --config=FILE) if any, then the command line. Keys and
 * options starting with one of prefixes ("kafka.", "pg.") go to extra, from the file with
 * their file:line and from the command line (--kafka.KEY=V or --kafka.KEY V) after the
 * file's, so the command line wins there too. The table must have a "config" STRING option.
 * @returns 0, or -1 with errstr set ("tally.conf:12: ..." or "--voters: ...").
 */
int tally_opt_load(const tally_opt_t *tab, size_t n, void *conf, int argc, char **argv,
                   const char *const *prefixes, tally_opt_kvlist_t *extra, char *errstr,
                   size_t errstr_size);

/** @brief true when argv asks for --help or -h (which wins over anything else on the line). */
bool tally_opt_wants_help(int argc, char **argv);

/** @brief Append (copies of) key and value to list. @returns 0 or -1 when out of memory. */
int tally_opt_kvlist_add(tally_opt_kvlist_t *list, const char *key, const char *value,
                         const char *where);

/** @brief The last value of key in list, or NULL. */
const char *tally_opt_kvlist_get(const tally_opt_kvlist_t *list, const char *key);

/** @brief Free the list's contents (not the list itself). */
void tally_opt_kvlist_free(tally_opt_kvlist_t *list);

/** @brief "PROG: message" and a newline on stderr: how every program reports an error. */
void tally_app_error(const char *prog, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/**
 * The seeded generator's registry options (include/tally/gen.h's limits), one description for
 * tally-gen and tallyd --simulate: entries for an option table whose config struct has
 * uint64_t members voters, candidates, parties and regions. OFF is the caller's offsetof
 * macro for that struct.
 */
#define TALLY_OPT_GEN_REGISTRY(OFF)                                                           \
	{"voters", TALLY_OPT_UINT, "100000", 1, 1e9, "registered voters", OFF(voters), "N"},   \
	{"candidates", TALLY_OPT_UINT, "3", 1, 256, "candidates standing, parties round-robin", \
	 OFF(candidates), "N"},                                                                 \
	{"parties", TALLY_OPT_UINT, "3", 1, 64,                                                \
	 "parties; the first three are the original's, more get generated names", OFF(parties), \
	 "N"},                                                                                  \
	{"regions", TALLY_OPT_UINT, "20", 1, 1024, "regions (address.state), largest counties first", \
	 OFF(regions), "N"}

/** @brief Print one line per option: name, metavar, doc, default and range. */
void tally_opt_help(FILE *f, const tally_opt_t *tab, size_t n);

/**
 * @brief Print a commented example config file with every option of tab, in table order:
 * title first (each of its lines as a "# " comment), then for each option its doc wrapped
 * to 80 columns, what it takes (its metavar, kind and range) and a last line
 * "#name = default" with the default as the file would spell it (false or 0 when the table
 * has none; nothing after '=' for a string without one). Prose lines start with "# " or are
 * a lone "#"; only the setting lines start with '#' and a letter, so removing the '#' of
 * every such line gives a file that tally_opt_parse_file() reads back to the defaults.
 */
void tally_opt_print_conf(FILE *f, const tally_opt_t *tab, size_t n, const char *title);

/** @brief Free the strings of TALLY_OPT_STRING options in conf. */
void tally_opt_free(const tally_opt_t *tab, size_t n, void *conf);

#endif /* TALLY_APPS_OPT_H */
