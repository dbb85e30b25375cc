/*
 * The registry image writer.
 *
 * DESIGN: one thread, started after a restore that read every voters row (no image of the
 * registry's generation existed). It reads the registry lock-free while the registrar
 * (its only writer) and the vote path go on, and writes through its own connection, so it
 * shares nothing with them but the CPU. Counting comes first: it writes only while the
 * ingest thread has caught up with votes_topic (the flag the ingest thread sets, read
 * relaxed; checked before each part), starts a delay after that, runs at nice 10, and
 * pauses between parts. Stopping sets an atomic flag that the writer polls between parts,
 * during pauses and while it waits; stop joins the thread.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <tally/atomic.h>
#include <tally/error.h>
#include <tally/pg_registry_image.h>

#include <tally/thread.h>

#include "imager.h"
#include "server.h"

#define PART_BYTES (16u << 20)
#define PAUSE_MS 100u            /* between parts: about 16 MB per 0.2 s at most */

struct tallyd_imager {
	const tally_registry_t *reg;
	int64_t generation;
	const char *dsn;
	const tally_pg_param_t *params;
	size_t nparams;
	unsigned delay_ms;
	const int *caught_up;        /* atomic, the ingest thread's; NULL: always */
	int quit;                    /* atomic */
	pthread_t thread;
};

static void
nap_ms(unsigned ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static bool
quitting(const tallyd_imager_t *im)
{
	return tally_load_relaxed(&im->quit) != 0;
}

/* Polled between parts: waits while reading is behind; true when asked to stop. */
static bool
imager_stopping(void *arg)
{
	tallyd_imager_t *im = arg;

	while (!quitting(im) && im->caught_up != NULL && !tally_load_relaxed(im->caught_up))
		nap_ms(20);
	return quitting(im);
}

static void *
imager_main(void *arg)
{
	tallyd_imager_t *im = arg;
	tally_pg_image_write_opts_t o = {.part_bytes = PART_BYTES, .pause_ms = PAUSE_MS,
	                                 .stop = imager_stopping, .stop_arg = im};
	tally_pg_image_write_info_t info;
	char err[512];
	PGconn *conn;
	int rc;

	/* Linux applies a nice value to the calling thread alone. */
	(void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10);
	if (imager_stopping(im))
		return NULL;
	for (unsigned waited = 0; waited < im->delay_ms; waited += 20) {
		if (quitting(im))
			return NULL;
		nap_ms(20);
	}
	if ((conn = tally_pg_connect(im->dsn, im->params, im->nparams, 2000, err,
	                             sizeof(err))) == NULL) {
		tallyd_log("registry image not written: %s", err);
		return NULL;
	}
	rc = tally_pg_registry_image_write(conn, im->reg, im->generation, &o, &info, err,
	                                   sizeof(err));
	if (rc == 0)
		tallyd_log("registry image %" PRId64 " written: %" PRIu64 " voters, %u parts, %.1f MB "
		           "in %.3f s (generation %" PRId64 ")", info.image_id, info.voters,
		           info.parts, (double)info.bytes / 1e6, info.seconds, im->generation);
	else
		tallyd_log("registry image not written (%s): %s", tally_err2str(rc), err);
	PQfinish(conn);
	return NULL;
}

tallyd_imager_t *
tallyd_imager_start(const tally_registry_t *reg, int64_t generation, const char *dsn,
                    const tally_pg_param_t *params, size_t nparams, const int *caught_up,
                    unsigned delay_ms, char *errstr, size_t errstr_size)
{
	tallyd_imager_t *im = calloc(1, sizeof(*im));

	if (im == NULL) {
		snprintf(errstr, errstr_size, "could not start the registry image writer: out of "
		         "memory");
		return NULL;
	}
	*im = (tallyd_imager_t){.reg = reg, .generation = generation, .dsn = dsn,
	                        .params = params, .nparams = nparams, .delay_ms = delay_ms,
	                        .caught_up = caught_up};
	if (tally_thread_start(&im->thread, "tally:imager", imager_main, im, errstr,
	                       errstr_size) != 0) {
		free(im);
		return NULL;
	}
	return im;
}

void
tallyd_imager_stop(tallyd_imager_t *im)
{
	if (im == NULL)
		return;
	tally_store_relaxed(&im->quit, 1);
	pthread_join(im->thread, NULL);
	tallyd_log("registry image writer stopped");
	free(im);
}
