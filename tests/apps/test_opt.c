/*
 * The option engine's config files (apps/common/opt.c), and tallyd reading one.
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conf.h"
#include "opt.h"
#include "testutil.h"

struct conf {
	uint64_t voters;
	double rate;
	bool quiet;
	char *name;
	char *prefix;
};

#define OFF(m) offsetof(struct conf, m)
static const tally_opt_t tab[] = {
	{"voters", TALLY_OPT_UINT, "10", 1, 1000, "voters", OFF(voters), "N"},
	{"rate", TALLY_OPT_DOUBLE, "0", 0, 1e9, "rate", OFF(rate), "F"},
	{"quiet", TALLY_OPT_FLAG, NULL, 0, 0, "quiet", OFF(quiet), NULL},
	{"name", TALLY_OPT_STRING, "ge", 0, 0, "name", OFF(name), "NAME"},
	{"prefix", TALLY_OPT_STRING, NULL, 0, 0, "prefix", OFF(prefix), "P"},
};
#define NTAB (sizeof(tab) / sizeof(tab[0]))
static const char *const prefixes[] = {"kafka.", "pg.", NULL};

static char path[64];

static const char *
write_conf_n(const char *text, size_t len)
{
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/tally-test-opt-%d.conf", (int)getpid());
	f = fopen(path, "w");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(text, 1, len, f), len);
	fclose(f);
	return path;
}

static const char *
write_conf(const char *text)
{
	return write_conf_n(text, strlen(text));
}

/* Parse len bytes of text (NULs included); returns the error ("" on success) with the temp
 * path replaced by "F". */
static const char *
parse_n(const char *text, size_t len, struct conf *c, tally_opt_kvlist_t *extra)
{
	static char err[512], out[512];
	char *at;

	tally_opt_free(tab, NTAB, c);
	memset(c, 0, sizeof(*c));
	cr_assert_eq(tally_opt_defaults(tab, NTAB, c, err, sizeof(err)), 0);
	err[0] = '\0';
	tally_opt_parse_file(tab, NTAB, c, write_conf_n(text, len), prefixes, extra, err, sizeof(err));
	unlink(path);
	if ((at = strstr(err, path)) != NULL) {
		snprintf(out, sizeof(out), "%.*sF%s", (int)(at - err), err, at + strlen(path));
		return out;
	}
	return err;
}

static const char *
parse(const char *text, struct conf *c, tally_opt_kvlist_t *extra)
{
	return parse_n(text, strlen(text), c, extra);
}

Test(opt_file, reads_values_comments_quotes_and_passthrough)
{
	tally_opt_kvlist_t extra = {0};
	struct conf c = {0};

	cr_assert_str_eq(parse("# an election\n\n  voters = 250\nrate=12.5\r\nquiet = on\n"
	                       "name = \"  By-election #2 \\\"North\\\" \"\n"
	                       "kafka.socket.timeout.ms = 1000\npg.connect_timeout=5\n"
	                       "kafka.socket.timeout.ms = 2000", &c, &extra), "");
	cr_assert_eq(c.voters, 250);
	cr_assert_eq(c.rate, 12.5);
	cr_assert(c.quiet);
	cr_assert_str_eq(c.name, "  By-election #2 \"North\" ");
	cr_assert_eq(extra.n, 3);
	cr_assert_str_eq(extra.items[0].key, "kafka.socket.timeout.ms");
	cr_assert_str_eq(extra.items[1].value, "5");
	cr_assert_str_eq(tally_opt_kvlist_get(&extra, "kafka.socket.timeout.ms"), "2000");
	cr_assert_null(tally_opt_kvlist_get(&extra, "kafka.nope"));
	cr_assert_eq(strcmp(extra.items[1].where + strlen(extra.items[1].where) - 2, ":8"), 0);
	tally_opt_kvlist_free(&extra);
	tally_opt_free(tab, NTAB, &c);
}

