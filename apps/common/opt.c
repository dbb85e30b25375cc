/*
 * The option table engine (see opt.h).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <tally/error.h>

#include "opt.h"

/* --help wraps the default and range of an option onto a second line past this width. */
#define HELP_WIDTH 100

static int
fail(char *errstr, size_t errstr_size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tally_errstr_vset(errstr, errstr_size, fmt, ap);
	va_end(ap);
	return -1;
}

static bool
bounded(const tally_opt_t *opt)
{
	return opt->min <= opt->max;
}

static void *
member(const tally_opt_t *opt, void *conf)
{
	return (char *)conf + opt->offset;
}

/* A number as the user would write it: no exponent for whole numbers. */
static void
fmt_number(char *buf, size_t size, double x)
{
	if (x == floor(x) && fabs(x) < 1e15)
		snprintf(buf, size, "%.0f", x);
	else
		snprintf(buf, size, "%g", x);
}

static int
out_of_range(const tally_opt_t *opt, const char *value, char *errstr, size_t errstr_size)
{
	char lo[32], hi[32];

	fmt_number(lo, sizeof(lo), opt->min);
	fmt_number(hi, sizeof(hi), opt->max);
	return fail(errstr, errstr_size, "%s is out of range (%s to %s)", value, lo, hi);
}

int
tally_opt_set(const tally_opt_t *opt, void *conf, const char *value, char *errstr,
              size_t errstr_size)
{
	char *end;

	switch (opt->type) {
	case TALLY_OPT_FLAG: {
		static const char *const yes[] = {"true", "yes", "on", "1"};
		static const char *const no[] = {"false", "no", "off", "0"};

		for (size_t i = 0; i < 4; i++) {
			if (strcasecmp(value, yes[i]) == 0) {
				*(bool *)member(opt, conf) = true;
				return 0;
			}
			if (strcasecmp(value, no[i]) == 0) {
				*(bool *)member(opt, conf) = false;
				return 0;
			}
		}
		return fail(errstr, errstr_size, "\"%s\" is not true or false", value);
	}
	case TALLY_OPT_UINT: {
		unsigned long long v;

		/* strtoull takes "-1" as a huge number; whole numbers here have digits only. */
		if (value[0] < '0' || value[0] > '9')
			return fail(errstr, errstr_size, "\"%s\" is not a whole number", value);
		errno = 0;
		v = strtoull(value, &end, 10);
		if (*end != '\0')
			return fail(errstr, errstr_size, "\"%s\" is not a whole number", value);
		if (errno == ERANGE)
			return fail(errstr, errstr_size, "%s is too large", value);
		if (bounded(opt) && ((double)v < opt->min || (double)v > opt->max))
			return out_of_range(opt, value, errstr, errstr_size);
		*(uint64_t *)member(opt, conf) = (uint64_t)v;
		return 0;
	}
	case TALLY_OPT_DOUBLE: {
		double v;

		errno = 0;
		v = strtod(value, &end);
		if (end == value || *end != '\0' || isnan(v) || isinf(v))
			return fail(errstr, errstr_size, "\"%s\" is not a number", value);
		if (errno == ERANGE)
			return fail(errstr, errstr_size, "%s is out of the range of numbers", value);
		if (bounded(opt) && (v < opt->min || v > opt->max))
			return out_of_range(opt, value, errstr, errstr_size);
		*(double *)member(opt, conf) = v;
		return 0;
	}
	case TALLY_OPT_STRING: {
		char **dst = (char **)member(opt, conf);
		char *copy;

		/* No default means unset: an empty value is the way to write that down. */
		if (opt->def == NULL && value[0] == '\0') {
			free(*dst);
			*dst = NULL;
			return 0;
		}
		if ((copy = strdup(value)) == NULL)
			return fail(errstr, errstr_size, "out of memory");
		free(*dst);
		*dst = copy;
		return 0;
	}
	}
	return fail(errstr, errstr_size, "unknown option type");
}

