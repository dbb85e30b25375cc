/*
 * The HTTP adapter (see include/tally/http.h).
 *
 * DESIGN: who writes, who reads, what is published when.
 * - The render thread ("tally:http") is the only writer of the published bodies. Every
 *   render_interval_ms it fills its own tally_snapshot_t, from the app's snapshot callback
 *   when one is set (e.g. tallyd's last committed checkpoint; TALLY_EAGAIN: nothing newer,
 *   keep the bodies) or else with a live snapshot of the core, and calls the app's metrics
 *   callback into its own builder. tally_http_start() does the first pass on its caller's
 *   thread, before the render thread exists. When the snapshot version changed it
 *   renders the JSON, CSV and SSE bodies and the core's metric families; when either the
 *   version or the app's metric text changed it assembles the two /metrics bodies. Each
 *   body goes into a blob_t and is published with a release store into h->current[kind].
 * - Blobs are reference counted. The publisher holds one reference on each current blob;
 *   a request takes one with blob_acquire() (load, add, check that it is still current,
 *   else drop it and retry) and libmicrohttpd drops it when the response is freed. Blobs
 *   are never freed while the adapter lives: a blob that is not current and has no
 *   references is reused by the render thread. So a request that loaded a pointer just
 *   before it was replaced only ever touches a live blob's counter, and reads its bytes
 *   only after seeing it current again (acquire), i.e. after it was written.
 * - libmicrohttpd's threads answer requests: no rendering, no snapshot, no lock; one
 *   atomic add to take a body, one to release it. Each request for a body also stores the
 *   time (demand_ns). When nobody asked for idle_after_ms and no stream is open, the
 *   render thread skips its passes (no snapshot at all); the first request after that
 *   wakes it and waits, under wait_mu, for one pass that started after the request.
 * - SSE clients are suspended connections on a list under streams_mu (adapter-local; the
 *   vote path never sees it). A client's reader callback (an MHD thread) sends what is
 *   due, else suspends its connection and marks it suspended; the render thread resumes,
 *   outside the mutex, those for which a new version or a heartbeat is due, and (every
 *   100 ms) those whose client has gone (poll() on the parked socket: MHD does not watch
 *   it), which then end at once. A connection cannot be closed while suspended, so the
 *   pointer and socket stay valid until resumed. Streams are limited in all and per client
 *   address below the connection limits, so scrapes and probes always get in.
 * - Request deadline: MHD's inactivity timeout lets a byte every few seconds hold a
 *   connection forever. MHD's NOTIFY_CONNECTION puts each connection on a list under
 *   conns_mu with a deadline (request_timeout_s from its start, or from the end of the
 *   previous answer); MHD threads clear it (relaxed store) when the whole request is in.
 *   The render thread, every pass, idle or not, shuts down the sockets of late ones under
 *   conns_mu, and MHD closes them on its own thread. The closed notification takes
 *   conns_mu before MHD closes the socket, so no socket number is ever reused under us.
 * - Stopping: set closing, resume every suspended stream until all have ended (their
 *   readers return end-of-stream), stop libmicrohttpd (no connection is suspended, as it
 *   requires), then stop and join the render thread.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include <tally/atomic.h>
#include <tally/error.h>
#include <tally/http.h>
#include <tally/snapshot.h>
#include <tally/thread.h>
#include <tally/time.h>

#include "assets.h"
#include "contests.h"
#include "render.h"

#ifndef TALLY_VERSION_STRING
#define TALLY_VERSION_STRING "0.0.0"
#endif

/* B_CONTESTS is binary: the contests table /api/contests pages (contests.c). */
enum { B_METRICS, B_OPENMETRICS, B_JSON, B_CSV, B_SSE, B_CONTESTS, B__COUNT };

typedef struct blob {
	uint32_t refs;                   /* atomic: the publisher's one plus one per response */
	struct blob *next;               /* the pool; render thread and stop only */
	uint64_t version;
	hbuf_t buf;
} blob_t;

/* A client's address without its port: streams are limited per address. */
typedef struct ipkey {
	int family;
	unsigned char addr[16];
} ipkey_t;

typedef struct stream {
	tally_http_t *h;
	struct MHD_Connection *conn;
	int fd;                          /* the connection's socket (valid while it lives) */
	ipkey_t ip;
	struct stream *prev, *next;      /* under streams_mu */
	bool suspended;                  /* under streams_mu */
	int gone;                        /* atomic: the client left while suspended; end it */
	/* Written by the reader (one MHD thread) while not suspended; read by the render
	 * thread under streams_mu only while suspended. */
	bool sent_any;
	uint64_t sent_version;
	uint64_t last_event_ns, last_write_ns;
	blob_t *cur;                     /* event being written, and how far */
	size_t off;
	const char *lit;                 /* or a heartbeat line */
	size_t lit_len, lit_off;
} stream_t;

/*
 * One TCP connection, from MHD's NOTIFY_CONNECTION started to closed: the deadline by which
 * its current request must have arrived whole (line, headers, body), however slowly sent.
 */
typedef struct conn_track {
	struct conn_track *prev, *next;  /* under conns_mu */
	int fd;                          /* open until after the closed notification */
	uint64_t deadline_ns;            /* atomic: monotonic; 0 while a response is under way */
	bool cut;                        /* under conns_mu: shut down for being late */
} conn_track_t;

typedef struct asset_meta {
	const tally__http_asset_t *a;
	const char *type;
	char etag[24];
} asset_meta_t;

struct tally_http {
	tally_core_t *core;
	tally_registry_t *reg;
	tally_http_opts_t o;
	char host[64];
	char *token;
	size_t token_len;
	char *build_version;
	struct sockaddr_storage addr;
	socklen_t addrlen;

	struct MHD_Daemon *daemon;
	uint16_t port;
	bool running;

	/* The render thread. */
	pthread_t thread;
	pthread_mutex_t wait_mu;
	pthread_cond_t wait_cv;          /* wakes the render thread */
	pthread_cond_t done_cv;          /* a render pass ended */
	int quit;                        /* under wait_mu */
	int wake;                        /* under wait_mu: a request wants a pass now */
	uint64_t pass_started, pass_done; /* under wait_mu */
	uint64_t demand_ns;              /* atomic: the last request for a body (monotonic) */

	blob_t *current[B__COUNT];       /* atomic pointers */
	blob_t *pool;

	/* Render thread state. */
	tally_snapshot_t *snap;
	bool snap_filled;                /* snap holds results (the callback filled it once) */
	int snap_err;                    /* the callback's last error, 0 if none (logged once) */
	render_scratch_t rs;
	tally_contests_t cres;           /* the contests table's scratch */
	hbuf_t core_text, core_om, app_prev;
	tally_metrics_builder_t app;
	bool rendered;
	uint64_t last_version;
	uint64_t last_stream_tick_ns;
	uint64_t gone_checked_ns;        /* streams_wake() looked for departed clients */

	/* Connections, for the request deadline (see conn_track_t). */
	pthread_mutex_t conns_mu;
	conn_track_t *conns;
	uint64_t timeouts_logged;        /* render thread: requests_timed_out when last logged */
	uint64_t timeouts_log_ns;

	/* Streams. */
	pthread_mutex_t streams_mu;
	stream_t *streams;
	unsigned nstreams;               /* under streams_mu; also read relaxed by stats */
	int closing;                     /* atomic */

	asset_meta_t *assets;

	/* The log's rate limit (relaxed atomics; approximate by design). */
	uint64_t log_sec, log_count, log_dropped;

	/* Stats (relaxed atomics). */
	uint64_t renders, metrics_renders, requests, stream_events, version, snapshot_ns, render_ns;
	uint64_t requests_timed_out, streams_gone;
};

/* ---- small helpers --------------------------------------------------------------------- */

