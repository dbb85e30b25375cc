/**
 * @file http.h
 * @brief The HTTP adapter: live results, Prometheus metrics, Server-Sent Events, health
 * probes, election admin and the embedded dashboard, served by libmicrohttpd.
 *
 * DESIGN: nothing here touches the vote path. A render thread ("tally:http") gets the
 * results to serve every render_interval_ms: from the app's snapshot callback when it
 * gives one (tallyd serves only states PostgreSQL has committed), else a live core snapshot
 * (lock-free, tally_snapshot_take_into). Only when the snapshot version or the app's
 * metrics changed does it render the response bodies
 * (/metrics in both formats, /api/results JSON and CSV, the SSE event) into reference-
 * counted buffers and publishes them with release stores. libmicrohttpd's own threads
 * (a small pool, epoll) answer requests from the published buffers without copying
 * them: a request takes a reference with one atomic add, the response releases it when
 * sent. Buffers are never freed while the adapter lives, only reused once nobody holds
 * them, so a reader that raced with a publish never touches freed memory. The SSE clients
 * are suspended libmicrohttpd connections; the render thread resumes them when there is a
 * new version (at most every stream_interval_ms each) or a heartbeat is due. The only
 * mutexes are inside this adapter (the stream list, the render thread's sleep). While
 * nobody has asked for anything for idle_after_ms and no stream is open, the render thread
 * takes no snapshots at all; the first request after that waits for one fresh render.
 * The render thread also closes connections whose request has not arrived whole within
 * request_timeout_s, however slowly it is sent, and ends streams whose client has gone.
 *
 * Endpoints: GET /metrics, /api/results, /api/results.csv, /api/stream, /healthz,
 * /readyz, / and the dashboard's files; POST /api/election/open and /api/election/close.
 * Unknown paths answer 404, a known path with another method 405 with Allow; every error
 * body is JSON {"error": "..."}. No voter data exists in what is served: snapshots hold
 * counts and candidate, party and region names only. Request bodies and the admin token
 * are never logged.
 */
#ifndef TALLY_HTTP_H
#define TALLY_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <tally/core.h>
#include <tally/snapshot.h>

typedef struct tally_http tally_http_t;

/* ---- app metrics: a builder the app's callback appends samples to ------------------ */

typedef struct tally_metrics_builder tally_metrics_builder_t;

/**
 * @brief Append a counter sample. name must end in "_total" (in OpenMetrics the family is
 * the name without it) and match [a-zA-Z_:][a-zA-Z0-9_:]*.
 *
 * Samples of one family (same name) must be appended one after the other; HELP and TYPE
 * are written before the first, and a sample of a family already left is refused. labels is NULL or a NULL-terminated list of name, value
 * pairs: {"partition", "3", NULL}. Values are escaped (backslash, quote, newline); label
 * names must be valid and must not start with "__".
 * @returns 0, or TALLY_EINVAL (the sample is dropped) for a bad name, label or help.
 */
int tally_metrics_counter(tally_metrics_builder_t *b, const char *name, const char *help,
                          const char *const *labels, double value);

/** @brief Append a gauge sample (as tally_metrics_counter, name must not end in "_total"). */
int tally_metrics_gauge(tally_metrics_builder_t *b, const char *name, const char *help,
                        const char *const *labels, double value);

/* ---- callbacks the app gives ---------------------------------------------------------- */

/** Admin actions. */
typedef enum tally_http_action {
	TALLY_HTTP_ACTION_OPEN,      /**< POST /api/election/open */
	TALLY_HTTP_ACTION_CLOSE,     /**< POST /api/election/close */
} tally_http_action_t;

/**
 * @brief Is the app ready to serve (registry loaded, partitions assigned, checkpoint
 * restored)? Called on an HTTP thread for every GET /readyz; must be quick and thread-safe.
 * @returns true when ready; else false with a short reason in reason (e.g.
 * "checkpoint not restored"), which is served, so no secrets.
 */