Test(opt_file, every_bad_line_names_file_and_line)
{
	tally_opt_kvlist_t extra = {0};
	struct conf c = {0};
	char longline[5000];

	cr_assert_str_eq(parse("voters = 5\nvotrs = 3\n", &c, &extra), "F:2: unknown key \"votrs\"");
	cr_assert_str_eq(parse("\n\nvoters 5\n", &c, &extra), "F:3: expected \"key = value\"");
	cr_assert_str_eq(parse("= 5\n", &c, &extra), "F:1: missing key before \"=\"");
	cr_assert_str_eq(parse("voters = 5\nrate = 1\nvoters = 6\n", &c, &extra),
	                 "F:3: \"voters\" is already set on line 1");
	cr_assert_str_eq(parse("voters = lots\n", &c, &extra),
	                 "F:1: voters: \"lots\" is not a whole number");
	cr_assert_str_eq(parse("voters = 5000\n", &c, &extra),
	                 "F:1: voters: 5000 is out of range (1 to 1000)");
	cr_assert_str_eq(parse("quiet = maybe\n", &c, &extra),
	                 "F:1: quiet: \"maybe\" is not true or false");
	cr_assert_str_eq(parse("name = \"open\n", &c, &extra), "F:1: name: unterminated quoted value");
	cr_assert_str_eq(parse("name = \"a\" b\n", &c, &extra), "F:1: name: unterminated quoted value");
	cr_assert_str_eq(parse("kafka. = 1\n", &c, &extra), "F:1: unknown key \"kafka.\"");
	memset(longline, 'x', sizeof(longline) - 2);
	longline[sizeof(longline) - 2] = '\n';
	longline[sizeof(longline) - 1] = '\0';
	cr_assert_str_eq(parse(longline, &c, &extra), "F:1: line longer than 4095 bytes");
	/* Exactly 4095 bytes with no newline at the end of the file is a whole line. */
	memcpy(longline, "name = ", 7);
	longline[4095] = '\0';
	cr_assert_str_eq(parse(longline, &c, &extra), "");
	cr_assert_eq(strlen(c.name), 4088);
	tally_opt_free(tab, NTAB, &c);
	tally_opt_kvlist_free(&extra);
}

Test(opt_file, a_nul_byte_is_named_as_such)
{
	static const char two[] = "voters = 250\nrate = 1\0002\nquiet = on\n";
	static const char first[] = "\000voters = 1\n";
	static const char comment[] = "voters = 1\n\n# a\000b\n";
	static const char last[] = "voters = 1\nname = x\000";
	tally_opt_kvlist_t extra = {0};
	struct conf c = {0};
	char longline[5000];

	cr_assert_str_eq(parse_n(two, sizeof(two) - 1, &c, &extra), "F:2: NUL byte at column 9");
	cr_assert_str_eq(parse_n(first, sizeof(first) - 1, &c, &extra), "F:1: NUL byte at column 1");
	cr_assert_str_eq(parse_n(comment, sizeof(comment) - 1, &c, &extra),
	                 "F:3: NUL byte at column 4");
	cr_assert_str_eq(parse_n(last, sizeof(last) - 1, &c, &extra), "F:2: NUL byte at column 9");
	/* A NUL in a long line is named before the length. */
	memset(longline, 'x', sizeof(longline));
	longline[10] = '\0';
	cr_assert_str_eq(parse_n(longline, sizeof(longline), &c, &extra), "F:1: NUL byte at column 11");
	tally_opt_free(tab, NTAB, &c);
	tally_opt_kvlist_free(&extra);
}

Test(opt_file, a_missing_file_is_an_error)
{
	struct conf c = {0};
	char err[256];

	cr_assert_eq(tally_opt_parse_file(tab, NTAB, &c, "/nonexistent/tally.conf", prefixes, NULL,
	                                  err, sizeof(err)), -1);
	cr_assert_str_eq(err, "could not open config file \"/nonexistent/tally.conf\": "
	                      "No such file or directory");
}


static int
run(const char *args, char *out, size_t size)
{
	char cmd[PATH_MAX + 512];
	FILE *p;
	size_t n;

	snprintf(cmd, sizeof(cmd), "%s %s 2>&1", test_program_path("tallyd"), args);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	n = fread(out, 1, size - 1, p);
	out[n] = '\0';
	return WEXITSTATUS(pclose(p));
}

