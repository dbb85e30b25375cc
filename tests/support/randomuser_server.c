/*
 * The fake Random User API (see randomuser_server.h). Moved here from
 * tests/adapters/test_randomuser.c so that the tally-gen integration test serves the same
 * users.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#include "randomuser_server.h"

struct rusrv {
	struct MHD_Daemon *daemon;
	int port;
	char url[64];
	pthread_mutex_t mu;
	rusrv_mode_t mode;
	int nreq;
	char queries[RUSRV_MAX_LOGGED][128];
	uint64_t next_user;
};

static void
fail(const char *what)
{
	fprintf(stderr, "randomuser_server: %s\n", what);
	abort();
}

void
rusrv_user_id(uint64_t k, char out[37])
{
	snprintf(out, 37, "00000000-0000-4000-8000-%012" PRIx64, (uint64_t)(k & 0xffffffffffffull));
}

int64_t
rusrv_user_of_id(const char *id)
{
	static const char prefix[] = "00000000-0000-4000-8000-";
	char *end;
	unsigned long long k;

	if (id == NULL || strlen(id) != 36 || strncmp(id, prefix, sizeof(prefix) - 1) != 0)
		return -1;
	k = strtoull(id + sizeof(prefix) - 1, &end, 16);
	if (*end != '\0')
		return -1;
	return (int64_t)k;
}

/* The API's shape for user k: nested objects, postcode a number for every third user. */
static json_t *
make_user(uint64_t k)
{
	char uuid[40], first[32], last[32], street[32], city[32], state[32], postcode[32];
	char email[64], user[32], dob[32], phone[32], cell[32], pic[96];

	rusrv_user_id(k, uuid);
	snprintf(first, sizeof(first), "First%llu", (unsigned long long)k);
	snprintf(last, sizeof(last), "Last%llu", (unsigned long long)k);
	snprintf(street, sizeof(street), "Street %llu", (unsigned long long)(k % 50));
	snprintf(city, sizeof(city), "City%llu", (unsigned long long)(k % 10));
	snprintf(state, sizeof(state), "State%llu", (unsigned long long)(k % 7));
	snprintf(postcode, sizeof(postcode), "AB%llu 1CD", (unsigned long long)(k % 90));
	snprintf(email, sizeof(email), "user%llu@example.com", (unsigned long long)k);
	snprintf(user, sizeof(user), "user%llu", (unsigned long long)k);
	snprintf(dob, sizeof(dob), "19%02llu-%02llu-%02lluT08:34:27.123Z",
	         (unsigned long long)(40 + k % 60), (unsigned long long)(1 + k % 12),
	         (unsigned long long)(1 + k % 28));
	snprintf(phone, sizeof(phone), "01%09llu", (unsigned long long)k);
	snprintf(cell, sizeof(cell), "07%09llu", (unsigned long long)k);
	snprintf(pic, sizeof(pic), "https://randomuser.me/api/portraits/%s/%llu.jpg",
	         k % 2 ? "women" : "men", (unsigned long long)(k % 100));
	return json_pack(
	    "{s:s, s:{s:s, s:s, s:s}, s:{s:{s:I, s:s}, s:s, s:s, s:s, s:o, s:{s:s, s:s}},"
	    " s:s, s:{s:s, s:s, s:s}, s:{s:s, s:i}, s:{s:s, s:I}, s:s, s:s, s:{s:s, s:s},"
	    " s:s}",
	    "gender", k % 2 ? "female" : "male",
	    "name", "title", "Mx", "first", first, "last", last,
	    "location", "street", "number", (json_int_t)(k % 200 + 1), "name", street,
	    "city", city, "state", state, "country", "United Kingdom",
	    "postcode", k % 3 == 0 ? json_integer((json_int_t)(10000 + k)) : json_string(postcode),
	    "coordinates", "latitude", "51.5", "longitude", "-0.1",
	    "email", email,
	    "login", "uuid", uuid, "username", user, "password", "secret",
	    "dob", "date", dob, "age", 40,
	    "registered", "date", "2010-05-01T10:00:00.000Z", "age", (json_int_t)(k % 20),
	    "phone", phone, "cell", cell,
	    "picture", "large", pic, "thumbnail", pic,
	    "nat", "GB");
}

typedef struct qbuf {
	char s[128];
	size_t n;
} qbuf_t;

static enum MHD_Result
add_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	qbuf_t *q = cls;

	(void)kind;
	q->n += (size_t)snprintf(q->s + q->n, sizeof(q->s) - q->n, "%s%s=%s", q->n ? "&" : "", key,
	                         value != NULL ? value : "");
	if (q->n >= sizeof(q->s))
		q->n = sizeof(q->s) - 1;
	return MHD_YES;
}