typedef bool (*tally_http_ready_cb)(void *arg, char *reason, size_t reason_size);

/**
 * @brief Perform an admin action. Called on an HTTP thread; the app should hand the
 * action to its own control thread (the core's election calls pause the workers, and
 * pauses must come from one thread) and wait for the outcome. It may block (the HTTP
 * thread pool has other threads), but briefly.
 * @returns 0 on success, TALLY_ESTATE when the election is in the wrong state (served as
 * 409), anything else as 500; errstr may hold a message for the client.
 */
typedef int (*tally_http_admin_cb)(void *arg, tally_http_action_t action, char *errstr,
                                   size_t errstr_size);

/**
 * @brief Append the app's own metrics (checkpoint age, consumer lag, ...) with
 * tally_metrics_counter()/tally_metrics_gauge(). Called on the render thread every
 * render_interval_ms; must be quick and must not block. Family names must not clash with
 * the adapter's own (every one starts with "tally_" and is listed in the README). Also
 * called once by tally_http_start() on its caller's thread, for the first bodies.
 */
typedef void (*tally_http_metrics_cb)(void *arg, tally_metrics_builder_t *b);

/**
 * @brief Fill snap with the results to serve (e.g. the last state a store committed).
 * Called on the render thread (and once by tally_http_start() on its caller's thread);
 * must not block. snap is the adapter's own, reused between calls (arrays grown as
 * tally_snapshot_take_into() does; use a copy helper that reuses them, such as
 * tally_snapshot_copy_into()). It is zeroed before the first call, and afterwards holds
 * what the last successful call left in it (snap->version says which state that is).
 * @returns 0 when snap holds results to serve, TALLY_EAGAIN when there is nothing newer
 * than what snap already holds (the adapter then keeps its bodies), other codes as errors
 * (logged when they start and stop; the bodies already published stay served).
 */
typedef int (*tally_http_snapshot_cb)(void *arg, tally_snapshot_t *snap);

/** Optional log sink for the adapter's own lines (never request data or tokens). */
typedef void (*tally_http_log_cb)(void *arg, const char *line);

/* ---- options -------------------------------------------------------------------------- */

/** Adapter options. 0 or NULL picks the default given. */
typedef struct tally_http_opts {
	/* Where to listen: addr if set (a parsed sockaddr, e.g. from tally_http_parse_addr()),
	 * else host (a numeric IPv4 or IPv6 address; default "127.0.0.1") and port. */
	const struct sockaddr *addr;
	socklen_t addrlen;
	const char *host;
	uint16_t port;                  /**< 0: pick a free one (see tally_http_port()). */

	unsigned threads;               /**< libmicrohttpd thread pool, default 2. */
	unsigned max_connections;       /**< In all, default 256. */
	unsigned max_connections_per_ip; /**< default 64. */
	unsigned connection_timeout_s;  /**< Connection closed after this long without a byte
	                                     either way, default 10. */
	unsigned request_timeout_s;     /**< A request (line, headers and body) must have
	                                     arrived this long after its connection opened or
	                                     the previous response on it ended, however slowly
	                                     it is sent; else the connection is closed. Default
	                                     10. Streams are not cut: the bound ends when a
	                                     response starts. */
	size_t max_header_bytes;        /**< Request line + headers, default 16384. */
	size_t max_body_bytes;          /**< POST body, default 4096; more gets 413. */
	unsigned max_stream_clients;    /**< /api/stream clients at once, default 64 (at most
	                                     3/4 of max_connections); then 503. Must be below
	                                     max_connections, so scrapes and probes get in. */
	unsigned max_streams_per_ip;    /**< /api/stream clients from one address, default
	                                     max_connections_per_ip minus a quarter of it (48);
	                                     then 503. Must be below max_connections_per_ip, so
	                                     that address (e.g. a local proxy) can still reach
	                                     /metrics and /healthz. */

	unsigned render_interval_ms;    /**< Snapshot and render at most this often, default 100. */
	unsigned stream_interval_ms;    /**< SSE events per client at most this often, default 200. */
	unsigned heartbeat_ms;          /**< SSE comment line when idle this long, default 15000. */
	unsigned max_region_series;     /**< Regions with their own metric series, default 500. */
	unsigned idle_after_ms;         /**< No snapshots while nobody asked for a body this long
	                                     and no stream is open, default 60000; the first
	                                     request after that waits for a fresh render. */

	const char *admin_token;        /**< NULL or "": admin endpoints answer 403. Copied. */
	const char *build_version;      /**< tally_build_info{version}; default the project's. */

	tally_http_ready_cb ready;      /**< NULL: always ready. */
	tally_http_admin_cb admin;      /**< NULL: admin endpoints answer 403. */
	tally_http_metrics_cb metrics;  /**< NULL: none. */
	tally_http_snapshot_cb snapshot; /**< NULL: the core's live counts. */
	tally_http_log_cb log;          /**< NULL: silent. */
	void *cb_arg;                   /**< Passed to every callback. */
} tally_http_opts_t;

