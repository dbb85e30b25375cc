/*
 * Telling the service manager how the program is doing: the sd_notify(3) protocol without
 * libsystemd. Under systemd (a Type=notify unit), $NOTIFY_SOCKET names an AF_UNIX datagram
 * socket, a path or, when it starts with '@', a name in the abstract namespace; each
 * notification is one datagram of newline-separated "KEY=VALUE" assignments ("READY=1",
 * "STOPPING=1", "STATUS=..."). Without NOTIFY_SOCKET (not started by systemd) nothing is
 * sent. systemd learns the sender's pid from the kernel (SO_PASSCRED on its socket), so with
 * NotifyAccess=main (the default) only the main process may notify: call these from it.
 */
#ifndef TALLY_APPS_NOTIFY_H
#define TALLY_APPS_NOTIFY_H

#include <stddef.h>

/**
 * @brief Send state (e.g. "READY=1") to the socket $NOTIFY_SOCKET names, as one datagram.
 * Thread-safe; opens and closes its own socket each time.
 * @returns 1 when sent, 0 when NOTIFY_SOCKET is unset or empty, -1 with errstr set
 *          (`could not notify "/run/systemd/notify": Connection refused`).
 */
int tally_notify(const char *state, char *errstr, size_t errstr_size);

/**
 * @brief tally_notify() for a caller that can only report a failure: it is printed as
 * "PROG: ..." on stderr (tally_app_error()), and the program goes on.
 */
void tally_notify_or_warn(const char *prog, const char *state);

#endif /* TALLY_APPS_NOTIFY_H */