static void
hlog(tally_http_t *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
hlog(tally_http_t *h, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (h->o.log == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	h->o.log(h->o.cb_arg, line);
}

/*
 * libmicrohttpd's messages, at most 10 a second (a flood of refused connections must not
 * flood the log); the number left out is said with the next line let through.
 */
static void
mhd_logger(void *cls, const char *fmt, va_list ap)
{
	tally_http_t *h = cls;
	uint64_t sec = tally_mono_ns() / 1000000000ull, dropped;
	char line[512];
	size_t n;

	if (h->o.log == NULL)
		return;
	if (tally_load_relaxed(&h->log_sec) != sec) {
		tally_store_relaxed(&h->log_sec, sec);
		tally_store_relaxed(&h->log_count, 0);
	}
	if (tally_add_relaxed(&h->log_count, 1) > 10) {
		tally_add_relaxed(&h->log_dropped, 1);
		return;
	}
	dropped = tally_load_relaxed(&h->log_dropped);
	while (dropped > 0 && !tally_cas_acq_rel(&h->log_dropped, &dropped, 0))
		;
	if (dropped > 0)
		hlog(h, "http: %" PRIu64 " libmicrohttpd messages left out", dropped);
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	h->o.log(h->o.cb_arg, line);
}

static uint64_t
fnv1a(const unsigned char *p, size_t n)
{
	uint64_t x = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < n; i++)
		x = (x ^ p[i]) * 0x100000001b3ULL;
	return x;
}

/* ---- blobs ------------------------------------------------------------------------------- */

static void
blob_release(blob_t *b)
{
	tally_add_acq_rel(&b->refs, (uint32_t)-1);
}

static void
blob_free_cb(void *cls)
{
	blob_release(cls);
}

/* A reference to the current body of a kind, or NULL before the first render. */
static blob_t *
blob_acquire(tally_http_t *h, int kind)
{
	for (;;) {
		blob_t *b = tally_load_acquire(&h->current[kind]);

		if (b == NULL)
			return NULL;
		tally_add_acq_rel(&b->refs, 1);
		if (tally_load_acquire(&h->current[kind]) == b)
			return b;
		blob_release(b);
	}
}

/* Render thread: a blob nobody holds, to write the next body into. */
static blob_t *
blob_get(tally_http_t *h)
{
	blob_t *b;

	for (b = h->pool; b != NULL; b = b->next) {
		bool current = false;

		for (int k = 0; k < B__COUNT; k++)
			current |= tally_load_relaxed(&h->current[k]) == b;
		if (!current && tally_load_acquire(&b->refs) == 0) {
			hbuf_reset(&b->buf);
			return b;
		}
	}
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return NULL;
	b->next = h->pool;
	h->pool = b;
	return b;
}

static void
blob_publish(tally_http_t *h, int kind, blob_t *b, uint64_t version)
{
	blob_t *old = tally_load_relaxed(&h->current[kind]);

	b->version = version;
	tally_add_acq_rel(&b->refs, 1);
	tally_store_release(&h->current[kind], b);
	if (old != NULL)
		blob_release(old);
}

/* ---- rendering --------------------------------------------------------------------------- */

static void
publish_copy(tally_http_t *h, int kind, const char *a, size_t alen, const char *b, size_t blen,
             const char *c, size_t clen, uint64_t version)
{
	blob_t *bl = blob_get(h);

	if (bl == NULL)
		return;
	hbuf_put(&bl->buf, a, alen);
	hbuf_put(&bl->buf, b, blen);
	hbuf_put(&bl->buf, c, clen);
	if (bl->buf.oom) {
		hlog(h, "http: out of memory rendering a body; serving the previous one");
		return;
	}
	blob_publish(h, kind, bl, version);
}

/*
 * Fill h->snap with the results to serve. @returns 0 when it holds them (new or not),
 * TALLY_EAGAIN when the app's callback has nothing newer, else the error (logged once).
 */
static int
fill_snapshot(tally_http_t *h)
{
	int rc;

	if (h->o.snapshot == NULL) {
		if ((rc = tally_snapshot_take_into(h->core, h->snap)) != 0) {
			hlog(h, "http: could not take a snapshot: %s", tally_err2str(rc));
			return rc;
		}
		h->snap_filled = true;
		return 0;
	}
	rc = h->o.snapshot(h->o.cb_arg, h->snap);
	if (rc == 0 || rc == TALLY_EAGAIN) {
		if (h->snap_err != 0)
			hlog(h, "http: the snapshot source gives results again");
		h->snap_err = 0;
		h->snap_filled |= rc == 0;
		return rc;
	}
	if (rc != h->snap_err)
		hlog(h, "http: the snapshot source failed: %s; serving the previous results",
		     tally_err2str(rc));
	h->snap_err = rc;
	return rc;
}

/*
 * One render tick. @returns 0 when bodies from h->snap are published (changed or not),
 * else fill_snapshot()'s code (the results' bodies are then left as they were).
 */
static int
render_once(tally_http_t *h)
{
	bool changed = false, fresh;
	uint64_t t0 = tally_mono_ns(), t1;
	int rc = fill_snapshot(h);

	t1 = tally_mono_ns();
	tally_add_relaxed(&h->snapshot_ns, t1 - t0);
	/* Nothing newer from the app, or a failure: keep the result bodies, but a first render
	 * (a restart) still renders what snap held last. The app's metrics go on either way. */
	fresh = rc == 0 || (!h->rendered && h->snap_filled);
	if (!fresh && !h->rendered)
		return rc != 0 ? rc : TALLY_EAGAIN;
	tally__metrics_builder_reset(&h->app);
	if (h->o.metrics != NULL)
		h->o.metrics(h->o.cb_arg, &h->app);

	if (fresh && (!h->rendered || h->snap->version != h->last_version)) {
		blob_t *b;

		/* JSON first: the SSE event wraps it. */
		if ((b = blob_get(h)) != NULL) {
			tally__render_json(h->snap, h->reg, &b->buf);
			if (!b->buf.oom) {
				char head[64];
				int n = snprintf(head, sizeof(head), "event: results\nid: %" PRIu64 "\ndata: ",
				                 h->snap->version);

				blob_publish(h, B_JSON, b, h->snap->version);
				publish_copy(h, B_SSE, head, (size_t)n, b->buf.p, b->buf.len, "\n\n", 2,
				             h->snap->version);
			}
		}
		if ((b = blob_get(h)) != NULL) {
			tally__render_csv(h->snap, h->reg, &b->buf);
			if (!b->buf.oom)
				blob_publish(h, B_CSV, b, h->snap->version);
		}
		if ((b = blob_get(h)) != NULL) {
			tally__contest_table_build(h->snap, h->reg, &h->cres, &b->buf);
			if (!b->buf.oom)
				blob_publish(h, B_CONTESTS, b, h->snap->version);
		}
		tally__render_metrics(h->snap, h->reg, h->o.max_region_series, h->build_version, &h->rs,
		                      &h->core_text, &h->core_om);
		changed = true;
		tally_add_relaxed(&h->renders, 1);
	}
	if (changed || h->app.text.len != h->app_prev.len ||
	    (h->app.text.len > 0 && memcmp(h->app.text.p, h->app_prev.p, h->app.text.len) != 0)) {
		uint64_t version = fresh ? h->snap->version : h->last_version;

		publish_copy(h, B_METRICS, h->core_text.p, h->core_text.len, h->app.text.p,
		             h->app.text.len, "", 0, version);
		publish_copy(h, B_OPENMETRICS, h->core_om.p, h->core_om.len, h->app.om.p, h->app.om.len,
		             "# EOF\n", 6, version);
		hbuf_reset(&h->app_prev);
		hbuf_put(&h->app_prev, h->app.text.p ? h->app.text.p : "", h->app.text.len);
		tally_add_relaxed(&h->metrics_renders, 1);
	}
	tally_add_relaxed(&h->render_ns, tally_mono_ns() - t1);
	if (fresh) {
		h->rendered = true;
		h->last_version = h->snap->version;
		tally_store_relaxed(&h->version, h->snap->version);
	}
	return 0;
}

/*
 * Has the client of a suspended stream gone (closed or reset its end)? libmicrohttpd does
 * not watch a suspended connection's socket, so without this its slot stayed taken until
 * the next heartbeat. The socket stays open while the connection is suspended.
 */
static bool
peer_gone(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLRDHUP};

	return fd >= 0 && poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

/*
 * Resume the suspended streams that have an event or a heartbeat due (all: every one),
 * and those whose client has gone.
 */
static void
streams_wake(tally_http_t *h, bool all)
{
	struct MHD_Connection *wake[64];
	uint64_t now = tally_mono_ns();
	uint64_t interval = (uint64_t)h->o.stream_interval_ms * 1000000ull;
	uint64_t heartbeat = (uint64_t)h->o.heartbeat_ms * 1000000ull;
	uint64_t version = 0;
	bool more = true, check_gone = false;

	/* Departures are looked for every 100 ms at most (one poll() a parked stream). */
	if (!all && now - h->gone_checked_ns >= 100000000ull) {
		check_gone = true;
		h->gone_checked_ns = now;
	}
	if (!all) {
		/* Only the render thread calls this with all == false: the current blob is its own. */
		blob_t *cur = tally_load_relaxed(&h->current[B_SSE]);

		version = cur ? cur->version : 0;
	}

	while (more) {
		unsigned n = 0;

		more = false;
		pthread_mutex_lock(&h->streams_mu);
		for (stream_t *s = h->streams; s != NULL; s = s->next) {
			if (!s->suspended)
				continue;
			if (n == sizeof(wake) / sizeof(wake[0])) {
				more = true;
				break;
			}
			/* Suspended: the reader wrote these fields before it said so under the mutex. */
			if (!all && !(s->sent_version != version && now - s->last_event_ns >= interval) &&
			    now - s->last_write_ns < heartbeat) {
				/* Nothing due. A client that left is still worth a wake-up: it frees
				 * its slot now rather than at the next heartbeat. */
				if (!check_gone || !peer_gone(s->fd))
					continue;
				tally_store_release(&s->gone, 1);
				tally_add_relaxed(&h->streams_gone, 1);
			}
			s->suspended = false;
			wake[n++] = s->conn;
		}
		pthread_mutex_unlock(&h->streams_mu);
		/* Still suspended in MHD (nobody else resumes a stream marked not suspended), so
		 * the connections are alive. */
		for (unsigned i = 0; i < n; i++)
			MHD_resume_connection(wake[i]);
	}
}

/*
 * Nobody looked for idle_after_ms and no stream is open: no snapshot, no render, so an
 * unwatched server costs the count nothing.
 */
static bool
render_idle(tally_http_t *h)
{
	return tally_load_relaxed(&h->nstreams) == 0 &&
	       tally_mono_ns() - tally_load_relaxed(&h->demand_ns) >=
	           (uint64_t)h->o.idle_after_ms * 1000000ull;
}

/*
 * A request for a body. If the render thread may have been idle, wake it and wait (at most
 * a second) for a pass that starts after this call, so the answer is fresh.
 */
static void
demand(tally_http_t *h)
{
	uint64_t now = tally_mono_ns(), prev = tally_load_relaxed(&h->demand_ns), target;
	struct timespec ts;

	tally_store_relaxed(&h->demand_ns, now);
	if (now - prev < (uint64_t)h->o.idle_after_ms * 1000000ull)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += 1;
	pthread_mutex_lock(&h->wait_mu);
	target = h->pass_started + 1;
	h->wake = 1;
	pthread_cond_signal(&h->wait_cv);
	while (!h->quit && h->pass_done < target)
		if (pthread_cond_timedwait(&h->done_cv, &h->wait_mu, &ts) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&h->wait_mu);
}

/* ---- the request deadline ------------------------------------------------------------ */

static conn_track_t *
conn_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci != NULL ? ci->socket_context : NULL;
}