int
tally_opt_defaults(const tally_opt_t *tab, size_t n, void *conf, char *errstr, size_t errstr_size)
{
	for (size_t i = 0; i < n; i++) {
		const tally_opt_t *opt = &tab[i];
		char why[256];

		if (opt->def == NULL) {
			switch (opt->type) {
			case TALLY_OPT_FLAG:
				*(bool *)member(opt, conf) = false;
				break;
			case TALLY_OPT_UINT:
				*(uint64_t *)member(opt, conf) = 0;
				break;
			case TALLY_OPT_DOUBLE:
				*(double *)member(opt, conf) = 0;
				break;
			case TALLY_OPT_STRING:
				*(char **)member(opt, conf) = NULL;
				break;
			}
			continue;
		}
		if (opt->type == TALLY_OPT_STRING)
			*(char **)member(opt, conf) = NULL;
		if (tally_opt_set(opt, conf, opt->def, why, sizeof(why)) != 0)
			return fail(errstr, errstr_size, "default of \"%s\": %s", opt->name, why);
	}
	return 0;
}

const tally_opt_t *
tally_opt_find(const tally_opt_t *tab, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(tab[i].name, name) == 0)
			return &tab[i];
	return NULL;
}

int
tally_opt_parse_argv(const tally_opt_t *tab, size_t n, void *conf, int argc, char **argv,
                     char *errstr, size_t errstr_size)
{
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i], *eq, *value;
		const tally_opt_t *opt;
		char name[64], why[256];
		size_t len;

		if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0')
			return fail(errstr, errstr_size, "unexpected argument \"%s\" (see --help)", arg);
		eq = strchr(arg, '=');
		len = eq != NULL ? (size_t)(eq - arg - 2) : strlen(arg + 2);
		if (len >= sizeof(name))
			return fail(errstr, errstr_size, "unknown option \"%s\" (see --help)", arg);
		memcpy(name, arg + 2, len);
		name[len] = '\0';
		opt = tally_opt_find(tab, n, name);
		if (opt == NULL)
			return fail(errstr, errstr_size, "unknown option \"--%s\" (see --help)", name);
		if (eq != NULL) {
			value = eq + 1;
		} else if (opt->type == TALLY_OPT_FLAG) {
			value = "true";
		} else {
			if (i + 1 >= argc)
				return fail(errstr, errstr_size, "--%s: missing value", name);
			value = argv[++i];
		}
		if (tally_opt_set(opt, conf, value, why, sizeof(why)) != 0)
			return fail(errstr, errstr_size, "--%s: %s", name, why);
	}
	return 0;
}

void
tally_opt_help(FILE *f, const tally_opt_t *tab, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const tally_opt_t *opt = &tab[i];
		char left[64], extra[128] = "";

		snprintf(left, sizeof(left), "--%s%s%s", opt->name, opt->metavar != NULL ? " " : "",
		         opt->metavar != NULL ? opt->metavar : "");
		if (opt->type == TALLY_OPT_UINT || opt->type == TALLY_OPT_DOUBLE) {
			char lo[32], hi[32];
			int k = 0;

			if (opt->def != NULL)
				k = snprintf(extra, sizeof(extra), "default %s", opt->def);
			if (bounded(opt)) {
				fmt_number(lo, sizeof(lo), opt->min);
				fmt_number(hi, sizeof(hi), opt->max);
				snprintf(extra + k, sizeof(extra) - (size_t)k, "%s%s to %s",
				         k > 0 ? "; " : "", lo, hi);
			}
		} else if (opt->type == TALLY_OPT_STRING && opt->def != NULL) {
			snprintf(extra, sizeof(extra), "default \"%s\"", opt->def);
		}
		if (extra[0] == '\0')
			fprintf(f, "  %-26s %s\n", left, opt->doc);
		else if (29 + strlen(opt->doc) + strlen(extra) + 3 <= HELP_WIDTH)
			fprintf(f, "  %-26s %s (%s)\n", left, opt->doc, extra);
		else
			fprintf(f, "  %-26s %s\n  %-26s (%s)\n", left, opt->doc, "", extra);
	}
}

/* ---- an example config file ----------------------------------------------------------- */

/* Config files are read by people: prose wraps before this column. */
#define CONF_WIDTH 80

