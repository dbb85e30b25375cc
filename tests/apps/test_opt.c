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

#include "opt.h"
#include "testutil.h"

struct conf {
	uint64_t voters;
	double rate;
	bool quiet;
	char *name;
};

#define OFF(m) offsetof(struct conf, m)
static const tally_opt_t tab[] = {
	{"voters", TALLY_OPT_UINT, "10", 1, 1000, "voters", OFF(voters), "N"},
	{"rate", TALLY_OPT_DOUBLE, "0", 0, 1e9, "rate", OFF(rate), "F"},
	{"quiet", TALLY_OPT_FLAG, NULL, 0, 0, "quiet", OFF(quiet), NULL},
	{"name", TALLY_OPT_STRING, "ge", 0, 0, "name", OFF(name), "NAME"},
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
