#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "services.h"
#include "testutil.h"

double
test_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

const char *
test_program_path(const char *name)
{
	static char path[PATH_MAX];
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;

	if (n <= 0) {
		fprintf(stderr, "test_program_path: readlink /proc/self/exe failed\n");
		abort();
	}
	self[n] = '\0';
	if ((slash = strrchr(self, '/')) != NULL)
		*slash = '\0';
	if ((size_t)snprintf(path, sizeof(path), "%s/../bin/%s", self, name) >= sizeof(path) ||
	    access(path, X_OK) != 0) {
		fprintf(stderr, "test_program_path: %s is not built\n", path);
		abort();
	}
	return path;
}

static void
services_env(void)
{
	setenv("TALLY_KAFKA_BROKERS", tally_test_service("TALLY_KAFKA_BROKERS"), 1);
	setenv("TALLY_PG_DSN", tally_test_service("TALLY_PG_DSN"), 1);
}

/* argv for execv: path, then args; NULL if there are too many. */
static const char **
build_argv(const char *path, const char *const *args, const char **argv, int max)
{
	int n = 0;

	argv[n++] = path;
	for (; args != NULL && *args != NULL; args++) {
		if (n == max - 1)
			return NULL;
		argv[n++] = *args;
	}
	argv[n] = NULL;
	return argv;
}

int
test_run(const char *name, const char *const *args, char *out, size_t out_size)
{
	char path[PATH_MAX];
	const char *argv[128];
	int fds[2], status;
	size_t len = 0;
	pid_t pid;

	snprintf(path, sizeof(path), "%s", test_program_path(name));
	if (build_argv(path, args, argv, 128) == NULL || out_size == 0)
		return -1;
	services_env();
	if (pipe(fds) != 0)
		return -1;
	fflush(NULL);
	if ((pid = fork()) < 0)
		return -1;
	if (pid == 0) {
		dup2(fds[1], 1);
		dup2(fds[1], 2);
		close(fds[0]);
		close(fds[1]);
		execv(path, (char *const *)argv);
		_exit(127);
	}
	close(fds[1]);
	for (;;) {
		char sink[4096];
		ssize_t r = len < out_size - 1 ? read(fds[0], out + len, out_size - 1 - len)
		                               : read(fds[0], sink, sizeof(sink));

		if (r <= 0)
			break;
		if (len < out_size - 1)
			len += (size_t)r;
	}
	out[len] = '\0';
	close(fds[0]);
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	fprintf(stderr, "%s: %s", name, out);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

int
test_spawn(const char *name, const char *const *args, const char *log)
{
	char path[PATH_MAX];
	const char *argv[128];
	pid_t pid;
	int fd;

	snprintf(path, sizeof(path), "%s", test_program_path(name));
	if (build_argv(path, args, argv, 128) == NULL)
		return -1;
	services_env();
	fflush(NULL);
	if ((pid = fork()) < 0)
		return -1;
	if (pid == 0) {
		/* Dies with the test: a failed assertion must not leave a server running. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if ((fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644)) < 0)
			_exit(126);
		dup2(fd, 1);
		dup2(fd, 2);
		close(fd);
		execv(path, (char *const *)argv);
		_exit(127);
	}
	return (int)pid;
}