/* An MHD thread: the connection's next request must arrive by now + request_timeout_s
 * (arm), or its request has arrived and a response is under way (!arm). */
static void
conn_deadline(tally_http_t *h, struct MHD_Connection *conn, bool arm)
{
	conn_track_t *c = conn_of(conn);

	if (c != NULL)
		tally_store_relaxed(&c->deadline_ns,
		                    arm ? tally_mono_ns() + (uint64_t)h->o.request_timeout_s * 1000000000ull
		                        : 0);
}

/* MHD's NOTIFY_CONNECTION: track each connection from its start to its close. The closed
 * notification comes before MHD closes the socket, so the render thread, holding conns_mu,
 * only ever shuts down a socket that is still this connection's. */
static void
on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
              enum MHD_ConnectionNotificationCode toe)
{
	tally_http_t *h = cls;
	conn_track_t *c;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci =
		    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);

		/* Out of memory: untracked, bounded by the inactivity timeout only. */
		if (ci == NULL || (c = calloc(1, sizeof(*c))) == NULL)
			return;
		c->fd = ci->connect_fd;
		c->deadline_ns = tally_mono_ns() + (uint64_t)h->o.request_timeout_s * 1000000000ull;
		pthread_mutex_lock(&h->conns_mu);
		c->next = h->conns;
		if (h->conns != NULL)
			h->conns->prev = c;
		h->conns = c;
		pthread_mutex_unlock(&h->conns_mu);
		*socket_context = c;
		return;
	}
	if ((c = *socket_context) == NULL)
		return;
	pthread_mutex_lock(&h->conns_mu);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		h->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	pthread_mutex_unlock(&h->conns_mu);
	*socket_context = NULL;
	free(c);
}

/*
 * Render thread: shut down the sockets of connections whose request is late (libmicrohttpd's
 * own timeout only measures inactivity, so a byte every few seconds held a connection
 * forever). MHD then sees the socket end and closes the connection on its own thread.
 */
static void
conns_reap(tally_http_t *h)
{
	uint64_t now = tally_mono_ns(), cut = 0, total = 0;

	pthread_mutex_lock(&h->conns_mu);
	for (conn_track_t *c = h->conns; c != NULL; c = c->next) {
		uint64_t d = tally_load_relaxed(&c->deadline_ns);

		if (c->cut || d == 0 || now < d)
			continue;
		/* Counted first: whoever sees the connection end sees it counted. */
		total = tally_add_relaxed(&h->requests_timed_out, 1);
		shutdown(c->fd, SHUT_RDWR);
		c->cut = true;
		cut++;
	}
	pthread_mutex_unlock(&h->conns_mu);
	if (cut == 0)
		return;
	/* At most a line every 10 s, however many are cut. */
	if (now - h->timeouts_log_ns >= 10000000000ull) {
		hlog(h, "http: closed %" PRIu64 " connection(s) whose request had not arrived within %u s",
		     total - h->timeouts_logged, h->o.request_timeout_s);
		h->timeouts_logged = total;
		h->timeouts_log_ns = now;
	}
}

static void *
render_main(void *arg)
{
	tally_http_t *h = arg;

	pthread_mutex_lock(&h->wait_mu);
	while (!h->quit) {
		struct timespec ts;
		uint64_t pass = ++h->pass_started;

		h->wake = 0;
		pthread_mutex_unlock(&h->wait_mu);
		conns_reap(h);
		if (!render_idle(h)) {
			render_once(h);
			streams_wake(h, false);
		}
		pthread_mutex_lock(&h->wait_mu);
		h->pass_done = pass;
		pthread_cond_broadcast(&h->done_cv);
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += (long)(h->o.render_interval_ms % 1000) * 1000000L;
		ts.tv_sec += h->o.render_interval_ms / 1000 + ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		if (!h->quit && !h->wake)
			pthread_cond_timedwait(&h->wait_cv, &h->wait_mu, &ts);
	}
	pthread_mutex_unlock(&h->wait_mu);
	return NULL;
}

/* ---- responses ---------------------------------------------------------------------------- */

static void
common_headers(struct MHD_Response *r)
{
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
}