/* text as "# " comment lines, words wrapped at CONF_WIDTH; a '\n' in text ends a line. */
static void
print_comment(FILE *f, const char *text)
{
	const char *p = text;

	do {
		const char *eol = strchr(p, '\n');
		size_t len = eol != NULL ? (size_t)(eol - p) : strlen(p), col = 1;

		if (len == 0) {
			fputs("#\n", f);
		} else {
			while (len > 0) {
				size_t word = 0, gap = 0;

				while (gap < len && p[gap] == ' ')
					gap++;
				while (gap + word < len && p[gap + word] != ' ')
					word++;
				if (word == 0)
					break;
				if (col == 1 || col + 1 + word > CONF_WIDTH) {
					fputs(col == 1 ? "# " : "\n# ", f);
					col = 2;
				} else {
					fputc(' ', f);
					col++;
				}
				fwrite(p + gap, 1, word, f);
				col += word;
				p += gap + word;
				len -= gap + word;
			}
			fputc('\n', f);
		}
		p = eol != NULL ? eol + 1 : NULL;
	} while (p != NULL);
}

/* A value as a config file line spells it: quoted when reading it bare would change it. */
static void
print_value(FILE *f, const char *v)
{
	size_t len = strlen(v);

	if (len > 0 && (v[0] == '"' || v[0] == ' ' || v[0] == '\t' || v[len - 1] == ' ' ||
	                v[len - 1] == '\t')) {
		fputc('"', f);
		for (; *v != '\0'; v++) {
			if (*v == '"' || *v == '\\')
				fputc('\\', f);
			fputc(*v, f);
		}
		fputc('"', f);
	} else {
		fputs(v, f);
	}
}

void
tally_opt_print_conf(FILE *f, const tally_opt_t *tab, size_t n, const char *title)
{
	if (title != NULL) {
		print_comment(f, title);
		fputc('\n', f);
	}
	for (size_t i = 0; i < n; i++) {
		const tally_opt_t *opt = &tab[i];
		const char *meta = opt->metavar != NULL ? opt->metavar : "VALUE";
		const char *def = opt->def;
		char lo[32], hi[32];

		print_comment(f, opt->doc);
		switch (opt->type) {
		case TALLY_OPT_FLAG:
			fputs("# (true or false)\n", f);
			def = def != NULL ? def : "false";
			break;
		case TALLY_OPT_UINT:
		case TALLY_OPT_DOUBLE:
			fprintf(f, "# (%s: %s", meta,
			        opt->type == TALLY_OPT_UINT ? "a whole number" : "a number");
			if (bounded(opt)) {
				fmt_number(lo, sizeof(lo), opt->min);
				fmt_number(hi, sizeof(hi), opt->max);
				fprintf(f, ", %s to %s", lo, hi);
			}
			fputs(")\n", f);
			def = def != NULL ? def : "0";
			break;
		case TALLY_OPT_STRING:
			fprintf(f, "# (%s: text%s)\n", meta, def == NULL ? "; not set by default" : "");
			def = def != NULL ? def : "";
			break;
		}
		fprintf(f, "#%s =%s", opt->name, def[0] != '\0' ? " " : "");
		print_value(f, def);
		fputs(i + 1 < n ? "\n\n" : "\n", f);
	}
}

void
tally_opt_free(const tally_opt_t *tab, size_t n, void *conf)
{
	for (size_t i = 0; i < n; i++) {
		if (tab[i].type == TALLY_OPT_STRING) {
			char **s = (char **)member(&tab[i], conf);

			free(*s);
			*s = NULL;
		}
	}
}

/* ---- config files ------------------------------------------------------------------ */

int
tally_opt_kvlist_add(tally_opt_kvlist_t *list, const char *key, const char *value,
                     const char *where)
{
	tally_opt_kv_t *kv;

	if (list->n == list->cap) {
		size_t cap = list->cap ? list->cap * 2 : 8;
		void *p = realloc(list->items, cap * sizeof(*list->items));

		if (p == NULL)
			return -1;
		list->items = p;
		list->cap = cap;
	}
	kv = &list->items[list->n];
	kv->key = strdup(key);
	kv->value = strdup(value);
	kv->where = strdup(where);
	if (kv->key == NULL || kv->value == NULL || kv->where == NULL) {
		free(kv->key);
		free(kv->value);
		free(kv->where);
		return -1;
	}
	list->n++;
	return 0;
}