Test(tallyd_config, file_then_command_line)
{
	char args[256], out[8192];
	const char *conf = write_conf("voters = 3000\nseed = 5\nquiet = true\n"
	                              "kafka.bootstrap.servers = 127.0.0.1:1\n");

	/* The command line wins over the file: 2000 voters, not 3000. */
	snprintf(args, sizeof(args), "--simulate --config %s --voters 2000", conf);
	cr_assert_eq(run(args, out, sizeof(out)), 0, "%s", out);
	cr_assert_not_null(strstr(out, "result: all "), "%s", out);
	snprintf(args, sizeof(args), "--simulate --config=%s", conf);
	cr_assert_eq(run(args, out, sizeof(out)), 0, "%s", out);
	write_conf("voters = 3000\nturnout = 2\n");
	snprintf(args, sizeof(args), "--simulate --config %s", path);
	cr_assert_eq(run(args, out, sizeof(out)), 2);
	snprintf(args, sizeof(args), "tallyd: %s:2: turnout: 2 is out of range (0 to 1)\n", path);
	cr_assert_str_eq(out, args);
	unlink(path);
}

Test(opt_file, an_empty_string_without_default_is_unset)
{
	tally_opt_kvlist_t extra = {0};
	struct conf c = {0};
	char err[256];
	char *argv[] = {"prog", "--prefix=", NULL};

	cr_assert_str_eq(parse("prefix = p_\n", &c, &extra), "");
	cr_assert_str_eq(c.prefix, "p_");
	/* No default: empty is the default, unset. */
	cr_assert_str_eq(parse("prefix =\n", &c, &extra), "");
	cr_assert_null(c.prefix);
	cr_assert_str_eq(parse("prefix = \"\"\n", &c, &extra), "");
	cr_assert_null(c.prefix);
	/* A default: empty is a value like any other. */
	cr_assert_str_eq(parse("name =\n", &c, &extra), "");
	cr_assert_str_eq(c.name, "");
	cr_assert_eq(tally_opt_set(&tab[4], &c, "x", err, sizeof(err)), 0);
	cr_assert_eq(tally_opt_parse_argv(tab, NTAB, &c, 2, argv, err, sizeof(err)), 0, "%s", err);
	cr_assert_null(c.prefix);
	tally_opt_free(tab, NTAB, &c);
	tally_opt_kvlist_free(&extra);
}

/* What tally_opt_print_conf() writes, as a string (malloc'd). */
static char *
print_conf(const tally_opt_t *t, size_t n, const char *title)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	cr_assert_not_null(f);
	tally_opt_print_conf(f, t, n, title);
	cr_assert_eq(fclose(f), 0);
	return text;
}

Test(opt_conf, every_option_commented_at_its_default)
{
	static const tally_opt_t more[] = {
		{"seed", TALLY_OPT_UINT, NULL, TALLY_OPT_UNBOUNDED, "seed", 0, "N"},
		{"label", TALLY_OPT_STRING, " spaced \"x\" ", 0, 0,
		 "a long description that goes on and on so that it has to be wrapped onto a second "
		 "line of the comment", 0, NULL},
	};
	char *text = print_conf(tab, NTAB, "t.conf: a title\n\nsecond paragraph");

	cr_assert_str_eq(text, "# t.conf: a title\n"
	                       "#\n"
	                       "# second paragraph\n"
	                       "\n"
	                       "# voters\n"
	                       "# (N: a whole number, 1 to 1000)\n"
	                       "#voters = 10\n"
	                       "\n"
	                       "# rate\n"
	                       "# (F: a number, 0 to 1000000000)\n"
	                       "#rate = 0\n"
	                       "\n"
	                       "# quiet\n"
	                       "# (true or false)\n"
	                       "#quiet = false\n"
	                       "\n"
	                       "# name\n"
	                       "# (NAME: text)\n"
	                       "#name = ge\n"
	                       "\n"
	                       "# prefix\n"
	                       "# (P: text; not set by default)\n"
	                       "#prefix =\n");
	free(text);
	text = print_conf(more, 2, NULL);
	cr_assert_str_eq(text, "# seed\n"
	                       "# (N: a whole number)\n"
	                       "#seed = 0\n"
	                       "\n"
	                       "# a long description that goes on and on so that it has to be wrapped onto a\n"
	                       "# second line of the comment\n"
	                       "# (VALUE: text)\n"
	                       "#label = \" spaced \\\"x\\\" \"\n");
	free(text);
}