static enum MHD_Result
send_buf(struct MHD_Connection *conn, unsigned status, const char *type, const char *body,
         size_t len, enum MHD_ResponseMemoryMode mode, const char *h1, const char *v1)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, mode);
	enum MHD_Result ret;

	if (r == NULL)
		return MHD_NO;
	common_headers(r);
	if (type != NULL)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (h1 != NULL)
		MHD_add_response_header(r, h1, v1);
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result
send_json_error(struct MHD_Connection *conn, unsigned status, const char *msg, const char *h1,
                const char *v1)
{
	hbuf_t b = {0};
	enum MHD_Result ret;

	hbuf_puts(&b, "{\"error\":");
	hbuf_json_str(&b, msg);
	hbuf_puts(&b, "}\n");
	if (b.oom) {
		hbuf_free(&b);
		return MHD_NO;
	}
	ret = send_buf(conn, status, "application/json; charset=utf-8", b.p, b.len,
	               MHD_RESPMEM_MUST_COPY, h1, v1);
	hbuf_free(&b);
	return ret;
}

static enum MHD_Result
send_blob(tally_http_t *h, struct MHD_Connection *conn, int kind, const char *type)
{
	blob_t *b = blob_acquire(h, kind);
	struct MHD_Response *r;
	enum MHD_Result ret;
	char etag[32];

	if (b == NULL)
		return send_json_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "no results rendered yet",
		                       NULL, NULL);
	r = MHD_create_response_from_buffer_with_free_callback_cls(b->buf.len, b->buf.p,
	                                                           blob_free_cb, b);
	if (r == NULL) {
		blob_release(b);
		return MHD_NO;
	}
	common_headers(r);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	snprintf(etag, sizeof(etag), "\"v%" PRIu64 "\"", b->version);
	MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, etag);
	ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

/* ---- endpoints ------------------------------------------------------------------------------ */

/* A qvalue (RFC 9110 12.4.2: "0", "0.5", "1.000", ...) in thousandths, or -1 if malformed. */
static int
parse_qvalue(const char *p, size_t n)
{
	int q, scale = 100;

	if (n == 0 || (p[0] != '0' && p[0] != '1') || (n > 1 && p[1] != '.') || n > 5)
		return -1;
	q = (p[0] - '0') * 1000;
	for (size_t i = 2; i < n; i++, scale /= 10) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		q += (p[i] - '0') * scale;
	}
	return q <= 1000 ? q : -1;
}

static const char *
skip_ows(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	return p;
}

static size_t
trim_len(const char *p, const char *end)
{
	while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	return (size_t)(end - p);
}

/* The end of the element (',' or ';' outside a quoted string) starting at p. */
static const char *
element_end(const char *p, const char *end, char sep)
{
	bool quoted = false;

	for (; p < end; p++) {
		if (quoted && *p == '\\' && p + 1 < end)
			p++;
		else if (*p == '"')
			quoted = !quoted;
		else if (!quoted && (*p == sep || *p == ','))
			break;
	}
	return p;
}

/*
 * How much the Accept header wants type ("application/openmetrics-text"): the q value in
 * thousandths of the most specific range that matches it (type/subtype over type/ * over
 * * / *; the highest q among equally specific ones), and that specificity (3, 2, 1) in
 * *spec; -1 and 0 when no range matches. A range with a malformed q is ignored.
 */
static int
accept_q(const char *accept, const char *type, int *spec)
{
	const char *p = accept, *end = accept + strlen(accept);
	size_t tlen = strlen(type), slash = (size_t)(strchr(type, '/') - type);
	int best = -1;

	*spec = 0;
	while (p < end) {
		const char *range_end = element_end(p, end, ',');
		const char *m = skip_ows(p, range_end), *m_end = element_end(m, range_end, ';');
		size_t mlen = trim_len(m, m_end);
		int q = 1000, sp = 0;

		if (mlen == tlen && strncasecmp(m, type, tlen) == 0)
			sp = 3;
		else if (mlen == slash + 2 && strncasecmp(m, type, slash + 1) == 0 && m[slash + 1] == '*')
			sp = 2;
		else if (mlen == 3 && strncmp(m, "*/*", 3) == 0)
			sp = 1;
		/* Parameters: only q matters. */
		for (const char *a = m_end; sp > 0 && a < range_end && *a == ';';) {
			const char *a_end = element_end(a + 1, range_end, ';');
			const char *k = skip_ows(a + 1, a_end), *eq = memchr(k, '=', (size_t)(a_end - k));

			if (eq != NULL && trim_len(k, eq) == 1 && (*k == 'q' || *k == 'Q')) {
				const char *v = skip_ows(eq + 1, a_end);

				if ((q = parse_qvalue(v, trim_len(v, a_end))) < 0)
					sp = 0;
			}
			a = a_end;
		}
		if (sp > *spec || (sp == *spec && sp > 0 && q > best)) {
			*spec = sp;
			best = q;
		}
		p = range_end < end ? range_end + 1 : end;
	}
	return best;
}

/*
 * OpenMetrics only when the client names it with a q above 0 and at least text/plain's (a
 * tie goes to OpenMetrics, which it named); text 0.0.4 otherwise, the default.
 */
static bool
accepts_openmetrics(struct MHD_Connection *conn)
{
	const char *accept = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
	int om_spec, text_spec, om, text;

	if (accept == NULL)
		return false;
	om = accept_q(accept, "application/openmetrics-text", &om_spec);
	text = accept_q(accept, "text/plain", &text_spec);
	return om_spec == 3 && om > 0 && om >= text;
}

static enum MHD_Result
ep_metrics(tally_http_t *h, struct MHD_Connection *conn)
{
	demand(h);
	if (accepts_openmetrics(conn))
		return send_blob(h, conn, B_OPENMETRICS,
		                 "application/openmetrics-text; version=1.0.0; charset=utf-8");
	return send_blob(h, conn, B_METRICS, "text/plain; version=0.0.4; charset=utf-8");
}

/* 304 when the client already has the current version (?since=V or If-None-Match). */
static enum MHD_Result
ep_results(tally_http_t *h, struct MHD_Connection *conn, int kind, const char *type)
{
	const char *since = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "since");
	const char *inm = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
	                                              MHD_HTTP_HEADER_IF_NONE_MATCH);
	blob_t *b;
	uint64_t version;
	char etag[32];

	demand(h);
	b = blob_acquire(h, kind);

	if (b == NULL)
		return send_json_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "no results rendered yet",
		                       NULL, NULL);
	version = b->version;
	blob_release(b);
	snprintf(etag, sizeof(etag), "\"v%" PRIu64 "\"", version);
	if (since != NULL) {
		char *end;
		unsigned long long v;

		errno = 0;
		v = strtoull(since, &end, 10);
		if (*since < '0' || *since > '9' || *end != '\0' || errno != 0)
			return send_json_error(conn, MHD_HTTP_BAD_REQUEST,
			                       "since must be a version number", NULL, NULL);
		if (v >= version)
			return send_buf(conn, MHD_HTTP_NOT_MODIFIED, NULL, "", 0, MHD_RESPMEM_PERSISTENT,
			                MHD_HTTP_HEADER_ETAG, etag);
	} else if (inm != NULL && strstr(inm, etag) != NULL) {
		return send_buf(conn, MHD_HTTP_NOT_MODIFIED, NULL, "", 0, MHD_RESPMEM_PERSISTENT,
		                MHD_HTTP_HEADER_ETAG, etag);
	}
	return send_blob(h, conn, kind, type);
}

static enum MHD_Result
ep_readyz(tally_http_t *h, struct MHD_Connection *conn)
{
	char reason[200] = "not ready";
	hbuf_t b = {0};
	enum MHD_Result ret;
	bool ready = h->o.ready == NULL || h->o.ready(h->o.cb_arg, reason, sizeof(reason));

	if (ready) {
		hbuf_puts(&b, "{\"status\":\"ready\"}\n");
	} else {
		reason[sizeof(reason) - 1] = '\0';
		hbuf_puts(&b, "{\"status\":\"not ready\",\"error\":");
		hbuf_json_str(&b, reason);
		hbuf_puts(&b, "}\n");
	}
	if (b.oom) {
		hbuf_free(&b);
		return MHD_NO;
	}
	ret = send_buf(conn, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
	               "application/json; charset=utf-8", b.p, b.len, MHD_RESPMEM_MUST_COPY, NULL,
	               NULL);
	hbuf_free(&b);
	return ret;
}