/* ---- lifecycle -------------------------------------------------------------------------- */

/**
 * @brief Create an adapter serving core's results (core, and its registry, must outlive
 * it). Checks the options; does not bind yet.
 * @returns NULL with errstr set on failure. Free with tally_http_destroy().
 */
tally_http_t *tally_http_new(tally_core_t *core, const tally_http_opts_t *opts, char *errstr,
                             size_t errstr_size);

/**
 * @brief Render the first bodies (from opts.snapshot when given), bind, and start the
 * render thread and libmicrohttpd's threads. Call from one control thread.
 * @returns 0, or TALLY_EIO (bind failed, e.g. the port is in use), TALLY_ENOMEM, or the
 * snapshot callback's error (TALLY_EAGAIN when it had no results yet), with errstr.
 */
int tally_http_start(tally_http_t *h, char *errstr, size_t errstr_size);

/**
 * @brief Stop serving: end the SSE streams, stop libmicrohttpd (open connections are
 * closed) and join the render thread. Safe to call twice or before start.
 */
void tally_http_stop(tally_http_t *h);

/** @brief Stop if running and free. NULL is a no-op. */
void tally_http_destroy(tally_http_t *h);

/** @brief The port bound (the one picked when opts.port was 0), or 0 when not started. */
uint16_t tally_http_port(const tally_http_t *h);

/**
 * @brief Parse "ADDR:PORT" ("127.0.0.1:8080", "[::1]:8080", "0.0.0.0:0"; "localhost" is
 * 127.0.0.1; ":PORT" is loopback 127.0.0.1) into out.
 * @returns 0, or TALLY_EINVAL with errstr set.
 */
int tally_http_parse_addr(const char *text, struct sockaddr_storage *out, socklen_t *outlen,
                          char *errstr, size_t errstr_size);

/** Counters of the adapter itself, for tests and the app's logs. */
typedef struct tally_http_stats {
	uint64_t renders;               /**< Times the result bodies were rendered. */
	uint64_t metrics_renders;       /**< Times the /metrics bodies were rendered. */
	uint64_t requests;              /**< Requests answered. */
	uint64_t stream_clients;        /**< SSE clients connected now. */
	uint64_t streams_gone;          /**< SSE clients found gone while waiting for an event. */
	uint64_t requests_timed_out;    /**< Connections closed for request_timeout_s. */
	uint64_t stream_events;         /**< SSE result events sent. */
	uint64_t version;               /**< Snapshot version of the published bodies. */
	uint64_t snapshot_ns;           /**< Time spent taking snapshots, in all. */
	uint64_t render_ns;             /**< Time spent rendering bodies, in all. */
} tally_http_stats_t;

/** @brief Current counters (relaxed reads; any thread). */
void tally_http_get_stats(const tally_http_t *h, tally_http_stats_t *out);

#endif /* TALLY_HTTP_H */
