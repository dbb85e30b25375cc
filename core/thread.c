/*
 * Named threads with every signal blocked (include/tally/thread.h).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <tally/error.h>
#include <tally/thread.h>

int
tally_thread_start(pthread_t *thread, const char *name, void *(*fn)(void *), void *arg,
                   char *errstr, size_t errstr_size)
{
	sigset_t all, old;
	char short_name[TALLY_THREAD_NAME_MAX + 1];
	int e;

	/* The new thread inherits the creator's mask: block everything around the create. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	e = pthread_create(thread, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e != 0) {
		tally_errstr_set(errstr, errstr_size, "could not start thread \"%s\": %s", name,
		                 strerror(e));
		return e == EAGAIN ? TALLY_EAGAIN : TALLY_EINVAL;
	}
	snprintf(short_name, sizeof(short_name), "%s", name);
	pthread_setname_np(*thread, short_name);
	return 0;
}