static enum MHD_Result
handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
       const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	rusrv_t *srv = cls;
	qbuf_t q = { .n = 0 };
	const char *results_arg;
	int nreq, status = MHD_HTTP_OK, retry_after = 0;
	size_t want;
	char *body;
	struct MHD_Response *resp;
	enum MHD_Result ret;

	(void)url, (void)method, (void)version, (void)upload, (void)upload_size, (void)con_cls;
	MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, add_arg, &q);
	results_arg = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "results");
	want = results_arg != NULL ? (size_t)strtoul(results_arg, NULL, 10) : 1;

	pthread_mutex_lock(&srv->mu);
	nreq = srv->nreq++;
	if (srv->mode == RUSRV_SLOW || (srv->mode == RUSRV_SLOW_ONCE && nreq == 0)) {
		pthread_mutex_unlock(&srv->mu);
		usleep(800 * 1000);
		pthread_mutex_lock(&srv->mu);
	}
	if (nreq < RUSRV_MAX_LOGGED)
		snprintf(srv->queries[nreq], sizeof(srv->queries[nreq]), "%s", q.s);
	if (srv->mode == RUSRV_503_TWICE && nreq < 2)
		status = 503;
	else if (srv->mode == RUSRV_429_ONCE && nreq < 1)
		status = 429, retry_after = 1;
	else if (srv->mode == RUSRV_404)
		status = 404;

	if (status != MHD_HTTP_OK) {
		body = strdup("{\"error\": \"not now\"}");
	} else if (srv->mode == RUSRV_MALFORMED) {
		body = strdup("{\"results\": [{\"gender\": \"male\",");
	} else {
		json_t *root, *arr = json_array();
		size_t n = srv->mode == RUSRV_SHORT && want > 0 ? want - 1 : want;

		for (size_t i = 0; i < n; i++) {
			json_t *u = make_user(srv->next_user++);

			if (srv->mode == RUSRV_NO_UUID && i == 2)
				json_object_del(json_object_get(u, "login"), "uuid");
			json_array_append_new(arr, u);
		}
		root = json_pack("{s:o, s:{s:s, s:I, s:i, s:s}}", "results", arr, "info", "seed",
		                 "abc", "results", (json_int_t)n, "page", 1, "version", "1.4");
		body = json_dumps(root, JSON_COMPACT);
		json_decref(root);
	}
	pthread_mutex_unlock(&srv->mu);
	if (body == NULL)
		return MHD_NO;

	resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	MHD_add_response_header(resp, "Content-Type", "application/json");
	if (retry_after)
		MHD_add_response_header(resp, "Retry-After", "1");
	ret = MHD_queue_response(conn, (unsigned)status, resp);
	MHD_destroy_response(resp);
	return ret;
}

rusrv_t *
rusrv_start(void)
{
	const union MHD_DaemonInfo *info;
	struct sockaddr_in loopback = { .sin_family = AF_INET, .sin_port = 0 };
	rusrv_t *srv = calloc(1, sizeof(*srv));

	if (srv == NULL)
		fail("out of memory");
	pthread_mutex_init(&srv->mu, NULL);
	srv->mode = RUSRV_OK;
	loopback.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* A thread per connection, so a slow answer does not hold up the client's retry. */
	srv->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD |
	                               MHD_USE_THREAD_PER_CONNECTION,
	                               0, NULL, NULL, handle, srv, MHD_OPTION_SOCK_ADDR, &loopback,
	                               MHD_OPTION_END);
	if (srv->daemon == NULL)
		fail("could not start the server: MHD_start_daemon failed");
	info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
	if (info == NULL || info->port == 0)
		fail("could not read the server's port");
	srv->port = info->port;
	snprintf(srv->url, sizeof(srv->url), "http://127.0.0.1:%d/api/", srv->port);
	return srv;
}

void
rusrv_stop(rusrv_t *srv)
{
	if (srv == NULL)
		return;
	if (srv->daemon != NULL)
		MHD_stop_daemon(srv->daemon);
	pthread_mutex_destroy(&srv->mu);
	free(srv);
}

const char *
rusrv_url(const rusrv_t *srv)
{
	return srv->url;
}

int
rusrv_port(const rusrv_t *srv)
{
	return srv->port;
}

void
rusrv_set_mode(rusrv_t *srv, rusrv_mode_t mode)
{
	pthread_mutex_lock(&srv->mu);
	srv->mode = mode;
	pthread_mutex_unlock(&srv->mu);
}

void
rusrv_reset_users(rusrv_t *srv)
{
	pthread_mutex_lock(&srv->mu);
	srv->next_user = 0;
	pthread_mutex_unlock(&srv->mu);
}

int
rusrv_requests(rusrv_t *srv)
{
	int n;

	pthread_mutex_lock(&srv->mu);
	n = srv->nreq;
	pthread_mutex_unlock(&srv->mu);
	return n;
}

uint64_t
rusrv_users_served(rusrv_t *srv)
{
	uint64_t n;

	pthread_mutex_lock(&srv->mu);
	n = srv->next_user;
	pthread_mutex_unlock(&srv->mu);
	return n;
}

const char *
rusrv_query(rusrv_t *srv, int i)
{
	const char *q;

	/* A logged slot is written once, under the mutex: taking it here orders the read. */
	pthread_mutex_lock(&srv->mu);
	q = i >= 0 && i < RUSRV_MAX_LOGGED && i < srv->nreq ? srv->queries[i] : "";
	pthread_mutex_unlock(&srv->mu);
	return q;
}

int
rusrv_requests_with(rusrv_t *srv, const char *key, const char *value)
{
	char arg[128];
	int n = 0;

	snprintf(arg, sizeof(arg), "%s=%s", key, value);
	pthread_mutex_lock(&srv->mu);
	for (int i = 0; i < srv->nreq && i < RUSRV_MAX_LOGGED; i++) {
		const char *q = srv->queries[i];
		size_t len = strlen(arg);

		for (const char *p = q; (p = strstr(p, arg)) != NULL; p += len) {
			if ((p == q || p[-1] == '&') && (p[len] == '\0' || p[len] == '&')) {
				n++;
				break;
			}
		}
	}
	pthread_mutex_unlock(&srv->mu);
	return n;
}