const char *
tally_opt_kvlist_get(const tally_opt_kvlist_t *list, const char *key)
{
	for (size_t i = list->n; i-- > 0;)
		if (strcmp(list->items[i].key, key) == 0)
			return list->items[i].value;
	return NULL;
}

void
tally_opt_kvlist_free(tally_opt_kvlist_t *list)
{
	for (size_t i = 0; i < list->n; i++) {
		free(list->items[i].key);
		free(list->items[i].value);
		free(list->items[i].where);
	}
	free(list->items);
	memset(list, 0, sizeof(*list));
}

static char *
trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n'))
		*--end = '\0';
	return s;
}

/* Unquote a "..." value in place. Returns NULL on an unterminated or trailing-junk quote. */
static char *
unquote(char *v)
{
	char *r = v + 1, *w = v;

	if (*v != '"')
		return v;
	for (; *r != '\0' && *r != '"'; r++) {
		if (*r == '\\' && (r[1] == '"' || r[1] == '\\'))
			r++;
		*w++ = *r;
	}
	if (*r != '"' || r[1] != '\0')
		return NULL;
	*w = '\0';
	return v;
}

static bool
has_prefix(const char *key, const char *const *prefixes)
{
	for (; prefixes != NULL && *prefixes != NULL; prefixes++)
		if (strncmp(key, *prefixes, strlen(*prefixes)) == 0 && key[strlen(*prefixes)] != '\0')
			return true;
	return false;
}

/*
 * Read one line (with its '\n', if any) into buf, NUL-terminated. fgets() cannot tell a NUL
 * byte from the line's end, so bytes are read one by one. @returns 0 at the end of the file,
 * 1 for a line, 2 for a line longer than size - 1 bytes; *nul_at is the 1-based column of the
 * first NUL byte, 0 if none.
 */
static int
read_line(FILE *f, char *buf, size_t size, size_t *nul_at)
{
	size_t len = 0;
	int c = EOF;

	*nul_at = 0;
	while (len + 1 < size && (c = getc(f)) != EOF) {
		if (c == '\0' && *nul_at == 0)
			*nul_at = len + 1;
		buf[len++] = (char)c;
		if (c == '\n')
			break;
	}
	buf[len] = '\0';
	if (len == 0)
		return 0;
	if (buf[len - 1] != '\n' && len + 1 == size) {
		/* Full: too long unless the file ends right here. */
		if ((c = getc(f)) != EOF) {
			ungetc(c, f);
			return 2;
		}
	}
	return 1;
}