/* Constant time in the token's content: every byte of the configured token is compared. */
static bool
token_ok(const tally_http_t *h, const char *given)
{
	size_t glen = strlen(given);
	unsigned char diff = glen != h->token_len;

	for (size_t i = 0; i < h->token_len; i++)
		diff |= (unsigned char)h->token[i] ^ (unsigned char)(i < glen ? given[i] : 0);
	return diff == 0;
}

static enum MHD_Result
ep_admin(tally_http_t *h, struct MHD_Connection *conn, tally_http_action_t action)
{
	const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
	                                               MHD_HTTP_HEADER_AUTHORIZATION);
	char err[200] = "";
	tally_election_t e;
	hbuf_t b = {0};
	enum MHD_Result ret;
	int rc;

	if (h->token == NULL || h->o.admin == NULL)
		return send_json_error(conn, MHD_HTTP_FORBIDDEN, "admin actions are disabled", NULL, NULL);
	if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0 || !token_ok(h, auth + 7))
		return send_json_error(conn, MHD_HTTP_UNAUTHORIZED, "a valid bearer token is required",
		                       MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"tally\"");
	rc = h->o.admin(h->o.cb_arg, action, err, sizeof(err));
	err[sizeof(err) - 1] = '\0';
	if (rc == TALLY_ESTATE)
		return send_json_error(conn, MHD_HTTP_CONFLICT,
		                       err[0] ? err : "not allowed in the election's current state", NULL,
		                       NULL);
	if (rc != 0)
		return send_json_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
		                       err[0] ? err : tally_err2str(rc), NULL, NULL);
	hlog(h, "http: election %s by an admin request",
	     action == TALLY_HTTP_ACTION_OPEN ? "opened" : "closed");
	tally_core_election(h->core, &e);
	hbuf_puts(&b, "{\"election\":");
	tally__render_election(&e, &b);
	hbuf_puts(&b, "}\n");
	if (b.oom) {
		hbuf_free(&b);
		return MHD_NO;
	}
	/* Wake the render thread so the new status is served at once. */
	pthread_mutex_lock(&h->wait_mu);
	pthread_cond_signal(&h->wait_cv);
	pthread_mutex_unlock(&h->wait_mu);
	ret = send_buf(conn, MHD_HTTP_OK, "application/json; charset=utf-8", b.p, b.len,
	               MHD_RESPMEM_MUST_COPY, NULL, NULL);
	hbuf_free(&b);
	return ret;
}

static const char *
content_type(const char *path)
{
	static const struct {
		const char *ext, *type;
	} types[] = {
		{".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
		{".mjs", "text/javascript; charset=utf-8"}, {".css", "text/css; charset=utf-8"},
		{".svg", "image/svg+xml"}, {".png", "image/png"}, {".jpg", "image/jpeg"},
		{".jpeg", "image/jpeg"}, {".gif", "image/gif"}, {".ico", "image/x-icon"},
		{".webp", "image/webp"}, {".json", "application/json; charset=utf-8"},
		{".map", "application/json; charset=utf-8"}, {".txt", "text/plain; charset=utf-8"},
		{".woff2", "font/woff2"}, {".woff", "font/woff"}, {".wasm", "application/wasm"},
	};
	const char *dot = strrchr(path, '.');

	for (size_t i = 0; dot != NULL && i < sizeof(types) / sizeof(types[0]); i++)
		if (strcasecmp(dot, types[i].ext) == 0)
			return types[i].type;
	return "application/octet-stream";
}

static const asset_meta_t *
asset_find(const tally_http_t *h, const char *url)
{
	const char *path = strcmp(url, "/") == 0 ? "index.html" : url + 1;

	for (unsigned i = 0; i < tally__http_nassets; i++)
		if (strcmp(h->assets[i].a->path, path) == 0)
			return &h->assets[i];
	return NULL;
}

static enum MHD_Result
ep_asset(struct MHD_Connection *conn, const asset_meta_t *m)
{
	const char *inm = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
	                                              MHD_HTTP_HEADER_IF_NONE_MATCH);
	/* Pages are revalidated every time (a new build shows at once); the rest for 5 min. */
	const char *cache = strncmp(m->type, "text/html", 9) == 0 ? "no-cache" : "public, max-age=300";
	struct MHD_Response *r;
	enum MHD_Result ret;
	bool not_modified = inm != NULL && strstr(inm, m->etag) != NULL;

	r = MHD_create_response_from_buffer(not_modified ? 0 : m->a->len,
	                                    not_modified ? (void *)"" : (void *)m->a->data,
	                                    MHD_RESPMEM_PERSISTENT);
	if (r == NULL)
		return MHD_NO;
	common_headers(r);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, m->type);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, cache);
	MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, m->etag);
	ret = MHD_queue_response(conn, not_modified ? MHD_HTTP_NOT_MODIFIED : MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

/* ---- Server-Sent Events ----------------------------------------------------------------------- */

static const char heartbeat_line[] = ": keepalive\n\n";

static ssize_t
stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	stream_t *s = cls;
	tally_http_t *h = s->h;
	uint64_t now, interval = (uint64_t)h->o.stream_interval_ms * 1000000ull;
	blob_t *b;
	int closing;

	(void)pos;
	/* Resumed because the client left: end it, freeing its slot (MHD's write of the last
	 * chunk then fails quietly and it closes the connection). */
	if (tally_load_acquire(&s->gone))
		return MHD_CONTENT_READER_END_OF_STREAM;
	for (;;) {
		if (s->cur != NULL) {
			size_t n = s->cur->buf.len - s->off;

			n = n < max ? n : max;
			memcpy(buf, s->cur->buf.p + s->off, n);
			s->off += n;
			if (s->off == s->cur->buf.len) {
				blob_release(s->cur);
				s->cur = NULL;
			}
			return (ssize_t)n;
		}
		if (s->lit != NULL) {
			size_t n = s->lit_len - s->lit_off;

			n = n < max ? n : max;
			memcpy(buf, s->lit + s->lit_off, n);
			s->lit_off += n;
			if (s->lit_off == s->lit_len)
				s->lit = NULL;
			return (ssize_t)n;
		}
		if (tally_load_acquire(&h->closing))
			return MHD_CONTENT_READER_END_OF_STREAM;
		now = tally_mono_ns();
		b = blob_acquire(h, B_SSE);
		if (b != NULL && (!s->sent_any || (b->version != s->sent_version &&
		                                   now - s->last_event_ns >= interval))) {
			s->cur = b;
			s->off = 0;
			s->sent_any = true;
			s->sent_version = b->version;
			s->last_event_ns = s->last_write_ns = now;
			tally_add_relaxed(&h->stream_events, 1);
			continue;
		}
		if (b != NULL)
			blob_release(b);
		if (now - s->last_write_ns >= (uint64_t)h->o.heartbeat_ms * 1000000ull) {
			s->lit = heartbeat_line;
			s->lit_len = sizeof(heartbeat_line) - 1;
			s->lit_off = 0;
			s->last_write_ns = now;
			continue;
		}
		/* Nothing due: park the connection until the render thread resumes it. If the
		 * adapter began stopping meanwhile, the stop may already have looked for suspended
		 * streams: resume at once, and the next call ends the stream. */
		MHD_suspend_connection(s->conn);
		pthread_mutex_lock(&h->streams_mu);
		closing = tally_load_acquire(&h->closing);
		s->suspended = !closing;
		pthread_mutex_unlock(&h->streams_mu);
		if (closing)
			MHD_resume_connection(s->conn);
		return 0;
	}
}

static void
stream_free(void *cls)
{
	stream_t *s = cls;
	tally_http_t *h = s->h;

	pthread_mutex_lock(&h->streams_mu);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		h->streams = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	tally_store_relaxed(&h->nstreams, h->nstreams - 1);
	pthread_mutex_unlock(&h->streams_mu);
	if (s->cur != NULL)
		blob_release(s->cur);
	free(s);
}

