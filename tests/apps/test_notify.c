/*
 * The sd_notify protocol without libsystemd (apps/common/notify.c): each notification is one
 * datagram holding exactly the state, to a path or an abstract name, sent by the calling
 * process (the pid the kernel reports is what systemd's NotifyAccess=main checks).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "notify.h"

/* A datagram socket bound to sa, receiving the sender's credentials as systemd's does. */
static int
bind_dgram(const struct sockaddr_un *sa, socklen_t len)
{
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), on = 1;

	cr_assert(fd >= 0, "socket: %s", strerror(errno));
	cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)), 0);
	cr_assert_eq(bind(fd, (const struct sockaddr *)sa, len), 0, "bind: %s", strerror(errno));
	return fd;
}

/* The next datagram, NUL-terminated, and its sender's pid; -1 when none is queued. */
static ssize_t
receive(int fd, char *buf, size_t size, pid_t *pid)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(struct ucred))];
	} ctl;
	struct iovec iov = {buf, size - 1};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl,
	                    .msg_controllen = sizeof(ctl)};
	ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT);

	*pid = 0;
	if (n < 0)
		return -1;
	cr_assert_eq(mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC), 0);
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
			struct ucred cred;

			memcpy(&cred, CMSG_DATA(c), sizeof(cred));
			*pid = cred.pid;
		}
	}
	buf[n] = '\0';
	return n;
}

static void
expect_one(int fd, const char *state)
{
	char buf[256];
	pid_t pid;

	cr_assert_eq(receive(fd, buf, sizeof(buf), &pid), (ssize_t)strlen(state));
	cr_assert_str_eq(buf, state);
	cr_assert_eq(pid, getpid());
	cr_assert_eq(receive(fd, buf, sizeof(buf), &pid), -1, "a second datagram: \"%s\"", buf);
}

Test(notify, nothing_without_a_service_manager)
{
	char err[256] = "";

	unsetenv("NOTIFY_SOCKET");
	cr_assert_eq(tally_notify("READY=1", err, sizeof(err)), 0);
	setenv("NOTIFY_SOCKET", "", 1);
	cr_assert_eq(tally_notify("READY=1", err, sizeof(err)), 0);
	cr_assert_str_eq(err, "");
}

Test(notify, ready_then_stopping_to_a_path)
{
	char dir[] = "/tmp/tally-notify-XXXXXX", err[256];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/notify", dir);
	fd = bind_dgram(&sa, sizeof(sa));
	setenv("NOTIFY_SOCKET", sa.sun_path, 1);

	cr_assert_eq(tally_notify("READY=1", err, sizeof(err)), 1, "%s", err);
	expect_one(fd, "READY=1");
	cr_assert_eq(tally_notify("STOPPING=1", err, sizeof(err)), 1, "%s", err);
	expect_one(fd, "STOPPING=1");
	tally_notify_or_warn("test", "STATUS=counting \"general\"\nREADY=1");
	expect_one(fd, "STATUS=counting \"general\"\nREADY=1");

	close(fd);
	unlink(sa.sun_path);
	rmdir(dir);
}

Test(notify, abstract_name)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char name[64], err[256];
	int fd;

	/* '@' in NOTIFY_SOCKET stands for the abstract namespace's leading NUL byte. */
	snprintf(name, sizeof(name), "@tally-test-notify/%d", (int)getpid());
	memcpy(sa.sun_path, name, strlen(name));
	sa.sun_path[0] = '\0';
	fd = bind_dgram(&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name)));
	setenv("NOTIFY_SOCKET", name, 1);

	cr_assert_eq(tally_notify("READY=1", err, sizeof(err)), 1, "%s", err);
	expect_one(fd, "READY=1");
	close(fd);
}

Test(notify, failures_name_the_socket)
{
	char dir[] = "/tmp/tally-notify-XXXXXX", path[200], want[512], err[256];

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/none", dir);
	setenv("NOTIFY_SOCKET", path, 1);
	cr_assert_eq(tally_notify("READY=1", err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "could not notify \"%s\": No such file or directory", path);
	cr_assert_str_eq(err, want);
	rmdir(dir);

	setenv("NOTIFY_SOCKET", "run/notify", 1);
	cr_assert_eq(tally_notify("READY=1", err, sizeof(err)), -1);
	cr_assert_str_eq(err, "could not notify \"run/notify\": NOTIFY_SOCKET is not a socket path "
	                      "or an abstract name (\"@...\")");
	/* Longer than sun_path holds: refused, not cut short to another socket's name. */
	memset(path, 'x', 120);
	path[0] = '/';
	path[120] = '\0';
	setenv("NOTIFY_SOCKET", path, 1);
	cr_assert_eq(tally_notify("READY=1", err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "could not notify \"%.40s...\": NOTIFY_SOCKET is longer than "
	         "107 bytes", path);
	cr_assert_str_eq(err, want);
}