int
tally_opt_parse_file(const tally_opt_t *tab, size_t n, void *conf, const char *path,
                     const char *const *prefixes, tally_opt_kvlist_t *extra, char *errstr,
                     size_t errstr_size)
{
	FILE *f = fopen(path, "r");
	char line[4096], why[256], where[512];
	unsigned *set_on = calloc(n, sizeof(unsigned));
	unsigned lineno = 0;
	size_t nul_at;
	int rc = -1, got;

	if (f == NULL || set_on == NULL) {
		fail(errstr, errstr_size, "could not open config file \"%s\": %s", path,
		     strerror(f == NULL ? errno : ENOMEM));
		goto out;
	}
	while ((got = read_line(f, line, sizeof(line), &nul_at)) != 0) {
		char *key, *value, *eq;
		const tally_opt_t *opt;

		lineno++;
		/* A config file is text: a NUL byte would silently cut the line short. */
		if (nul_at != 0) {
			fail(errstr, errstr_size, "%s:%u: NUL byte at column %zu", path, lineno, nul_at);
			goto out;
		}
		if (got == 2) {
			fail(errstr, errstr_size, "%s:%u: line longer than %zu bytes", path, lineno,
			     sizeof(line) - 1);
			goto out;
		}
		key = trim(line);
		if (*key == '\0' || *key == '#')
			continue;
		if ((eq = strchr(key, '=')) == NULL) {
			fail(errstr, errstr_size, "%s:%u: expected \"key = value\"", path, lineno);
			goto out;
		}
		*eq = '\0';
		key = trim(key);
		value = trim(eq + 1);
		if (*key == '\0') {
			fail(errstr, errstr_size, "%s:%u: missing key before \"=\"", path, lineno);
			goto out;
		}
		if ((value = unquote(value)) == NULL) {
			fail(errstr, errstr_size, "%s:%u: %s: unterminated quoted value", path, lineno, key);
			goto out;
		}
		snprintf(where, sizeof(where), "%s:%u", path, lineno);
		if (has_prefix(key, prefixes)) {
			if (tally_opt_kvlist_add(extra, key, value, where) != 0) {
				fail(errstr, errstr_size, "%s: out of memory", where);
				goto out;
			}
			continue;
		}
		if ((opt = tally_opt_find(tab, n, key)) == NULL) {
			fail(errstr, errstr_size, "%s: unknown key \"%s\"", where, key);
			goto out;
		}
		if (set_on[opt - tab] != 0) {
			fail(errstr, errstr_size, "%s: \"%s\" is already set on line %u", where, key,
			     set_on[opt - tab]);
			goto out;
		}
		set_on[opt - tab] = lineno;
		if (tally_opt_set(opt, conf, value, why, sizeof(why)) != 0) {
			fail(errstr, errstr_size, "%s: %s: %s", where, key, why);
			goto out;
		}
	}
	if (ferror(f)) {
		fail(errstr, errstr_size, "could not read config file \"%s\": %s", path, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (f != NULL)
		fclose(f);
	free(set_on);
	return rc;
}

/* ---- a program's whole configuration ------------------------------------------------- */

bool
tally_opt_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return true;
	return false;
}

int
tally_opt_load(const tally_opt_t *tab, size_t n, void *conf, int argc, char **argv,
               const char *const *prefixes, tally_opt_kvlist_t *extra, char *errstr,
               size_t errstr_size)
{
	const char *path = NULL;
	char **rest;
	int nrest = 1, rc = -1;

	if (tally_opt_defaults(tab, n, conf, errstr, errstr_size) != 0)
		return -1;
	for (int i = 1; i < argc; i++) {
		if (strncmp(argv[i], "--config=", 9) == 0)
			path = argv[i] + 9;
		else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			path = argv[++i];
	}
	if (path != NULL &&
	    tally_opt_parse_file(tab, n, conf, path, prefixes, extra, errstr, errstr_size) != 0)
		return -1;

	/* The table knows nothing of pass-through settings: take them out of argv first. */
	if ((rest = calloc((size_t)argc + 1, sizeof(*rest))) == NULL)
		return fail(errstr, errstr_size, "out of memory");
	rest[0] = argv[0];
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i], *eq, *value;
		char key[256];
		size_t len;

		if (strncmp(arg, "--", 2) != 0 || !has_prefix(arg + 2, prefixes)) {
			rest[nrest++] = argv[i];
			continue;
		}
		eq = strchr(arg, '=');
		len = eq != NULL ? (size_t)(eq - arg - 2) : strlen(arg + 2);
		if (len >= sizeof(key)) {
			fail(errstr, errstr_size, "unknown option \"%s\" (see --help)", arg);
			goto out;
		}
		memcpy(key, arg + 2, len);
		key[len] = '\0';
		if (eq != NULL) {
			value = eq + 1;
		} else if (i + 1 < argc) {
			value = argv[++i];
		} else {
			fail(errstr, errstr_size, "--%s: missing value", key);
			goto out;
		}
		if (tally_opt_kvlist_add(extra, key, value, "command line") != 0) {
			fail(errstr, errstr_size, "out of memory");
			goto out;
		}
	}
	rc = tally_opt_parse_argv(tab, n, conf, nrest, rest, errstr, errstr_size);
out:
	free(rest);
	return rc;
}

void
tally_app_error(const char *prog, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}