/* Every member an option of tallyd_opts sets is the same in a and b. */
static void
assert_same_settings(const tallyd_conf_t *a, const tallyd_conf_t *b)
{
	for (size_t i = 0; i < tallyd_nopts; i++) {
		const tally_opt_t *opt = &tallyd_opts[i];
		const char *pa = (const char *)a + opt->offset, *pb = (const char *)b + opt->offset;

		switch (opt->type) {
		case TALLY_OPT_FLAG:
			cr_assert_eq(*(const bool *)pa, *(const bool *)pb, "%s", opt->name);
			break;
		case TALLY_OPT_UINT:
			cr_assert_eq(*(const uint64_t *)pa, *(const uint64_t *)pb, "%s", opt->name);
			break;
		case TALLY_OPT_DOUBLE:
			cr_assert_eq(*(const double *)pa, *(const double *)pb, "%s", opt->name);
			break;
		case TALLY_OPT_STRING: {
			const char *sa = *(char *const *)pa, *sb = *(char *const *)pb;

			cr_assert((sa == NULL) == (sb == NULL), "%s: %s against %s", opt->name,
			          sa ? sa : "unset", sb ? sb : "unset");
			if (sa != NULL)
				cr_assert_str_eq(sa, sb, "%s", opt->name);
			break;
		}
		}
	}
}

Test(tallyd_config, the_example_has_every_option_once_and_reads_back_to_the_defaults)
{
	char *text = print_conf(tallyd_opts, tallyd_nopts, NULL), *line, *save = NULL, err[512];
	char *uncommented = calloc(1, strlen(text) + 1), *w = uncommented;
	unsigned *seen = calloc(tallyd_nopts, sizeof(unsigned));
	tallyd_conf_t defaults, read;
	size_t settings = 0;

	cr_assert_not_null(uncommented);
	cr_assert_not_null(seen);
	for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "# ", 2) == 0 || strcmp(line, "#") == 0)
			continue;
		/* Anything else is a setting: '#', an option's name, " =". */
		cr_assert_eq(line[0], '#', "%s", line);
		{
			const char *eq = strstr(line, " =");
			char name[64];
			const tally_opt_t *opt;

			cr_assert_not_null(eq, "%s", line);
			snprintf(name, sizeof(name), "%.*s", (int)(eq - line - 1), line + 1);
			opt = tally_opt_find(tallyd_opts, tallyd_nopts, name);
			cr_assert_not_null(opt, "not an option: %s", line);
			seen[opt - tallyd_opts]++;
		}
		settings++;
		w += sprintf(w, "%s\n", line + 1);
	}
	for (size_t i = 0; i < tallyd_nopts; i++)
		cr_assert_eq(seen[i], 1, "\"%s\" is set on %u lines", tallyd_opts[i].name, seen[i]);
	cr_assert_eq(settings, tallyd_nopts);

	/* Uncommented, it reads back to exactly the defaults, with nothing passed through. */
	memset(&defaults, 0, sizeof(defaults));
	memset(&read, 0, sizeof(read));
	cr_assert_eq(tally_opt_defaults(tallyd_opts, tallyd_nopts, &defaults, err, sizeof(err)), 0);
	cr_assert_eq(tally_opt_defaults(tallyd_opts, tallyd_nopts, &read, err, sizeof(err)), 0);
	cr_assert_eq(tally_opt_parse_file(tallyd_opts, tallyd_nopts, &read, write_conf(uncommented),
	                                  tallyd_passthrough, &read.passthrough, err, sizeof(err)),
	             0, "%s", err);
	unlink(path);
	cr_assert_eq(read.passthrough.n, 0);
	assert_same_settings(&read, &defaults);
	tallyd_conf_free(&read);
	tallyd_conf_free(&defaults);
	free(seen);
	free(uncommented);
	free(text);
}

Test(tallyd_config, print_config_prints_the_table)
{
	char *body = print_conf(tallyd_opts, tallyd_nopts, NULL);
	static char out[65536];
	size_t n = strlen(body);
	int rc = run("--print-config --voters nonsense", out, sizeof(out));
	size_t got = strlen(out);

	/* The title, a blank line, then the table's part as tally_opt_print_conf() prints it. */
	cr_assert_eq(rc, 0, "%s", out);
	cr_assert_eq(strncmp(out, "# tally.conf: tallyd's settings", 31), 0, "%s", out);
	cr_assert_gt(got, n + 2);
	cr_assert_str_eq(out + got - n, body);
	cr_assert_eq(out[got - n - 1], '\n');
	cr_assert_eq(out[got - n - 2], '\n');
	free(body);
}