/* The client's address without its port (a zeroed key when MHD cannot say). */
static ipkey_t
client_ip(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	ipkey_t ip;

	memset(&ip, 0, sizeof(ip));
	if (ci == NULL || ci->client_addr == NULL)
		return ip;
	ip.family = ci->client_addr->sa_family;
	if (ip.family == AF_INET)
		memcpy(ip.addr, &((const struct sockaddr_in *)ci->client_addr)->sin_addr, 4);
	else if (ip.family == AF_INET6)
		memcpy(ip.addr, &((const struct sockaddr_in6 *)ci->client_addr)->sin6_addr, 16);
	return ip;
}

static enum MHD_Result
ep_stream(tally_http_t *h, struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *fdi;
	struct MHD_Response *r;
	enum MHD_Result ret;
	unsigned same = 0;
	stream_t *s;

	if (tally_load_acquire(&h->closing))
		return send_json_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting down", NULL, NULL);
	demand(h);
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return MHD_NO;
	s->h = h;
	s->conn = conn;
	fdi = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	s->fd = fdi != NULL ? fdi->connect_fd : -1;
	s->ip = client_ip(conn);
	s->last_write_ns = tally_mono_ns();
	pthread_mutex_lock(&h->streams_mu);
	for (stream_t *o = h->streams; o != NULL; o = o->next)
		same += memcmp(&o->ip, &s->ip, sizeof(s->ip)) == 0;
	/* Both limits leave room for other requests: streams never take every connection, of
	 * the server or of one address (a proxy's), so /metrics and /healthz still get in. */
	if (h->nstreams >= h->o.max_stream_clients || same >= h->o.max_streams_per_ip) {
		bool all = h->nstreams >= h->o.max_stream_clients;

		pthread_mutex_unlock(&h->streams_mu);
		free(s);
		return send_json_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
		                       all ? "too many stream clients"
		                           : "too many stream clients from this address",
		                       MHD_HTTP_HEADER_RETRY_AFTER, "5");
	}
	s->next = h->streams;
	if (h->streams != NULL)
		h->streams->prev = s;
	h->streams = s;
	tally_store_relaxed(&h->nstreams, h->nstreams + 1);
	pthread_mutex_unlock(&h->streams_mu);

	r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, s, stream_free);
	if (r == NULL) {
		stream_free(s);
		return MHD_NO;
	}
	common_headers(r);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream; charset=utf-8");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(r, "X-Accel-Buffering", "no");
	ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

/* ---- routing ------------------------------------------------------------------------------------ */

enum route {
	R_NONE, R_METRICS, R_RESULTS, R_CSV, R_STREAM, R_HEALTHZ, R_READYZ, R_OPEN, R_CLOSE, R_ASSET,
	R_CONTESTS, R_CONTESTS_CSV, R_CONTEST
};

static const struct {
	const char *path;
	enum route route;
	bool post;
} routes[] = {
	{"/metrics", R_METRICS, false},        {"/api/results", R_RESULTS, false},
	{"/api/results.csv", R_CSV, false},    {"/api/stream", R_STREAM, false},
	{"/healthz", R_HEALTHZ, false},        {"/readyz", R_READYZ, false},
	{"/api/election/open", R_OPEN, true},  {"/api/election/close", R_CLOSE, true},
	{"/api/contests", R_CONTESTS, false},  {"/api/contests.csv", R_CONTESTS_CSV, false},
};

#define CONTEST_PREFIX "/api/contests/"

/*
 * /api/contests (every contest, a page of them as asked: contests.h) and
 * /api/contests/{id}: from the contests table of the newest render.
 */
static enum MHD_Result
ep_contests(tally_http_t *h, struct MHD_Connection *conn, const char *id, bool csv)
{
	const char *why = "no such contest";
	hbuf_t out = {0};
	enum MHD_Result ret;
	blob_t *b;
	int status;

	demand(h);
	if ((b = blob_acquire(h, B_CONTESTS)) == NULL)
		return send_json_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "no results rendered yet",
		                       NULL, NULL);
	if (id != NULL) {
		status = tally__contest_one(&b->buf, h->reg, id, &out);
	} else {
		tally__contests_params_t p = {
#define ARG(name) MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, name)
			ARG("sort"), ARG("order"), ARG("q"), ARG("party"), ARG("status"), ARG("offset"),
			ARG("limit"),
#undef ARG
			csv,
		};

		status = tally__contests_query(&b->buf, h->reg, &p, &out, &why);
	}
	blob_release(b);
	if (status != 200) {
		hbuf_free(&out);
		return send_json_error(conn, (unsigned)status, status == 503 ? "out of memory" : why,
		                       NULL, NULL);
	}
	ret = send_buf(conn, MHD_HTTP_OK,
	               csv ? "text/csv; charset=utf-8; header=present"
	                   : "application/json; charset=utf-8",
	               out.p, out.len, MHD_RESPMEM_MUST_COPY, NULL, NULL);
	hbuf_free(&out);
	return ret;
}

/* Looks for Content-Length headers that differ (the first would win in MHD: smuggling). */
typedef struct cl_scan {
	const char *first;
	bool conflict;
} cl_scan_t;

static enum MHD_Result
cl_scan_one(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	cl_scan_t *c = cls;

	(void)kind;
	if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) != 0)
		return MHD_YES;
	if (c->first == NULL) {
		c->first = value != NULL ? value : "";
		return MHD_YES;
	}
	c->conflict = strcmp(c->first, value != NULL ? value : "") != 0;
	return c->conflict ? MHD_NO : MHD_YES;
}

/* Per-request state of a POST: the body bytes seen. */
typedef struct post_ctx {
	size_t body;
	bool too_big;
} post_ctx_t;

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
           const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	tally_http_t *h = cls;
	enum route route = R_NONE;
	const asset_meta_t *asset = NULL;
	bool post = false, is_get, is_post;

	(void)version;
	(void)upload_data;
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (strcmp(url, routes[i].path) == 0) {
			route = routes[i].route;
			post = routes[i].post;
			break;
		}
	}
	if (route == R_NONE && strncmp(url, CONTEST_PREFIX, strlen(CONTEST_PREFIX)) == 0 &&
	    url[strlen(CONTEST_PREFIX)] != '\0')
		route = R_CONTEST;
	if (route == R_NONE && (asset = asset_find(h, url)) != NULL)
		route = R_ASSET;
	is_get = strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
	is_post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;

	if (*con_cls == NULL) {
		cl_scan_t scan = {NULL, false};

		/* Two differing lengths: refused, and the connection closed after the answer (a
		 * response queued before the body makes MHD discard it and not reuse the
		 * connection), so no proxy and this server can disagree on where it ends. */
		MHD_get_connection_values(conn, MHD_HEADER_KIND, cl_scan_one, &scan);
		if (scan.conflict) {
			conn_deadline(h, conn, false);
			return send_json_error(conn, MHD_HTTP_BAD_REQUEST,
			                       "conflicting Content-Length headers", NULL, NULL);
		}
	}
	if (*con_cls == NULL && route != R_NONE && post && is_post) {
		/* First call of a POST: refuse an announced oversize body before it is sent. */
		const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
		                                             MHD_HTTP_HEADER_CONTENT_LENGTH);
		post_ctx_t *pc;

		if (cl != NULL && strtoull(cl, NULL, 10) > h->o.max_body_bytes) {
			conn_deadline(h, conn, false);
			return send_json_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large",
			                       NULL, NULL);
		}
		if ((pc = calloc(1, sizeof(*pc))) == NULL)
			return MHD_NO;
		*con_cls = pc;
		return MHD_YES;
	}
	if (*con_cls != NULL && *upload_data_size > 0) {
		post_ctx_t *pc = *con_cls;

		pc->body += *upload_data_size;
		*upload_data_size = 0;
		/* A body beyond the limit without Content-Length (chunked): close the connection. */
		return pc->body > h->o.max_body_bytes ? MHD_NO : MHD_YES;
	}
	/* The whole request is here: its deadline ends as the response starts (a stream may
	 * then last as long as it likes). */
	conn_deadline(h, conn, false);
	tally_add_relaxed(&h->requests, 1);

	if (route == R_NONE)
		return send_json_error(conn, MHD_HTTP_NOT_FOUND, "not found", NULL, NULL);
	if (post && !is_post)
		return send_json_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed",
		                       MHD_HTTP_HEADER_ALLOW, "POST");
	if (!post && !is_get)
		return send_json_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed",
		                       MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	switch (route) {
	case R_METRICS:
		return ep_metrics(h, conn);
	case R_RESULTS:
		return ep_results(h, conn, B_JSON, "application/json; charset=utf-8");
	case R_CSV:
		return ep_results(h, conn, B_CSV, "text/csv; charset=utf-8; header=present");
	case R_STREAM:
		return ep_stream(h, conn);
	case R_HEALTHZ:
		return send_buf(conn, MHD_HTTP_OK, "application/json; charset=utf-8",
		                "{\"status\":\"ok\"}\n", 16, MHD_RESPMEM_PERSISTENT, NULL, NULL);
	case R_READYZ:
		return ep_readyz(h, conn);
	case R_OPEN:
		return ep_admin(h, conn, TALLY_HTTP_ACTION_OPEN);
	case R_CLOSE:
		return ep_admin(h, conn, TALLY_HTTP_ACTION_CLOSE);
	case R_ASSET:
		return ep_asset(conn, asset);
	case R_CONTESTS:
		return ep_contests(h, conn, NULL, false);
	case R_CONTESTS_CSV:
		return ep_contests(h, conn, NULL, true);
	case R_CONTEST:
		return ep_contests(h, conn, url + strlen(CONTEST_PREFIX), false);
	case R_NONE:
		break;
	}
	return MHD_NO;
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
	(void)toe;
	free(*con_cls);
	*con_cls = NULL;
	/* A kept-alive connection's next request has request_timeout_s from now to arrive. */
	conn_deadline(cls, conn, true);
}

