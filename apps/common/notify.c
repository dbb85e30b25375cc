/*
 * The sd_notify protocol without libsystemd (see notify.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <tally/error.h>

#include "notify.h"
#include "opt.h"

int
tally_notify(const char *state, char *errstr, size_t errstr_size)
{
	const char *name = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa;
	size_t len, statelen = strlen(state);
	ssize_t sent;
	int fd, err;

	if (name == NULL || name[0] == '\0')
		return 0;
	len = strlen(name);
	/* systemd hands out a path or an abstract name; anything else is not meant for us. */
	if (name[0] != '/' && name[0] != '@') {
		tally_errstr_set(errstr, errstr_size,
		                 "could not notify \"%s\": NOTIFY_SOCKET is not a socket path or "
		                 "an abstract name (\"@...\")", name);
		return -1;
	}
	if (len >= sizeof(sa.sun_path)) {
		tally_errstr_set(errstr, errstr_size,
		                 "could not notify \"%.40s...\": NOTIFY_SOCKET is longer than %zu bytes",
		                 name, sizeof(sa.sun_path) - 1);
		return -1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, name, len);
	/* An abstract name starts with a NUL byte and is exactly len bytes long. */
	if (name[0] == '@')
		sa.sun_path[0] = '\0';
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0) {
		tally_errstr_set(errstr, errstr_size, "could not notify \"%s\": socket: %s", name,
		                 strerror(errno));
		return -1;
	}
	sent = sendto(fd, state, statelen, MSG_NOSIGNAL, (const struct sockaddr *)&sa,
	              (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
	err = errno;
	close(fd);
	if (sent < 0) {
		tally_errstr_set(errstr, errstr_size, "could not notify \"%s\": %s", name,
		                 strerror(err));
		return -1;
	}
	if ((size_t)sent != statelen) {
		tally_errstr_set(errstr, errstr_size, "could not notify \"%s\": sent %zd of %zu bytes",
		                 name, sent, statelen);
		return -1;
	}
	return 1;
}

void
tally_notify_or_warn(const char *prog, const char *state)
{
	char err[256];

	if (tally_notify(state, err, sizeof(err)) < 0)
		tally_app_error(prog, "%s", err);
}
