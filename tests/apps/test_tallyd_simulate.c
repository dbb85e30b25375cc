/*
 * tallyd --simulate end to end: the program (build/bin/tallyd, next to this test's
 * build/tests/) runs whole elections with several seeds and fault mixes, and must end with
 * every figure matching the generator's ground truth; bad options fail with exact messages;
 * SIGINT stops it cleanly with what was sent still checked.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <tally/vote.h>
#include "testutil.h"

#define OUT_MAX (1u << 20)

typedef struct run {
	int status;               /* exit code, or 128 + signal */
	char out[OUT_MAX];
	char err[OUT_MAX];
	double seconds;
} run_t;

static run_t result;


static void
slurp(int fd, char *buf, size_t size)
{
	size_t len = 0;
	ssize_t n;

	while (len + 1 < size && (n = read(fd, buf + len, size - 1 - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		cr_assert_gt(n, 0);
		len += (size_t)n;
	}
	buf[len] = '\0';
}


/* Start tallyd with args (NULL-terminated), its stdout and stderr on pipes (*out, *err). */
static pid_t
spawn_tallyd(const char *const *args, int *out_fd, int *err_fd)
{
	const char *argv[64];
	int out[2], err[2];
	size_t n = 0;
	pid_t pid;

	argv[n++] = test_program_path("tallyd");
	for (; *args != NULL; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	cr_assert_eq(pipe(out), 0);
	cr_assert_eq(pipe(err), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		dup2(out[1], STDOUT_FILENO);
		dup2(err[1], STDERR_FILENO);
		close(out[0]);
		close(out[1]);
		close(err[0]);
		close(err[1]);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(out[1]);
	close(err[1]);
	*out_fd = out[0];
	*err_fd = err[0];
	return pid;
}

/*
 * Run tallyd with args (NULL-terminated). If sigint_after is set, wait until stdout has
 * shown that line, sleep 0.3 s and send SIGINT.
 */
static run_t *
run_tallyd(const char *const *args, const char *sigint_after)
{
	int out, err, status;
	size_t len = 0;
	double t0 = test_now_s();
	pid_t pid = spawn_tallyd(args, &out, &err);

	memset(&result, 0, sizeof(result));
	if (sigint_after != NULL) {
		while (strstr(result.out, sigint_after) == NULL) {
			ssize_t k = read(out, result.out + len, OUT_MAX - 1 - len);

			cr_assert_gt(k, 0, "tallyd ended before printing \"%s\"", sigint_after);
			len += (size_t)k;
			result.out[len] = '\0';
		}
		usleep(300000);
		kill(pid, SIGINT);
	}
	slurp(out, result.out + len, OUT_MAX - len);
	/* stderr is small: tallyd writes to it only on errors. */
	slurp(err, result.err, OUT_MAX);
	close(out);
	close(err);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	result.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	result.seconds = test_now_s() - t0;
	return &result;
}

static const char *
last_line(const char *out)
{
	static char line[512];
	size_t len = strlen(out);
	const char *start;

	if (len > 0 && out[len - 1] == '\n')
		len--;
	start = out + len;
	while (start > out && start[-1] != '\n')
		start--;
	snprintf(line, sizeof(line), "%.*s", (int)(out + len - start), start);
	return line;
}

/* C + P + 2R (votes and registered per region) + C*R + one per rejection reason + 4
 * totals + 3 counts of registered things + 1 snapshot consistency check. */
static unsigned
figures(unsigned c, unsigned p, unsigned r)
{
	return c + p + 2 * r + c * r + (TALLY_REASON__COUNT - 1) + 4 + 3 + 1;
}

static void
assert_all_match(const run_t *run, unsigned nfigures)
{
	char want[128];

	snprintf(want, sizeof(want), "result: all %u figures match the ground truth", nfigures);
	cr_assert_str_eq(last_line(run->out), want, "stdout:\n%s\nstderr:\n%s", run->out, run->err);
	cr_assert_eq(run->status, 0, "stderr: %s", run->err);
	cr_assert_null(strstr(run->out, "mismatch"));
	cr_assert_str_eq(run->err, "");
}

Test(tallyd, quiet_default_election)
{
	const char *args[] = {"--simulate", "--voters", "20000", "--quiet", NULL};
	run_t *run = run_tallyd(args, NULL);

	assert_all_match(run, figures(3, 3, 20));
	/* Quiet: nothing but the verdict. */
	cr_assert_str_eq(run->out, "result: all 123 figures match the ground truth\n");
}

Test(tallyd, results_tables)
{
	const char *args[] = {"--simulate", "--voters", "20000", "--seed", "5", NULL};
	run_t *run = run_tallyd(args, NULL);

	assert_all_match(run, figures(3, 3, 20));
	cr_assert(strncmp(run->out,
	                  "registered 3 parties, 3 candidates and 20,000 voters in 20 regions (", 68) ==
	          0, "%s", run->out);
	/* The election is named by --election-id, "general" by default. */
	cr_assert_not_null(strstr(run->out, "\nresults of election \"general\" (closed; polls closed at "
	                                    "2026-05-07 22:00:00 UTC)\n"));
	cr_assert_not_null(strstr(run->out, "\ncandidate "));
	cr_assert_not_null(strstr(run->out, "\nManagement Party "));
	cr_assert_not_null(strstr(run->out, "\nTech Republic Party "));
	cr_assert_not_null(strstr(run->out, "\nGreater London "));
	cr_assert_not_null(strstr(run->out, "\nduplicate "));
	cr_assert_not_null(strstr(run->out, "\nchecking every figure against the generator's "
	                                    "ground truth\n"));
	/* Off a terminal: no escape sequences. */
	cr_assert_null(strchr(run->out, '\033'));
}

Test(tallyd, heavy_faults_compact_many_threads)
{
	const char *args[] = {"--simulate", "--seed", "7", "--voters", "30000", "--compact",
	                      "--producers", "3", "--workers", "3", "--underage", "0.05",
	                      "--dup-rate", "0.1", "--malformed-rate", "0.05", "--unknown-rate", "0.05",
	                      "--unknown-candidate-rate", "0.05", "--late-rate", "0.05",
	                      "--early-rate", "0.05", "--ineligible-rate", "0.05", "--quiet", NULL};

	assert_all_match(run_tallyd(args, NULL), figures(3, 3, 20));
}

Test(tallyd, many_candidates_parties_regions_from_json)
{
	const char *args[] = {"--simulate", "--seed", "42", "--voters", "5000", "--candidates", "7",
	                      "--parties", "5", "--regions", "80", "--register-json", "--quiet", NULL};

	assert_all_match(run_tallyd(args, NULL), figures(7, 5, 80));
}

Test(tallyd, no_faults_everyone_votes)
{
	const char *args[] = {"--simulate", "--seed", "3", "--voters", "10000", "--turnout", "1",
	                      "--underage", "0", "--dup-rate", "0", "--malformed-rate", "0",
	                      "--unknown-rate", "0", "--unknown-candidate-rate", "0", "--late-rate",
	                      "0", "--early-rate", "0", "--ineligible-rate", "0", NULL};
	run_t *run = run_tallyd(args, NULL);

	assert_all_match(run, figures(3, 3, 20));
	cr_assert_not_null(strstr(run->out, "\nread 10,000, accepted 10,000, rejected 0, registered "
	                                    "10,000, turnout 100.0%\n"), "%s", run->out);
}

Test(tallyd, one_worker_four_producers_many_duplicates)
{
	const char *args[] = {"--simulate", "--seed", "9", "--voters", "10000", "--workers", "1",
	                      "--producers", "4", "--dup-rate", "0.3", "--quiet", NULL};

	assert_all_match(run_tallyd(args, NULL), figures(3, 3, 20));
}

Test(tallyd, tiny_election)
{
	const char *args[] = {"--simulate", "--seed", "11", "--voters", "3", "--candidates", "1",
	                      "--parties", "1", "--regions", "1", "--quiet", NULL};

	assert_all_match(run_tallyd(args, NULL), figures(1, 1, 1));
}

Test(tallyd, paced)
{
	/* About 3,300 messages at 20,000 a second: at least 0.15 s. */
	const char *args[] = {"--simulate", "--seed", "2", "--voters", "5000", "--rate", "20000",
	                      "--quiet", NULL};
	run_t *run = run_tallyd(args, NULL);

	assert_all_match(run, figures(3, 3, 20));
	cr_assert_geq(run->seconds, 0.15);
}

Test(tallyd, sigint_stops_cleanly_and_still_checks)
{
	const char *args[] = {"--simulate", "--seed", "4", "--voters", "200000", "--rate", "20000",
	                      NULL};
	run_t *run = run_tallyd(args, "polls open:");

	cr_assert_eq(run->status, 130, "stdout:\n%s\nstderr:\n%s", run->out, run->err);
	cr_assert_str_eq(last_line(run->out), "result: all 123 figures match the ground truth");
	cr_assert_not_null(strstr(run->out, "\ninterrupted: only the votes sent before Ctrl-C were "
	                                    "counted and checked\n"));
	/* Stopped long before the 6 s the whole stream takes at this rate. */
	cr_assert_lt(run->seconds, 5.0);
}

static void
assert_usage_error(const char *const *args, const char *message)
{
	run_t *run = run_tallyd(args, NULL);

	cr_assert_eq(run->status, 2, "stderr: %s", run->err);
	cr_assert_str_eq(run->err, message);
	cr_assert_str_eq(run->out, "");
}

/* As assert_usage_error(), for a timestamped server log line holding message. */
static void
assert_usage_error_contains(const char *const *args, const char *message)
{
	run_t *run = run_tallyd(args, NULL);

	cr_assert_eq(run->status, 2, "stderr: %s", run->err);
	cr_assert_not_null(strstr(run->err, message), "stderr: %s", run->err);
	cr_assert_str_eq(run->out, "");
}

Test(tallyd, bad_options)
{
	{
		const char *a[] = {"--simulate", "--voters", "0", NULL};
		assert_usage_error(a, "tallyd: --voters: 0 is out of range (1 to 1000000000)\n");
	}
	{
		const char *a[] = {"--simulate", "--voters", "-5", NULL};
		assert_usage_error(a, "tallyd: --voters: \"-5\" is not a whole number\n");
	}
	{
		const char *a[] = {"--simulate", "--voters=12x", NULL};
		assert_usage_error(a, "tallyd: --voters: \"12x\" is not a whole number\n");
	}
	{
		const char *a[] = {"--simulate", "--turnout", "abc", NULL};
		assert_usage_error(a, "tallyd: --turnout: \"abc\" is not a number\n");
	}
	{
		const char *a[] = {"--simulate", "--turnout", "1.5", NULL};
		assert_usage_error(a, "tallyd: --turnout: 1.5 is out of range (0 to 1)\n");
	}
	{
		const char *a[] = {"--simulate", "--candidates", "257", NULL};
		assert_usage_error(a, "tallyd: --candidates: 257 is out of range (1 to 256)\n");
	}
	{
		const char *a[] = {"--simulate", "--seed", NULL};
		assert_usage_error(a, "tallyd: --seed: missing value\n");
	}
	{
		const char *a[] = {"--simulate", "--bogus", NULL};
		assert_usage_error(a, "tallyd: unknown option \"--bogus\" (see --help)\n");
	}
	{
		const char *a[] = {"--simulate", "stray", NULL};
		assert_usage_error(a, "tallyd: unexpected argument \"stray\" (see --help)\n");
	}
	{
		const char *a[] = {"--simulate", "--compact=maybe", NULL};
		assert_usage_error(a, "tallyd: --compact: \"maybe\" is not true or false\n");
	}
	{
		const char *a[] = {"--simulate", "--dup-rate", "0.5", "--malformed-rate", "0.5", NULL};
		assert_usage_error(a, "tallyd: the --*-rate options add up to 1.013; they must add up "
		                      "to less than 0.9\n");
	}
	{
		const char *a[] = {"--simulate", "--underage", "0", NULL};
		assert_usage_error(a, "tallyd: --ineligible-rate 0.002 needs voters under 18, but "
		                      "--underage is 0\n");
	}
	{
		const char *a[] = {"--simulate", "--election-id",
		                   "a-name-of-sixty-four-bytes-for-an-election-id-which-is-too-long!", NULL};
		assert_usage_error(a, "tallyd: --election-id: \"a-name-of-sixty-four...\" is longer than "
		                      "63 bytes\n");
	}
	{
		const char *a[] = {"--simulate", "--election-id", "", NULL};
		assert_usage_error(a, "tallyd: --election-id: the election needs a name\n");
	}
	{
		/* Server mode with nothing to count into fails at once instead of waiting. */
		const char *a[] = {"--voters", "10", NULL};
		char *dsn = getenv("TALLY_PG_DSN") != NULL ? strdup(getenv("TALLY_PG_DSN")) : NULL;

		unsetenv("TALLY_PG_DSN");
		assert_usage_error_contains(a, "no PostgreSQL to count into: set TALLY_PG_DSN");
		if (dsn != NULL)
			setenv("TALLY_PG_DSN", dsn, 1);
		free(dsn);
	}
}

Test(tallyd, help)
{
	const char *args[] = {"--simulate", "--voters", "bad", "--help", NULL};
	run_t *run = run_tallyd(args, NULL);

	cr_assert_eq(run->status, 0);
	cr_assert_str_eq(run->err, "");
	cr_assert(strncmp(run->out, "usage: tallyd [options]", 23) == 0, "%s", run->out);
	cr_assert_not_null(strstr(run->out, "\n       tallyd --simulate [options]"));
	cr_assert_not_null(strstr(run->out, "\n  --checkpoint.interval.ms MS "), "%s", run->out);
	cr_assert_not_null(strstr(run->out, "\n  --voters N                 registered voters "
	                                    "(default 100000; 1 to 1000000000)\n"), "%s", run->out);
	cr_assert_not_null(strstr(run->out, "\n  --seed N "));
	cr_assert_not_null(strstr(run->out, "\n  --compact "));
	cr_assert_not_null(strstr(run->out, "\n  --rate VOTES_PER_S "));
	cr_assert_not_null(strstr(run->out, "\n  --help "));
}

/* ---- --simulate --http: the election's name and admin actions --------------------------------- */

typedef struct live {
	pid_t pid;
	int out, err;                 /* the child's stdout and stderr */
	char obuf[65536], ebuf[65536];
	size_t olen, elen;
	unsigned port;
} live_t;

static void
live_start(live_t *l, const char *const *args)
{
	memset(l, 0, sizeof(*l));
	l->pid = spawn_tallyd(args, &l->out, &l->err);
}

/* Read the child's stdout and stderr until one of them (want_err picks) holds needle. */
static void
live_wait(live_t *l, bool want_err, const char *needle)
{
	double t0 = test_now_s();

	for (;;) {
		struct pollfd p[2] = {{.fd = l->out, .events = POLLIN}, {.fd = l->err, .events = POLLIN}};

		if (strstr(want_err ? l->ebuf : l->obuf, needle) != NULL)
			return;
		cr_assert_lt(test_now_s() - t0, 30.0, "no \"%s\"; stdout:\n%s\nstderr:\n%s", needle,
		             l->obuf, l->ebuf);
		if (poll(p, 2, 100) <= 0)
			continue;
		for (int i = 0; i < 2; i++) {
			char *buf = i == 0 ? l->obuf : l->ebuf;
			size_t *len = i == 0 ? &l->olen : &l->elen;
			ssize_t k;

			if ((p[i].revents & (POLLIN | POLLHUP)) == 0)
				continue;
			k = read(p[i].fd, buf + *len, sizeof(l->obuf) - 1 - *len);
			cr_assert_gt(k, 0, "tallyd ended before \"%s\"; stdout:\n%s\nstderr:\n%s", needle,
			             l->obuf, l->ebuf);
			*len += (size_t)k;
			buf[*len] = '\0';
		}
	}
}

/* Stop the child with SIGTERM; its exit status (or 128 + signal), every output read. */
static int
live_stop(live_t *l)
{
	int status;

	kill(l->pid, SIGTERM);
	slurp(l->out, l->obuf + l->olen, sizeof(l->obuf) - l->olen);
	slurp(l->err, l->ebuf + l->elen, sizeof(l->ebuf) - l->elen);
	close(l->out);
	close(l->err);
	cr_assert_eq(waitpid(l->pid, &status, 0), l->pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* One request to 127.0.0.1:port (Connection: close); @returns the status, body in body. */
static int
http_do(unsigned port, const char *method, const char *path, const char *token, char *body,
        size_t size)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	char req[512], resp[65536];
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	size_t n = 0;
	ssize_t k;
	const char *b;

	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "connect: %s", strerror(errno));
	snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s%s%s"
	         "Content-Length: 0\r\n\r\n", method, path, token ? "Authorization: Bearer " : "",
	         token ? token : "", token ? "\r\n" : "");
	cr_assert_eq(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
	while (n + 1 < sizeof(resp) && (k = recv(fd, resp + n, sizeof(resp) - 1 - n, 0)) > 0)
		n += (size_t)k;
	resp[n] = '\0';
	close(fd);
	cr_assert(strncmp(resp, "HTTP/1.1 ", 9) == 0, "no answer: %s", resp);
	b = strstr(resp, "\r\n\r\n");
	snprintf(body, size, "%s", b != NULL ? b + 4 : "");
	return (int)strtol(resp + 9, NULL, 10);
}

Test(tallyd, simulate_admin_over_http, .timeout = 120)
{
	const char *args[] = {"--simulate", "--seed", "6", "--voters", "100000", "--rate", "5000",
	                      "--quiet", "--http", "127.0.0.1:0", "--admin-token", "s3cret-token",
	                      "--election-id", "by-2026-north", NULL};
	const char *port_at;
	char body[8192];
	live_t l;

	live_start(&l, args);
	/* The whole line, so the port is there to read (and admin is on). */
	live_wait(&l, true, "; admin actions on)\n");
	port_at = strstr(l.ebuf, "(port ");
	cr_assert_not_null(port_at, "%s", l.ebuf);
	l.port = (unsigned)strtoul(port_at + 6, NULL, 10);
	cr_assert_null(strstr(l.ebuf, "s3cret-token"), "the token was logged: %s", l.ebuf);

	/* Counting, under the name given (served from before the polls open, so wait for it). */
	{
		double t0 = test_now_s();

		do {
			cr_assert_lt(test_now_s() - t0, 10.0, "the polls never showed open: %s", body);
			cr_assert_eq(http_do(l.port, "GET", "/api/results", NULL, body, sizeof(body)), 200);
		} while (strstr(body, "\"status\":\"scheduled\"") != NULL && usleep(20000) == 0);
		cr_assert(strncmp(body, "{\"election\":{\"id\":\"by-2026-north\",\"status\":\"open\",", 50) ==
		          0, "%s", body);
	}
	/* Admin: the token is needed; open is refused (the polls opened at start). */
	cr_assert_eq(http_do(l.port, "POST", "/api/election/close", NULL, body, sizeof(body)), 401);
	cr_assert_eq(http_do(l.port, "POST", "/api/election/close", "s3cret-tokem", body, sizeof(body)),
	             401);
	cr_assert_eq(http_do(l.port, "POST", "/api/election/open", "s3cret-token", body, sizeof(body)),
	             409);
	cr_assert_str_eq(body, "{\"error\":\"the election is not scheduled\"}\n");
	/* Close: the producers stop, what was sent is counted, then the polls close. */
	cr_assert_eq(http_do(l.port, "POST", "/api/election/close", "s3cret-token", body, sizeof(body)),
	             200, "%s", body);
	cr_assert(strncmp(body, "{\"election\":{\"id\":\"by-2026-north\",\"status\":\"closed\",", 52) == 0,
	          "%s", body);
	live_wait(&l, false, "serving the final results over http until SIGTERM or Ctrl-C\n");
	cr_assert_str_eq(l.obuf, "closed over http: only the votes sent before the close were counted "
	                         "and checked\n"
	                         "result: all 123 figures match the ground truth\n"
	                         "serving the final results over http until SIGTERM or Ctrl-C\n");
	cr_assert_eq(http_do(l.port, "GET", "/api/results", NULL, body, sizeof(body)), 200);
	cr_assert(strncmp(body, "{\"election\":{\"id\":\"by-2026-north\",\"status\":\"closed\",", 52) == 0,
	          "%s", body);
	/* Closed is closed; open is still refused, now by the core on the main thread. */
	cr_assert_eq(http_do(l.port, "POST", "/api/election/close", "s3cret-token", body, sizeof(body)),
	             409);
	cr_assert_str_eq(body, "{\"error\":\"the election is not open\"}\n");
	cr_assert_eq(http_do(l.port, "POST", "/api/election/open", "s3cret-token", body, sizeof(body)),
	             409);
	cr_assert_str_eq(body, "{\"error\":\"the election is not scheduled\"}\n");
	cr_assert_eq(live_stop(&l), 0, "stdout:\n%s\nstderr:\n%s", l.obuf, l.ebuf);
	cr_assert_not_null(strstr(l.ebuf, "http: election closed by an admin request\n"), "%s", l.ebuf);
}

Test(tallyd, simulate_http_without_token_and_named, .timeout = 120)
{
	const char *args[] = {"--simulate", "--seed", "5", "--voters", "2000", "--http", "127.0.0.1:0",
	                      "--election-id", "by-2026-north", NULL};
	const char *port_at;
	char body[8192];
	live_t l;

	/* The election's name in the printed results too. */
	live_start(&l, args);
	live_wait(&l, false, "serving the final results over http until SIGTERM or Ctrl-C\n");
	cr_assert_not_null(strstr(l.obuf, "\nresults of election \"by-2026-north\" (closed; polls "
	                                  "closed at 2026-05-07 22:00:00 UTC)\n"), "%s", l.obuf);
	cr_assert_not_null(strstr(l.obuf, "\nresult: all 123 figures match the ground truth\n"));
	port_at = strstr(l.ebuf, "(port ");
	cr_assert_not_null(port_at, "%s", l.ebuf);
	l.port = (unsigned)strtoul(port_at + 6, NULL, 10);
	cr_assert_not_null(strstr(l.ebuf, "; admin actions off)\n"), "%s", l.ebuf);
	/* No token: admin actions are off. */
	cr_assert_eq(http_do(l.port, "POST", "/api/election/open", "anything", body, sizeof(body)), 403);
	cr_assert_str_eq(body, "{\"error\":\"admin actions are disabled\"}\n");
	cr_assert_eq(live_stop(&l), 0, "stdout:\n%s\nstderr:\n%s", l.obuf, l.ebuf);
}

/*
 * 650 constituencies (a region each) with candidates from 8 parties, wrong-contest faults
 * and the full vote shape: every figure matches, now also each contest's votes, leader
 * (or tie) and declaration, and each party's seats. The figures: C + P + 2R, each
 * candidate's own region (C), the reasons, 4 totals, 3 counts, 1 consistency check, 3
 * per contest and P seats.
 */
Test(tallyd, contests_650_constituencies)
{
	const char *args[] = {"--simulate", "--seed", "5", "--voters", "60000", "--regions", "650",
	                      "--parties", "8", "--contests", "650", "--wrong-contest-rate", "0.01",
	                      NULL};
	run_t *run = run_tallyd(args, NULL);
	const char *at = strstr(run->out, "registered 8 parties, ");
	unsigned c = at != NULL ? (unsigned)strtoul(at + strlen("registered 8 parties, "), NULL, 10)
	                        : 0;
	char want[128];

	cr_assert_gt(c, 650 * 3, "%s", run->out);
	snprintf(want, sizeof(want), "\nconstituency: 650 contests, 650 declared, ");
	cr_assert_not_null(strstr(run->out, want), "%s", run->out);
	cr_assert_not_null(strstr(run->out, "\nreport: unofficial-complete\n"), "%s", run->out);
	cr_assert_not_null(strstr(run->out, "\nthe 20 closest contests\n"), "%s", run->out);
	at = strstr(run->out, "\nwrong_contest ");
	cr_assert_not_null(at, "%s", run->out);
	cr_assert_gt(strtoul(at + strlen("\nwrong_contest "), NULL, 10), 0, "%s", run->out);
	assert_all_match(run, c + 8 + 2 * 650 + c + (TALLY_REASON__COUNT - 1) + 4 + 3 + 1 +
	                          3 * 650 + 8);
}

/* Fewer contests than regions: region r in constituency r % 7. */
Test(tallyd, contests_grouping_regions)
{
	const char *args[] = {"--simulate", "--seed", "8", "--voters", "20000", "--regions", "30",
	                      "--parties", "4", "--contests", "7", "--wrong-contest-rate", "0.02",
	                      "--compact", "--quiet", NULL};
	run_t *run = run_tallyd(args, NULL);
	const char *last = last_line(run->out);

	cr_assert_eq(run->status, 0, "%s\n%s", run->out, run->err);
	cr_assert(strncmp(last, "result: all ", 12) == 0, "%s", run->out);
	cr_assert_not_null(strstr(last, " figures match the ground truth"), "%s", run->out);
}

Test(tallyd, contests_options_are_checked)
{
	const char *more[] = {"--simulate", "--regions", "5", "--contests", "6", "--quiet", NULL};
	const char *wrong[] = {"--simulate", "--contests", "1", "--wrong-contest-rate", "0.1",
	                       "--quiet", NULL};
	run_t *run = run_tallyd(more, NULL);

	cr_assert_eq(run->status, 2, "%s", run->err);
	cr_assert_not_null(strstr(run->err, "contests: 6 is above the regions (5)"), "%s", run->err);
	run = run_tallyd(wrong, NULL);
	cr_assert_eq(run->status, 2, "%s", run->err);
	cr_assert_not_null(strstr(run->err, "wrong_contest_rate: 0.1 needs 2 or more contests"),
	                   "%s", run->err);
}