/* ---- lifecycle ----------------------------------------------------------------------------------- */

int
tally_http_parse_addr(const char *text, struct sockaddr_storage *out, socklen_t *outlen,
                      char *errstr, size_t errstr_size)
{
	char host[64];
	const char *colon, *port_s;
	char *end;
	unsigned long port;

	memset(out, 0, sizeof(*out));
	if (text == NULL || *text == '\0')
		goto bad;
	if (text[0] == '[') {
		const char *close = strchr(text, ']');

		if (close == NULL || close[1] != ':' || (size_t)(close - text - 1) >= sizeof(host))
			goto bad;
		memcpy(host, text + 1, (size_t)(close - text - 1));
		host[close - text - 1] = '\0';
		port_s = close + 2;
	} else {
		if ((colon = strrchr(text, ':')) == NULL || (size_t)(colon - text) >= sizeof(host))
			goto bad;
		memcpy(host, text, (size_t)(colon - text));
		host[colon - text] = '\0';
		port_s = colon + 1;
	}
	errno = 0;
	port = strtoul(port_s, &end, 10);
	if (*port_s < '0' || *port_s > '9' || *end != '\0' || errno != 0 || port > 65535)
		goto bad;
	if (host[0] == '\0' || strcmp(host, "localhost") == 0)
		snprintf(host, sizeof(host), "127.0.0.1");
	{
		struct sockaddr_in *a4 = (struct sockaddr_in *)out;
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)out;

		if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
			a4->sin_family = AF_INET;
			a4->sin_port = htons((uint16_t)port);
			*outlen = sizeof(*a4);
			return 0;
		}
		if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
			a6->sin6_family = AF_INET6;
			a6->sin6_port = htons((uint16_t)port);
			*outlen = sizeof(*a6);
			return 0;
		}
	}
bad:
	tally_errstr_set(errstr, errstr_size,
	                 "invalid listen address \"%s\": expected ADDR:PORT with a numeric address, "
	                 "e.g. 127.0.0.1:8080 or [::1]:8080", text ? text : "");
	return TALLY_EINVAL;
}

tally_http_t *
tally_http_new(tally_core_t *core, const tally_http_opts_t *opts, char *errstr,
               size_t errstr_size)
{
	tally_http_opts_t o = opts ? *opts : (tally_http_opts_t){0};
	tally_http_t *h;

	if (core == NULL) {
		tally_errstr_set(errstr, errstr_size, "http: no core given");
		return NULL;
	}
	o.threads = o.threads ? o.threads : 2;
	o.max_connections = o.max_connections ? o.max_connections : 256;
	o.max_connections_per_ip = o.max_connections_per_ip ? o.max_connections_per_ip : 64;
	o.connection_timeout_s = o.connection_timeout_s ? o.connection_timeout_s : 10;
	o.max_header_bytes = o.max_header_bytes ? o.max_header_bytes : 16384;
	o.max_body_bytes = o.max_body_bytes ? o.max_body_bytes : 4096;
	o.request_timeout_s = o.request_timeout_s ? o.request_timeout_s : 10;
	if (o.max_stream_clients == 0)
		o.max_stream_clients = o.max_connections - o.max_connections / 4 < 64
		                           ? o.max_connections - o.max_connections / 4
		                           : 64;
	if (o.max_streams_per_ip == 0)
		o.max_streams_per_ip = o.max_connections_per_ip - o.max_connections_per_ip / 4;
	o.render_interval_ms = o.render_interval_ms ? o.render_interval_ms : 100;
	o.stream_interval_ms = o.stream_interval_ms ? o.stream_interval_ms : 200;
	o.heartbeat_ms = o.heartbeat_ms ? o.heartbeat_ms : 15000;
	o.max_region_series = o.max_region_series ? o.max_region_series : 500;
	o.idle_after_ms = o.idle_after_ms ? o.idle_after_ms : 60000;
	if (o.threads > 64 || o.max_header_bytes < 4096) {
		tally_errstr_set(errstr, errstr_size,
		                 "http: invalid options: threads 1..64, max_header_bytes >= 4096");
		return NULL;
	}
	/* Streams may never take every connection: scrapes and probes must get in. */
	if (o.max_stream_clients >= o.max_connections) {
		tally_errstr_set(errstr, errstr_size,
		                 "http: invalid options: max_stream_clients (%u) must be below "
		                 "max_connections (%u), to leave room for other requests",
		                 o.max_stream_clients, o.max_connections);
		return NULL;
	}
	if (o.max_streams_per_ip >= o.max_connections_per_ip) {
		tally_errstr_set(errstr, errstr_size,
		                 "http: invalid options: max_streams_per_ip (%u) must be below "
		                 "max_connections_per_ip (%u), to leave room for other requests",
		                 o.max_streams_per_ip, o.max_connections_per_ip);
		return NULL;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL)
		goto nomem;
	h->core = core;
	h->reg = tally_core_registry(core);
	h->o = o;
	if (o.addr != NULL) {
		if (o.addrlen > sizeof(h->addr) ||
		    (o.addr->sa_family != AF_INET && o.addr->sa_family != AF_INET6)) {
			tally_errstr_set(errstr, errstr_size, "http: the listen address must be IPv4 or IPv6");
			free(h);
			return NULL;
		}
		memcpy(&h->addr, o.addr, o.addrlen);
		h->addrlen = o.addrlen;
	} else {
		char text[96];

		snprintf(text, sizeof(text), strchr(o.host ? o.host : "", ':') ? "[%s]:%u" : "%s:%u",
		         o.host ? o.host : "127.0.0.1", (unsigned)o.port);
		if (tally_http_parse_addr(text, &h->addr, &h->addrlen, errstr, errstr_size) != 0) {
			free(h);
			return NULL;
		}
	}
	h->o.addr = NULL;
	h->o.host = NULL;
	if (o.admin_token != NULL && o.admin_token[0] != '\0') {
		if ((h->token = strdup(o.admin_token)) == NULL)
			goto nomem;
		h->token_len = strlen(h->token);
	}
	h->o.admin_token = NULL;
	if ((h->build_version = strdup(o.build_version ? o.build_version : TALLY_VERSION_STRING)) == NULL)
		goto nomem;
	if ((h->snap = calloc(1, sizeof(*h->snap))) == NULL)
		goto nomem;
	if ((h->assets = calloc(tally__http_nassets + 1, sizeof(*h->assets))) == NULL)
		goto nomem;
	for (unsigned i = 0; i < tally__http_nassets; i++) {
		asset_meta_t *m = &h->assets[i];

		m->a = &tally__http_assets[i];
		m->type = content_type(m->a->path);
		snprintf(m->etag, sizeof(m->etag), "\"%016" PRIx64 "\"", fnv1a(m->a->data, m->a->len));
	}
	pthread_mutex_init(&h->streams_mu, NULL);
	pthread_mutex_init(&h->conns_mu, NULL);
	pthread_mutex_init(&h->wait_mu, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&h->wait_cv, &ca);
		pthread_cond_init(&h->done_cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	return h;
nomem:
	tally_errstr_set(errstr, errstr_size, "http: out of memory");
	tally_http_destroy(h);
	return NULL;
}

int
tally_http_start(tally_http_t *h, char *errstr, size_t errstr_size)
{
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
	                 MHD_USE_ERROR_LOG;
	const union MHD_DaemonInfo *info;
	struct MHD_OptionItem mopts[16];
	int n = 0, rc;

	if (h->running)
		return 0;
	/* Bodies exist before the first request can arrive. */
	h->rendered = false;
	if ((rc = render_once(h)) != 0) {
		tally_errstr_set(errstr, errstr_size, "http: no results to serve: %s",
		                 rc == TALLY_EAGAIN ? "the snapshot source has none yet"
		                                    : tally_err2str(rc));
		return rc;
	}
	if (tally_load_relaxed(&h->current[B_JSON]) == NULL) {
		tally_errstr_set(errstr, errstr_size, "http: out of memory rendering the first bodies");
		return TALLY_ENOMEM;
	}
	if (h->addr.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	mopts[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, &h->addr};
	if (h->o.threads > 1)
		mopts[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, h->o.threads, NULL};
	mopts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT, h->o.max_connections, NULL};
	mopts[n++] = (struct MHD_OptionItem){MHD_OPTION_PER_IP_CONNECTION_LIMIT,
	                                     h->o.max_connections_per_ip, NULL};
	mopts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT,
	                                     h->o.connection_timeout_s, NULL};
	mopts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT,
	                                     (intptr_t)h->o.max_header_bytes, NULL};
	mopts[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, h};
	mopts[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, h};
	mopts[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};

	tally_store_release(&h->closing, 0);
	/* The logger must come first, or MHD prints the earlier options' complaints itself.
	 * libmicrohttpd's threads inherit this thread's signal mask: every signal blocked, so
	 * only the program's main thread sees SIGTERM and SIGINT. */
	{
		sigset_t all, old;

		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		h->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h,
		                             MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, h,
		                             MHD_OPTION_ARRAY, mopts, MHD_OPTION_END);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	if (h->daemon == NULL) {
		char host[INET6_ADDRSTRLEN] = "?";
		unsigned port = 0;

		if (h->addr.ss_family == AF_INET) {
			inet_ntop(AF_INET, &((struct sockaddr_in *)&h->addr)->sin_addr, host, sizeof(host));
			port = ntohs(((struct sockaddr_in *)&h->addr)->sin_port);
		} else {
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&h->addr)->sin6_addr, host, sizeof(host));
			port = ntohs(((struct sockaddr_in6 *)&h->addr)->sin6_port);
		}
		tally_errstr_set(errstr, errstr_size, "http: could not listen on \"%s:%u\": %s", host,
		                 port, errno ? strerror(errno) : "libmicrohttpd failed to start");
		return TALLY_EIO;
	}
	info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
	h->port = info ? info->port : 0;

	h->quit = 0;
	/* Starting counts as a look: render for idle_after_ms even if nobody asks. */
	tally_store_relaxed(&h->demand_ns, tally_mono_ns());
	{
		char msg[160];
		int e = tally_thread_start(&h->thread, "tally:http", render_main, h, msg, sizeof(msg));

		if (e != 0) {
			MHD_stop_daemon(h->daemon);
			h->daemon = NULL;
			tally_errstr_set(errstr, errstr_size, "http: %s", msg);
			return e;
		}
	}
	h->running = true;
	hlog(h, "http: listening on port %u", (unsigned)h->port);
	return 0;
}

void
tally_http_stop(tally_http_t *h)
{
	uint64_t deadline;

	if (h == NULL || !h->running)
		return;
	/* End every stream: resume the suspended ones until their readers have returned
	 * end-of-stream and their responses are gone (bounded: a client that stopped reading
	 * is closed by MHD_stop_daemon below, which then finds no suspended connection). */
	tally_store_release(&h->closing, 1);
	deadline = tally_mono_ns() + 2000000000ull;
	for (;;) {
		unsigned left, suspended = 0;

		streams_wake(h, true);
		pthread_mutex_lock(&h->streams_mu);
		left = h->nstreams;
		for (stream_t *s = h->streams; s != NULL; s = s->next)
			suspended += s->suspended;
		pthread_mutex_unlock(&h->streams_mu);
		if (left == 0 || (suspended == 0 && tally_mono_ns() > deadline))
			break;
		usleep(5000);
	}
	MHD_stop_daemon(h->daemon);
	h->daemon = NULL;

	pthread_mutex_lock(&h->wait_mu);
	h->quit = 1;
	pthread_cond_signal(&h->wait_cv);
	pthread_mutex_unlock(&h->wait_mu);
	pthread_join(h->thread, NULL);
	h->running = false;
	h->port = 0;
	hlog(h, "http: stopped");
}

void
tally_http_destroy(tally_http_t *h)
{
	blob_t *b, *next;

	if (h == NULL)
		return;
	tally_http_stop(h);
	for (int k = 0; k < B__COUNT; k++)
		h->current[k] = NULL;
	for (b = h->pool; b != NULL; b = next) {
		next = b->next;
		hbuf_free(&b->buf);
		free(b);
	}
	tally_snapshot_destroy(h->snap);
	tally__render_scratch_free(&h->rs);
	tally_contests_free(&h->cres);
	hbuf_free(&h->core_text);
	hbuf_free(&h->core_om);
	hbuf_free(&h->app_prev);
	tally__metrics_builder_free(&h->app);
	if (h->assets != NULL) {
		pthread_mutex_destroy(&h->streams_mu);
		pthread_mutex_destroy(&h->conns_mu);
		pthread_mutex_destroy(&h->wait_mu);
		pthread_cond_destroy(&h->wait_cv);
		pthread_cond_destroy(&h->done_cv);
	}
	free(h->assets);
	if (h->token != NULL)
		memset(h->token, 0, h->token_len);
	free(h->token);
	free(h->build_version);
	free(h);
}

uint16_t
tally_http_port(const tally_http_t *h)
{
	return h != NULL && h->running ? h->port : 0;
}

void
tally_http_get_stats(const tally_http_t *h, tally_http_stats_t *out)
{
	out->renders = tally_load_relaxed(&h->renders);
	out->metrics_renders = tally_load_relaxed(&h->metrics_renders);
	out->requests = tally_load_relaxed(&h->requests);
	out->stream_clients = tally_load_relaxed(&h->nstreams);
	out->streams_gone = tally_load_relaxed(&h->streams_gone);
	out->requests_timed_out = tally_load_relaxed(&h->requests_timed_out);
	out->stream_events = tally_load_relaxed(&h->stream_events);
	out->version = tally_load_relaxed(&h->version);
	out->snapshot_ns = tally_load_relaxed(&h->snapshot_ns);
	out->render_ns = tally_load_relaxed(&h->render_ns);
}
